"""Checkpoints are LoRA adapters beside the base model: what a training run writes, and that every
reader sees through the adapter the model its merged copy is (modeling.load_causal_lm)."""
import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from tiny import train_args, write_tiny_eval
from workflow_scripts import evaluate, merge_checkpoint, tokenize_data, train_final
from workflow_scripts.files import InputError
from workflow_scripts.modeling import adapter_base, check_model_dir, load_causal_lm
from workflow_scripts.token_losses import loss_table
from workflow_scripts.token_table import read_table


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("adapter-tokens")
    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"There are {i % 7} apples and {i % 5} pears."},
                                         {"role": "assistant", "content": f"{i % 7 + i % 5} fruits."}]}
            for i in range(16)]
    (root / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    tokenize_data.main(["--data", str(root / "train.jsonl"), "--model-dir", str(tiny_model_dir), "--template", "tulu",
                        "--max-seq-length", "64", "--max-dropped-fraction", "0", "--out", str(root / "tokens.parquet")])
    return root / "tokens.parquet"


def train_sft(model_dir, tokens, out):
    train_final.main(["--method", "sft", "--model-dir", str(model_dir), "--tokens", str(tokens),
                      "--out", str(out / "model"), "--out-log", str(out / "log.json"), "--work-dir", str(out / "work"),
                      *train_args(learning_rate=0.05, seed=3)])
    return out / "model"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, tokens):
    """An sft adapter on the tiny model, its merged copy, and a second adapter trained on the first
    (as a run in rounds trains from the previous round's model)."""
    root = tmp_path_factory.mktemp("adapters")
    adapter = train_sft(tiny_model_dir, tokens, root / "one")
    merged = root / "one" / "model.merged"
    merge_checkpoint.main(["--adapter", str(adapter), "--out", str(merged)])
    second = train_sft(adapter, tokens, root / "two")
    return adapter, merged, second


def test_a_run_stores_its_adapter_and_tokenizer_not_a_merged_model(trained, tiny_model_dir):
    adapter, _, second = trained
    files = {path.name for path in adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    assert not {"model.safetensors", "config.json"} & files
    assert adapter_base(adapter) == str(tiny_model_dir)
    assert adapter_base(second) == str(adapter)  # an adapter on an adapter names the one it was trained on
    weights = load_file(adapter / "adapter_model.safetensors")
    assert all("lora_" in name for name in weights)
    assert any(np.abs(w).max() > 0 for name, w in weights.items() if "lora_B" in name)  # trained: B left zero
    base_bytes = sum(p.stat().st_size for p in tiny_model_dir.iterdir())
    assert sum(p.stat().st_size for p in adapter.iterdir() if p.suffix == ".safetensors") < base_bytes / 2


def test_the_merged_copy_is_a_whole_model(trained):
    _, merged, _ = trained
    files = {path.name for path in merged.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files and "adapter_config.json" not in files
    check_model_dir(merged)


def test_token_losses_from_the_adapter_equal_the_merged_checkpoints(trained, tiny_model_dir, tokens):
    adapter, merged, _ = trained
    table = read_table(tokens)
    through_adapter = loss_table(str(adapter), table)["loss"].to_numpy()
    from_merged = loss_table(str(merged), table)["loss"].to_numpy()
    base = loss_table(str(tiny_model_dir), table)["loss"].to_numpy()
    assert len(through_adapter) == len(from_merged) > 0
    np.testing.assert_allclose(through_adapter, from_merged, rtol=1e-5, atol=1e-6)
    assert np.abs(through_adapter - base).max() > 1e-2  # the adapter is applied, not skipped


def test_an_adapter_on_an_adapter_is_merged_in_order(trained):
    """Loading the second adapter merges the first into the base, then the second into that."""
    import torch
    from peft import PeftModel

    adapter, merged, second = trained
    by_hand = PeftModel.from_pretrained(load_causal_lm(str(merged), place=False), str(second)).merge_and_unload()
    loaded = load_causal_lm(str(second), place=False)
    for (name, mine), (_, theirs) in zip(loaded.state_dict().items(), by_hand.state_dict().items()):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6, msg=name)
    first = load_causal_lm(str(adapter), place=False).state_dict()
    assert any(not torch.equal(first[name], value) for name, value in loaded.state_dict().items())


@pytest.mark.parametrize("task", ["boolq", "logiqa"])
def test_item_scores_from_the_adapter_equal_the_merged_checkpoints(task, trained, tmp_path):
    adapter, merged, _ = trained
    data = write_tiny_eval(tmp_path / "eval") / f"{task}.jsonl"
    records = {}
    for name, model_dir in (("adapter", adapter), ("merged", merged)):
        out = tmp_path / f"{name}.json"
        evaluate.main(["--model-dir", str(model_dir), "--task", task, "--source", "local", "--data", str(data),
                       "--out", str(out), "--batch-size", "4", "--threads", "1", "--dtype", "float32",
                       "--cache-dir", str(tmp_path / "cache"), "--model-name", "tiny", "--data-name", "tiny-pool",
                       "--run", "sft/all/seed3"])
        records[name] = json.loads(out.read_text())
    assert records["adapter"]["items"] == records["merged"]["items"]
    assert records["adapter"]["metrics"] == pytest.approx(records["merged"]["metrics"], rel=1e-6)


def test_a_directory_that_is_neither_is_refused(tmp_path):
    with pytest.raises(InputError, match="no config.json.*nor a LoRA adapter"):
        check_model_dir(tmp_path)


def test_merging_a_whole_model_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="a whole model already"):
        merge_checkpoint.merge(str(tiny_model_dir), str(tmp_path / "out"))
