"""The reference and training subsets, deterministically by seed, and a summary (split.json).

Either one pool is split (`--pool`: reference = the first `--reference-size` of a seeded
permutation, train = the next `--train-size`, default the rest), or the two subsets are given
(`--reference-pool`, `--train-pool`, as prepare_data wrote them), each optionally capped to its size
by the same seeded choice. Records of the training source whose id is also in the reference
source are counted (log, split.json) and, with `--drop-overlap`, dropped from training: the
reference model has seen them, so their influence would be inflated. `--no-drop-overlap` keeps
them, as the authors' scripts do (they never compare the two files).

`--noise-scope pool` keeps every recorded corruption (the embedded pool corrupts a share of the
answers); `train` restores the reference subset's answers from their `corrupted_span` (clean
reference, noisy training data, as Token Cleaning trains its reference).
"""
from __future__ import annotations

import argparse

import numpy as np

from workflow_scripts.files import InputError, read_jsonl, run_main, setup_logging, write_json, write_jsonl
from workflow_scripts.pool_sources import check_span, last_answer

log = setup_logging("split")


def split_indices(n_pool: int, reference_size: int, train_size: int | None, seed: int):
    """Reference = the first `reference_size` of a seeded permutation, train = the next `train_size`
    (all the rest when None). Both keep the pool's order, so the files read like the pool."""
    if train_size is None:
        train_size = n_pool - reference_size
    if reference_size < 1 or train_size < 1 or reference_size + train_size > n_pool:
        raise InputError(
            f"split sizes do not fit the pool: reference {reference_size} + train {train_size} "
            f"> {n_pool} examples (each must be at least 1)"
        )
    order = np.random.default_rng(seed).permutation(n_pool)
    reference = np.sort(order[:reference_size])
    train = np.sort(order[reference_size: reference_size + train_size])
    return reference.tolist(), train.tolist()


def cap_indices(n: int, size: int | None, seed: int, what: str) -> list[int]:
    """All rows when size is None, else `size` rows chosen as split_indices chooses the reference."""
    if size is None:
        return list(range(n))
    if not 1 <= size <= n:
        raise InputError(f"{what}: asked for {size} rows, {n} available (at least 1)")
    return np.sort(np.random.default_rng(seed).permutation(n)[:size]).tolist()


# ---------------------------------------------------------------- inputs

def read_subset(path: str) -> list[tuple[str, dict]]:
    """(FILE:LINE, record) of a normalized pool; ids must be unique within it."""
    rows, first = [], {}
    for lineno, record in read_jsonl(path):
        where = f"{path}:{lineno}"
        if not isinstance(record.get("id"), str):
            raise InputError(f"{where}: no string 'id' (the split reads the pools prepare_data writes)")
        if record["id"] in first:
            raise InputError(f"{where}: duplicate id {record['id']!r} (first on line {first[record['id']]})")
        first[record["id"]] = lineno
        rows.append((where, record))
    if not rows:
        raise InputError(f"{path}: no records")
    return rows


def overlap(reference: list[tuple[str, dict]], train: list[tuple[str, dict]], drop: bool):
    """(the training rows, less those whose id is a reference id when `drop`; the overlapping ids)."""
    reference_ids = {record["id"] for _, record in reference}
    shared = [record["id"] for _, record in train if record["id"] in reference_ids]
    if shared:
        log.warning("%d training records share an id with the reference subset%s (first: %s)", len(shared),
                    " and are dropped from training" if drop else "; kept (--no-drop-overlap)",
                    ", ".join(map(repr, shared[:5])))
    if drop:
        train = [(where, record) for where, record in train if record["id"] not in reference_ids]
    return train, shared


# ---------------------------------------------------------------- noise scope

def restore(where: str, record: dict) -> dict:
    """The record with its recorded corruption undone (the original answer back)."""
    if not record.get("corrupted"):
        return record
    span = record.get("corrupted_span")
    if not span:
        raise InputError(f"{where}: corrupted but without a corrupted_span, so --noise-scope train "
                         "cannot restore its original answer")
    messages = [dict(msg) for msg in record["messages"]]
    answer = messages[last_answer(messages)]
    text = answer["content"]
    try:
        check_span(span, text)
    except ValueError as err:
        raise InputError(f"{where}: {err}") from None
    answer["content"] = text[:span["start"]] + span["original"] + text[span["end"]:]
    return {**record, "messages": messages, "corrupted": False, "corrupted_span": None}


