"""Noise audit: do the token scores find the corrupted tokens, per task, and do the partitions drop them?

Where the data records which response tokens are corrupted (the influence table's `corrupted`
column: the embedded pool's injected noise, or a user pool's `corrupted_span`), this writes

- a JSON: for every token score of workflow_scripts/token_scores.py (the paper's influence, the
  reference loss, the relative influence, the base loss), the AUROC of a LOW score at finding the
  corrupted tokens (P(score of a corrupted token < score of a clean one) + 0.5 P(tie), exact with
  ties), over all response tokens and over answer tokens only, pooled and per stratum (the pool
  source of each example, e.g. boolq and asdiv: pooled over tasks, opposite effects can cancel),
  with counts and mean scores; and per partition (`--labelled-partition LABEL=PATH`, any number)
  the precision and recall of its negative set against the corrupted tokens, pooled and per
  stratum, next to chance (a random partition's precision is the corrupted share, its recall the
  negative share);
- a PNG: one ROC curve per score, a panel per stratum (answer tokens), and the partitions'
  precision and recall.

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
from scipy.stats import rankdata  # noqa: E402

from workflow_scripts.files import InputError, atomic_path, read_jsonl, run_main, setup_logging, write_json  # noqa: E402
from workflow_scripts.runs import LEARNT_SCORES  # noqa: E402
from workflow_scripts.token_scores import DEFINITIONS, token_score  # noqa: E402
from workflow_scripts.token_table import (check_same_tokens, dictionary_codes, read_partition,  # noqa: E402
                                          read_table, table_columns)

log = setup_logging("noise_audit")

AUROC_DEFINITION = ("P(score of a random corrupted token < score of a random clean token) + 0.5 P(tie): "
                    "1 = the lowest-scored tokens are exactly the corrupted ones, 0.5 = chance, below 0.5 = inverted")
INFLUENCE_COLUMNS = ("example_id", "position", "token_id", "loss_base", "loss_ref", "influence")
POOLED = "all"  # the stratum of every token


# ---------------------------------------------------------------- inputs

def read_influence(path: str) -> tuple[pa.Table, np.ndarray, str | None]:
    """(table, corrupted, why there is no corruption or None)."""
    names = table_columns(path)
    missing = [c for c in INFLUENCE_COLUMNS if c not in names]
    if missing:
        raise InputError(f"{path}: not an influence table, missing column(s) {', '.join(missing)}")
    table = read_table(path, columns=[c for c in (*INFLUENCE_COLUMNS, "corrupted") if c in names])
    if table.num_rows == 0:
        raise InputError(f"{path}: the influence table has no tokens")
    for column in ("loss_base", "loss_ref", "influence"):
        bad = ~np.isfinite(table[column].to_numpy(zero_copy_only=False))
        if bad.any():
            first = int(np.argmax(bad))
            raise InputError(f"{path}: {int(bad.sum())} non-finite {column} values (first at token {first}, "
                             f"example {table['example_id'][first]}, position {table['position'][first]})")
    if "corrupted" not in table.column_names:
        return table, np.zeros(table.num_rows, bool), "no `corrupted` column"
    # A null flag (a token table that did not record noise for that row) counts as clean.
    corrupted = table["corrupted"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    return table, corrupted, None if corrupted.any() else "the `corrupted` column is all false"


def token_strata(table: pa.Table, data_path: str | None) -> np.ndarray | None:
    """Each token's stratum: the `source` of its example in the training data (None: no data given,
    or a single source, where the pooled audit is all there is)."""
    if data_path is None:
        return None
    sources = {}
    for _lineno, record in read_jsonl(data_path):
        sources[record.get("id")] = str(record.get("source") or "unknown")
    if len(set(sources.values())) < 2:
        return None
    codes = dictionary_codes(table["example_id"])
    if codes is not None:
        ids, indices = codes
        per_id = np.array([sources.get(i, "unknown") for i in ids.to_pylist()], dtype=object)
        return per_id[indices]
    return np.array([sources.get(i, "unknown") for i in table["example_id"].to_pylist()], dtype=object)


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
    """The negative mask of a partition whose tokens are the influence table's, in its order (a band
    leaves some tokens neither positive nor negative)."""
    table = read_partition(path, f"partition {label!r}")
    check_same_tokens(influence, table, f"{path} (partition {label!r}, against the influence table)")
    return table["negative"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)


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


def auroc(values: np.ndarray, corrupted: np.ndarray) -> float | None:
    """P(value of corrupted < value of clean) + 0.5 P(tie); None without both kinds.

    Mann-Whitney U on -values with average ranks: exact with ties, O(N log N).
    """
    n_corrupted = int(corrupted.sum())
    n_clean = len(corrupted) - n_corrupted
    if n_corrupted == 0 or n_clean == 0:
        return None
    ranks = rankdata(-np.asarray(values, dtype=np.float64), method="average")
    u = ranks[corrupted].sum() - n_corrupted * (n_corrupted + 1) / 2
    return float(u / (n_corrupted * n_clean))


def roc_curve(values: np.ndarray, corrupted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) of flagging the tokens scored at or below each
    threshold as corrupted, thresholds rising; ties move both rates at once (the AUROC's diagonal)."""
    order = np.argsort(values, kind="stable")
    values, corrupted = np.asarray(values)[order], corrupted[order]
    last_of_tie = np.r_[values[1:] != values[:-1], True]
    tp = np.cumsum(corrupted)[last_of_tie]
    fp = np.cumsum(~corrupted)[last_of_tie]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean(dtype=np.float64)) if len(values) else None


