"""Estimate the GPU-hours of one paper row (configs/paper/), from FLOP counts; prints a table.

An estimate, not a measurement: every job's FLOPs at a stated share of the GPU's bf16 peak.
- training (LoRA, gradient checkpointing): 6 x parameters per token (forward, recomputed forward,
  backward through the frozen weights), one epoch; the reference on 10k examples, each final
  method (sft, ignore, forget) on 50k;
- scoring: 2 x parameters per token, base and reference model over the 50k training examples;
- evaluation: 2 x parameters per token over about EVAL_TOKENS tokens (the five tasks' prompts and
  choices), for the base model and the three final checkpoints.
    python scripts/estimate_gpu_hours.py [--tokens-per-example 600] [--peak-tflops 312] [--mfu 0.4]
"""
import argparse

# (config file, billions of parameters)
MODELS = [("llama-3.2-1b", 1.24), ("llama-3.2-3b", 3.21), ("llama-3.1-8b", 8.03), ("llama-2-13b", 13.0),
          ("qwen2.5-3b", 3.09), ("gpt-neo-2.7b", 2.72)]
REFERENCE, TRAIN, FINAL_METHODS, CHECKPOINTS = 10_000, 50_000, 3, 4
EVAL_TOKENS = 2.9e6  # BoolQ 3270 x 2 choices, TruthfulQA 817 x ~8, LogiQA 651 x 4, ASDiv 2305, TyDi QA 900 x ~750


def gpu_hours(billions: float, tokens_per_example: float, peak_tflops: float, mfu: float) -> float:
    n = billions * 1e9
    flops = (6 * n * tokens_per_example * (REFERENCE + FINAL_METHODS * TRAIN)
             + 2 * n * tokens_per_example * TRAIN * 2
             + 2 * n * EVAL_TOKENS * CHECKPOINTS)
    return flops / (peak_tflops * 1e12 * mfu) / 3600


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens-per-example", type=float, default=600, help="mean tokens of a Tulu example")
    parser.add_argument("--peak-tflops", type=float, default=312, help="bf16 dense peak (A100: 312)")
    parser.add_argument("--mfu", type=float, default=0.4, help="share of the peak reached")
    args = parser.parse_args()
    print("| config | parameters | GPU-hours |")
    print("| --- | ---: | ---: |")
    for name, billions in MODELS:
        hours = gpu_hours(billions, args.tokens_per_example, args.peak_tflops, args.mfu)
        print(f"| {name} | {billions:g}B | {hours:.0f} |")


if __name__ == "__main__":
    main()
