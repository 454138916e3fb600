"""Training options that change what the optimiser does: gradient clipping (training.max_grad_norm;
null is the authors' no clipping), and the npo forget loss with its --beta and --base-losses."""
import argparse
import json
import math

import numpy as np
import pyarrow as pa
import pytest
from safetensors.numpy import load_file

from tiny import lora_weight, train_args
from workflow_scripts import tokenize_data, train_final
from workflow_scripts.files import InputError, write_parquet
from workflow_scripts.training import add_objective_arguments, objective_from_args


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("clipping")
    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"Is {i % 7} more than {i % 5}?"},
                                         {"role": "assistant", "content": "yes" if i % 7 > i % 5 else "no"}]}
            for i in range(16)]
    (root / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    tokenize_data.main(["--data", str(root / "train.jsonl"), "--model-dir", str(tiny_model_dir), "--max-seq-length",
                        "64", "--max-dropped-fraction", "0", "--template", "chat_template",
                        "--out", str(root / "tokens.parquet")])
    return root / "tokens.parquet"


def train(tiny_model_dir, tokens, out, max_grad_norm):
    train_final.main(["--method", "sft", "--model-dir", str(tiny_model_dir), "--tokens", str(tokens),
                      "--out", str(out / "model"), "--out-log", str(out / "log.json"), "--work-dir", str(out / "work"),
                      *train_args(max_grad_norm=max_grad_norm, learning_rate=0.05, seed=3)])
    log = json.loads((out / "log.json").read_text())
    return [entry["grad_norm"] for entry in log["log_history"] if "grad_norm" in entry], \
        load_file(out / "model" / "adapter_model.safetensors")


def test_no_clipping_lets_a_large_gradient_through(tiny_model_dir, tokens, tmp_path):
    norms, unclipped = train(tiny_model_dir, tokens, tmp_path / "none", None)
    clipped_norms, clipped = train(tiny_model_dir, tokens, tmp_path / "one", "1.0")
    _, huge = train(tiny_model_dir, tokens, tmp_path / "huge", "1e9")
    # The first step sees the same gradient either way (the norm logged is taken before clipping):
    assert norms[0] == clipped_norms[0] > 1.0  # ... above 1, so clipping at 1 scales it down,
    name = lora_weight(0, "self_attn.q_proj")
    assert (unclipped[name] != clipped[name]).any()  # and the runs part,
    assert all((unclipped[k] == huge[k]).all() for k in unclipped)  # while a limit never reached changes nothing.


# ---------------------------------------------------------------- npo

def objective_args(*words):
    parser = argparse.ArgumentParser()
    add_objective_arguments(parser)
    return parser.parse_args(["--t-min", "0.1", "--t-max", "0.5", "--lambda-schedule", "constant", *words])


def test_beta_reaches_the_objective():
    objective = objective_from_args(objective_args("--forget-loss", "npo", "--beta", "0.25"), "forget")
    assert (objective.forget_loss, objective.beta) == ("npo", 0.25)
    # Only npo has a beta: another loss's objective (and its run stamp) is the same with or without one.
    assert objective_from_args(objective_args("--forget-loss", "ascent", "--beta", "0.25"), "forget").beta is None
    with pytest.raises(InputError, match="--beta"):
        objective_from_args(objective_args("--forget-loss", "npo"), "random")
    with pytest.raises(InputError, match="--beta > 0, got -1"):
        objective_from_args(objective_args("--forget-loss", "npo", "--beta", "-1"), "forget")


@pytest.fixture(scope="module")
def npo_inputs(tokens, tiny_model_dir):
    """The base model's token losses (as losses/base.parquet holds them) and a partition with every
    other response token negative."""
    from workflow_scripts.token_losses import loss_table
    from workflow_scripts.token_table import read_table

    base = loss_table(str(tiny_model_dir), read_table(str(tokens)), max_batch_tokens=256)
    write_parquet(tokens.parent / "base.parquet", base)
    positive = pa.array([i % 2 == 0 for i in range(base.num_rows)])
    write_parquet(tokens.parent / "partition.parquet", base.select(["example_id", "position"]).append_column(
        "positive", positive).append_column(
        "negative", pa.array([i % 2 == 1 for i in range(base.num_rows)])))
    return tokens.parent / "base.parquet", tokens.parent / "partition.parquet"


def train_npo(tiny_model_dir, tokens, partition, out, *extra):
    train_final.main(["--method", "forget", "--model-dir", str(tiny_model_dir), "--tokens", str(tokens),
                      "--partition", str(partition), "--t-min", "0.2", "--t-max", "0.2",
                      "--lambda-schedule", "constant", "--forget-loss", "npo", *extra,
                      "--out", str(out / "model"), "--out-log", str(out / "log.json"), "--work-dir", str(out / "work"),
                      *train_args(learning_rate=0.05, seed=3)])


def test_npo_is_refused_without_beta_or_base_losses(tiny_model_dir, tokens, npo_inputs, tmp_path):
    base, partition = npo_inputs
    with pytest.raises(InputError, match="--beta"):
        train_npo(tiny_model_dir, tokens, partition, tmp_path, "--base-losses", str(base))
    with pytest.raises(InputError, match="--base-losses"):
        train_npo(tiny_model_dir, tokens, partition, tmp_path, "--beta", "0.5")
    assert not (tmp_path / "log.json").exists()


def test_npo_training_logs_its_negative_term(tiny_model_dir, tokens, npo_inputs, tmp_path):
    base, partition = npo_inputs
    beta = 0.5
    train_npo(tiny_model_dir, tokens, partition, tmp_path, "--beta", str(beta), "--base-losses", str(base))
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["objective"]["beta"] == beta
    steps = [entry for entry in log["log_history"] if "loss" in entry]
    assert len(steps) == 4  # 16 examples in batches of 4, one log per step
    assert all(math.isfinite(entry["negative_term"]) and entry["n_negative"] > 0 for entry in steps)
    # LoRA starts as the identity, so the first step's model is the base model: every negative token
    # has p = p_base and npo_t = (2 / beta) log 2 -- only if base_loss is each token's own base loss.
    assert steps[0]["negative_term"] == pytest.approx(2 / beta * math.log(2), abs=1e-4)
    # The logged loss is the positive mean plus lambda times the logged term (the trainer rounds it).
    for entry in steps:
        assert entry["loss"] == pytest.approx(entry["positive_ce"] + 0.2 * entry["negative_term"], abs=1e-3)
    assert steps[-1]["negative_term"] != steps[0]["negative_term"]  # the model moved away from the base


# ---------------------------------------------------------------- operational: gradient checkpointing

def test_gradient_checkpointing_trains_the_same_weights(tiny_model_dir, tokens, tmp_path):
    """training.gradient_checkpointing is operational (schemas/config.schema.yaml): it recomputes the
    same activations, with the same dropout masks (torch restores the RNG state), to save memory.
    Recomputed activations may round differently in the last bits: equal to float32 precision."""
    weights = {}
    for flag in (False, True):
        out = tmp_path / str(flag)
        train_final.main(["--method", "sft", "--model-dir", str(tiny_model_dir), "--tokens", str(tokens),
                          "--out", str(out / "model"), "--out-log", str(out / "log.json"), "--work-dir",
                          str(out / "work"), *train_args(gradient_checkpointing=flag, learning_rate=0.05, seed=3)])
        weights[flag] = load_file(out / "model" / "adapter_model.safetensors")
    name = lora_weight(0, "self_attn.q_proj")
    assert (weights[False][name] != 0).any()  # training moved the weights (B starts at 0; dropout 0.1 on)
    for key in weights[False]:
        np.testing.assert_allclose(weights[True][key], weights[False][key], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- option types

def test_each_training_option_reads_the_type_its_field_declares():
    """add_train_arguments takes each option's type from TrainConfig's declaration (typing), not from
    the text of its annotation: what the rules pass reads back as the dataclass holds it."""
    from dataclasses import dataclass, fields

    from workflow_scripts.training import TrainConfig, add_train_arguments, option_types

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args([*train_args(max_grad_norm="0.5"), "--out-log", "log.json"])
    declared = option_types()
    assert {name: declared[name] for name in ("lora_r", "lora_alpha", "lora_target_modules", "shuffle",
                                              "max_grad_norm")} == \
        {"lora_r": int, "lora_alpha": float, "lora_target_modules": str, "shuffle": bool, "max_grad_norm": float}
    for field in fields(TrainConfig):
        assert type(getattr(args, field.name)) is declared[field.name], field.name
    assert parser.parse_args([*train_args(max_grad_norm=None), "--out-log", "x"]).max_grad_norm is None
    with pytest.raises(SystemExit):  # an int field refuses what is not one
        parser.parse_args([*train_args(lora_r="4.5"), "--out-log", "x"])

    @dataclass
    class Declared:
        steps: int | None
        rate: float

    assert option_types(Declared) == {"steps": int, "rate": float}

    @dataclass
    class Listed:
        names: list[str]

    with pytest.raises(TypeError, match=r"Listed.names: list\[str\] is not a type a command-line option reads"):
        option_types(Listed)


# ---------------------------------------------------------------- a partition without negatives

def test_a_partition_without_negatives_trains_sfts_adapter(tiny_model_dir, tokens, npo_inputs, tmp_path):
    """Where a rule abstains (or the oracle finds no noise), the partition marks every response token
    positive: ignore's and forget's loss is then sft's (the forget term of an empty set is 0.0), so the
    run computes sft's adapter, byte for byte -- the map reports such cells as sft's runs."""
    from workflow_scripts.token_table import read_table

    base, _ = npo_inputs
    keys = read_table(str(base)).select(["example_id", "position"])
    rows = keys.num_rows
    empty = tmp_path / "partition.parquet"
    write_parquet(empty, keys.append_column(
        "positive", pa.array([True] * rows)).append_column("negative", pa.array([False] * rows)))
    runs = {"sft": [], "ignore": ["--partition", str(empty)],
            "forget": ["--partition", str(empty), "--t-min", "0.2", "--t-max", "0.2", "--lambda-schedule",
                       "constant", "--forget-loss", "npo", "--beta", "1", "--base-losses", str(base)]}
    adapters = {}
    for method, extra in runs.items():
        out = tmp_path / method
        train_final.main(["--method", method, "--model-dir", str(tiny_model_dir), "--tokens", str(tokens), *extra,
                          "--out", str(out / "model"), "--out-log", str(out / "log.json"), "--work-dir",
                          str(out / "work"), *train_args(learning_rate=0.05, seed=3)])
        adapters[method] = (out / "model" / "adapter_model.safetensors").read_bytes()
    assert (load_file(tmp_path / "sft" / "model" / "adapter_model.safetensors")[lora_weight(0, "self_attn.q_proj")]
            != 0).any()  # training moved the weights
    assert adapters["ignore"] == adapters["sft"] and adapters["forget"] == adapters["sft"]
