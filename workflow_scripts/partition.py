"""Partition the response tokens by a token score, with one of the grammar's rules (runs.RULES).

The score (`--score`, workflow_scripts/token_scores.py) is the paper's influence by default, or
another computed from the influence table's losses, or the pool's own noise marks (oracle). The
rules (`--rule`; what each needs: runs.RULE_NUMBERS):

- top_rho (the paper): exactly round(rho * N) tokens of highest score positive, the rest negative.
  `--scope global` ranks all tokens of the data set together; `per_example` takes the top
  round(rho * n_i) of each example.
- band: the top rho positive, the lowest `--tail` share negative, the middle neither (rho + tail
  <= 1).
- threshold: the tokens scoring below `--threshold` negative, the rest positive.
- estimated_share: the scores' lowest population negative where it is separated from the rest,
  else none (workflow_scripts/noise_share.py); then as top_rho with rho = 1 - that share.

Ties are broken by table order, so the result is deterministic. Output
results/{data}/{model}/{partition}/partition.parquet (`example_id`, `position`, `positive`,
`negative`; a token may be neither: band) in the influence table's order, and partition.json (rule,
score, cut, counts; estimated_share: its fit and decision).

`--random-seed S --tokens T` instead draws round(rho * N) positive tokens of the tokenized data
uniformly at random (seeded): the control that asks whether the score matters.
"""
from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workflow_scripts.files import InputError, run_main, setup_logging, write_json, write_parquet
from workflow_scripts.noise_share import estimate_noise_share
from workflow_scripts.runs import (BAND, DEFAULTS, ESTIMATED_SHARE, INFLUENCE, RANDOM, RULE_NUMBERS, RULES, SCOPES,
                                  SCORES, SIGNED_SCORES, THRESHOLD, TOP_RHO, band_overlap)
from workflow_scripts.token_scores import token_score
from workflow_scripts.token_table import BLOCK, dictionary_codes, read_table, response_tokens

log = setup_logging("partition")


def descending_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys whose unsigned ascending order is the descending order of `values`; equal
    values (-0.0 and 0.0 too) get equal keys. Integers sort several times faster than floats
    paired with a tie-breaking index, and pack with an example index into one 64-bit key."""
    if values.dtype.kind == "f" and values.dtype.itemsize <= 4:
        bits = (values.astype(np.float32, copy=False) + np.float32(0)).view(np.int32)  # -0.0 + 0 = +0.0
        # IEEE-754: a non-negative float's bits grow with it, a negative one's shrink; so
        # key = bits XOR 0x7FFFFFFF for non-negatives (descending, below 2^31) and the bits
        # themselves for negatives (2^31 and up, growing as the value falls).
        flip = bits >> 31
        np.invert(flip, out=flip)
        flip &= 0x7FFFFFFF
        flip ^= bits
        return flip.view(np.uint32)
    # float64 and integers: dense ranks, exact, from one sort of the distinct values.
    distinct, inverse = np.unique(values, return_inverse=True)
    return (len(distinct) - 1 - inverse).astype(np.uint32)


def first_tied(tied: np.ndarray, groups: np.ndarray, quota: np.ndarray) -> np.ndarray:
    """Of `tied` (token indices, ascending), the first quota[g] of each group g, in table order."""
    tied_groups = groups[tied]
    order = np.argsort(tied_groups, kind="stable")  # by group, table order within a group
    sorted_groups = tied_groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return tied[order[rank < quota[sorted_groups]]]


def global_selection(scores: np.ndarray, rho: float) -> tuple[np.ndarray, float | None]:
    """(exactly round(rho * N) tokens of highest score, ties by table order; the lowest
    positive score or None).

    A selection (O(N), no sort) finds the k-th highest value v: every token above v is positive,
    then the first tokens equal to v in table order fill the quota: the set a stable descending
    sort would give, and v is the threshold.
    """
    n = len(scores)
    k = int(round(rho * n))
    if k == 0 or k == n:
        return np.full(n, k == n, dtype=bool), (float(scores.min()) if k else None)
    kth = np.partition(scores, n - k)[n - k]
    positive = scores > kth
    missing = k - int(np.count_nonzero(positive))
    positive[np.flatnonzero(scores == kth)[:missing]] = True
    return positive, float(kth)


def example_keys(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """uint64 keys group << 32 | descending score key: ascending = by example, then score down."""
    keys = groups.astype(np.uint64)
    keys <<= np.uint64(32)
    keys |= descending_keys(scores)
    return keys


def per_example_top(scores: np.ndarray, groups: np.ndarray, rho: float) -> np.ndarray:
    """Top round(rho * n_i) tokens of each example (groups: example index per token); ties by table order.

    One sort of 64-bit keys (example << 32 | descending score key) gives each example's
    k-th key and, by binary search, its size and how many keys precede the k-th; then, as in
    global_selection, the tokens below that key and the first ties in table order are positive.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=bool)
    ordered = np.empty(n, dtype=np.uint64)
    for lo in range(0, n, BLOCK):
        ordered[lo: lo + BLOCK] = example_keys(scores[lo: lo + BLOCK], groups[lo: lo + BLOCK])
    ordered.sort()  # in place: the keys in token order are cheaper to remake than to keep
    n_groups = int(groups.max()) + 1
    bounds = np.searchsorted(ordered, np.arange(n_groups + 1, dtype=np.uint64) << np.uint64(32))
    starts, sizes = bounds[:-1], np.diff(bounds)
    quota = np.round(rho * sizes).astype(np.int64)
    wanted = quota > 0
    kth = np.zeros(n_groups, dtype=np.uint64)  # 0 for an example with no quota: no key is below it
    kth[wanted] = ordered[starts[wanted] + quota[wanted] - 1]
    below = np.zeros(n_groups, dtype=np.int64)
    below[wanted] = np.searchsorted(ordered, kth[wanted]) - starts[wanted]
    del ordered
    positive = np.empty(n, dtype=bool)
    tied = []
    for lo in range(0, n, BLOCK):
        block_groups = groups[lo: lo + BLOCK]
        keys, token_kth = example_keys(scores[lo: lo + BLOCK], block_groups), kth[block_groups]
        np.less(keys, token_kth, out=positive[lo: lo + BLOCK])
        tied.append(lo + np.flatnonzero(keys == token_kth))
    positive[first_tied(np.concatenate(tied), groups, quota - below)] = True
    return positive


