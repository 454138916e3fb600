"""The whole DAG on a tiny model over a grid of every method x two rho x two seeds: artifacts,
exact influence, partition counts, distinct checkpoints, a no-op rerun, and a rho change that
reruns only what depends on it."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from safetensors.numpy import load_file

from tiny import make_workdir

ROOT = Path(__file__).resolve().parents[1]
MODEL = "tiny"
RHOS = ["0.7", "0.5"]
SEEDS = [1, 2]
RUNS = [run for seed in SEEDS for run in [f"sft/all/seed{seed}"] + [
    f"{method}/{variant}/seed{seed}" for rho in RHOS for method, variant in [
        ("ignore", f"rho{rho}"), ("forget", f"rho{rho}-ascent-linear"), ("random", f"rho{rho}-random-ascent-linear"),
        ("rho1", f"rho{rho}"), ("self_evolving", f"rho{rho}-K2-ascent-linear")]]]


def checkpoint(run):
    """Where a run's merged model lies (self_evolving: its last round)."""
    return f"{run}/round2/model" if run.startswith("self_evolving") else f"{run}/model"
TASKS = ["boolq", "asdiv", "logiqa"]


def tiny_config(tiny_model_dir, data_dir):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["model"] = {"name": MODEL, "source": str(tiny_model_dir), "dtype": "float32"}
    config["data"] = {"pool": str(data_dir / "pool.jsonl"), "eval": str(data_dir / "eval")}
    config["split"] = {"reference_size": 8, "train_size": 16, "seed": 0}
    config["tokenize"] = {"max_seq_length": 64}
    config["training"].update(lora_r=4, lora_alpha=8, learning_rate=5e-2, batch_size=4)
    config["eval"] = {"tasks": TASKS, "limit": {}, "batch_size": 4}
    config.update(methods=["sft", "ignore", "forget", "random", "rho1", "self_evolving"],
                  rho=[float(r) for r in RHOS], seeds=SEEDS, self_evolving={"rounds": 2})
    # One thread per job: two small jobs at a time on two cores.
    config["resources"] = {group: {**res, "cpus_per_task": 1} for group, res in config["resources"].items()}
    return config


def snakemake(workdir, *args):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "--profile", str(ROOT / "profiles" / "local"), "--cores", "2", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=900)


def planned_jobs(result) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    stats = result.stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_model_dir):
    workdir = make_workdir(tmp_path_factory.mktemp("workflow"), lambda data: tiny_config(tiny_model_dir, data))
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir


def test_every_artifact_exists(workdir):
    results = workdir / "results"
    expected = [
        "data/pool.jsonl", "data/reference.jsonl", "data/train.jsonl",
        *[f"data/eval/{t}.jsonl" for t in TASKS],
        f"{MODEL}/tokens/reference.parquet", f"{MODEL}/tokens/train.parquet",
        f"{MODEL}/reference/model.safetensors", f"{MODEL}/losses/base.parquet", f"{MODEL}/losses/reference.parquet",
        f"{MODEL}/influence.parquet", f"{MODEL}/rho0.7/partition.parquet", f"{MODEL}/rho0.5/partition.json",
        f"{MODEL}/rho0.5-random/seed2/partition.parquet",
        *[f"{MODEL}/{checkpoint(run)}/model.safetensors" for run in RUNS],
        f"{MODEL}/self_evolving/rho0.5-K2-ascent-linear/seed2/round1/partition.parquet",
        *[f"{MODEL}/{run}/scores/{t}.json" for run in ["base", *RUNS] for t in TASKS],
        "summary.csv", "summary_by_method.csv", "summary.md", "tokens.html",
    ]
    missing = [p for p in expected if not (results / p).is_file()]
    assert not missing
    assert (workdir / f"resources/models/{MODEL}/model.safetensors").is_file()
    logs = {p.relative_to(workdir / "logs").as_posix() for p in (workdir / "logs").rglob("*.log")}
    assert {"prepare_data.log", "split.log", f"{MODEL}/train_reference.log", "summary.log"} <= logs


