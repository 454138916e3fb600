"""Training step cost of the forget objective against plain SFT, and of the masks: results/bench/train_step.json.

- forget_over_sft: forward + backward of SmolLM2-135M with the config's LoRA adapters, through
  ForgettingTrainer.compute_loss (the training rules' loss), on the same batches of the embedded
  training split (config's batch size) with the `forget` objective (a random rho-0.7 partition:
  the masks' values do not change the work) and with `sft`. The two alternate batch by batch,
  --repeats times; per batch the fastest time of each counts, and the ratio is of their sums.
  sft_tok_per_s: the batches' tokens (no padding) per second of SFT.
- mask_ms_small / mask_ms_large: per step, the cost of a batch's masks as training takes them
  (TokenDataset items + MaskCollator padding), from a 100-example and a 100k-example synthetic
  data set: flat in the data set's size. The one-off TokenDataset builds are reported too.
"""
from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np
import torch
import yaml

from benchmarks.common import ROOT, WORK, report
from benchmarks.data import model_and_tokens
from benchmarks.tables import synthetic_tokens
from workflow_scripts.modeling import load_causal_lm, set_threads
from workflow_scripts.partition import random_partition
from workflow_scripts.runs import FORGET, SFT
from workflow_scripts.token_table import read_table
from workflow_scripts.objective import Objective
from workflow_scripts.training import ForgettingTrainer, MaskCollator, TokenDataset

OBJECTIVES = {
    SFT: Objective(method=SFT),
    FORGET: Objective(method=FORGET, t_min=1e-5, t_max=0.25, lambda_schedule="linear", forget_loss="ascent"),
}


def lora_model(model_dir: str, training: dict):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = load_causal_lm(model_dir, "float32")
    lora = LoraConfig(r=training.get("lora_r", 64), lora_alpha=training.get("lora_alpha", 16),
                      lora_dropout=training.get("lora_dropout", 0.1),
                      target_modules=training.get("lora_target_modules", "all-linear"), task_type="CAUSAL_LM")
    return get_peft_model(model, lora).train()


def step_seconds(model, batch, objective: Objective, step: int, steps: int) -> float:
    """One forward + backward through the trainer's compute_loss (the trainer's state stubbed)."""
    trainer = SimpleNamespace(objective=objective, state=SimpleNamespace(global_step=step, max_steps=steps), _stats=[])
    start = time.perf_counter()
    loss = ForgettingTrainer.compute_loss(trainer, model, batch)
    loss.backward()
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds


def objective_ratio(model_dir: str, tokens_path: str, training: dict, n_batches: int, repeats: int) -> dict:
    tokens = read_table(tokens_path)
    partition, _ = random_partition(tokens, 0.7, seed=0)
    datasets = {SFT: TokenDataset(tokens, None, SFT), FORGET: TokenDataset(tokens, partition, FORGET)}
    collate = MaskCollator(pad_id=0)
    batch_size = int(training.get("batch_size", 4))
    order = np.random.default_rng(0).permutation(len(datasets[SFT]))[: n_batches * batch_size]
    batches = {name: [collate([data[int(i)] for i in order[b: b + batch_size]])
                      for b in range(0, len(order), batch_size)] for name, data in datasets.items()}
    model = lora_model(model_dir, training)
    step_seconds(model, batches[SFT][0], OBJECTIVES[SFT], 0, n_batches)  # warm-up
    best = {name: np.full(n_batches, np.inf) for name in OBJECTIVES}
    for repeat in range(repeats):
        for b in range(n_batches):
            names = [SFT, FORGET] if (b + repeat) % 2 == 0 else [FORGET, SFT]  # no order bias
            for name in names:
                seconds = step_seconds(model, batches[name][b], OBJECTIVES[name], b, n_batches)
                best[name][b] = min(best[name][b], seconds)
    n_tokens = sum(int(batch["attention_mask"].sum()) for batch in batches[SFT])
    return {"forget_over_sft": round(float(best[FORGET].sum() / best[SFT].sum()), 4),
            "sft_tok_per_s": round(n_tokens / float(best[SFT].sum()), 1),
            "sft_step_ms": round(1000 * float(best[SFT].mean()), 1),
            "forget_step_ms": round(1000 * float(best[FORGET].mean()), 1),
            "batches": n_batches, "batch_size": batch_size, "batch_tokens": n_tokens}


def mask_cost(n_examples: int, steps: int, batch_size: int) -> tuple[float, float]:
    """(ms per step for a batch's masks, s to build the data set) on a synthetic split."""
    tokens = synthetic_tokens(n_examples, 40 * n_examples, seed=0, prompt_lengths=(20, 120))
    partition, _ = random_partition(tokens, 0.7, seed=0)
    start = time.perf_counter()
    dataset = TokenDataset(tokens, partition, FORGET)
    build = time.perf_counter() - start
    collate = MaskCollator(pad_id=0)
    picks = np.random.default_rng(0).integers(0, len(dataset), (steps, batch_size))
    collate([dataset[int(i)] for i in picks[0]])  # warm-up
    start = time.perf_counter()
    for rows in picks:
        collate([dataset[int(i)] for i in rows])
    return 1000 * (time.perf_counter() - start) / steps, build


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", help="default: SmolLM2-135M under --work (made if missing)")
    parser.add_argument("--tokens", help="tokenized split; default: the embedded training split under --work")
    parser.add_argument("--work", default=str(WORK))
    parser.add_argument("--batches", type=int, default=6, help="batches timed per objective and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mask-steps", type=int, default=2000)
    parser.add_argument("--large-examples", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="default results/bench/train_step.json")
    args = parser.parse_args(argv)

    model_dir, tokens_path = model_and_tokens(args.model_dir, args.tokens, args.work)
    set_threads(args.threads)
    training = (yaml.safe_load((ROOT / "config.yaml").read_text()) or {}).get("training") or {}
    values = objective_ratio(str(model_dir), str(tokens_path), training, args.batches, args.repeats)
    batch_size = values["batch_size"]
    small, small_build = mask_cost(100, args.mask_steps, batch_size)
    large, large_build = mask_cost(args.large_examples, args.mask_steps, batch_size)
    values.update(mask_ms_small=round(small, 4), mask_ms_large=round(large, 4),
                  mask_build_s_small=round(small_build, 3), mask_build_s_large=round(large_build, 3),
                  large_examples=args.large_examples, threads=torch.get_num_threads())
    report("train_step", values, f"forget/sft step time {values['forget_over_sft']:.3f} "
           f"({values['forget_step_ms']:.0f} vs {values['sft_step_ms']:.0f} ms), SFT "
           f"{values['sft_tok_per_s']:.0f} tok/s; masks {small:.3f} ms/step (100 examples) vs {large:.3f} "
           f"ms/step ({args.large_examples} examples)", args.out)


if __name__ == "__main__":
    main()