def separation(scores: dict[str, np.ndarray], corrupted: np.ndarray) -> dict:
    """Counts, and per score the AUROC and the mean score of corrupted and clean tokens."""
    n = len(corrupted)
    n_corrupted = int(corrupted.sum())
    return {
        "n_tokens": n,
        "n_corrupted": n_corrupted,
        "corrupted_share": n_corrupted / n if n else None,
        "auroc": {name: auroc(values, corrupted) for name, values in scores.items()},
        "mean_corrupted": {name: mean_or_none(values[corrupted]) for name, values in scores.items()},
        "mean_clean": {name: mean_or_none(values[~corrupted]) for name, values in scores.items()},
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


def strata_masks(strata: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
    """{"all": every token, then each stratum (sorted): its tokens}."""
    masks = {POOLED: np.ones(n, dtype=bool)}
    if strata is not None:
        masks.update({name: strata == name for name in sorted(set(strata.tolist()))})
    return masks


def audit(scores: dict[str, np.ndarray], corrupted: np.ndarray, answer: np.ndarray,
          negatives: dict[str, np.ndarray], strata: np.ndarray | None = None, why_none: str | None = None) -> dict:
    """The audit's JSON body (without the input paths)."""
    masks = strata_masks(strata, len(corrupted))
    result = {
        "auroc_definition": AUROC_DEFINITION,
        "scores": {name: DEFINITIONS[name] for name in scores},
        "strata": {
            name: {"response": separation({k: v[mask] for k, v in scores.items()}, corrupted[mask]),
                   "answer": separation({k: v[mask & answer] for k, v in scores.items()}, corrupted[mask & answer])}
            for name, mask in masks.items()},
        "partitions": {label: {name: partition_scores(negative[mask], corrupted[mask]) for name, mask in masks.items()}
                       for label, negative in negatives.items()},
        "note": None,
    }
    if not corrupted.any():
        result["note"] = (f"no corrupted tokens recorded ({why_none or 'none flagged'}): AUROC, precision and recall "
                          "are undefined; the audit needs data with injected or recorded noise")
    return result


# ---------------------------------------------------------------- figure

def roc_panel(ax, scores: dict[str, np.ndarray], corrupted: np.ndarray, title: str, result: dict) -> None:
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
    if not corrupted.any() or corrupted.all():
        ax.text(0.5, 0.5, "no corrupted tokens" if not corrupted.any() else "no clean tokens", ha="center",
                va="center", transform=ax.transAxes)
    else:
        for i, (name, values) in enumerate(scores.items()):
            fpr, tpr = roc_curve(values, corrupted)
            ax.plot(fpr, tpr, color=f"C{i}", linewidth=1.8 if i == 0 else 1.2,
                    label=f"{name} ({result['auroc'][name]:.2f})")
        ax.legend(fontsize=7, loc="lower right", title="score (AUROC)", title_fontsize=7)
    ax.set_title(f"{title}\n{result['n_corrupted']} of {result['n_tokens']} answer tokens corrupted", fontsize=9)
    ax.set_xlabel("clean tokens flagged (FPR)", fontsize=8)
    ax.set_ylabel("corrupted tokens flagged (TPR)", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")


def partition_panel(ax, partitions: dict[str, dict], note: str | None) -> None:
    if note or not partitions:
        ax.axis("off")
        text = "No corrupted tokens recorded:\nprecision and recall of the partitions are undefined." if note \
            else "No partitions given."
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, transform=ax.transAxes)
        return
    pooled = {label: strata[POOLED] for label, strata in partitions.items()}
    labels = list(pooled)
    x = np.arange(len(labels))
    width = 0.38
    for offset, key, colour in ((-width / 2, "precision", "C2"), (width / 2, "recall", "C1")):
        values = [pooled[label][key] for label in labels]
        bars = ax.bar(x + offset, [v or 0.0 for v in values], width, color=colour, label=f"{key} of the negatives")
        ax.bar_label(bars, labels=["n/a" if v is None else f"{v:.2f}" for v in values], fontsize=8, padding=2)
    chance = next(iter(pooled.values()))["chance_precision"]
    ax.axhline(chance, color="k", linestyle="--", linewidth=1,
               label=f"chance precision = corrupted share ({chance:.2f})")
    ax.scatter(x + width / 2, [pooled[label]["chance_recall"] for label in labels], marker="_", s=600,
               color="k", linewidths=2, zorder=3, label="chance recall = negative share")
    rotate = len(labels) > 3
    ax.set_xticks(x, labels, rotation=30 if rotate else 0, ha="right" if rotate else "center", fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share", fontsize=9)
    ax.set_title("Negative tokens of each partition against the corrupted tokens (all response tokens)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", ncols=2)


def audit_figure(scores: dict[str, np.ndarray], corrupted: np.ndarray, answer: np.ndarray,
                 strata: np.ndarray | None, result: dict):
    masks = strata_masks(strata, len(corrupted))
    columns = len(masks)
    fig = plt.figure(figsize=(max(8.0, 3.6 * columns), 7.8), layout="constrained")
    grid = fig.add_gridspec(2, columns, height_ratios=[1.15, 1])
    for i, (name, mask) in enumerate(masks.items()):
        keep = mask & answer
        roc_panel(fig.add_subplot(grid[0, i]), {k: v[keep] for k, v in scores.items()}, corrupted[keep],
                  "every task" if name == POOLED else name, result["strata"][name]["answer"])
    partition_panel(fig.add_subplot(grid[1, :]), result["partitions"], result["note"])
    if result["note"]:
        fig.suptitle("Noise audit: no corrupted tokens recorded, nothing to measure", fontsize=12, color="C3")
    else:
        fig.suptitle("Noise audit: does a low token score find the corrupted answer tokens?", fontsize=12)
    return fig


def save_figure(fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main

def run(influence_path: str, model_dir: str, partition_specs: dict[str, str], out_json: str, out_figure: str,
        data_path: str | None = None, tokenizer=None) -> dict:
    table, corrupted, why_none = read_influence(influence_path)
    keys = table.select(["example_id", "position"])
    negatives = {label: read_negative(keys, label, path) for label, path in partition_specs.items()}
    strata = token_strata(table, data_path)
    tokenizer = tokenizer or load_tokenizer(model_dir)
    answer = answer_mask(table["token_id"].to_numpy(zero_copy_only=False), tokenizer)
    # The oracle is the marks themselves: its AUROC is 1 by construction, so the audit leaves it out.
    scores = {name: token_score(table, name).astype(np.float64) for name in LEARNT_SCORES}
    result = audit(scores, corrupted, answer, negatives, strata, why_none)
    result["influence"] = influence_path
    result["data"] = data_path
    result["partition_paths"] = dict(partition_specs)
    save_figure(audit_figure(scores, corrupted, answer, strata, result), out_figure)
    write_json(out_json, result)
    return result


def log_result(result: dict) -> None:
    if result["note"]:
        log.info("%s", result["note"])
    for stratum, sets in result["strata"].items():
        for name, s in sets.items():
            aurocs = ", ".join(f"{score} {value:.3f}" if value is not None else f"{score} n/a"
                               for score, value in s["auroc"].items())
            log.info("%s, %s tokens: %d, %d corrupted; AUROC %s", stratum, name, s["n_tokens"], s["n_corrupted"],
                     aurocs)
    for label, strata in result["partitions"].items():
        p = strata[POOLED]
        log.info("partition %s: %d negative (%.1f%%), %d of them corrupted; precision %s (chance %s), recall %s "
                 "(chance %s)", label, p["n_negative"], 100 * p["negative_share"], p["n_corrupted_negative"],
                 p["precision"], p["chance_precision"], p["recall"], p["chance_recall"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--influence", required=True, help="influence Parquet (with its `corrupted` column)")
    parser.add_argument("--model-dir", required=True, help="model directory, for its tokenizer (answer tokens)")
    parser.add_argument("--data", default=None,
                        help="the training data (train.jsonl): each example's `source` is its stratum")
    # `extend`: both `--labelled-partition A=a B=b` (one list from a rule's params) and repeated flags work.
    parser.add_argument("--labelled-partition", action="extend", nargs="*", default=[], metavar="LABEL=PATH",
                        help="partition.parquet files, each with its label in the outputs "
                             "(e.g. rho0.7=results/d/m/rho0.7/partition.parquet rho0.7-random/seed1=...)")
    parser.add_argument("--out-json", required=True)
    parser.add_argument("--out-figure", required=True, help="PNG")
    args = parser.parse_args(argv)

    result = run(args.influence, args.model_dir, parse_partition_specs(args.labelled_partition), args.out_json,
                 args.out_figure, args.data)
    log_result(result)
    log.info("wrote %s, %s", args.out_json, args.out_figure)


if __name__ == "__main__":
    run_main(main)
