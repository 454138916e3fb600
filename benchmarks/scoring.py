"""Token scoring throughput against the naive pass and the machine's matmul rate: results/bench/scoring.json.

On SmolLM2-135M (float32) over the embedded training split (benchmarks.data makes both):
- ours: token_losses.score, the function loss_table runs (length-grouped batches of at most
  --max-batch-tokens padded tokens, logits only where a token is scored, inference mode);
- naive: the same examples in file order, every batch padded to the split's longest example,
  full-vocabulary logits at every position, then the cross-entropy of every labelled token;
- matmul: the best rate of a large float32 torch.mm, in the same process.
Ours, naive and matmul alternate --repeats times and the fastest pass of each counts (other jobs
on a shared machine only ever slow a pass down). `tokens` are the split's tokens (no padding);
peak_share = 2 x parameters x tokens / seconds / matmul rate. executed_share counts the FLOPs
each pass really runs instead (padding included, the output layer only where logits are taken);
naive_executed_share likewise for the naive pass. Both passes' losses are checked to agree.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.common import WORK, matmul_gflops, report
from benchmarks.data import model_and_tokens
from workflow_scripts.constants import IGNORE_INDEX
from workflow_scripts.modeling import length_batches, load_causal_lm, pad_batch, set_threads
from workflow_scripts.token_losses import score
from workflow_scripts.token_table import flat_column, read_table


@torch.inference_mode()
def naive(model, tokens, max_batch_tokens: int, pad_id: int) -> dict[int, np.ndarray]:
    """{row: CE of its response tokens} the plain way (see the module's docstring)."""
    offsets, input_ids = flat_column(tokens, "input_ids")
    _, labels = flat_column(tokens, "labels")
    width = int(np.diff(offsets).max())
    rows_per_batch = max(1, max_batch_tokens // width)
    losses = {}
    for first in range(0, tokens.num_rows, rows_per_batch):
        rows = range(first, min(first + rows_per_batch, tokens.num_rows))
        batch = pad_batch([{"input_ids": input_ids[offsets[r]: offsets[r + 1]],
                            "labels": labels[offsets[r]: offsets[r + 1]]} for r in rows],
                          pad_id, {"labels": IGNORE_INDEX})
        pad = width - batch["input_ids"].shape[1]  # pad_batch pads to the batch's longest row
        fill = {"input_ids": pad_id, "labels": IGNORE_INDEX, "attention_mask": 0}
        batch = {k: torch.nn.functional.pad(v, (0, pad), value=fill[k]) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(),
                                               ignore_index=IGNORE_INDEX, reduction="none").view(len(rows), -1)
        scored = batch["labels"][:, 1:] != IGNORE_INDEX
        for i, r in enumerate(rows):
            losses[r] = ce[i][scored[i]].numpy()
    return losses


def executed_flops(model, tokens, max_batch_tokens: int) -> float:
    """2 x (weights) x (tokens actually computed) of our pass: the body over every padded
    position, the output layer only where score() asks for logits. (peak_share's 2 x parameters
    x tokens credits the output layer at every token.)"""
    offsets, _ = flat_column(tokens, "input_ids")
    _, labels = flat_column(tokens, "labels")
    lengths = np.diff(offsets)
    head = model.get_output_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - head * (not model.config.tie_word_embeddings)
    body -= model.get_input_embeddings().weight.numel()  # a lookup, no multiply
    total = 0.0
    for batch in length_batches(lengths, max_batch_tokens):
        width = int(lengths[batch].max())
        kept = np.zeros(width, dtype=bool)
        for r in batch:  # positions t - 1 whose token t is scored in some row
            row = labels[offsets[r] + 1: offsets[r + 1]]
            kept[: len(row)] |= row != IGNORE_INDEX
        total += 2 * body * len(batch) * width + 2 * head * len(batch) * int(kept.sum())
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", help="default: SmolLM2-135M under --work (made if missing)")
    parser.add_argument("--tokens", help="tokenized split; default: the embedded training split under --work")
    parser.add_argument("--work", default=str(WORK))
    parser.add_argument("--max-batch-tokens", type=int, default=4096, help="as config.yaml's scoring.max_batch_tokens")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=4096)
    parser.add_argument("--out", default=None, help="default results/bench/scoring.json")
    args = parser.parse_args(argv)

    model_dir, tokens_path = model_and_tokens(args.model_dir, args.tokens, args.work)
    set_threads(args.threads)
    tokens = read_table(str(tokens_path))
    model = load_causal_lm(str(model_dir), "float32").eval()
    pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    parameters = sum(p.numel() for p in model.parameters())
    n_tokens = int(np.diff(flat_column(tokens, "input_ids")[0]).sum())
    rows = np.arange(tokens.num_rows)

    warm = tokens.slice(0, min(8, tokens.num_rows))  # one-off costs: kernel choice, first allocations
    score(model, warm, np.arange(warm.num_rows), args.max_batch_tokens, pad_id)
    naive(model, warm, args.max_batch_tokens, pad_id)
    ours_s, naive_s, matmul = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = score(model, tokens, rows, args.max_batch_tokens, pad_id)
        ours_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        plain = naive(model, tokens, args.max_batch_tokens, pad_id)
        naive_s.append(time.perf_counter() - start)
        matmul.append(matmul_gflops(args.matmul_size))
    difference = max(float(np.abs(ours[r] - plain[r]).max(initial=0)) for r in rows)
    if difference > 1e-3:
        raise SystemExit(f"scoring and the naive pass disagree by {difference}")
    gflops = max(matmul)
    seconds, naive_seconds = min(ours_s), min(naive_s)
    model_gflops = 2 * parameters * n_tokens / seconds / 1e9
    executed_gflops = executed_flops(model, tokens, args.max_batch_tokens) / seconds / 1e9
    padded = tokens.num_rows * int(np.diff(flat_column(tokens, "input_ids")[0]).max())
    naive_gflops = 2 * parameters * padded / naive_seconds / 1e9
    values = {
        "tokens": n_tokens, "tok_per_s": round(n_tokens / seconds, 1),
        "naive_tok_per_s": round(n_tokens / naive_seconds, 1), "speedup": round(naive_seconds / seconds, 2),
        "matmul_gflops": round(gflops, 1), "peak_share": round(model_gflops / gflops, 3),
        "seconds": round(seconds, 2), "naive_seconds": round(naive_seconds, 2),
        "runs_seconds": [round(s, 2) for s in ours_s], "naive_runs_seconds": [round(s, 2) for s in naive_s],
        "model_gflops": round(model_gflops, 1), "matmul_runs_gflops": [round(g, 1) for g in matmul],
        "executed_gflops": round(executed_gflops, 1), "executed_share": round(executed_gflops / gflops, 3),
        "naive_executed_share": round(naive_gflops / gflops, 3),
        "parameters": parameters, "examples": tokens.num_rows, "max_batch_tokens": args.max_batch_tokens,
        "threads": torch.get_num_threads(), "max_abs_loss_difference": difference,
        "model": str(model_dir), "tokens_file": str(tokens_path),
    }
    report("scoring", values, f"{n_tokens} tokens, {values['tok_per_s']:.0f} tok/s (naive "
           f"{values['naive_tok_per_s']:.0f}, {values['speedup']:.2f}x); {model_gflops:.0f} GFLOP/s = "
           f"{values['peak_share']:.0%} of torch.mm's {gflops:.0f}", args.out)


if __name__ == "__main__":
    main()
