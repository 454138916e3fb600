"""The disk a run's checkpoints take: LoRA adapters beside the base model, against merged copies.

Counts parameters from each model's architecture (its config.json on the Hub, typed in below): a
merged checkpoint holds every weight in the model's dtype; an adapter holds, for every targeted
projection of every layer, A (r x in) and B (out x r) in float32 (peft keeps adapter weights in
float32 when the base is bfloat16). A run of the paper's grid keeps four checkpoints: the reference
and the final sft, ignore and forget models; the base model (resources/models/) is kept either way.
    python scripts/checkpoint_disk.py [--rank 64] [--checkpoints 4]
`--measure DIR...` adds the size of adapter folders on disk (e.g. after `make run`).
"""
import argparse
from pathlib import Path

GB = 1e9
# name: (parameters in billions, bytes per weight as converted, layers, hidden, kv width, MLP width,
#        the targeted projections as (input, output) widths per layer)
ARCHITECTURES = {
    "smollm2-135m-instruct (default, float32)": (0.1348, 4, 30, 576, 192, 1536, "llama"),
    "llama-3.2-1b": (1.236, 2, 16, 2048, 512, 8192, "llama"),
    "llama-3.2-3b": (3.213, 2, 28, 3072, 1024, 8192, "llama"),
    "llama-3.1-8b": (8.030, 2, 32, 4096, 1024, 14336, "llama"),
    "llama-2-13b": (13.016, 2, 40, 5120, 5120, 13824, "llama"),
    "qwen2.5-3b": (3.086, 2, 36, 2048, 256, 11008, "llama"),
    "gpt-neo-2.7b": (2.718, 2, 32, 2560, 2560, 10240, "gpt-neo"),
}


def projections(hidden: int, kv: int, mlp: int, family: str) -> list[tuple[int, int]]:
    """(input, output) widths of the projections LoRA targets in one layer (the paper's targets:
    q, k, v, o, gate, up, down; GPT-Neo's q, k, v, out_proj, c_fc, c_proj)."""
    attention = [(hidden, hidden), (hidden, kv), (hidden, kv), (hidden, hidden)]
    if family == "gpt-neo":
        return attention + [(hidden, mlp), (mlp, hidden)]
    return attention + [(hidden, mlp), (hidden, mlp), (mlp, hidden)]


def adapter_parameters(rank: int, layers: int, hidden: int, kv: int, mlp: int, family: str) -> int:
    return layers * sum(rank * (i + o) for i, o in projections(hidden, kv, mlp, family))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rank", type=int, default=64, help="LoRA r (the paper's and the default's: 64)")
    parser.add_argument("--checkpoints", type=int, default=4, help="checkpoints a run keeps (reference, sft, "
                        "ignore, forget)")
    parser.add_argument("--measure", nargs="*", default=[], help="adapter folders to measure")
    args = parser.parse_args()
    print("| model | merged checkpoint | adapter (parameters) | adapter / merged | "
          f"{args.checkpoints} checkpoints merged | {args.checkpoints} adapters |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (billions, width, layers, hidden, kv, mlp, family) in ARCHITECTURES.items():
        merged = billions * 1e9 * width
        parameters = adapter_parameters(args.rank, layers, hidden, kv, mlp, family)
        adapter = parameters * 4
        print(f"| {name} | {merged / GB:.2f} GB | {adapter / GB:.3f} GB ({parameters / 1e6:.1f}M) | "
              f"{adapter / merged:.1%} | {args.checkpoints * merged / GB:.1f} GB | "
              f"{args.checkpoints * adapter / GB:.2f} GB |")
    for folder in args.measure:
        size = sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
        weights = sum(path.stat().st_size for path in Path(folder).glob("*.safetensors"))
        print(f"measured {folder}: {size / GB:.3f} GB in all, {weights / GB:.3f} GB of weights")


if __name__ == "__main__":
    main()