def test_influence_is_exactly_base_minus_reference(workdir):
    results = workdir / "results" / MODEL
    base = pq.read_table(results / "losses/base.parquet")
    ref = pq.read_table(results / "losses/reference.parquet")
    influence = pq.read_table(results / "influence.parquet")
    assert base.num_rows == ref.num_rows == influence.num_rows > 0
    np.testing.assert_array_equal(influence["influence"].to_numpy(),
                                  base["loss"].to_numpy() - ref["loss"].to_numpy())
    assert influence["influence"].type == base["loss"].type  # float32 throughout


@pytest.mark.parametrize("partition", ["rho0.7", "rho0.5", "rho0.7-random/seed1", "rho0.5-random/seed2"])
def test_positive_count_is_round_rho_n(workdir, partition):
    part = pq.read_table(workdir / "results" / MODEL / partition / "partition.parquet")
    n_positive = int(np.sum(part["positive"].to_numpy(zero_copy_only=False)))
    assert n_positive == round(float(partition[3:6]) * part.num_rows)


def test_methods_give_different_checkpoints(workdir):
    weights = [load_file(workdir / "results" / MODEL / checkpoint(run) / "model.safetensors") for run in RUNS]
    base = load_file(workdir / f"resources/models/{MODEL}/model.safetensors")
    for name in ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"]:
        tensors = [base[name]] + [w[name] for w in weights]
        for i in range(len(tensors)):
            for j in range(i + 1, len(tensors)):
                assert not np.array_equal(tensors[i], tensors[j]), (name, (["base"] + RUNS)[i], (["base"] + RUNS)[j])


def test_summary_has_a_row_per_checkpoint(workdir):
    lines = (workdir / "results/summary.csv").read_text().splitlines()
    assert lines[0] == "model,method,variant,seed,asdiv_acc,boolq_acc,logiqa_acc_norm,mean"
    rows = [tuple(line.split(",")[1:4]) for line in lines[1:]]
    assert len(rows) == len(set(rows)) == 1 + len(RUNS)
    assert sorted(rows) == sorted([("base", "", "")] + [tuple(run.split("/")[:2]) + (run[-1],) for run in RUNS])
    assert [row[0] for row in rows][:2] == ["base", "sft"]


@pytest.mark.parametrize("name", ["scores", "influence", "training"])
def test_figures_are_valid_pngs(workdir, name):
    from PIL import Image

    path = workdir / "results" / "plots" / f"{name}.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
        assert image.size[0] > 300 and image.size[1] > 200


def test_token_page_colours_every_shown_response_token(workdir):
    page = (workdir / "results" / "tokens.html").read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert page.count('class="example"') == 16  # every training example: the tiny split has 16
    spans = re.findall(r'<span class="tok( neg)?( noisy)?" style="background:rgb\(\d+,\d+,\d+\)" title="influence', page)
    n_tokens = pq.read_table(workdir / "results" / MODEL / "influence.parquet").num_rows
    assert len(spans) == n_tokens
    assert sum(1 for neg, _ in spans if neg) == n_tokens - round(0.7 * n_tokens)


def test_snakemake_report_is_self_contained(workdir):
    result = snakemake(workdir, "--report", workdir / "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    report = (workdir / "report.html").read_text()
    assert len(report) > 100_000
    for caption in ("Forgetting", "Influence (loss under the base model", "Sample training responses"):
        assert caption in report


def test_second_run_is_a_no_op(workdir):
    result = snakemake(workdir, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_rho_reruns_only_partition_and_downstream(workdir):
    (workdir / "rho.yaml").write_text("rho: [0.7, 0.3]\n")
    result = snakemake(workdir, "--dry-run", "--configfile", workdir / "config.yaml", workdir / "rho.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    # rho 0.3, two seeds: ignore, forget, random, rho1 retrained, self_evolving's two rounds too;
    # sft and everything of rho 0.7 untouched.
    assert planned_jobs(result) == {"partition": 1, "random_partition": 2, "train_final": 8,
                                    "self_evolving_round": 4, "evaluate": 30, "summary": 1, "plots": 1, "all": 1}
