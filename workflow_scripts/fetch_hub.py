"""Fetch what a config takes from the Hugging Face Hub into the Hub caches, on the submit host.

Compute nodes of many clusters have no internet. The rules that run this module are local rules
(rules/fetch.smk): they download into the caches under HF_HOME (models and data sets:
HF_HUB_CACHE; lm-eval's benchmark data sets: HF_DATASETS_CACHE), which must lie on a file system
the compute nodes share. Every other job runs with the Hub's offline switches set and reads only
those caches. Each fetch writes a small JSON beside the outputs: what was fetched, from where, the
commit it resolved to and where it lies, so that the jobs that read it follow it in the DAG.

    python -m workflow_scripts.fetch_hub model --source HuggingFaceTB/SmolLM2-135M-Instruct --out M.json
    python -m workflow_scripts.fetch_hub pool --source allenai/tulu-v2-sft-mixture --split train --out P.json
    python -m workflow_scripts.fetch_hub eval --task truthfulqa_mc2 --out E.json
"""
from __future__ import annotations

import argparse
import os
import time

from workflow_scripts.files import InputError, run_main, setup_logging, write_json

log = setup_logging("fetch_hub")

# What a model needs besides its weights: config, tokenizer, chat template, custom code.
MODEL_FILES = ["*.json", "*.model", "*.txt", "*.tiktoken", "*.py", "*.jinja", "tokenizer*"]


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def weight_patterns(files: list[str], gguf_file: str | None) -> list[str]:
    """Only one copy of the weights: the GGUF file asked for, else safetensors, else PyTorch .bin."""
    if gguf_file:
        return [gguf_file]
    if any(f.endswith(".safetensors") for f in files):
        return ["*.safetensors"]
    return ["*.bin"]


def fetch_model(source: str, gguf_file: str | None) -> dict:
    from huggingface_hub import HfApi, snapshot_download

    start = time.time()
    log.info("model %s: fetching from %s (HF_TOKEN %s) into %s", source, endpoint(),
             "set" if os.environ.get("HF_TOKEN") else "not set", hub_cache())
    files, cause = None, None
    try:
        files = HfApi().list_repo_files(source)
    except Exception as err:  # offline, or an id the Hub does not know: the cache may still hold it
        cause = err
        log.warning("model %s: cannot list its files (%s: %s); using the cached snapshot if there is one",
                    source, type(err).__name__, err)
    patterns = None if files is None else MODEL_FILES + weight_patterns(files, gguf_file)
    try:
        folder = (snapshot_download(source, local_files_only=True) if patterns is None else
                  snapshot_download(source, allow_patterns=patterns))
    except Exception as err:
        cause = cause or err  # unlisted and not cached: why it could not be listed is the news
        raise InputError(f"could not fetch the model {source!r} from {endpoint()}: {type(cause).__name__}: {cause} "
                         "[gated models such as meta-llama/* need a token in HF_TOKEN whose account was granted "
                         "access]") from None
    return {"kind": "model", "source": source, "patterns": patterns, **snapshot_record(folder, start)}


def fetch_pool(source, revision, data_files, split) -> dict:
    from workflow_scripts.pool_sources import Source, hub_snapshot

    start = time.time()
    folder = hub_snapshot(Source(source, revision, tuple(data_files), split))
    return {"kind": "pool", "source": source, "revision": revision, "data_files": data_files, "split": split,
            **snapshot_record(folder, start)}


def fetch_eval(task: str) -> dict:
    """lm-eval's stock task (or each task of a tag) built once, which downloads its data set."""
    from lm_eval.tasks import TaskManager

    from workflow_scripts.evaluate import fetch_stock_task, leaf_tasks

    start = time.time()
    manager = TaskManager()
    members = leaf_tasks(manager, task)
    datasets = []
    for member in members:
        fetch_stock_task(manager, member)
        cfg = manager.task_index[member].cfg or {}
        datasets.append({"task": member, "dataset_path": cfg.get("dataset_path"),
                         "dataset_name": cfg.get("dataset_name")})
    return {"kind": "eval", "task": task, "datasets": datasets, "cache": datasets_cache(),
            "wall_seconds": round(time.time() - start, 1)}


def snapshot_record(folder: str, start: float) -> dict:
    return {"commit": os.path.basename(folder), "path": str(folder), "endpoint": endpoint(),
            "wall_seconds": round(time.time() - start, 1)}


def hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def datasets_cache() -> str:
    import datasets

    return str(datasets.config.HF_DATASETS_CACHE)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    model = kinds.add_parser("model", help="a model's config, tokenizer and one copy of its weights")
    model.add_argument("--source", required=True, help="a Hugging Face model id")
    model.add_argument("--gguf-file", default=None, help="only this GGUF file as the weights")
    pool = kinds.add_parser("pool", help="the files of a data set pool")
    pool.add_argument("--source", required=True, help="a Hugging Face data set id")
    pool.add_argument("--revision", default=None)
    pool.add_argument("--data-files", nargs="*", default=[])
    pool.add_argument("--split", default=None)
    evaluation = kinds.add_parser("eval", help="the data set(s) of an lm-eval stock task or tag")
    evaluation.add_argument("--task", required=True, help="lm-eval's name of the task or tag")
    for sub in (model, pool, evaluation):
        sub.add_argument("--out", required=True, help="the JSON record of what was fetched")
    args = parser.parse_args(argv)

    offline = [key for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(key, "0") not in ("", "0")]
    if offline:
        log.warning("%s set: only what the caches already hold can be found", " and ".join(offline))
    if args.kind == "model":
        record = fetch_model(args.source, args.gguf_file)
    elif args.kind == "pool":
        record = fetch_pool(args.source, args.revision, args.data_files, args.split)
    else:
        record = fetch_eval(args.task)
    write_json(args.out, record)
    log.info("%s: fetched in %.1f s: %s", args.kind, record["wall_seconds"], record.get("path") or record["cache"])


if __name__ == "__main__":
    run_main(main)
