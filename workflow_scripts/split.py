"""Split the pool into disjoint reference and training subsets, deterministically by seed."""
from __future__ import annotations

import argparse

import numpy as np

from workflow_scripts.files import InputError, read_jsonl, run_main, setup_logging, write_jsonl

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--reference-size", type=int, required=True)
    parser.add_argument("--train-size", type=int, default=None, help="default: the rest of the pool")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-reference", required=True)
    parser.add_argument("--out-train", required=True)
    args = parser.parse_args(argv)

    pool = [record for _, record in read_jsonl(args.pool)]
    reference, train = split_indices(len(pool), args.reference_size, args.train_size, args.seed)
    write_jsonl(args.out_reference, (pool[i] for i in reference))
    write_jsonl(args.out_train, (pool[i] for i in train))
    log.info("pool %d -> reference %d, train %d, unused %d (seed %d)",
             len(pool), len(reference), len(train), len(pool) - len(reference) - len(train), args.seed)


if __name__ == "__main__":
    run_main(main)
