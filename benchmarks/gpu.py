"""Scoring and training throughput in bfloat16 on one GPU: results/bench/gpu.json (run by benchmarks/gpu.sh).

Models: SmolLM2-135M (the converted checkpoint under --work when present, else random weights of
its shape) and a Llama-shaped model of about 1.2B parameters with random weights, built from a
LlamaConfig (Llama-3.2-1B's shape; nothing is downloaded). Data: a synthetic tokenized split
(random token ids; lengths and the response half as in chat data); throughput does not depend
on the ids.

- peak: the best rate of a large bfloat16 torch.mm (the reference for every share below);
- scoring: token_losses.score, the workflow's scoring loop, on bfloat16 weights; tokens/s over
  the split's tokens (no padding); share = 2 x parameters x tokens/s / peak;
- training: the forget objective through ForgettingTrainer.compute_loss with LoRA (the config's
  r 64, all linear layers), forward + backward + AdamW step under bfloat16 autocast, as the
  Trainer runs it with --bf16; share = 4 x parameters x tokens/s / peak (the frozen base needs
  activation gradients, not weight gradients; attention's own FLOPs are left out of both).

`--smoke` runs every path on tiny shapes (on the CPU too) to check the script, not the machine.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from types import SimpleNamespace

import numpy as np
import torch

from benchmarks.common import WORK, matmul_gflops, report
from benchmarks.tables import synthetic_tokens
from workflow_scripts.partition import random_partition
from workflow_scripts.runs import FORGET
from workflow_scripts.token_losses import score
from workflow_scripts.token_table import flat_column
from workflow_scripts.objective import Objective
from workflow_scripts.training import ForgettingTrainer, MaskCollator, TokenDataset

FORGET_OBJECTIVE = Objective(method=FORGET, t_min=1e-5, t_max=0.25, lambda_schedule="linear", forget_loss="ascent")

SHAPES = {  # LlamaConfig arguments
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0),
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                     num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, rope_theta=500000.0),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, tie_word_embeddings=True),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build_model(name: str, device: torch.device, work: str):
    """(bfloat16 model on `device`, where its weights came from)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    converted = f"{work}/smollm2-135m"
    if name == "smollm2-135m":
        try:
            model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.bfloat16).to(device)
            return model, converted
        except OSError:
            pass  # not converted on this machine: the same shape with random weights
    config = LlamaConfig(**SHAPES[name], max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    return model, f"random weights ({name} shape)"


def split_tokens(tokens) -> int:
    return int(flat_column(tokens, "input_ids")[0][-1])


def scoring(model, tokens, max_batch_tokens: int, device: torch.device, repeats: int) -> dict:
    rows = np.arange(tokens.num_rows)
    n_tokens = split_tokens(tokens)
    score(model, tokens.slice(0, min(64, tokens.num_rows)), np.arange(min(64, tokens.num_rows)),
          max_batch_tokens, 0)  # warm-up: kernels, allocator
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        score(model, tokens, rows, max_batch_tokens, 0)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return {"tokens": n_tokens, "seconds": round(best, 3), "tok_per_s": round(n_tokens / best, 1),
            "max_batch_tokens": max_batch_tokens}


def training(model, tokens, batch_size: int, steps: int, device: torch.device) -> dict:
    from peft import LoraConfig, get_peft_model

    partition, _ = random_partition(tokens, 0.7, seed=0)
    dataset = TokenDataset(tokens, partition, FORGET)
    collate = MaskCollator(pad_id=0)
    model = get_peft_model(model, LoraConfig(r=64, lora_alpha=16, lora_dropout=0.1, target_modules="all-linear",
                                             task_type="CAUSAL_LM")).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    order = np.random.default_rng(0).permutation(len(dataset))
    batches = [collate([dataset[int(i)] for i in order[(s * batch_size) % len(order):][:batch_size]])
               for s in range(steps + 2)]
    trainer = SimpleNamespace(objective=FORGET_OBJECTIVE, state=SimpleNamespace(global_step=0, max_steps=steps),
                              _stats=[])

    def step(batch, index):
        trainer.state.global_step = index
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = ForgettingTrainer.compute_loss(trainer, model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        trainer._stats.clear()

    for i in range(2):  # warm-up
        step(batches[i], i)
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(batches[i + 2], i)
    sync(device)
    seconds = time.perf_counter() - start
    n_tokens = sum(int(b["attention_mask"].sum()) for b in batches[2:])
    model.unload()  # the base model back, without adapters
    return {"tokens": n_tokens, "steps": steps, "batch_size": batch_size, "seconds": round(seconds, 3),
            "tok_per_s": round(n_tokens / seconds, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(WORK), help="where the converted SmolLM2-135M may be")
    parser.add_argument("--models", nargs="+", choices=sorted(SHAPES),
                        help="default: smollm2-135m llama-1b (--smoke: tiny)")
    parser.add_argument("--examples", type=int, default=2048, help="synthetic split: examples")
    parser.add_argument("--mean-length", type=int, default=640, help="synthetic split: mean tokens per example")
    parser.add_argument("--max-batch-tokens", type=int, default=32768, help="scoring batches (padded tokens)")
    parser.add_argument("--train-batch-size", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes: check the script, not the machine")
    parser.add_argument("--out", default=None, help="default results/bench/gpu.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.models, args.examples, args.mean_length, args.max_batch_tokens = args.models or ["tiny"], 16, 64, 512
        args.train_batch_size, args.train_steps, args.repeats, args.matmul_size = 2, 2, 1, 256

    args.models = args.models or ["smollm2-135m", "llama-1b"]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device (torch %s)" % torch.__version__)
    started = time.perf_counter()
    peak = matmul_gflops(args.matmul_size, repeats=10, dtype=torch.bfloat16, device=args.device)
    # Half of each example is prompt, half response, as in the chat data the workflow tokenizes.
    half = args.mean_length // 2
    tokens = synthetic_tokens(args.examples, args.examples * half, seed=0, prompt_lengths=(half // 4, 7 * half // 4),
                              vocab=min(SHAPES[name]["vocab_size"] for name in args.models))
    results = {}
    for name in args.models:
        model, weights = build_model(name, device, args.work)
        model.eval()
        parameters = sum(p.numel() for p in model.parameters())
        entry = {"parameters": parameters, "weights": weights}
        entry["scoring"] = scoring(model, tokens, args.max_batch_tokens, device, args.repeats)
        entry["training"] = training(model, tokens, args.train_batch_size, args.train_steps, device)
        for part, flops_per_token in (("scoring", 2), ("training", 4)):
            rate = flops_per_token * parameters * entry[part]["tok_per_s"] / 1e9
            entry[part].update(model_gflops=round(rate, 1), peak_share=round(rate / peak, 3))
        results[name] = entry
        print(name, json.dumps(entry), flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    values = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "bf16_matmul_gflops": round(peak, 1), "smoke": args.smoke,
        "data": {"examples": args.examples, "tokens": split_tokens(tokens)},
        "models": results, "seconds": round(time.perf_counter() - started, 1),
    }
    summary = "; ".join(f"{name}: scoring {r['scoring']['tok_per_s']:.0f} tok/s ({r['scoring']['peak_share']:.0%}), "
                        f"training {r['training']['tok_per_s']:.0f} tok/s ({r['training']['peak_share']:.0%})"
                        for name, r in results.items())
    report("gpu", values, f"bf16 peak {peak / 1000:.0f} TFLOP/s; {summary}", args.out)


if __name__ == "__main__":
    main()
