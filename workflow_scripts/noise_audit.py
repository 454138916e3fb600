"""Noise audit: does the influence score find the corrupted tokens, and do the partitions drop them?

Where the data records which response tokens are corrupted (the influence table's `corrupted`
column: the embedded pool's injected noise, or a user pool's `corrupted_span`), this writes

- a JSON: the AUROC of the influence score at separating corrupted from clean tokens, LOW
  influence meaning suspected corrupted (P(influence of a corrupted token < influence of a clean
  one) + 0.5 P(tie), exact with ties), over all response tokens and over answer tokens only, with
  the counts and mean influences; and per partition (`--labelled-partition LABEL=PATH`, any number) the
  precision and recall of its negative set against the corrupted tokens, next to chance (a random
  partition's precision is the corrupted share, its recall the negative share);
- a PNG: influence histograms of clean vs corrupted tokens and precision/recall per partition.

Answer tokens are response tokens that are not special tokens of the tokenizer (EOS, <|im_end|>)
and do not decode to whitespace only: the end-of-turn and layout tokens every response has would
otherwise dilute the answer's own signal. Data without corrupted tokens is audited too: the JSON
and the figure say that there is nothing to measure, and AUROC, precision and recall are null.
"""
from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

from workflow_scripts.files import InputError, atomic_path, run_main, setup_logging, write_json  # noqa: E402
from workflow_scripts.token_table import check_same_tokens, read_table  # noqa: E402

log = setup_logging("noise_audit")

AUROC_DEFINITION = ("P(influence of a random corrupted token < influence of a random clean token) "
                    "+ 0.5 P(tie): 1 = the lowest-influence tokens are exactly the corrupted ones, 0.5 = chance")
INFLUENCE_COLUMNS = ("example_id", "position", "token_id", "influence")
PARTITION_COLUMNS = ("example_id", "position", "positive")


# ---------------------------------------------------------------- inputs

