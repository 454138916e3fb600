"""Token scoring: the loss of each response token, sharded or not, equals a plain forward pass."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM

from workflow_scripts import score_tokens, tokenize_data
from workflow_scripts.files import InputError


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("scoring")
    records = [{"id": f"e{i}", "messages": [{"role": "user", "content": "apples " * (1 + i % 5)},
                                            {"role": "assistant", "content": f"{i} fruits."}]} for i in range(9)]
    (tmp / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp / "tokens.parquet"
    tokenize_data.main(["--data", str(tmp / "d.jsonl"), "--model-dir", str(tiny_model_dir),
                        "--max-seq-length", "64", "--out", str(out)])
    return out


def run_score(tiny_model_dir, tokens, out, *extra):
    score_tokens.main(["score", "--model-dir", str(tiny_model_dir), "--tokens", str(tokens), "--out", str(out), *extra])
    return pq.read_table(out)


def test_losses_equal_a_plain_forward_pass(tmp_path, tiny_model_dir, tokens):
    table = run_score(tiny_model_dir, tokens, tmp_path / "all.parquet", "--max-batch-tokens", "40")
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
        run_score(tiny_model_dir, tokens, part, "--shard", str(i), "--num-shards", "4", "--max-batch-tokens", "30")
    score_tokens.main(["gather", "--tokens", str(tokens), "--out", str(tmp_path / "gathered.parquet"),
                       *map(str, parts)])
    gathered = pq.read_table(tmp_path / "gathered.parquet")
    keys = ["example_id", "position", "token_id"]
    assert gathered.schema == whole.schema
    assert gathered.select(keys).equals(whole.select(keys))
    # Other batch shapes run other matrix kernels (AVX2 vs AVX-512 round differently in the
    # last bits): the losses agree to float32 precision, not bit for bit.
    np.testing.assert_allclose(gathered["loss"].to_numpy(), whole["loss"].to_numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="gathered shards: .* tokens, expected"):
        score_tokens.main(["gather", "--tokens", str(tokens), "--out", str(tmp_path / "bad.parquet"),
                           *map(str, parts[:3])])
