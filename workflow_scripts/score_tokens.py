"""Per-token cross-entropy of every response token of the training split under one model.

Output: results/{model}/losses/{base,reference}.parquet with one row per response token:
`example_id`, `position` (index t of the predicted token in `input_ids`), `token_id`, `loss`
(float32 CE of predicting token t from tokens < t). Rows follow the tokenized file's order
whatever the batching, so tables from different models line up row for row.

Batches are grouped by length (padding only to the longest row of a batch) and the model is
asked for logits only at the positions whose next token is scored. `--shard i --num-shards n`
scores examples i, i+n, i+2n, ... for scatter/gather on a cluster.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from workflow_scripts.files import run_main, setup_logging, write_parquet
from workflow_scripts.losses import next_token_positions, token_ce_at
from workflow_scripts.modeling import length_batches, load_causal_lm, pad_batch, set_threads
from workflow_scripts.token_table import IGNORE_INDEX, read_table, response_index, response_tokens

log = setup_logging("score_tokens")


@torch.inference_mode()
def score(model, tokens: pa.Table, rows: np.ndarray, max_batch_tokens: int, pad_id: int) -> dict[int, np.ndarray]:
    """Return {example row: CE of its response tokens (positions ascending)}."""
    input_ids = tokens["input_ids"].to_pylist()
    labels = tokens["labels"].to_pylist()
    lengths = np.array([len(input_ids[r]) for r in rows])
    losses = {}
    progress = tqdm(total=int(lengths.sum()), desc="score", unit="tok", unit_scale=True, mininterval=5)
    for batch_index in length_batches(lengths, max_batch_tokens):
        batch_rows = rows[batch_index]
        batch = pad_batch([{"input_ids": input_ids[r], "labels": labels[r]} for r in batch_rows],
                          pad_id, {"labels": IGNORE_INDEX})
        batch = {k: v.to(model.device) for k, v in batch.items()}
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--tokens", required=True, help="tokenized training split (Parquet)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--max-batch-tokens", type=int, default=4096, help="padded tokens per forward pass")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)

    tokens = read_table(args.tokens)
    rows = np.arange(args.shard, tokens.num_rows, args.num_shards)
    model = load_causal_lm(args.model_dir, args.dtype).eval()
    pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    start = time.time()
    losses = score(model, tokens, rows, args.max_batch_tokens, pad_id)

    table = response_tokens(tokens).select(["example_id", "position", "token_id"])
    example_rows, _, _ = response_index(tokens)
    keep = np.isin(example_rows, rows)
    loss = np.concatenate([losses[int(r)] for r in rows]) if len(rows) else np.zeros(0, np.float32)
    table = table.filter(pa.array(keep)).append_column("loss", pa.array(loss.astype(np.float32)))
    write_parquet(args.out, table)
    log.info("scored %d tokens of %d examples in %.0f s with %s: mean CE %.4f",
             table.num_rows, len(rows), time.time() - start, args.model_dir, float(loss.mean()) if len(loss) else 0)


if __name__ == "__main__":
    run_main(main)
