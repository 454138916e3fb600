"""Token scoring: the loss of each response token, sharded or not, equals a plain forward pass."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM

from workflow_scripts import token_losses, tokenize_data
from workflow_scripts.files import InputError


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("scoring")
    records = [{"id": f"e{i}", "messages": [{"role": "user", "content": "apples " * (1 + i % 5)},
                                            {"role": "assistant", "content": f"{i} fruits."}]} for i in range(9)]
    (tmp / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp / "tokens.parquet"
    tokenize_data.main(["--data", str(tmp / "d.jsonl"), "--model-dir", str(tiny_model_dir),
                        "--max-seq-length", "64", "--max-dropped-fraction", "0.1", "--template", "chat_template",
                        "--out", str(out)])
    return out


def run_score(tiny_model_dir, tokens, out, max_batch_tokens="4096", shard="0", num_shards="1"):
    token_losses.main(["score", "--model-dir", str(tiny_model_dir), "--tokens", str(tokens), "--out", str(out),
                       "--dtype", "float32", "--max-batch-tokens", max_batch_tokens, "--shard", shard,
                       "--num-shards", num_shards, "--threads", "1"])
    return pq.read_table(out)


def test_losses_equal_a_plain_forward_pass(tmp_path, tiny_model_dir, tokens):
    table = run_score(tiny_model_dir, tokens, tmp_path / "all.parquet", max_batch_tokens="40")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    row = pq.read_table(tokens).to_pylist()[4]
    with torch.no_grad():
        logits = model(torch.tensor([row["input_ids"]])).logits[0]
    expected = [torch.nn.functional.cross_entropy(logits[t - 1], torch.tensor(row["labels"][t])).item()
                for t in range(1, len(row["labels"])) if row["labels"][t] != -100]
    mine = table.filter(np.array(table["example_id"].to_pylist()) == "e4")
    assert mine["token_id"].to_pylist() == [x for x in row["labels"][1:] if x != -100]
    np.testing.assert_allclose(mine["loss"].to_numpy(), expected, rtol=1e-5)


def test_sharded_scoring_gathers_to_the_unsharded_table(tmp_path, tiny_model_dir, tokens):
    whole = run_score(tiny_model_dir, tokens, tmp_path / "all.parquet")
    parts = [tmp_path / f"{i}of4.parquet" for i in range(4)]
    for i, part in enumerate(parts):
        run_score(tiny_model_dir, tokens, part, max_batch_tokens="30", shard=str(i), num_shards="4")
    token_losses.main(["gather", "--tokens", str(tokens), "--out", str(tmp_path / "gathered.parquet"),
                       *map(str, parts)])
    gathered = pq.read_table(tmp_path / "gathered.parquet")
    keys = ["example_id", "position", "token_id"]
    assert gathered.schema == whole.schema
    assert gathered.select(keys).equals(whole.select(keys))
    # Other batch shapes run other matrix kernels (AVX2 vs AVX-512 round differently in the
    # last bits): the losses agree to float32 precision, not bit for bit.
    np.testing.assert_allclose(gathered["loss"].to_numpy(), whole["loss"].to_numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="gathered shards: .* tokens, expected"):
        token_losses.main(["gather", "--tokens", str(tokens), "--out", str(tmp_path / "bad.parquet"),
                           *map(str, parts[:3])])


def test_identical_reruns_are_bit_exact(tmp_path, tiny_model_dir, tokens):
    first = run_score(tiny_model_dir, tokens, tmp_path / "a.parquet", max_batch_tokens="40")
    second = run_score(tiny_model_dir, tokens, tmp_path / "b.parquet", max_batch_tokens="40")
    assert first.equals(second)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_loss_table_example_id_is_dictionary_encoded(tmp_path, tiny_model_dir, tokens):
    import pyarrow as pa

    table = run_score(tiny_model_dir, tokens, tmp_path / "all.parquet")
    assert pa.types.is_dictionary(table["example_id"].type)
    assert table["example_id"].chunk(0).dictionary.to_pylist() == pq.read_table(tokens)["example_id"].to_pylist()


def test_length_batches_bound_tokens_and_padding():
    from workflow_scripts.modeling import length_batches

    lengths = np.random.default_rng(0).integers(1, 300, 500)
    batches = length_batches(lengths, 2048)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))  # every example once
    for batch in batches:
        width = lengths[batch].max()
        assert width * len(batch) <= 2048 or len(batch) == 1
        assert lengths[batch].min() >= 0.9 * width  # no row padded by more than 10% of the width
    assert length_batches(np.array([5000, 3]), 100)[0].tolist() == [0]  # a row longer than the budget alone


def test_score_options_are_required(tmp_path, tiny_model_dir, tokens):
    with pytest.raises(SystemExit):
        token_losses.main(["score", "--model-dir", str(tiny_model_dir), "--tokens", str(tokens),
                           "--out", str(tmp_path / "x.parquet"), "--max-batch-tokens", "40"])