def summary(args, inputs: dict, reference: list[dict], train: list[dict], restored: int, shared: list) -> dict:
    return {"noise_scope": args.noise_scope, "seed": args.seed, "inputs": inputs,
            "overlap": {"ids": len(shared), "dropped_from_train": bool(args.drop_overlap and shared)},
            "reference": {"rows": len(reference), "corrupted": sum(bool(r.get("corrupted")) for r in reference),
                          "restored": restored},
            "train": {"rows": len(train), "corrupted": sum(bool(r.get("corrupted")) for r in train)}}


# ---------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", help="one normalized pool to split by seed")
    parser.add_argument("--reference-pool", help="the given reference subset (with --train-pool, instead of --pool)")
    parser.add_argument("--train-pool", help="the given training subset")
    parser.add_argument("--reference-size", type=int,
                        help="--pool: required; given subsets: cap the reference subset (default: all of it)")
    parser.add_argument("--train-size", type=int,
                        help="--pool: default the rest of the pool; given subsets: cap (default: all of it)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--drop-overlap", action=argparse.BooleanOptionalAction, default=None,
                        help="given subsets (required there): drop training records whose id is a reference id "
                             "(--no-drop-overlap: keep them)")
    parser.add_argument("--noise-scope", choices=["pool", "train"], required=True,
                        help="pool: both subsets keep their recorded noise; train: the reference subset is restored")
    parser.add_argument("--out-reference", required=True)
    parser.add_argument("--out-train", required=True)
    parser.add_argument("--out-summary", required=True, help="split.json: sizes, noise scope, corrupted counts")
    args = parser.parse_args(argv)
    given = tuple(value is not None for value in (args.pool, args.reference_pool, args.train_pool))
    if given not in ((True, False, False), (False, True, True)):
        raise InputError("give either --pool or both --reference-pool and --train-pool")
    if args.pool is not None and args.reference_size is None:
        raise InputError("--pool needs --reference-size")
    if args.pool is None and args.drop_overlap is None:
        raise InputError("--reference-pool and --train-pool need --drop-overlap or --no-drop-overlap")
    return args


def choose(args):
    """(reference rows, train rows, inputs for the summary, overlapping ids) as (where, record)."""
    if args.pool is not None:
        pool = read_subset(args.pool)
        reference, train = split_indices(len(pool), args.reference_size, args.train_size, args.seed)
        return [pool[i] for i in reference], [pool[i] for i in train], {"pool": len(pool)}, []
    reference_pool, train_pool = read_subset(args.reference_pool), read_subset(args.train_pool)
    n_train = len(train_pool)
    train_pool, shared = overlap(reference_pool, train_pool, args.drop_overlap)
    reference = cap_indices(len(reference_pool), args.reference_size, args.seed, f"{args.reference_pool} (reference)")
    dropped = f", after dropping {len(shared)} reference ids" if args.drop_overlap and shared else ""
    train = cap_indices(len(train_pool), args.train_size, args.seed, f"{args.train_pool} (training{dropped})")
    inputs = {"reference_pool": len(reference_pool), "train_pool": n_train}
    return [reference_pool[i] for i in reference], [train_pool[i] for i in train], inputs, shared


def main(argv=None):
    args = parse_args(argv)
    reference, train, inputs, shared = choose(args)
    restored = 0
    reference_rows = [record for _, record in reference]
    if args.noise_scope == "train":
        restored = sum(bool(record.get("corrupted")) for record in reference_rows)
        reference_rows = [restore(where, record) for where, record in reference]
    train_rows = [record for _, record in train]

    write_jsonl(args.out_reference, reference_rows)
    write_jsonl(args.out_train, train_rows)
    stats = summary(args, inputs, reference_rows, train_rows, restored, shared)
    write_json(args.out_summary, stats)
    log.info("%s -> reference %d (%d corrupted, %d restored), train %d (%d corrupted); noise scope %s, seed %d",
             inputs, len(reference_rows), stats["reference"]["corrupted"], restored, len(train_rows),
             stats["train"]["corrupted"], args.noise_scope, args.seed)


if __name__ == "__main__":
    run_main(main)
