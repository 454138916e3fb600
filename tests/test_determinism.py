"""Same inputs and seed -> byte-identical token, loss, influence and partition tables, and
identical weights from CPU training: comparisons between methods can be trusted."""
import hashlib

import pyarrow.parquet as pq
import pytest

from tiny import train_args, write_tiny_pool
from workflow_scripts import influence, partition, prepare_data, token_losses, split, tokenize_data, train_final


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pipeline(root, tiny_model_dir, reference_dir, pool):
    """prepare_data -> split -> tokenize -> score (base, reference) -> influence -> partition -> train."""
    m = str(tiny_model_dir)
    prepare_data.main(["--pool", str(pool), "--out-pool", str(root / "pool.jsonl"),
                       "--bad-records", "fail", "--max-skipped-fraction", "0",
                       "--out-skipped", str(root / "skipped.jsonl")])
    split.main(["--pool", str(root / "pool.jsonl"), "--reference-size", "8", "--seed", "3",
                "--noise-scope", "pool", "--drop-overlap",
                "--out-reference", str(root / "reference.jsonl"), "--out-train", str(root / "train.jsonl"),
                "--out-summary", str(root / "split.json")])
    tokenize_data.main(["--data", str(root / "train.jsonl"), "--model-dir", m, "--max-seq-length", "64",
                        "--max-dropped-fraction", "0.1", "--template", "chat_template",
                        "--out", str(root / "tokens.parquet")])
    for name, model in (("base", m), ("reference", str(reference_dir))):
        token_losses.main(["score", "--model-dir", model, "--tokens", str(root / "tokens.parquet"),
                           "--out", str(root / f"{name}.parquet"), "--max-batch-tokens", "100", "--dtype", "float32",
                           "--shard", "0", "--num-shards", "1", "--threads", "1"])
    influence.main(["--tokens", str(root / "tokens.parquet"), "--base-losses", str(root / "base.parquet"),
                    "--reference-losses", str(root / "reference.parquet"), "--out", str(root / "influence.parquet")])
    partition.main(["--influence", str(root / "influence.parquet"), "--rho", "0.6", "--scope", "global",
                    "--out", str(root / "partition.parquet"), "--out-stats", str(root / "partition.json")])
    train_final.main(["--method", "forget", "--model-dir", m, "--tokens", str(root / "tokens.parquet"),
                      "--partition", str(root / "partition.parquet"), "--t-min", "0.00001", "--t-max", "0.25",
                      "--lambda-schedule", "linear", "--forget-loss", "ascent", "--out", str(root / "model"),
                      "--out-log", str(root / "training_log.json"), "--work-dir", str(root / "work"),
                      *train_args(seed=5)])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_model_dir):
    from tiny import build_tiny_model

    base = tmp_path_factory.mktemp("determinism")
    reference = build_tiny_model(base / "reference-model", seed=1)
    pool = write_tiny_pool(base / "input.jsonl")
    runs = [base / "a", base / "b"]
    for root in runs:
        root.mkdir()
        pipeline(root, tiny_model_dir, reference, pool)
    return runs


@pytest.mark.parametrize("name", ["pool.jsonl", "train.jsonl", "tokens.parquet", "base.parquet", "reference.parquet",
                                  "influence.parquet", "partition.parquet", "partition.json"])
def test_tables_are_byte_identical(two_runs, name):
    a, b = two_runs
    assert digest(a / name) == digest(b / name)
    if name == "influence.parquet":
        assert len(set(pq.read_table(a / name)["influence"].to_pylist())) > 10  # real, varied scores


def test_cpu_training_gives_identical_weights(two_runs):
    a, b = two_runs
    assert digest(a / "model" / "adapter_model.safetensors") == digest(b / "model" / "adapter_model.safetensors")
