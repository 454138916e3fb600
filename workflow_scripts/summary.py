"""Collect the score JSONs into the summary tables.

- results/summary.csv: one row per evaluated checkpoint (model, method, variant, seed), one column
  per task (its headline metric, as the evaluator recorded it) and their mean over the tasks;
- results/summary_by_method.csv: one row per model, method and variant, averaged over seeds, with
  the standard deviation over seeds, the 95% interval half-width (Student t over seeds; empty
  with one seed) and the difference to `sft` of the same model;
- results/summary.md: both, readable.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd
from scipy import stats

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


def score_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in ("model", "method", "variant", "seed")]


def by_method(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per model, method and variant; std, 95% t-interval half-width, delta to sft."""
    columns = score_columns(table)
    rows = []
    for (model, method, variant), group in table.groupby(["model", "method", "variant"], sort=False):
        n = len(group)
        row = {"model": model, "method": method, "variant": variant, "seeds": n}
        for column in columns:
            values = group[column].astype(float)
            std = values.std(ddof=1) if n > 1 else math.nan
            row[column] = values.mean()
            row[f"{column}_std"] = std
            row[f"{column}_ci95"] = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n) if n > 1 else math.nan
        rows.append(row)
    summary = pd.DataFrame(rows)
    sft = summary[summary["method"] == "sft"].set_index("model")
    for column in columns:
        summary[f"{column}_delta_sft"] = summary[column] - summary["model"].map(sft[column]) if len(sft) else math.nan
    return summary


def markdown_table(header: list[str], rows: list[list[str]], text_columns: int) -> list[str]:
    rule = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    return ["| " + " | ".join(line) + " |" for line in [header, rule, *rows]]


def to_markdown(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    columns = score_columns(table)

    def cell(row, column):
        value = f"{row[column]:.4f}"
        return value if math.isnan(row[f"{column}_ci95"]) else f"{value} ± {row[f'{column}_ci95']:.4f}"

    def delta(value):
        return "" if math.isnan(value) else f"{value:+.4f}"

    method_rows = [[r["model"], r["method"], r["variant"], str(r["seeds"]), *(cell(r, c) for c in columns),
                    delta(r["mean_delta_sft"])] for _, r in summary.iterrows()]
    run_rows = [[*(str(v) for v in row[:4]), *(f"{v:.4f}" for v in row[4:])] for row in table.itertuples(index=False)]
    return "\n".join([
        "# Summary", "",
        "Scores are each task's headline metric (0-1); `mean` averages the tasks. Per method: the mean over",
        "seeds, ± the 95% interval half-width (Student t over seeds, shown with two or more seeds);",
        "`Δ mean vs sft` is the difference of the means to `sft` of the same model.", "",
        *markdown_table(["model", "method", "variant", "seeds", *columns, "Δ mean vs sft"], method_rows, 3), "",
        "## Every checkpoint", "",
        *markdown_table(list(table.columns), run_rows, 4), ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default="results", help="results root the score paths are under")
    parser.add_argument("--out-csv", required=True, help="one row per checkpoint")
    parser.add_argument("--out-by-method", required=True, help="one row per model, method and variant")
    parser.add_argument("--out-md", required=True)
    parser.add_argument("scores", nargs="+", help="score JSON files")
    args = parser.parse_args(argv)

    table = summary_table([Path(p) for p in args.scores], Path(args.results))
    summary = by_method(table)
    with atomic_path(args.out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(args.out_by_method) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(args.out_md) as tmp:
        Path(tmp).write_text(to_markdown(table, summary), encoding="utf-8")
    log.info("%d checkpoints x %d tasks -> %s", len(table), len(table.columns) - 5, args.out_csv)


if __name__ == "__main__":
    run_main(main)
