"""Final training on the training split for one method, rho and seed: a LoRA adapter.

Every method that trains in one job (workflow_scripts/runs.py says what each needs): `sft` (every
response token), `ignore` (positive tokens only), `forget` (positive tokens learnt, negative tokens
forgotten with weight lambda(step); `--forget-loss npo` compares them with the base model's token
losses, --base-losses), `random` (forget with a random partition), `rho1` (the batch's top-rho
tokens by excess loss over the reference).
Output: results/{dataset}/{model}/{method}/{variant}/seed{seed}/model/ (the adapter on the base model) and
the training log beside it.
"""
from __future__ import annotations

import argparse

from workflow_scripts import runs
from workflow_scripts.files import InputError, run_main
from workflow_scripts.modeling import set_threads
from workflow_scripts.token_table import read_partition, read_table
from workflow_scripts.training import (add_objective_arguments, add_train_arguments, objective_from_args,
                                       save_run, tracker_settings, train, train_config_from_args)

METHODS = tuple(m for m in runs.METHODS if m not in runs.IN_ROUNDS)  # those in rounds: self_evolving.py


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True, help="base model directory")
    parser.add_argument("--tokens", required=True, help="tokenized training split (Parquet)")
    parser.add_argument("--partition", default=None, help="partition Parquet (ignore, forget, random)")
    parser.add_argument("--reference-losses", default=None, help="reference token losses (rho1)")
    parser.add_argument("--base-losses", default=None, help="base model token losses (--forget-loss npo)")
    parser.add_argument("--keep", type=float, default=None, help="rho1: fraction of each batch's tokens learnt")
    parser.add_argument("--method", required=True, choices=METHODS)
    add_objective_arguments(parser)
    parser.add_argument("--out", required=True, help="adapter directory")
    parser.add_argument("--work-dir", required=True, help="scratch directory for trainer state")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)

    partitioned, selective = args.method in runs.PARTITIONED, args.method in runs.SELECTIVE
    if partitioned and not args.partition:
        raise InputError(f"method {args.method!r} needs --partition")
    if selective and not (args.reference_losses and args.keep):
        raise InputError(f"method {args.method!r} needs --reference-losses and --keep")
    objective = objective_from_args(args, args.method, keep=args.keep)
    npo = objective.forget_loss == runs.NPO  # set for the forget family only
    if npo and not args.base_losses:
        raise InputError(f"method {args.method!r} with --forget-loss {runs.NPO} needs --base-losses")
    partition = read_partition(args.partition) if partitioned else None
    reference_losses = read_table(args.reference_losses) if selective else None
    base_losses = read_table(args.base_losses) if npo else None
    trainer, summary = train(args.model_dir, read_table(args.tokens), partition, objective,
                             train_config_from_args(args), args.work_dir, reference_losses,
                             **tracker_settings(args), base_losses=base_losses)
    save_run(trainer, summary, args.out, args.out_log, args.work_dir)


if __name__ == "__main__":
    run_main(main)
