"""One round of Token Cleaning's self-evolving reference (arXiv 2502.01968), with the forget loss.

The training split is cut into K contiguous chunks. Round k scores chunk k under the base model
and a reference (the original reference checkpoint for round 1, the model trained through round
k - 1 after that), partitions its tokens by the run's token score (global top rho within the chunk;
influence, the paper's, by default) and
trains, from the previous round's model (the base model for round 1), with the forget loss.
The last round's model is the method's checkpoint.

Output directory (one per round): model/ (the round's adapter, on the previous round's model),
influence.parquet, partition.parquet, partition.json, and the training log (--out-log).

Under `accelerate launch` (several GPUs) every process scores the chunk on its own GPU (the same
deterministic tables) and trains its share of each batch; the first process writes the files.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from workflow_scripts.files import InputError, run_main, setup_logging, write_json, write_parquet
from workflow_scripts.influence import influence_table
from workflow_scripts.modeling import set_threads
from workflow_scripts.partition import partition
from workflow_scripts.runs import LEARNT_SCORES, SELF_EVOLVING
from workflow_scripts.token_losses import loss_table
from workflow_scripts.token_table import read_table
from workflow_scripts.training import (add_objective_arguments, add_train_arguments, objective_from_args,
                                       save_run, tracker_settings, train, train_config_from_args)

log = setup_logging(Path(__file__).stem)


def chunk_rows(n_rows: int, round_: int, rounds: int) -> np.ndarray:
    if not 1 <= round_ <= rounds:
        raise InputError(f"round {round_} is not in 1..{rounds}")
    if rounds > n_rows:
        raise InputError(f"{rounds} rounds need at least {rounds} training examples, got {n_rows}")
    return np.array_split(np.arange(n_rows), rounds)[round_ - 1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-model", required=True, help="base model directory (influence = base - reference)")
    parser.add_argument("--reference-model", required=True, help="this round's reference model directory")
    parser.add_argument("--start-model", required=True, help="the model this round trains from")
    parser.add_argument("--tokens", required=True, help="tokenized training split (Parquet)")
    parser.add_argument("--round", type=int, required=True, help="1-based round")
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--rho", type=float, required=True)
    parser.add_argument("--score", choices=LEARNT_SCORES, required=True, help="the token score the partition ranks by")
    add_objective_arguments(parser)
    parser.add_argument("--max-batch-tokens", type=int, required=True, help="padded tokens per scoring pass")
    parser.add_argument("--out", required=True, help="round directory")
    parser.add_argument("--work-dir", required=True)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    if "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():  # "cuda" is then this process's own GPU when scoring
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))

    tokens = read_table(args.tokens)
    chunk = tokens.take(chunk_rows(tokens.num_rows, args.round, args.rounds))
    log.info("round %d/%d: %d examples; reference %s, training from %s",
             args.round, args.rounds, chunk.num_rows, args.reference_model, args.start_model)
    base = loss_table(args.base_model, chunk, max_batch_tokens=args.max_batch_tokens, dtype=args.dtype)
    reference = loss_table(args.reference_model, chunk, max_batch_tokens=args.max_batch_tokens, dtype=args.dtype)
    influence = influence_table(chunk, base, reference)
    # Global scope, top rho: the rounds have no scope option (runs.py, their label has none).
    chunk_partition, stats = partition(influence, args.rho, score=args.score)
    out = Path(args.out)
    if int(os.environ.get("RANK", "0")) == 0:
        write_parquet(out / "influence.parquet", influence)
        write_parquet(out / "partition.parquet", chunk_partition)
        write_json(out / "partition.json", {**stats, "round": args.round, "rounds": args.rounds})
    log.info("round %d: %d positive, %d negative tokens", args.round, stats["n_positive"], stats["n_negative"])

    trainer, summary = train(args.start_model, chunk, chunk_partition, objective_from_args(args, SELF_EVOLVING),
                             train_config_from_args(args), args.work_dir, base_losses=base, **tracker_settings(args))
    save_run(trainer, summary, str(out / "model"), args.out_log, args.work_dir)


if __name__ == "__main__":
    run_main(main)
