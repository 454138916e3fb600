"""Fine-tune the reference model: plain SFT with LoRA on the reference split.

Output: results/{dataset}/{model}/reference/ (the LoRA adapter on the base model, its tokenizer) and its
training log.
"""
from __future__ import annotations

import argparse

from workflow_scripts.files import run_main
from workflow_scripts.modeling import set_threads
from workflow_scripts.objective import Objective
from workflow_scripts.runs import SFT
from workflow_scripts.token_table import read_table
from workflow_scripts.training import (add_train_arguments, save_run, tracker_settings, train,
                                       train_config_from_args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True, help="base model directory")
    parser.add_argument("--tokens", required=True, help="tokenized reference split (Parquet)")
    parser.add_argument("--out", required=True, help="adapter directory")
    parser.add_argument("--work-dir", required=True, help="scratch directory for trainer state")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    trainer, summary = train(args.model_dir, read_table(args.tokens), None, Objective(method=SFT),
                             train_config_from_args(args), args.work_dir, **tracker_settings(args))
    save_run(trainer, summary, args.out, args.out_log, args.work_dir)


if __name__ == "__main__":
    run_main(main)
