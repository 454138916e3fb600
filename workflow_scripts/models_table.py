"""The models of one data setting side by side: each method's headline beside the numbers a paper
reports for it (the paper's table, when configs/paper/all.yaml plans its six rows as one DAG).

Reads each experiment's summary_by_method.csv (workflow_scripts/summary.py); writes
results/{dataset}/models.md and models.csv: per model, method and variant, the mean over the
experiment's tasks (x 100, the unit papers report averages in), its 95% interval over seeds, the
difference to the model's sft, and the published number where the experiment's config gives one
(`published: {method: number}`, as reported).
"""
from __future__ import annotations

import argparse
import json
import math

import pandas as pd

from workflow_scripts.files import InputError, atomic_path, run_main, setup_logging
from workflow_scripts.summary import markdown_table

log = setup_logging("models_table")


def models_table(summaries: list[str], published: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = []
    for path in summaries:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
        table["variant"] = table["variant"].fillna("")  # the base model has none
        for _, row in table.iterrows():
            reported = published.get(row["model"], {}).get(row["method"])
            rows.append({"model": row["model"], "method": row["method"], "variant": row["variant"],
                         "seeds": int(row["seeds"]), "mean": 100 * row["mean"],
                         "mean_ci95": 100 * row["mean_ci95"], "delta_sft": 100 * row["mean_delta_sft"],
                         "published": math.nan if reported is None else float(reported)})
    unknown = sorted(set(published) - {row["model"] for row in rows})
    if unknown:
        raise InputError(f"published numbers for {', '.join(unknown)}, which no summary holds")
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    def number(value, sign=False):
        return "" if math.isnan(value) else (f"{value:+.2f}" if sign else f"{value:.2f}")

    rows = [[row.model, row.method, row.variant, str(row.seeds),
             number(row.mean) + ("" if math.isnan(row.mean_ci95) else f" ± {row.mean_ci95:.2f}"),
             number(row.delta_sft, sign=True), number(row.published)] for row in table.itertuples()]
    lines = ["# Models side by side", "",
             "Each method's mean over the experiment's tasks (x 100; ± the 95% interval over seeds), its "
             "difference to the same model's sft, and the number published for it where the config gives one "
             "(`published`; the paper's: the average of its five benchmarks).", "",
             *markdown_table(["model", "method", "variant", "seeds", "mean x 100", "- sft", "published"], rows, 3)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--summaries", nargs="+", required=True, help="each experiment's summary_by_method.csv")
    parser.add_argument("--published", default="{}", help='JSON: {"model": {"method": number}}')
    parser.add_argument("--out-md", required=True)
    parser.add_argument("--out-csv", required=True)
    args = parser.parse_args(argv)
    table = models_table(args.summaries, json.loads(args.published))
    with atomic_path(args.out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(args.out_md) as tmp:
        tmp.write_text(to_markdown(table))
    log.info("%d models, %d rows -> %s", table["model"].nunique(), len(table), args.out_md)


if __name__ == "__main__":
    run_main(main)
