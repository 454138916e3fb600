"""Per-token cross-entropy of every response token of the training split under one model.

Output: results/{data}/{model}/losses/{base,reference}.parquet with one row per response token:
`example_id`, `position` (index t of the predicted token in `input_ids`), `token_id`, `loss`
(float32 CE of predicting token t from tokens < t). Rows follow the tokenized file's order
whatever the batching, so tables from different models line up row for row.

Batches are grouped by length (padding only to the longest row of a batch), the model is asked
for logits only at the positions whose next token is scored, and no autograd state is kept
(inference mode). The model computes in `--dtype` (`scoring.dtype`: bfloat16 for tensor-core
speed on a GPU, as the paper's configs set it; float32 where the influence, a difference of two
losses, should keep every digit); the CE is always taken in float32.

Scatter/gather on a cluster: `score --shard i --num-shards n` scores the i-th of n contiguous
slices of the examples; `gather` concatenates the parts and checks that together they are
exactly the tokens of the tokenized file, so the result equals an unsharded run.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import torch
from tqdm import tqdm

from workflow_scripts.files import InputError, run_main, setup_logging, write_parquet
from workflow_scripts.objective import next_token_positions, token_ce_at
from workflow_scripts.modeling import length_batches, load_causal_lm, pad_batch, set_threads
from workflow_scripts.token_table import (IGNORE_INDEX, check_same_tokens, flat_column, read_table,
                                          response_tokens, scored_tokens)

log = setup_logging("token_losses")


@torch.inference_mode()
def score(model, tokens: pa.Table, rows: np.ndarray, max_batch_tokens: int, pad_id: int) -> dict[int, np.ndarray]:
    """Return {example row: CE of its response tokens (positions ascending)}."""
    # Flat arrays and offsets, not Python lists: a 50k-example split stays a few numpy buffers.
    offsets, input_ids = flat_column(tokens, "input_ids")
    _, labels = flat_column(tokens, "labels")
    lengths = np.diff(offsets)[rows]
    losses = {}
    progress = tqdm(total=int(lengths.sum()), desc="score", unit="tok", unit_scale=True, mininterval=5)
    for batch_index in length_batches(lengths, max_batch_tokens):
        batch_rows = rows[batch_index]
        spans = [slice(offsets[r], offsets[r + 1]) for r in batch_rows]
        batch = pad_batch([{"input_ids": input_ids[s], "labels": labels[s]} for s in spans],
                          pad_id, {"labels": IGNORE_INDEX})
        batch = {k: v.to(model.device, non_blocking=True) for k, v in batch.items()}
        positions = next_token_positions(batch["labels"])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       logits_to_keep=positions).logits
        ce, select = token_ce_at(logits, positions, batch["labels"])
        counts = (batch["labels"][:, 1:] != IGNORE_INDEX).sum(dim=1).tolist()
        for row, row_ce in zip(batch_rows, torch.split(ce.float().cpu(), counts)):
            losses[int(row)] = row_ce.numpy()
        progress.update(int(lengths[batch_index].sum()))
    progress.close()
    return losses


def loss_table(model_dir: str, tokens: pa.Table, rows: np.ndarray | None = None, max_batch_tokens: int = 4096,
               dtype: str = "float32") -> pa.Table:
    """example_id, position, token_id, loss for the response tokens of `rows` (default: all), file order."""
    rows = np.arange(tokens.num_rows) if rows is None else rows
    model = load_causal_lm(model_dir, dtype).eval()
    pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    losses = score(model, tokens, rows, max_batch_tokens, pad_id)
    scored = scored_tokens(tokens)
    table = response_tokens(tokens, scored).select(["example_id", "position", "token_id"])
    if len(rows) != tokens.num_rows:
        table = table.filter(pa.array(np.isin(scored.rows, rows)))
    loss = np.concatenate([losses[int(r)] for r in rows]) if len(rows) else np.zeros(0, np.float32)
    return table.append_column("loss", pa.array(loss.astype(np.float32)))


def shard_rows(n_rows: int, shard: int, num_shards: int) -> np.ndarray:
    if not 0 <= shard < num_shards:
        raise InputError(f"shard {shard} is not in 0..{num_shards - 1}")
    return np.array_split(np.arange(n_rows), num_shards)[shard]


def gather(tokens: pa.Table, parts: list[str]) -> pa.Table:
    table = pa.concat_tables([read_table(part) for part in parts])
    check_same_tokens(response_tokens(tokens), table, "gathered shards", columns=("example_id", "position", "token_id"))
    return table


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    score_parser = commands.add_parser("score", help="score one shard of the examples (--shard 0 --num-shards 1: all)")
    score_parser.add_argument("--model-dir", required=True)
    score_parser.add_argument("--dtype", required=True, choices=["float32", "bfloat16", "float16"],
                              help="the dtype the model is loaded and computes in")
    score_parser.add_argument("--max-batch-tokens", type=int, required=True, help="padded tokens per forward pass")
    score_parser.add_argument("--shard", type=int, required=True, help="0-based slice of the examples")
    score_parser.add_argument("--num-shards", type=int, required=True)
    score_parser.add_argument("--threads", type=int, required=True, help="CPU threads for torch")
    gather_parser = commands.add_parser("gather", help="concatenate shard tables in shard order")
    gather_parser.add_argument("parts", nargs="+", help="shard tables, in shard order")
    for sub in (score_parser, gather_parser):
        sub.add_argument("--tokens", required=True, help="tokenized training split (Parquet)")
        sub.add_argument("--out", required=True)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tokens = read_table(args.tokens)
    if args.command == "gather":
        table = gather(tokens, args.parts)
        write_parquet(args.out, table)
        log.info("gathered %d tokens from %d shards", table.num_rows, len(args.parts))
        return

    set_threads(args.threads)
    rows = shard_rows(tokens.num_rows, args.shard, args.num_shards)
    start = time.time()
    table = loss_table(args.model_dir, tokens, rows, args.max_batch_tokens, args.dtype)
    write_parquet(args.out, table)
    log.info("scored %d tokens of %d examples in %.0f s with %s: mean CE %.4f", table.num_rows, len(rows),
             time.time() - start, args.model_dir, pa.compute.mean(table["loss"]).as_py() or 0.0)


if __name__ == "__main__":
    run_main(main)
