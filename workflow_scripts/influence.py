"""Join the base and reference token losses: influence = loss_base - loss_ref.

Output results/{data}/{model}/influence.parquet: `example_id`, `position`, `token_id`, `loss_base`,
`loss_ref`, `influence`, and `corrupted` (whether the token lies in an injected noise span);
`example_id` dictionary-encoded (token_table).
The two loss tables must hold the same tokens (ids and examples) as the tokenized training
split, row for row; anything else means they came from different data or tokenizers.
"""
from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workflow_scripts.files import run_main, setup_logging, write_parquet
from workflow_scripts.token_table import check_same_tokens, read_table, response_tokens

log = setup_logging("influence")

KEYS = ("example_id", "position", "token_id")


def influence_table(tokens: pa.Table, base: pa.Table, reference: pa.Table, paths=("base", "reference")) -> pa.Table:
    expected = response_tokens(tokens)
    for table, path in zip((base, reference), paths):
        check_same_tokens(expected, table, path, columns=KEYS)
    loss_base, loss_ref = base["loss"], reference["loss"]
    columns = {key: expected[key] for key in KEYS}
    columns.update(loss_base=loss_base, loss_ref=loss_ref, influence=pc.subtract(loss_base, loss_ref))
    if "corrupted" in expected.column_names:
        columns["corrupted"] = expected["corrupted"]
    return pa.table(columns)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", required=True, help="tokenized training split (Parquet)")
    parser.add_argument("--base-losses", required=True, help="token losses under the base model")
    parser.add_argument("--reference-losses", required=True, help="token losses under the reference model")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    table = influence_table(read_table(args.tokens), read_table(args.base_losses), read_table(args.reference_losses),
                            paths=(args.base_losses, args.reference_losses))
    write_parquet(args.out, table)
    influence = table["influence"]
    log.info("%d tokens; influence mean %.4f, min %.4f, max %.4f", table.num_rows,
             pc.mean(influence).as_py(), pc.min(influence).as_py(), pc.max(influence).as_py())
    if "corrupted" in table.column_names and pc.any(table["corrupted"]).as_py():
        values = influence.to_numpy()
        corrupted = table["corrupted"].to_numpy(zero_copy_only=False).astype(bool)
        for flag in (False, True):
            part = values[corrupted == flag]  # a mask over one column, not a filtered copy of the table
            log.info("%s tokens: %d, mean influence %.4f", "corrupted" if flag else "clean",
                     len(part), float(part.mean(dtype=np.float64)) if len(part) else float("nan"))


if __name__ == "__main__":
    run_main(main)
