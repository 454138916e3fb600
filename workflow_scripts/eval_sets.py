"""The evaluation-data formats: what prepare_eval_set writes and the evaluator reads, one JSONL row each.

    boolq           {id, passage, question, label 0|1}
    asdiv           {id, body, question, answer}        (answer = the leading number, e.g. "9")
    logiqa          {id, context, question, options[4], label 0..3}
    number_words    {id, words, number}                  (a number in words and in digits: "42")
    clock_24h       {id, time, answer}                   (a 12-hour time and the 24-hour one: "7:05 PM", "19:05")
    truthfulqa_mc1  rows of the Hub's `truthful_qa` "multiple_choice" validation split: {question,
    truthfulqa_mc2  mc1_targets | mc2_targets: {choices, labels}} (the first choice a true one)

The first five are the eval sets prepare_eval_set writes to results/{data}/data/eval/{format}.jsonl
(from the embedded wheel, generated (number_words, clock_24h), or from a user's directory of such files);
the TruthfulQA rows are a file
the config names. A bad row is refused as FILE:LINE with what is wrong.
"""
from __future__ import annotations

from pathlib import Path

from workflow_scripts.files import InputError, read_jsonl

FIELDS = {
    "boolq": {"id": str, "passage": str, "question": str, "label": int},
    "asdiv": {"id": str, "body": str, "question": str, "answer": str},
    "logiqa": {"id": str, "context": str, "question": str, "options": list, "label": int},
    "number_words": {"id": str, "words": str, "number": str},
    "clock_24h": {"id": str, "time": str, "answer": str},
}
LABELS = {"boolq": range(2), "logiqa": range(4)}
TRUTHFULQA_TARGETS = {"truthfulqa_mc1": "mc1_targets", "truthfulqa_mc2": "mc2_targets"}
FORMATS = (*FIELDS, *TRUTHFULQA_TARGETS)


def check_fields(fmt: str, record: dict) -> None:
    for key, kind in FIELDS[fmt].items():
        if key not in record:
            raise ValueError(f"missing key '{key}'")
        # bool is an int subclass in Python, but true/false is not a valid label
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise ValueError(f"'{key}' must be {kind.__name__}, got {type(record[key]).__name__}")
    if fmt in LABELS and record["label"] not in LABELS[fmt]:
        raise ValueError(f"'label' must be in 0..{len(LABELS[fmt]) - 1}, got {record['label']}")
    if fmt == "logiqa" and (len(record["options"]) != 4 or not all(isinstance(o, str) for o in record["options"])):
        raise ValueError("'options' must be a list of 4 strings")


def check_truthfulqa(key: str, record: dict) -> None:
    if not isinstance(record.get("question"), str):
        raise ValueError("'question' must be a string")
    targets = record.get(key)
    if not isinstance(targets, dict):
        raise ValueError(f"missing '{key}' ({{choices, labels}})")
    choices, labels = targets.get("choices"), targets.get("labels")
    if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
        raise ValueError(f"'{key}.choices' must be a non-empty list of strings")
    if not isinstance(labels, list) or len(labels) != len(choices) or any(label not in (0, 1) for label in labels):
        raise ValueError(f"'{key}.labels' must be one 0/1 per choice")
    if labels[0] != 1:  # lm-eval's doc_to_target is 0: the first choice is a true one
        raise ValueError(f"'{key}': the first choice must be a true one (label 1)")


def check_record(fmt: str, record: dict) -> None:
    """Raise ValueError naming what is wrong with one row of format `fmt`."""
    if fmt in TRUTHFULQA_TARGETS:
        check_truthfulqa(TRUTHFULQA_TARGETS[fmt], record)
    elif fmt in FIELDS:
        check_fields(fmt, record)
    else:
        raise ValueError(f"unknown eval-set format {fmt!r}; formats are {', '.join(FORMATS)}")


def read_eval_set(path, fmt: str, what: str | None = None) -> list[dict]:
    """Every row of the JSONL `path`, checked as `fmt`; InputError `PATH:LINE: [WHAT row ID: ]problem`.

    `what` (e.g. the task that reads the file) prefixes the problem with the row's id."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: eval data file{f' for task {what!r}' if what else ''} not found")
    records = []
    for lineno, record in read_jsonl(path):
        try:
            check_record(fmt, record)
        except ValueError as err:
            where = f"{what} row {record.get('id', '?')!r}: " if what else ""
            raise InputError(f"{path}:{lineno}: {where}{err}") from None
        records.append(record)
    if not records:
        raise InputError(f"{path}: eval data file{f' for task {what!r}' if what else ''} is empty")
    return records
