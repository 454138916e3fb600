"""A positive control: a constructed case in which a correct pipeline must find the noise.

The task is a deterministic mapping (the answer to `key 7` is `7`). The reference model is the
tiny model fine-tuned on clean rows until it has memorised the mapping; 30% of the training rows
answer with another digit. The pipeline's own stages then score both models, take the influence,
partition it and build forget's masks: the influence of a corrupted answer token must be low (the
reference finds it very unlikely, the random base model does not care), the audit must say so
(AUROC >= 0.9 over answer tokens) and forget's negative mask must hold every corrupted token.
A flipped influence sign, loss tables shifted by one position or swapped positive and negative
masks each make one of these assertions fail."""
import json

import numpy as np
import pytest

from workflow_scripts import influence, noise_audit, partition, token_losses, tokenize_data
from workflow_scripts.runs import FORGET
from workflow_scripts.token_table import read_table
from workflow_scripts.training import TokenDataset

KEYS = 10
NOISE = 0.3


def write_rows(path, n, noisy, rng):
    """`key k` -> `k`; with `noisy`, a NOISE share of the answers another digit, recorded per row."""
    rows = []
    for i in range(n):
        right = str(i % KEYS)
        row = {"id": f"{path.stem}-{i}", "messages": [{"role": "user", "content": f"key {right}"},
                                                     {"role": "assistant", "content": right}],
               "source": "control", "corrupted": False, "corrupted_span": None}
        if noisy and rng.random() < NOISE:
            row["messages"][1]["content"] = str((int(right) + int(rng.integers(1, KEYS))) % KEYS)
            row.update(corrupted=True, corrupted_span={"start": 0, "end": 1, "original": right})
        rows.append(row)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def memorise(model_dir, tokens_path, out_dir, steps=150, lr=3e-3):
    """Full fine-tuning of every weight on the reference rows, one batch of all of them per step:
    the tiny model's frozen output layer is too small for LoRA to reach certainty."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    table = read_table(str(tokens_path))
    ids, labels = table["input_ids"].to_pylist(), table["labels"].to_pylist()
    width = max(map(len, ids))
    pad = model.config.pad_token_id
    inputs = torch.tensor([row + [pad] * (width - len(row)) for row in ids])
    targets = torch.tensor([row + [-100] * (width - len(row)) for row in labels])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = model(input_ids=inputs, attention_mask=mask, labels=targets).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.save_pretrained(out_dir, safe_serialization=True)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out_dir)
    return float(loss)


@pytest.fixture(scope="module")
def control(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("control")
    rng = np.random.default_rng(0)
    data = {"reference": write_rows(root / "reference.jsonl", 40, noisy=False, rng=rng),
            "train": write_rows(root / "train.jsonl", 60, noisy=True, rng=rng)}
    for name, path in data.items():
        tokenize_data.main(["--data", str(path), "--model-dir", str(tiny_model_dir), "--max-seq-length", "64",
                            "--max-dropped-fraction", "0", "--template", "chat_template",
                            "--out", str(root / f"{name}.parquet")])
    final_loss = memorise(tiny_model_dir, root / "reference.parquet", root / "reference-model")
    for name, model in (("base", tiny_model_dir), ("reference", root / "reference-model")):
        token_losses.main(["score", "--model-dir", str(model), "--tokens", str(root / "train.parquet"),
                           "--out", str(root / f"losses-{name}.parquet"), "--max-batch-tokens", "512",
                           "--dtype", "float32", "--shard", "0", "--num-shards", "1", "--threads", "2"])
    influence.main(["--tokens", str(root / "train.parquet"), "--base-losses", str(root / "losses-base.parquet"),
                    "--reference-losses", str(root / "losses-reference.parquet"),
                    "--out", str(root / "influence.parquet")])
    partition.main(["--influence", str(root / "influence.parquet"), "--rho", "0.7", "--scope", "global",
                    "--out", str(root / "partition.parquet"), "--out-stats", str(root / "partition.json")])
    audit = noise_audit.run(str(root / "influence.parquet"), str(tiny_model_dir),
                            {"rho0.7": str(root / "partition.parquet")}, str(root / "audit.json"),
                            str(root / "audit.png"), str(data["train"]))
    return {"root": root, "audit": audit, "reference_loss": final_loss}


def test_the_reference_memorised_the_mapping(control):
    assert control["reference_loss"] < 0.05
    assert control["audit"]["strata"]["all"]["answer"]["n_corrupted"] >= 10  # enough noise to find


def test_the_influence_finds_the_corrupted_answers(control):
    answer = control["audit"]["strata"]["all"]["answer"]
    assert answer["auroc"]["influence"] >= 0.9, answer


def test_forgets_negative_mask_holds_every_corrupted_token(control):
    root = control["root"]
    tokens = read_table(str(root / "train.parquet"))
    dataset = TokenDataset(tokens, read_table(str(root / "partition.parquet")), FORGET)
    corrupted = np.concatenate(tokens["corrupted"].to_pylist()).astype(bool)
    assert corrupted.sum() >= 10
    negative = dataset.columns["negative"].astype(bool)
    assert negative[corrupted].all()
    assert not dataset.columns["positive"].astype(bool)[corrupted].any()
