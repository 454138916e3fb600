"""Score one checkpoint on one benchmark with lm-evaluation-harness (0-shot), offline.

The task definitions live in `workflow_scripts/eval_tasks/{task}.yaml`: copies of lm-eval's own
YAML for each task (same prompt, choices, target and metrics) that read a local JSONL file
instead of the Hugging Face Hub. This module loads that YAML with lm-eval's own loader, points
`dataset_kwargs.data_files` at the `--data` file (datasets' packaged `json` builder), and hands the
config dict to `lm_eval.simple_evaluate` through a TaskManager that indexes no built-in tasks.

    python -m workflow_scripts.evaluate --model-dir DIR --task boolq \
        --data results/data/eval/boolq.jsonl --limit 50 --batch-size 8 --threads 2 \
        --dtype float32 --out results/.../scores/boolq.json

Output: one JSON per checkpoint and task, written atomically:
    {"task", "metric", "score", "stderr", "n", "metrics": {...}, "model_dir", "num_fewshot",
     "limit", "lm_eval_version", "device", "wall_seconds"}
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

# Everything runs offline: the data is a local file and the model a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from workflow_scripts.files import InputError, read_jsonl, run_main, setup_logging, write_json  # noqa: E402
from workflow_scripts.prepare_data import check_eval_record  # noqa: E402

TASKS_DIR = Path(__file__).resolve().parent / "eval_tasks"

# The number each task reports as its score (the summary imports this).
HEADLINE_METRIC = {"boolq": "acc", "asdiv": "acc", "logiqa": "acc_norm"}

NUM_FEWSHOT = 0
FILTER_SUFFIX = ",none"

log = logging.getLogger("evaluate")


def check_task(task: str) -> None:
    if task not in HEADLINE_METRIC:
        raise InputError(f"unknown task {task!r}: known tasks are {', '.join(sorted(HEADLINE_METRIC))}")
    if not (TASKS_DIR / f"{task}.yaml").is_file():
        raise InputError(f"task {task!r}: missing task config {TASKS_DIR / f'{task}.yaml'}")


def check_data(task: str, data: str | os.PathLike) -> int:
    """Validate the eval JSONL for `task` (the rules of prepare_data); return its number of rows."""
    path = Path(data)
    if not path.is_file():
        raise InputError(f"{path}: eval data file for task {task!r} not found")
    rows = 0
    for lineno, record in read_jsonl(path):
        try:
            check_eval_record(task, record)
        except ValueError as err:
            raise InputError(f"{path}:{lineno}: {task} row {record.get('id', '?')!r}: {err}") from None
        rows += 1
    if rows == 0:
        raise InputError(f"{path}: eval data file for task {task!r} is empty")
    return rows


def task_config(task: str, data: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The lm-eval task config dict for `task`, reading its test split from the local JSONL `data`.

    The YAML is read with lm-eval's own loader, so `!function` references resolve against
    `eval_tasks/` exactly as they would for a YAML in lm-eval's task directory.
    """
    from lm_eval.tasks._yaml_loader import load_yaml

    check_task(task)
    cfg = load_yaml(TASKS_DIR / f"{task}.yaml", resolve_func=True)
    dataset_kwargs: dict[str, Any] = {"data_files": {"test": str(Path(data).resolve())}}
    if cache_dir is not None:
        dataset_kwargs["cache_dir"] = str(cache_dir)
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs=dataset_kwargs, test_split="test")
    for split in ("training_split", "validation_split", "fewshot_split"):
        cfg.pop(split, None)
    return cfg


def task_manager():
    """A TaskManager that indexes none of lm-eval's built-in tasks (ours come in as dicts)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False)


def build_task(task: str, data: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
    """The lm-eval Task object built from our config, with its data loaded (for inspection/tests)."""
    return task_manager().load([task_config(task, data, cache_dir)])["tasks"][task]


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def collect_metrics(task_results: dict[str, Any]) -> dict[str, float | None]:
    """Every "metric,filter" entry of lm-eval's per-task results, with the ",none" suffix removed.

    Bookkeeping entries (alias, name, sample_len) are left out; a value lm-eval could not compute
    (e.g. "N/A" for the stderr of a single item) becomes None.
    """
    metrics = {}
    for key, value in task_results.items():
        if "," not in key:
            continue
        name = key[: -len(FILTER_SUFFIX)] if key.endswith(FILTER_SUFFIX) else key
        metrics[name] = _number(value)
    return metrics


def evaluate(model_dir: str | os.PathLike, task: str, data: str | os.PathLike, limit: int | None = None,
             batch_size: int = 8, dtype: str = "float32", device: str | None = None,
             cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run lm-eval on one task; return the score record (not written)."""
    import torch
    import lm_eval

    check_task(task)
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise InputError(f"{model_dir}: not a transformers checkpoint directory (no config.json)")
    rows = check_data(task, data)
    limit = limit if limit and limit > 0 else None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    log.info("task %s: %d rows in %s%s; model %s on %s (%s)", task, rows, data,
             f", limit {limit}" if limit else "", model_dir, device, dtype)

    start = time.perf_counter()
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model_dir), "dtype": dtype, "trust_remote_code": False},
        tasks=[task_config(task, data, cache_dir)],
        task_manager=task_manager(),
        num_fewshot=NUM_FEWSHOT,
        limit=limit,
        batch_size=batch_size,
        device=device,
        log_samples=False,
    )
    wall = time.perf_counter() - start
    if out is None:  # only on non-zero ranks of a distributed run
        raise RuntimeError("lm-eval returned no results")

    metrics = collect_metrics(out["results"][task])
    headline = HEADLINE_METRIC[task]
    if metrics.get(headline) is None:
        raise RuntimeError(f"lm-eval reported no {headline!r} for {task}: {out['results'][task]}")
    n_samples = out.get("n-samples", {}).get(task, {})
    n = int(n_samples.get("effective", min(rows, limit or rows)))
    log.info("task %s: %s = %.4f over %d items in %.1f s", task, headline, metrics[headline], n, wall)
    return {
        "task": task,
        "metric": headline,
        "score": metrics[headline],
        "stderr": metrics.get(f"{headline}_stderr"),
        "n": n,
        "metrics": metrics,
        "model_dir": str(model_dir),
        "num_fewshot": NUM_FEWSHOT,
        "limit": limit,
        "lm_eval_version": lm_eval.__version__,
        "device": device,
        "wall_seconds": round(wall, 3),
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="local transformers checkpoint directory")
    parser.add_argument("--task", required=True, help=f"one of {', '.join(sorted(HEADLINE_METRIC))}")
    parser.add_argument("--data", required=True, help="eval JSONL for the task")
    parser.add_argument("--out", required=True, help="score JSON to write")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N rows (0: all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"])
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--cache-dir", default=None, help="datasets cache directory (default: HF_DATASETS_CACHE)")
    return parser.parse_args(argv)


def main(argv=None) -> dict[str, Any]:
    setup_logging("evaluate")
    args = parse_args(argv)
    check_task(args.task)
    if args.limit < 0:
        raise InputError(f"--limit must be >= 0, got {args.limit}")
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    record = evaluate(args.model_dir, args.task, args.data, limit=args.limit, batch_size=args.batch_size,
                      dtype=args.dtype, device=args.device, cache_dir=args.cache_dir)
    write_json(args.out, record)
    log.info("wrote %s (total wall time %.1f s)", args.out, time.perf_counter() - start)
    return record


if __name__ == "__main__":
    run_main(main)
