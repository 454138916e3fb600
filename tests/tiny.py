"""A tiny causal LM and tokenizer built offline, in code, for fast tests of every stage.

The tokenizer is a byte-level BPE trained on a few sentences and has no chat template, so the
pipeline's Tulu-format fallback is exercised; the model is a 2-layer Llama.
"""
from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Question: is the sky blue? Answer: yes. Answer: no.",
    "There are 3 apples and 4 pears. How many fruits are there? 7 fruits.",
    "<|user|>\n<|assistant|>\n<|system|>\n Passage: Choices: A. B. C. D.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 yes no true false",
]


def build_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 4, vocab_size=400, min_frequency=1,
                            special_tokens=["<pad>", "<s>", "</s>", "<unk>"], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def write_tiny_pool(path: str | Path, n: int = 24) -> Path:
    """A pool in both accepted formats: chat `messages` and `prompt`/`completion`."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            a, b = i % 7, (3 * i) % 5
            if i % 2:
                record = {"id": f"q{i}", "prompt": f"There are {a} apples and {b} pears. How many fruits?",
                          "completion": f"{a + b} fruits."}
            else:
                record = {"id": f"q{i}", "messages": [
                    {"role": "user", "content": f"Is {a} more than {b}? Answer yes or no."},
                    {"role": "assistant", "content": "yes" if a > b else "no"}]}
            handle.write(json.dumps(record) + "\n")
    return path


def write_tiny_eval(directory: str | Path) -> Path:
    """Eval sets in the evaluator's format, a few rows per task."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = {
        "boolq": [{"id": f"b{i}", "passage": f"Sky -- The sky is {'blue' if i % 2 else 'green'}.",
                   "question": "is the sky blue", "label": i % 2} for i in range(4)],
        "asdiv": [{"id": f"a{i}", "body": f"There are {i} apples and 2 pears.",
                   "question": "How many fruits are there?", "answer": str(i + 2)} for i in range(4)],
        "logiqa": [{"id": f"l{i}", "context": "The fox is quick.", "question": "Which is true?",
                    "options": ["The fox is quick.", "The dog is quick.", "The fox is slow.", "None."],
                    "label": 0} for i in range(3)],
    }
    for task, task_rows in rows.items():
        with open(directory / f"{task}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in task_rows)
    return directory


# The training options the rules always pass (the config's `training:` section), for tiny runs.
TRAINING = {"lora_r": 4, "lora_alpha": 16, "lora_dropout": 0.1, "lora_target_modules": "all-linear",
            "learning_rate": 0.01, "lr_scheduler": "linear", "warmup_ratio": 0.03, "epochs": 1, "batch_size": 4,
            "gradient_accumulation_steps": 1, "save_steps": 0, "max_grad_norm": 1.0, "report_to": "none", "seed": 1,
            "dtype": "float32"}


def lora_weight(layer: int, module: str, matrix: str = "B") -> str:
    """The name of one LoRA matrix in a run's adapter_model.safetensors (module: "self_attn.q_proj")."""
    return f"base_model.model.model.layers.{layer}.{module}.lora_{matrix}.weight"


FLAGS = {"shuffle": True, "bf16": False, "gradient_checkpointing": False}


def train_args(**changes) -> list[str]:
    """["--lora-r", "4", ..., "--shuffle", "--no-bf16", ...] with `changes` applied (None: left out), as the
    rules pass them."""
    flags = {key: changes.pop(key, value) for key, value in FLAGS.items()}
    return [word for key, value in {**TRAINING, **changes}.items() if value is not None
            for word in ("--" + key.replace("_", "-"), str(value))] + \
        [f"--{'' if value else 'no-'}{key.replace('_', '-')}" for key, value in flags.items()]


if __name__ == "__main__":  # python tests/tiny.py DIR: the tiny model of .test/config.yaml
    import sys

    print(build_tiny_model(sys.argv[1]))
