"""The statistics of an experiment's scores: per checkpoint, per method over seeds, and each method's
difference to sft with 95% intervals paired by seed and by item. No rendering here (summary.py
writes the tables; scripts/study_tables.py prints the study's from the same numbers).

Each score JSON says which checkpoint it scored (`model`, `data`, `run`); runs are read with the
run grammar (workflow_scripts/runs.py), never from the file's path.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from scipy import stats

from workflow_scripts import runs
from workflow_scripts.files import InputError

METHOD_ORDER = {method: i for i, method in enumerate(("base",) + runs.METHODS)}


def describe(score: dict, path: Path) -> dict:
    """A score record -> model, method, variant, seed, task (the run it names, read by the grammar)."""
    missing = [key for key in ("model", "run", "task", "metric", "score") if key not in score]
    if missing:
        raise InputError(f"{path}: score record without {', '.join(missing)}")
    if score["run"] == "base":
        return {"model": score["model"], "method": "base", "variant": "", "seed": "", "task": score["task"]}
    try:
        run = runs.parse(score["run"])
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None
    return {"model": score["model"], "method": run.method, "variant": run.variant, "seed": str(run.seed),
            "task": score["task"]}


def read_scores(paths: list[Path]) -> pd.DataFrame:
    """One row per score file: the checkpoint, the column (task_metric), the score and the per-item
    scores (None where the evaluator recorded none)."""
    records = []
    for path in paths:
        score = json.loads(path.read_text())
        scale = score.get("scale", 1)
        items = score.get("items")
        records.append({**describe(score, path), "score": score["score"] / scale,
                        "metric": f"{score['task']}_{score['metric']}",
                        "items": None if items is None else
                        pd.Series(items["score"], index=items["doc_id"], dtype=float) / scale})
    return pd.DataFrame(records)


def summary_table(long: pd.DataFrame, report_only: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per checkpoint, a column per task_metric and `mean`, the headline: the mean of the
    tasks, those in `report_only` (task names) left out of it and placed after it."""
    table = long.pivot_table(index=["model", "method", "variant", "seed"], columns="metric",
                             values="score", aggfunc="first").reset_index()
    table.columns.name = None
    shown = set(long[long["task"].isin(report_only)]["metric"])
    metrics = sorted(set(long["metric"]) - shown)
    table = table[["model", "method", "variant", "seed", *metrics, *sorted(shown)]]
    table.insert(4 + len(metrics), "mean", table[metrics].mean(axis=1))
    table["_order"] = table["method"].map(METHOD_ORDER).fillna(len(METHOD_ORDER))
    return table.sort_values(["model", "_order", "variant", "seed"]).drop(columns="_order").reset_index(drop=True)


def score_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in ("model", "method", "variant", "seed")]


def item_paired_deltas(long: pd.DataFrame) -> dict:
    """The 95% interval half-width of (method - sft) paired by item: per item, the method's score
    averaged over its seeds minus sft's averaged over the same seeds (all of sft's for a checkpoint
    without seeds, the base model, or without one in common); Student t over the items.

    This is the smallest difference of the task mean that these evaluation items can tell from
    zero at 95% (two-sided): the item-sampling half of the uncertainty, where the seed interval
    of `paired_deltas` is the training half. The `mean` column combines the tasks as independent:
    sqrt(sum of squared half-widths) / tasks. NaN where a checkpoint has no per-item scores or the
    two do not cover the same items.
    """
    out: dict = {}
    sft = long[long["method"] == runs.SFT]
    for (model, method, variant), group in long[long["method"] != runs.SFT].groupby(
            ["model", "method", "variant"], sort=False):
        halves = {}
        shared = set(group["seed"]) & set(sft[sft["model"] == model]["seed"])
        for metric, rows in group.groupby("metric", sort=False):
            mine = sft[(sft["model"] == model) & (sft["metric"] == metric)]
            reference = list(mine[mine["seed"].isin(shared)]["items"] if shared else mine["items"])
            halves[metric] = _item_half_width(list(rows["items"]), reference) if reference else math.nan
        out[(model, method, variant)] = _with_mean(halves)
    return out