def example_groups(example_id) -> np.ndarray:
    """An integer per token, equal for the tokens of one example (hashing, not sorting, strings)."""
    codes = dictionary_codes(example_id)
    return (codes or dictionary_codes(pc.dictionary_encode(example_id)))[1]


def check_share(name: str, value: float | None) -> float:
    if value is None or not 0 < value <= 1:
        raise InputError(f"{name} must be in (0, 1], got {value}")
    return value


def random_partition(tokens: pa.Table, rho: float, seed: int) -> tuple[pa.Table, dict]:
    """round(rho * N) of the response tokens positive, chosen uniformly at random."""
    check_share("rho", rho)
    keys = response_tokens(tokens)
    n = keys.num_rows
    positive = np.zeros(n, dtype=bool)
    positive[np.random.default_rng(seed).permutation(n)[: int(round(rho * n))]] = True
    out = pa.table({"example_id": keys["example_id"], "position": keys["position"], "positive": pa.array(positive),
                    "negative": pa.array(~positive)})
    stats = {"rule": RANDOM, "rho": rho, "scope": RANDOM, "score": None, "seed": seed, "n_tokens": n,
             "n_positive": int(positive.sum()), "n_negative": int((~positive).sum()), "n_neither": 0,
             "negative_share": float((~positive).mean()) if n else 0.0, "threshold": None}
    stats.update(corrupted_counts(keys, out["negative"]))
    return out, stats


def corrupted_counts(table: pa.Table, negative) -> dict:
    """How many tokens the pool marks as noise, and how many of them are negative (none: no marks).
    Counted on Arrow's bitmaps: no byte per token."""
    if "corrupted" not in table.column_names:
        return {}
    corrupted = table["corrupted"].fill_null(False)
    return {"n_corrupted": int(pc.sum(corrupted).as_py() or 0),
            "n_corrupted_negative": int(pc.sum(pc.and_(corrupted, negative)).as_py() or 0)}


def split_tokens(scores: np.ndarray, groups, rule: str, rho=None, scope="global", tail=None, threshold=None,
                 signed: bool = True):
    """(positive, negative, cut, details) of one rule on the scores (table order); `cut` is the
    lowest positive score (None: no positive), `details` what the rule found (estimated_share: its
    fit and decision; `signed`: the score's zero means something, runs.SIGNED_SCORES)."""
    details = {}
    if rule == ESTIMATED_SHARE:
        details = estimate_noise_share(scores, signed=signed)
        n = len(scores)
        # Abstaining: share 0, every token positive. The noise is a minority, so some stay positive.
        rule, rho, scope = TOP_RHO, (n - int(round(details["share"] * n))) / n, "global"
    if rule == THRESHOLD:
        negative = scores < np.float32(threshold)
        positive = ~negative
        cut = float(scores[positive].min()) if positive.any() else None
        return positive, negative, cut, details
    check_share("rho", rho)
    if scope == "global":
        positive, cut = global_selection(scores, rho)
    elif scope == "per_example":
        positive = per_example_top(scores, groups(), rho)
        cut = float(scores[positive].min()) if positive.any() else None
    else:
        raise InputError(f"unknown partition scope {scope!r}; scopes are {', '.join(SCOPES)}")
    if rule == BAND:
        if overlap := band_overlap(rho, check_share("tail", tail)):
            raise InputError(overlap)
        # The lowest tail: the top share of the negated scores (ties by table order, as above).
        negative, _ = global_selection(-scores, tail)
        return positive, negative & ~positive, cut, details
    if rule != TOP_RHO:
        raise InputError(f"unknown partition rule {rule!r}; rules are {', '.join(RULES)}")
    return positive, ~positive, cut, details


