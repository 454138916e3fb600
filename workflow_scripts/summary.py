"""Collect the score JSONs into results/summary.csv and results/summary.md.

One row per evaluated checkpoint (model, method, variant, seed), one column per task (its
headline metric, as the evaluator recorded it) and their mean over the tasks.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from workflow_scripts.files import InputError, atomic_path, run_main, setup_logging

log = setup_logging("summary")

METHOD_ORDER = {"base": 0, "sft": 1, "ignore": 2, "forget": 3, "random": 4, "rho1": 5, "self_evolving": 6}


def describe(path: Path, results: Path) -> dict:
    """results/{model}/{run}/scores/{task}.json -> model, method, variant, seed, task."""
    parts = path.relative_to(results).parts
    model, run, task = parts[0], parts[1:-2], path.stem
    if run == ("base",):
        return {"model": model, "method": "base", "variant": "", "seed": "", "task": task}
    if len(run) != 3 or not run[2].startswith("seed"):
        raise InputError(f"{path}: not a score file of the form results/MODEL/METHOD/VARIANT/seedN/scores/TASK.json")
    return {"model": model, "method": run[0], "variant": run[1], "seed": run[2][4:], "task": task}


def summary_table(paths: list[Path], results: Path) -> pd.DataFrame:
    records = []
    for path in paths:
        score = json.loads(path.read_text())
        records.append({**describe(path, results), "score": score["score"],
                        "metric": f"{score['task']}_{score['metric']}"})
    long = pd.DataFrame(records)
    table = long.pivot_table(index=["model", "method", "variant", "seed"], columns="metric",
                             values="score", aggfunc="first").reset_index()
    table.columns.name = None
    metrics = sorted(long["metric"].unique())
    table["mean"] = table[metrics].mean(axis=1)
    table["_order"] = table["method"].map(METHOD_ORDER).fillna(len(METHOD_ORDER))
    return table.sort_values(["model", "_order", "variant", "seed"]).drop(columns="_order").reset_index(drop=True)


def to_markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "| " + " | ".join("---" if c in ("model", "method", "variant", "seed") else "---:" for c in table.columns) + " |"
    rows = ["| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join(["# Summary", "", "Scores are the headline metric of each task (0-1); `mean` averages the tasks.",
                      "", header, rule, *rows, ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default="results", help="results root the score paths are under")
    parser.add_argument("--out-csv", required=True)
    parser.add_argument("--out-md", required=True)
    parser.add_argument("scores", nargs="+", help="score JSON files")
    args = parser.parse_args(argv)

    table = summary_table([Path(p) for p in args.scores], Path(args.results))
    with atomic_path(args.out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(args.out_md) as tmp:
        Path(tmp).write_text(to_markdown(table), encoding="utf-8")
    log.info("%d checkpoints x %d tasks -> %s", len(table), len(table.columns) - 5, args.out_csv)


if __name__ == "__main__":
    run_main(main)