def read_influence(path: str) -> tuple[pa.Table, np.ndarray, np.ndarray, str | None]:
    """(table, influence, corrupted, why there is no corruption or None)."""
    names = table_columns(path)
    missing = [c for c in INFLUENCE_COLUMNS if c not in names]
    if missing:
        raise InputError(f"{path}: not an influence table, missing column(s) {', '.join(missing)}")
    # Only the columns used: the loss columns would double the memory of a 20M-token table.
    table = read_table(path, columns=[c for c in (*INFLUENCE_COLUMNS, "corrupted") if c in names])
    if table.num_rows == 0:
        raise InputError(f"{path}: the influence table has no tokens")
    influence = table["influence"].to_numpy(zero_copy_only=False).astype(np.float64)
    bad = ~np.isfinite(influence)
    if bad.any():
        first = int(np.argmax(bad))
        raise InputError(f"{path}: {int(bad.sum())} non-finite influence values (first at token {first}, "
                         f"example {table['example_id'][first]}, position {table['position'][first]})")
    if "corrupted" not in table.column_names:
        return table, influence, np.zeros(len(influence), bool), "no `corrupted` column"
    # A null flag (a token table that did not record noise for that row) counts as clean.
    corrupted = table["corrupted"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    return table, influence, corrupted, None if corrupted.any() else "the `corrupted` column is all false"


def table_columns(path: str) -> list[str]:
    try:
        return pq.read_schema(path).names
    except (OSError, pa.ArrowInvalid) as err:
        raise InputError(f"{path}: cannot read Parquet table: {err}") from None


def parse_partition_specs(specs: list[str]) -> dict[str, str]:
    """['rho0.7=path', ...] -> {'rho0.7': 'path'}; the label ends at the first '='."""
    out = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise InputError(f"--labelled-partition {spec!r}: expected LABEL=PATH, "
                             "e.g. rho0.7=results/m/rho0.7/partition.parquet")
        if label in out:
            raise InputError(f"--labelled-partition: label {label!r} given twice ({out[label]} and {path})")
        out[label] = path
    return out


def read_negative(influence: pa.Table, label: str, path: str) -> np.ndarray:
    """The negative mask of a partition whose tokens are the influence table's, in its order."""
    missing = [c for c in PARTITION_COLUMNS if c not in table_columns(path)]
    if missing:
        raise InputError(f"{path}: partition {label!r} is missing column(s) {', '.join(missing)}")
    table = read_table(path, columns=list(PARTITION_COLUMNS))
    check_same_tokens(influence, table, f"{path} (partition {label!r}, against the influence table)")
    return ~table["positive"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)


def load_tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as err:
        raise InputError(f"{model_dir}: cannot load the tokenizer: {err}") from None


# ---------------------------------------------------------------- measures

def special_ids(tokenizer) -> set[int]:
    # all_special_ids misses added tokens that are flagged special without being a named special
    # token (chat-template markers of some models), so both sources are read.
    ids = set(tokenizer.all_special_ids)
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    ids.update(i for i, token in decoder.items() if getattr(token, "special", False))
    return ids


def answer_mask(token_ids: np.ndarray, tokenizer) -> np.ndarray:
    """Per token: not a special token and not whitespace only once decoded.

    Each distinct id is decoded once (a vocabulary at most), then the verdict is spread to the
    tokens by lookup, so the cost per token is a binary search.
    """
    token_ids = np.asarray(token_ids)
    if len(token_ids) == 0:
        return np.zeros(0, dtype=bool)
    unique = np.unique(token_ids)
    texts = tokenizer.batch_decode(unique[:, None].tolist(), skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    special = special_ids(tokenizer)
    keep = np.array([i not in special and text.strip() != "" for i, text in zip(unique.tolist(), texts)], dtype=bool)
    return keep[np.searchsorted(unique, token_ids)]


def auroc(influence: np.ndarray, corrupted: np.ndarray) -> float | None:
    """P(influence of corrupted < influence of clean) + 0.5 P(tie); None without both kinds.

    Mann-Whitney U on -influence with average ranks: exact with ties, O(N log N).
    """
    n_corrupted = int(corrupted.sum())
    n_clean = len(corrupted) - n_corrupted
    if n_corrupted == 0 or n_clean == 0:
        return None
    ranks = rankdata(-np.asarray(influence, dtype=np.float64), method="average")
    u = ranks[corrupted].sum() - n_corrupted * (n_corrupted + 1) / 2
    return float(u / (n_corrupted * n_clean))


def mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean(dtype=np.float64)) if len(values) else None


def separation(influence: np.ndarray, corrupted: np.ndarray) -> dict:
    n = len(influence)
    n_corrupted = int(corrupted.sum())
    return {
        "n_tokens": n,
        "n_corrupted": n_corrupted,
        "corrupted_share": n_corrupted / n if n else None,
        "auroc": auroc(influence, corrupted),
        "mean_influence_corrupted": mean_or_none(influence[corrupted]),
        "mean_influence_clean": mean_or_none(influence[~corrupted]),
    }


def partition_scores(negative: np.ndarray, corrupted: np.ndarray) -> dict:
    """Precision and recall of the negative set against the corrupted tokens.

    A random partition with as many negatives expects precision = corrupted share and
    recall = negative share; both are recorded so that a reader compares like with like.
    """
    n = len(negative)
    n_negative, n_corrupted = int(negative.sum()), int(corrupted.sum())
    hit = int((negative & corrupted).sum())
    return {
        "n_tokens": n,
        "n_negative": n_negative,
        "n_corrupted": n_corrupted,
        "n_corrupted_negative": hit,
        "negative_share": n_negative / n if n else None,
        "precision": hit / n_negative if n_negative and n_corrupted else None,
        "recall": hit / n_corrupted if n_corrupted else None,
        "chance_precision": n_corrupted / n if n and n_corrupted else None,
        "chance_recall": n_negative / n if n and n_corrupted else None,
    }


def audit(influence: np.ndarray, corrupted: np.ndarray, answer: np.ndarray,
          negatives: dict[str, np.ndarray], why_none: str | None = None) -> dict:
    """The audit's JSON body (without the input paths)."""
    result = {
        "auroc_definition": AUROC_DEFINITION,
        "all": separation(influence, corrupted),
        "answer": separation(influence[answer], corrupted[answer]),
        "partitions": {label: partition_scores(negative, corrupted) for label, negative in negatives.items()},
        "note": None,
    }
    if not corrupted.any():
        result["note"] = (f"no corrupted tokens recorded ({why_none or 'none flagged'}): AUROC, precision and recall "
                          "are undefined; the audit needs data with injected or recorded noise")
    return result


# ---------------------------------------------------------------- figure

def histogram_panel(ax, influence, corrupted, bins, title: str, score: dict) -> None:
    if len(influence) == 0:
        ax.text(0.5, 0.5, "no tokens", ha="center", va="center", transform=ax.transAxes)
    elif not corrupted.any():
        ax.hist(influence, bins=bins, density=True, alpha=0.7, color="C0", label=f"all tokens ({len(influence)})")
        title += "\nno corrupted tokens recorded"
    else:
        # Densities: corrupted tokens are a minority, and the question is where each group lies.
        for mask, name, colour in ((~corrupted, "clean", "C0"), (corrupted, "corrupted", "C3")):
            ax.hist(influence[mask], bins=bins, density=True, alpha=0.55, color=colour,
                    label=f"{name} ({int(mask.sum())}, mean {influence[mask].mean():.2f})")
        title += f"\nAUROC {score['auroc']:.3f}" if score["auroc"] is not None else "\nAUROC undefined"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("influence = loss_base - loss_ref (nats); low = suspected corrupted", fontsize=9)
    ax.set_ylabel("density", fontsize=9)
    if len(influence):
        ax.legend(fontsize=8)


def partition_panel(ax, partitions: dict[str, dict], note: str | None) -> None:
    if note or not partitions:
        ax.axis("off")
        text = "No corrupted tokens recorded:\nprecision and recall of the partitions are undefined." if note \
            else "No partitions given."
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, transform=ax.transAxes)
        return
    labels = list(partitions)
    x = np.arange(len(labels))
    width = 0.38
    for offset, key, colour in ((-width / 2, "precision", "C2"), (width / 2, "recall", "C1")):
        values = [partitions[label][key] for label in labels]
        bars = ax.bar(x + offset, [v or 0.0 for v in values], width, color=colour, label=f"{key} of the negatives")
        ax.bar_label(bars, labels=["n/a" if v is None else f"{v:.2f}" for v in values], fontsize=8, padding=2)
    chance = next(iter(partitions.values()))["chance_precision"]
    ax.axhline(chance, color="k", linestyle="--", linewidth=1,
               label=f"chance precision = corrupted share ({chance:.2f})")
    ax.scatter(x + width / 2, [partitions[label]["chance_recall"] for label in labels], marker="_", s=600,
               color="k", linewidths=2, zorder=3, label="chance recall = negative share")
    ax.set_xticks(x, labels, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center",
                  fontsize=9)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share", fontsize=9)
    ax.set_title("Negative tokens of each partition against the corrupted tokens", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", ncols=2)


def audit_figure(influence: np.ndarray, corrupted: np.ndarray, answer: np.ndarray, result: dict):
    fig = plt.figure(figsize=(11, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, 2)
    bins = np.histogram_bin_edges(influence, bins=60)  # shared, so the panels compare
    histogram_panel(fig.add_subplot(grid[0, 0]), influence, corrupted, bins, "All response tokens", result["all"])
    histogram_panel(fig.add_subplot(grid[0, 1]), influence[answer], corrupted[answer], bins,
                    "Answer tokens (no special or whitespace-only tokens)", result["answer"])
    partition_panel(fig.add_subplot(grid[1, :]), result["partitions"], result["note"])
    if result["note"]:
        fig.suptitle("Noise audit: no corrupted tokens recorded, nothing to measure", fontsize=12, color="C3")
    else:
        fig.suptitle("Noise audit: does low influence find the corrupted tokens?", fontsize=12)
    return fig


def save_figure(fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main

def run(influence_path: str, model_dir: str, partition_specs: dict[str, str], out_json: str, out_figure: str,
        tokenizer=None) -> dict:
    table, influence, corrupted, why_none = read_influence(influence_path)
    keys = table.select(["example_id", "position"])
    negatives = {label: read_negative(keys, label, path) for label, path in partition_specs.items()}
    tokenizer = tokenizer or load_tokenizer(model_dir)
    answer = answer_mask(table["token_id"].to_numpy(zero_copy_only=False), tokenizer)
    result = audit(influence, corrupted, answer, negatives, why_none)
    result["influence"] = influence_path
    for label, path in partition_specs.items():
        result["partitions"][label]["path"] = path
    save_figure(audit_figure(influence, corrupted, answer, result), out_figure)
    write_json(out_json, result)
    return result


def log_result(result: dict) -> None:
    if result["note"]:
        log.info("%s", result["note"])
    for scope in ("all", "answer"):
        s = result[scope]
        log.info("%s tokens: %d, %d corrupted; AUROC %s; mean influence corrupted %s, clean %s", scope,
                 s["n_tokens"], s["n_corrupted"], s["auroc"], s["mean_influence_corrupted"], s["mean_influence_clean"])
    for label, p in result["partitions"].items():
        log.info("partition %s: %d negative (%.1f%%), %d of them corrupted; precision %s (chance %s), recall %s "
                 "(chance %s)", label, p["n_negative"], 100 * p["negative_share"], p["n_corrupted_negative"],
                 p["precision"], p["chance_precision"], p["recall"], p["chance_recall"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--influence", required=True, help="influence Parquet (with its `corrupted` column)")
    parser.add_argument("--model-dir", required=True, help="model directory, for its tokenizer (answer tokens)")
    # `extend`: both `--labelled-partition A=a B=b` (one list from a rule's params) and repeated flags work.
    parser.add_argument("--labelled-partition", action="extend", nargs="*", default=[], metavar="LABEL=PATH",
                        help="partition.parquet files, each with its label in the outputs "
                             "(e.g. rho0.7=results/d/m/rho0.7/partition.parquet rho0.7-random/seed1=...)")
    parser.add_argument("--out-json", required=True)
    parser.add_argument("--out-figure", required=True, help="PNG")
    args = parser.parse_args(argv)

    result = run(args.influence, args.model_dir, parse_partition_specs(args.labelled_partition), args.out_json, args.out_figure)
    log_result(result)
    log.info("wrote %s, %s", args.out_json, args.out_figure)


if __name__ == "__main__":
    run_main(main)
