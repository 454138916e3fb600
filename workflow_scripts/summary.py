"""Collect the score JSONs of an experiment (results/{dataset}/{model}/) into its summary tables.

- summary.csv: one row per evaluated checkpoint (model, method, variant, seed), one column per task
  (its headline metric, as the evaluator recorded it) and their mean over the tasks;
- summary_by_method.csv: one row per model, method and variant, averaged over seeds, with the
  standard deviation over seeds, the 95% interval half-width (Student t over seeds; empty with one
  seed) and the difference to `sft` of the same model, with 95% intervals paired by seed and by
  item (the evaluator's per-item scores);
- benchmarks.csv: every job's wall time, memory and CPU time (Snakemake's `benchmark:` files), and
  per rule the jobs, total and slowest time and peak memory in summary.md;
- summary.md: all of them, readable.

Each score JSON says which checkpoint it scored (`model`, `data`, `run`); runs are read with the
run grammar (workflow_scripts/runs.py), never from the file's path.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd
from scipy import stats

from workflow_scripts import runs
from workflow_scripts.files import InputError, atomic_path, run_main, setup_logging

log = setup_logging("summary")

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


def summary_table(long: pd.DataFrame) -> pd.DataFrame:
    table = long.pivot_table(index=["model", "method", "variant", "seed"], columns="metric",
                             values="score", aggfunc="first").reset_index()
    table.columns.name = None
    metrics = sorted(long["metric"].unique())
    table["mean"] = table[metrics].mean(axis=1)
    table["_order"] = table["method"].map(METHOD_ORDER).fillna(len(METHOD_ORDER))
    return table.sort_values(["model", "_order", "variant", "seed"]).drop(columns="_order").reset_index(drop=True)


def score_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in ("model", "method", "variant", "seed")]


def item_paired_deltas(long: pd.DataFrame) -> dict:
    """The 95% interval half-width of (method - sft) paired by item: per item, the method's score
    averaged over its seeds minus sft's averaged over its seeds; Student t over the items.

    This is the smallest difference of the task mean that these evaluation items can tell from
    zero at 95% (two-sided): the item-sampling half of the uncertainty, where the seed interval
    of `paired_deltas` is the training half. The `mean` column combines the tasks as independent:
    sqrt(sum of squared half-widths) / tasks. NaN where a checkpoint has no per-item scores or the
    two do not cover the same items.
    """
    out: dict = {}
    sft = long[long["method"] == "sft"]
    for (model, method, variant), group in long[long["method"] != "sft"].groupby(
            ["model", "method", "variant"], sort=False):
        halves = {}
        for metric, rows in group.groupby("metric", sort=False):
            reference = sft[(sft["model"] == model) & (sft["metric"] == metric)]
            halves[metric] = _item_half_width(list(rows["items"]), list(reference["items"]))
        values = list(halves.values())
        halves["mean"] = math.sqrt(sum(h * h for h in values)) / len(values) if values else math.nan
        out[(model, method, variant)] = halves
    return out


def _item_half_width(runs_items: list, sft_items: list) -> float:
    everything = runs_items + sft_items
    if not runs_items or not sft_items or any(items is None for items in everything):
        return math.nan
    index = everything[0].index
    if any(not items.index.equals(index) for items in everything):
        return math.nan
    diff = pd.concat(runs_items, axis=1).mean(axis=1) - pd.concat(sft_items, axis=1).mean(axis=1)
    n = len(diff)
    return stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan


def by_method(table: pd.DataFrame, long: pd.DataFrame | None = None) -> pd.DataFrame:
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
    paired = paired_deltas(table, columns)
    for column in columns:
        summary[f"{column}_delta_sft_ci95"] = [paired.get((r.model, r.method, r.variant), {}).get(column, math.nan)
                                              for r in summary.itertuples()]
    by_item = item_paired_deltas(long) if long is not None else {}
    for column in columns:
        summary[f"{column}_delta_sft_items_ci95"] = [
            by_item.get((r.model, r.method, r.variant), {}).get(column, math.nan) if r.method != "sft" else math.nan
            for r in summary.itertuples()]
    return summary


def paired_deltas(table: pd.DataFrame, columns: list[str]) -> dict:
    """The 95% interval half-width of (run - sft) paired by seed: every method of a seed shares
    the initialisation and data order with that seed's sft, so the per-seed difference is the
    comparison the design makes (Student t over the seeds both have; NaN below two)."""
    sft = table[table["method"] == "sft"].set_index(["model", "seed"])[columns]
    out = {}
    for key, group in table[table["method"] != "base"].groupby(["model", "method", "variant"], sort=False):
        both = group.join(sft, on=["model", "seed"], rsuffix="_sft", how="inner")
        k = len(both)
        out[key] = {column: stats.t.ppf(0.975, k - 1) * (both[column] - both[f"{column}_sft"]).std(ddof=1) / math.sqrt(k)
                    if k > 1 else math.nan for column in columns}
    return out


def markdown_table(header: list[str], rows: list[list[str]], text_columns: int) -> list[str]:
    rule = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    return ["| " + " | ".join(line) + " |" for line in [header, rule, *rows]]


def to_markdown(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    columns = score_columns(table)

    def cell(row, column):
        value = f"{row[column]:.4f}"
        return value if math.isnan(row[f"{column}_ci95"]) else f"{value} ± {row[f'{column}_ci95']:.4f}"

    def delta(row):
        value, interval = row["mean_delta_sft"], row["mean_delta_sft_ci95"]
        if math.isnan(value):
            return ""
        return f"{value:+.4f}" if math.isnan(interval) else f"{value:+.4f} ± {interval:.4f}"

    def against_sft(row, column):
        value = row[f"{column}_delta_sft"]
        if math.isnan(value):
            return ""
        seeds, items = row[f"{column}_delta_sft_ci95"], row[f"{column}_delta_sft_items_ci95"]
        return " / ".join([f"{value:+.4f}", *(f"± {h:.4f} {what}" for h, what in ((seeds, "seeds"), (items, "items"))
                                               if not math.isnan(h))])

    method_rows = [[r["model"], r["method"], r["variant"], str(r["seeds"]), *(cell(r, c) for c in columns),
                    delta(r)] for _, r in summary.iterrows()]
    delta_rows = [[r["model"], r["method"], r["variant"], *(against_sft(r, c) for c in columns)]
                  for _, r in summary.iterrows() if r["method"] != "sft" and not math.isnan(r["mean_delta_sft"])]
    run_rows = [[*(str(v) for v in row[:4]), *(f"{v:.4f}" for v in row[4:])] for row in table.itertuples(index=False)]
    return "\n".join([
        "# Summary", "",
        "Scores are each task's headline metric (0-1); `mean` averages the tasks. Per method: the mean over",
        "seeds, ± the 95% interval half-width (Student t over seeds, shown with two or more seeds);",
        "`Δ mean vs sft` is the difference of the means to `sft` of the same model, ± the 95% interval of",
        "the per-seed differences (each method of a seed shares that seed's initialisation and data order).", "",
        *markdown_table(["model", "method", "variant", "seeds", *columns, "Δ mean vs sft"], method_rows, 3), "",
        "## Differences to sft", "",
        "Per task: the method's mean minus sft's, ± the 95% interval half-width paired by seed (training",
        "noise: seeds share initialisation and data order) and ± the one paired by item (evaluation noise:",
        "per item, the mean over seeds of the method minus that of sft). The item half-width is the",
        "smallest difference these evaluation items can tell from zero at 95%.", "",
        *markdown_table(["model", "method", "variant", *columns], delta_rows, 3), "",
        "## Every checkpoint", "",
        *markdown_table(list(table.columns), run_rows, 4), ""])


BENCHMARK_COLUMNS = {"s": "seconds", "max_rss": "max_rss_mb", "cpu_time": "cpu_seconds"}


def benchmark_table(dirs: list[str]) -> pd.DataFrame:
    """One row per job from Snakemake's benchmark files, `{dir}/{rule}[/{job}].tsv`."""
    rows = []
    for directory in map(Path, dirs):
        for path in sorted(directory.rglob("*.tsv")):
            parts = path.relative_to(directory).with_suffix("").parts
            record = pd.read_csv(path, sep="\t", na_values=["NA", "-"]).iloc[-1]  # a rerun appends: the last
            rows.append({"rule": parts[0], "job": "/".join(parts[1:]) or parts[0],
                         **{new: record.get(old) for old, new in BENCHMARK_COLUMNS.items()}})
    return pd.DataFrame(rows, columns=["rule", "job", *BENCHMARK_COLUMNS.values()])


