"""Figures of an experiment (PNG, matplotlib), from its summary, influence table and training logs:

- scores.png: each task's score per method and variant, mean over seeds with the 95% interval as
  error bars: Student t over seeds where a method has two or more, else over the evaluation items;
- influence.png: the influence histogram with each rho's threshold marked; where the data has
  injected noise, clean and corrupted tokens as two histograms;
- training.png: positive CE, negative CE and lambda per logged step, one line per trained run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from workflow_scripts.files import InputError, atomic_path, run_main, setup_logging  # noqa: E402
from workflow_scripts.token_table import read_table  # noqa: E402

log = setup_logging("plots")


def save(fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def score_columns(by_method: pd.DataFrame) -> list[str]:
    """The task scores (`{task}_{metric}`, any task's: the catalogue's or a folder's) and `mean`:
    the columns summary_by_method.csv gives a seed interval (`_ci95`), but not the differences to sft."""
    return [c for c in by_method.columns if f"{c}_ci95" in by_method.columns and not c.endswith("_delta_sft")]


def scores_figure(by_method: pd.DataFrame):
    metrics = score_columns(by_method)
    if len(metrics) == 2 and "mean" in metrics:  # one task: its mean would repeat it
        metrics.remove("mean")
    labels = [f"{m}\n{v}" if isinstance(v, str) and v else m for m, v in zip(by_method["method"], by_method["variant"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6), sharey=True, squeeze=False)
    several_seeds = by_method["seeds"].to_numpy() >= 2
    for ax, metric in zip(axes[0], metrics):
        # Over seeds where a method has two or more, else over the evaluation items (one seed has no
        # seed interval to draw); none where neither is known.
        items = by_method.get(f"{metric}_items_ci95", pd.Series(np.nan, index=by_method.index))
        errors = np.where(several_seeds, by_method[f"{metric}_ci95"], items)
        ax.bar(range(len(by_method)), by_method[metric], yerr=np.nan_to_num(errors), capsize=3,
               color=[f"C{i}" for i in range(len(by_method))])
        ax.set_xticks(range(len(by_method)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(metric)
        ax.set_ylim(0, 1)
    which = "seeds" if several_seeds.all() else "items" if not several_seeds.any() else \
        "seeds (2+ seeds) or items (1 seed)"
    axes[0][0].set_ylabel(f"score (95% interval over {which})")
    return fig


def influence_figure(table, partitions: list[dict]):
    influence = table["influence"].to_numpy(zero_copy_only=False)
    bins = np.histogram_bin_edges(influence, bins=50)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if "corrupted" in table.column_names and table["corrupted"].to_numpy(zero_copy_only=False).any():
        corrupted = table["corrupted"].to_numpy(zero_copy_only=False).astype(bool)
        ax.hist(influence[~corrupted], bins=bins, alpha=0.6, label=f"clean tokens ({(~corrupted).sum()})")
        ax.hist(influence[corrupted], bins=bins, alpha=0.6, label=f"corrupted tokens ({corrupted.sum()})")
    else:
        ax.hist(influence, bins=bins, alpha=0.7, label=f"response tokens ({len(influence)})")
    for i, stats in enumerate(partitions):
        if stats.get("threshold") is not None:
            ax.axvline(stats["threshold"], color=f"C{i + 2}", linestyle="--",
                       label=f"rho {stats['rho']:g} threshold ({stats['threshold']:.2f})")
    ax.set_xlabel("influence = loss_base - loss_ref (nats)")
    ax.set_ylabel("tokens")
    ax.legend(fontsize=8)
    return fig


TRAINING_PANELS = {"positive_ce": "positive tokens: mean CE", "negative_ce": "negative tokens: mean CE",
                   "negative_term": "the term lambda weighs (forget loss)", "lambda": "lambda"}


def no_influence_figure():
    """What influence.png shows for a grid in which no run ranks tokens by a score."""
    fig, ax = plt.subplots(figsize=(7, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, "No run of this grid partitions tokens by a score: no influence to show.",
            ha="center", va="center")
    return fig


def training_figure(runs: dict[str, list[dict]]):
    fig, axes = plt.subplots(1, len(TRAINING_PANELS), figsize=(17, 3.6))
    for i, (name, history) in enumerate(runs.items()):
        logged = [entry for entry in history if "positive_ce" in entry]
        for ax, key in zip(axes, TRAINING_PANELS):
            # A run without negative tokens (sft, ignore) has no negative CE or term to draw.
            points = [e for e in logged if key in e and (not key.startswith("negative") or e.get("n_negative", 0) > 0)]
            ax.plot([e["step"] for e in points], [e[key] for e in points], label=name, linewidth=1, color=f"C{i}")
    for ax, title in zip(axes, TRAINING_PANELS.values()):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
    axes[-1].legend(fontsize=7)
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--by-method", required=True, help="results/summary_by_method.csv")
    parser.add_argument("--influence", default=None, help="influence Parquet (none when no method uses it)")
    parser.add_argument("--partition-stats", nargs="*", default=[], help="partition.json files (their thresholds)")
    parser.add_argument("--training-logs", nargs="*", default=[], metavar="RUN=PATH",
                        help="training logs, each with the run label it belongs to")
    parser.add_argument("--out-scores", required=True)
    parser.add_argument("--out-influence", default=None)
    parser.add_argument("--out-training", required=True)
    args = parser.parse_args(argv)

    save(scores_figure(pd.read_csv(args.by_method, keep_default_na=False, na_values=[""])), args.out_scores)
    if args.influence:
        partitions = [json.loads(Path(p).read_text()) for p in args.partition_stats]
        save(influence_figure(read_table(args.influence), partitions), args.out_influence)
    elif args.out_influence:
        save(no_influence_figure(), args.out_influence)
    runs = {}
    for item in args.training_logs:
        label, sep, path = item.partition("=")
        if not sep:
            raise InputError(f"--training-logs {item!r}: expected RUN=PATH")
        runs[label] = json.loads(Path(path).read_text())["log_history"]
    save(training_figure(runs), args.out_training)
    log.info("wrote %s, %s, %s", args.out_scores, args.out_influence, args.out_training)


if __name__ == "__main__":
    run_main(main)
