"""Partition the response tokens by influence: the top rho fraction positive, the rest negative.

Output results/{model}/rho{rho}/partition.parquet (`example_id`, `position`, `positive`) in the
influence table's order, and partition.json (threshold, counts). `--scope global` (the paper)
ranks all tokens of the data set together; `per_example` takes the top rho of each example.
Ties are broken by table order, so the result is deterministic. Exactly round(rho * N) tokens
are positive (per example: round(rho * n_i)).

`--random-seed S --tokens T` instead draws round(rho * N) positive tokens of the tokenized data
uniformly at random (seeded): the control that asks whether the influence score matters.
"""
from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa

from workflow_scripts.files import InputError, run_main, setup_logging, write_json, write_parquet
from workflow_scripts.token_table import read_table, response_tokens

log = setup_logging("partition")


def global_top(influence: np.ndarray, rho: float) -> np.ndarray:
    k = int(round(rho * len(influence)))
    order = np.argsort(-influence, kind="stable")
    positive = np.zeros(len(influence), dtype=bool)
    positive[order[:k]] = True
    return positive


def per_example_top(influence: np.ndarray, groups: np.ndarray, rho: float) -> np.ndarray:
    """Top round(rho * n_i) tokens of each example (groups: example index per token)."""
    order = np.lexsort((np.arange(len(influence)), -influence, groups))  # by group, influence desc
    sorted_groups = groups[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_groups))[0] + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, sizes)
    quota = np.repeat(np.round(rho * sizes).astype(np.int64), sizes)
    positive = np.zeros(len(influence), dtype=bool)
    positive[order[rank < quota]] = True
    return positive


def check_rho(rho: float) -> None:
    if not 0 < rho <= 1:
        raise InputError(f"rho must be in (0, 1], got {rho}")


def random_partition(tokens: pa.Table, rho: float, seed: int) -> tuple[pa.Table, dict]:
    """round(rho * N) of the response tokens positive, chosen uniformly at random."""
    check_rho(rho)
    keys = response_tokens(tokens)
    n = keys.num_rows
    positive = np.zeros(n, dtype=bool)
    positive[np.random.default_rng(seed).permutation(n)[: int(round(rho * n))]] = True
    out = pa.table({"example_id": keys["example_id"], "position": keys["position"], "positive": pa.array(positive)})
    stats = {"rho": rho, "scope": "random", "seed": seed, "n_tokens": n,
             "n_positive": int(positive.sum()), "n_negative": int((~positive).sum()), "threshold": None}
    return out, stats


def partition(table: pa.Table, rho: float, scope: str = "global") -> tuple[pa.Table, dict]:
    check_rho(rho)
    influence = table["influence"].to_numpy(zero_copy_only=False)
    if np.isnan(influence).any():
        raise InputError(f"influence table has {int(np.isnan(influence).sum())} NaN values")
    if scope == "global":
        positive = global_top(influence, rho)
    elif scope == "per_example":
        _, groups = np.unique(table["example_id"].to_numpy(zero_copy_only=False), return_inverse=True)
        positive = per_example_top(influence, groups, rho)
    else:
        raise InputError(f"unknown partition scope {scope!r}; expected global or per_example")
    out = pa.table({"example_id": table["example_id"], "position": table["position"],
                    "positive": pa.array(positive)})
    stats = {
        "rho": rho,
        "scope": scope,
        "n_tokens": int(len(positive)),
        "n_positive": int(positive.sum()),
        "n_negative": int((~positive).sum()),
        # The lowest influence still positive: tokens at or above it (ties aside) are learnt.
        "threshold": float(influence[positive].min()) if positive.any() else None,
    }
    if "corrupted" in table.column_names:
        corrupted = table["corrupted"].to_numpy(zero_copy_only=False).astype(bool)
        stats["n_corrupted"] = int(corrupted.sum())
        stats["n_corrupted_negative"] = int((corrupted & ~positive).sum())
    return out, stats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--influence", help="influence Parquet: partition by influence")
    source.add_argument("--tokens", help="tokenized training split: random partition (with --random-seed)")
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--rho", type=float, required=True)
    parser.add_argument("--scope", default="global", choices=["global", "per_example"])
    parser.add_argument("--out", required=True, help="partition Parquet")
    parser.add_argument("--out-stats", required=True, help="partition JSON")
    args = parser.parse_args(argv)

    if args.tokens:
        out, stats = random_partition(read_table(args.tokens), args.rho, args.random_seed)
    else:
        out, stats = partition(read_table(args.influence), args.rho, args.scope)
    write_parquet(args.out, out)
    write_json(args.out_stats, stats)
    log.info("rho %.3f (%s): %d positive, %d negative of %d tokens; threshold %s",
             args.rho, stats["scope"], stats["n_positive"], stats["n_negative"], stats["n_tokens"], stats["threshold"])


if __name__ == "__main__":
    run_main(main)