def benchmark_markdown(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    per_rule = table.groupby("rule", sort=False).agg(jobs=("job", "size"), total=("seconds", "sum"),
                                                    slowest=("seconds", "max"), peak=("max_rss_mb", "max"))
    rows = [[rule, str(int(r.jobs)), f"{r.total:.1f}", f"{r.slowest:.1f}",
             "" if math.isnan(r.peak) else f"{r.peak:.0f}"] for rule, r in per_rule.iterrows()]
    return ["## Time and memory per rule", "",
            "From each job's Snakemake benchmark file (`benchmarks.csv` has every job); wall seconds, peak RSS in MB.",
            "", *markdown_table(["rule", "jobs", "total s", "slowest s", "peak MB"], rows, 1), ""]


def noise_audit_markdown(path: str | None) -> list[str]:
    """The noise audit's headline: does low influence find the corrupted tokens, and does each
    partition's negative set hold them (workflow_scripts/noise_audit.py)?"""
    if not path:
        return []
    audit = json.loads(Path(path).read_text())
    if audit.get("note"):
        return ["## Noise audit", "", audit["note"], ""]

    def number(value, digits=3):
        return "" if value is None else f"{value:.{digits}f}"

    separation = [[scope, str(audit[scope]["n_tokens"]), str(audit[scope]["n_corrupted"]), number(audit[scope]["auroc"]),
                   number(audit[scope]["mean_influence_corrupted"]), number(audit[scope]["mean_influence_clean"])]
                  for scope in ("all", "answer")]
    partitions = [[label, str(p["n_negative"]), str(p["n_corrupted_negative"]), number(p["precision"]),
                   number(p["chance_precision"]), number(p["recall"]), number(p["chance_recall"])]
                  for label, p in audit["partitions"].items()]
    return ["## Noise audit", "",
            "AUROC of low influence at finding the corrupted response tokens (0.5 = chance), over all response",
            "tokens and over answer tokens (no special or whitespace-only tokens); then, per partition, the",
            "precision and recall of its negative set against the corrupted tokens, beside a random partition's.", "",
            *markdown_table(["tokens", "n", "corrupted", "AUROC", "mean influence corrupted", "mean influence clean"],
                            separation, 1), "",
            *(markdown_table(["partition", "negatives", "corrupted negatives", "precision", "chance", "recall",
                              "chance"], partitions, 1) if partitions else []), ""]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scores", nargs="+", required=True, help="score JSON files")
    parser.add_argument("--benchmark-dirs", nargs="*", default=[], help="folders of benchmark files, {rule}[/...].tsv")
    parser.add_argument("--noise-audit", default=None, help="noise_audit.json, where the experiment has one")
    parser.add_argument("--out-csv", required=True, help="one row per checkpoint")
    parser.add_argument("--out-by-method", required=True, help="one row per model, method and variant")
    parser.add_argument("--out-benchmarks", required=True, help="one row per job: wall time, memory, CPU time")
    parser.add_argument("--out-md", required=True)
    args = parser.parse_args(argv)

    long = read_scores([Path(p) for p in args.scores])
    table = summary_table(long)
    summary = by_method(table, long)
    benchmarks = benchmark_table(args.benchmark_dirs)
    with atomic_path(args.out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(args.out_by_method) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(args.out_benchmarks) as tmp:
        benchmarks.to_csv(tmp, index=False, float_format="%.3f")
    with atomic_path(args.out_md) as tmp:
        sections = noise_audit_markdown(args.noise_audit) + benchmark_markdown(benchmarks)
        Path(tmp).write_text(to_markdown(table, summary) + "\n" + "\n".join(sections), encoding="utf-8")
    log.info("%d checkpoints x %d tasks -> %s; %d benchmarked jobs", len(table), len(table.columns) - 5,
             args.out_csv, len(benchmarks))


if __name__ == "__main__":
    run_main(main)