def partition(table: pa.Table, rho: float | None = None, scope: str = "global", score: str = INFLUENCE,
              rule: str = TOP_RHO, tail: float | None = None, threshold: float | None = None) -> tuple[pa.Table, dict]:
    """The partition of the influence table's tokens by `rule` on `score` (runs.py's grammar): the
    table `example_id, position, positive, negative` (a token may be neither: band) and its stats."""
    scores = token_score(table, score)
    if not len(scores):
        raise InputError("no response tokens to partition: the influence table is empty")
    if np.isnan(scores.min()):  # min propagates NaN: no mask of every token
        raise InputError(f"{score}: {int(np.isnan(scores).sum())} NaN values in the influence table's tokens")
    positive, negative, cut, details = split_tokens(scores, lambda: example_groups(table["example_id"]), rule,
                                                    rho, scope, tail, threshold, signed=score in SIGNED_SCORES)
    out = pa.table({"example_id": table["example_id"], "position": table["position"],
                    "positive": pa.array(positive), "negative": pa.array(negative)})
    n, n_positive, n_negative = len(positive), int(np.count_nonzero(positive)), int(np.count_nonzero(negative))
    stats = {
        "rule": rule, "rho": rho, "scope": scope if rule == TOP_RHO else None, "score": score, "tail": tail,
        "n_tokens": n, "n_positive": n_positive, "n_negative": n_negative, "n_neither": n - n_positive - n_negative,
        "negative_share": n_negative / n if n else 0.0,
        # The cut: the lowest score still positive (rule threshold: the option itself); tokens at or
        # above it (ties aside) are learnt.
        "threshold": float(threshold) if rule == THRESHOLD else cut,
    }
    if details:
        stats["estimate"] = details
    stats.update(corrupted_counts(table, out["negative"]))
    return out, stats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--influence", help="influence Parquet: partition by a token score")
    source.add_argument("--tokens", help="tokenized training split: random partition (with --random-seed)")
    parser.add_argument("--random-seed", type=int, help="with --tokens (required there)")
    parser.add_argument("--rule", choices=RULES, default=DEFAULTS["rule"],
                        help="with --influence: how the tokens are split")
    parser.add_argument("--rho", type=float, help="top_rho, band, random: the share of positive tokens")
    parser.add_argument("--scope", choices=SCOPES, default=DEFAULTS["scope"],
                        help="top_rho: rank globally or per example")
    parser.add_argument("--tail", type=float, help="band: the lowest share made negative")
    parser.add_argument("--threshold", type=float, help="threshold: tokens scoring below it are negative")
    parser.add_argument("--score", choices=SCORES, default=DEFAULTS["score"],
                        help="with --influence: the token score to rank by (token_scores.py)")
    parser.add_argument("--out", required=True, help="partition Parquet")
    parser.add_argument("--out-stats", required=True, help="partition JSON")
    args = parser.parse_args(argv)
    if args.tokens and (args.random_seed is None or args.rho is None):
        parser.error("--tokens (a random partition) needs --random-seed and --rho")
    missing = [f"--{name}" for name in RULE_NUMBERS[args.rule] if getattr(args, name) is None]
    if args.influence and missing:
        parser.error(f"--rule {args.rule} needs {' and '.join(missing)}")

    if args.tokens:
        out, stats = random_partition(read_table(args.tokens), args.rho, args.random_seed)
    else:
        out, stats = partition(read_table(args.influence), args.rho, args.scope, args.score, args.rule, args.tail,
                               args.threshold)
    write_parquet(args.out, out)
    write_json(args.out_stats, stats)
    if "estimate" in stats:
        log.info("estimated_share: %s, %s", stats["estimate"]["decision"], stats["estimate"]["reason"])
    log.info("%s (%s): %d positive, %d negative, %d neither of %d tokens (negative share %.4f); cut %s%s",
             stats["rule"], stats["score"], stats["n_positive"], stats["n_negative"], stats["n_neither"],
             stats["n_tokens"], stats["negative_share"], stats["threshold"],
             f"; corrupted tokens negative: {stats['n_corrupted_negative']} of {stats['n_corrupted']}"
             if "n_corrupted" in stats else "")


if __name__ == "__main__":
    run_main(main)