def item_intervals(long: pd.DataFrame) -> dict:
    """The 95% interval half-width of each method's own score over the evaluation items: per item,
    the mean over seeds; Student t over the items. With one seed this is the only interval there
    is; `mean` combines the tasks as `item_paired_deltas` does."""
    return {key: _with_mean({metric: _item_half_width(list(rows["items"]))
                             for metric, rows in group.groupby("metric", sort=False)})
            for key, group in long.groupby(["model", "method", "variant"], sort=False)}


def _with_mean(halves: dict) -> dict:
    values = list(halves.values())
    return {**halves, "mean": math.sqrt(sum(h * h for h in values)) / len(values) if values else math.nan}


def _item_half_width(runs_items: list, sft_items: list = ()) -> float:
    """Student t half-width over the items of (mean over runs) - (mean over sft, if given)."""
    everything = [*runs_items, *sft_items]
    if not runs_items or any(items is None for items in everything):
        return math.nan
    index = everything[0].index
    if any(not items.index.equals(index) for items in everything):
        return math.nan
    values = pd.concat(runs_items, axis=1).mean(axis=1)
    if sft_items:
        values = values - pd.concat(list(sft_items), axis=1).mean(axis=1)
    n = len(values)
    return stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan


def by_method(table: pd.DataFrame, long: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean over seeds per model, method and variant; std and 95% t-interval half-width over seeds
    and over items; the difference to sft with its intervals paired by seed and by item."""
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
    sft = summary[summary["method"] == runs.SFT].set_index("model")
    paired, differences = paired_deltas(table, columns), paired_differences(table, columns)
    for column in columns:
        # a run's difference to sft over the seeds both have; the base model's to sft's mean
        unpaired = list(summary[column] - summary["model"].map(sft[column])) if len(sft) else [math.nan] * len(summary)
        summary[f"{column}_delta_sft"] = [
            differences[key][column] if (key := (r.model, r.method, r.variant)) in differences else unpaired[i]
            for i, r in enumerate(summary.itertuples())]
        summary[f"{column}_delta_sft_ci95"] = [paired.get((r.model, r.method, r.variant), {}).get(column, math.nan)
                                              for r in summary.itertuples()]
    own = item_intervals(long) if long is not None else {}
    for column in columns:
        summary[f"{column}_items_ci95"] = [own.get((r.model, r.method, r.variant), {}).get(column, math.nan)
                                           for r in summary.itertuples()]
    by_item = item_paired_deltas(long) if long is not None else {}
    for column in columns:
        summary[f"{column}_delta_sft_items_ci95"] = [
            by_item.get((r.model, r.method, r.variant), {}).get(column, math.nan) if r.method != runs.SFT else math.nan
            for r in summary.itertuples()]
    return summary


def paired_differences(table: pd.DataFrame, columns: list[str]) -> dict:
    """The mean of (run - sft) over the seeds both have, per model, method and variant with at least
    one: the difference the design compares (a cell run on fewer seeds than sft is compared with
    sft's same seeds, not with all of sft's)."""
    sft = table[table["method"] == runs.SFT].set_index(["model", "seed"])[columns]
    out = {}
    for key, group in table[table["method"] != "base"].groupby(["model", "method", "variant"], sort=False):
        both = group.join(sft, on=["model", "seed"], rsuffix="_sft", how="inner")
        if len(both):
            out[key] = {column: (both[column] - both[f"{column}_sft"]).mean() for column in columns}
    return out


def paired_deltas(table: pd.DataFrame, columns: list[str]) -> dict:
    """The 95% interval half-width of (run - sft) paired by seed: every method of a seed shares
    the initialisation and data order with that seed's sft, so the per-seed difference is the
    comparison the design makes (Student t over the seeds both have; NaN below two)."""
    sft = table[table["method"] == runs.SFT].set_index(["model", "seed"])[columns]
    out = {}
    for key, group in table[table["method"] != "base"].groupby(["model", "method", "variant"], sort=False):
        both = group.join(sft, on=["model", "seed"], rsuffix="_sft", how="inner")
        k = len(both)
        out[key] = {column: stats.t.ppf(0.975, k - 1) * (both[column] - both[f"{column}_sft"]).std(ddof=1)
                    / math.sqrt(k) if k > 1 else math.nan for column in columns}
    return out
