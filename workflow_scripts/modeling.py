"""Model loading, device choice and length-aware batching shared by scoring, training and evaluation.

A trained checkpoint is a LoRA adapter (peft's adapter_config.json and adapter_model.safetensors,
with the tokenizer) beside the base model it applies to; every reader loads it through
`load_causal_lm`, which merges it in memory.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from workflow_scripts.files import InputError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here is a local directory

ADAPTER_CONFIG = "adapter_config.json"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def is_adapter(model_dir: str | os.PathLike) -> bool:
    """Whether a directory holds a LoRA adapter (peft's adapter_config.json) rather than a whole model."""
    return (Path(model_dir) / ADAPTER_CONFIG).is_file()


def adapter_base(model_dir: str | os.PathLike) -> str:
    """The model an adapter applies to, as its training saw it: a base model's directory or, for a
    run trained in rounds, the previous round's adapter. A relative path is read from the working
    directory (the workflow's, where every job runs)."""
    return json.loads((Path(model_dir) / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]


def check_model_dir(model_dir: str | os.PathLike) -> None:
    """Refuse a directory that is neither a transformers checkpoint nor an adapter of one."""
    model_dir = Path(model_dir)
    if not ((model_dir / "config.json").is_file() or is_adapter(model_dir)):
        raise InputError(f"{model_dir}: not a transformers checkpoint directory (no config.json) "
                         f"nor a LoRA adapter (no {ADAPTER_CONFIG})")


def load_causal_lm(model_dir: str, dtype: str = "float32", trust_remote_code: bool = False, place: bool = True):
    """A model directory, or an adapter merged in memory into the model it applies to (recursively:
    an adapter on an adapter), in `dtype` ("auto": the checkpoint's own). Merging in the base's
    dtype is what merging after training did, so an adapter scores as its merged copy did."""
    if is_adapter(model_dir):
        from peft import PeftModel

        base = load_causal_lm(adapter_base(model_dir), dtype, trust_remote_code, place=False)
        model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
        model.name_or_path = str(model_dir)
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype if dtype == "auto" else getattr(torch, dtype),
            trust_remote_code=trust_remote_code, local_files_only=True)
    return model.to(device()) if place else model


def pad_batch(rows: list[dict], pad_id: int, columns: dict[str, int | float]) -> dict[str, torch.Tensor]:
    """Right-pad list columns to the longest row of this batch (not to max_seq_length).

    `columns` maps a column name to its padding value (a float value makes a float32 column);
    adds `attention_mask`.
    """
    width = max(len(row["input_ids"]) for row in rows)
    batch = {}
    for name, fill in {"input_ids": pad_id, **columns}.items():
        out = np.full((len(rows), width), fill, dtype=np.float32 if isinstance(fill, float) else np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row[name])] = row[name]
        batch[name] = torch.from_numpy(out)
    lengths = torch.tensor([len(row["input_ids"]) for row in rows])
    batch["attention_mask"] = (torch.arange(width)[None, :] < lengths[:, None]).long()
    return batch


def length_batches(lengths: np.ndarray, max_tokens: int, max_padding: float = 0.1) -> list[np.ndarray]:
    """Group example indices, longest first, so that each padded batch holds <= max_tokens tokens
    and no row is padded by more than `max_padding` of the batch's width.

    The second bound starts a new batch where lengths fall off: a small or spread-out data set
    then gets more, narrower batches (less padding: 5% instead of 14% on the embedded split at
    4096 tokens), a large one still fills its batches.
    """
    order = np.argsort(-lengths, kind="stable")
    batches, current, width = [], [], 0
    for index in order:
        length = int(lengths[index])
        if current and (width * (len(current) + 1) > max_tokens or length < (1 - max_padding) * width):
            batches.append(np.array(current))
            current = []
        if not current:
            width = length
        current.append(index)
    if current:
        batches.append(np.array(current))
    return batches
