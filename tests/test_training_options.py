"""Training options that change what the optimiser does: gradient clipping (training.max_grad_norm;
null is the authors' no clipping)."""
import json

import pytest
from safetensors.numpy import load_file

from tiny import train_args
from workflow_scripts import tokenize_data, train_final


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
        load_file(out / "model" / "model.safetensors")


def test_no_clipping_lets_a_large_gradient_through(tiny_model_dir, tokens, tmp_path):
    norms, unclipped = train(tiny_model_dir, tokens, tmp_path / "none", "none")
    clipped_norms, clipped = train(tiny_model_dir, tokens, tmp_path / "one", "1.0")
    _, huge = train(tiny_model_dir, tokens, tmp_path / "huge", "1e9")
    # The first step sees the same gradient either way (the norm logged is taken before clipping):
    assert norms[0] == clipped_norms[0] > 1.0  # ... above 1, so clipping at 1 scales it down,
    name = "model.layers.0.self_attn.q_proj.weight"
    assert (unclipped[name] != clipped[name]).any()  # and the runs part,
    assert all((unclipped[k] == huge[k]).all() for k in unclipped)  # while a limit never reached changes nothing.
