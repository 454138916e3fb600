"""The one definition of "a scored token", shared by scoring, influence, partition and training.

A response token is a position t >= 1 of an example whose label is not -100. Every token table
(losses, influence, partition) lists these tokens in the order of the tokenized file: examples
in file order, positions ascending. All work here is vectorised over the flat token arrays.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workflow_scripts.constants import IGNORE_INDEX  # noqa: F401  (re-exported for the stages)
from workflow_scripts.files import InputError


def flat_column(tokens: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets [n_examples + 1], flat values) of a list column."""
    array = tokens[column].combine_chunks()
    offsets = array.offsets.to_numpy().astype(np.int64)
    values = array.values.to_numpy(zero_copy_only=False)
    return offsets - offsets[0], values[offsets[0]: offsets[-1]]


def response_index(tokens: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every response token: (example row, position, index into the flat token arrays)."""
    offsets, labels = flat_column(tokens, "labels")
    rows = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    positions = np.arange(len(labels)) - offsets[rows]
    selected = np.nonzero((labels != IGNORE_INDEX) & (positions >= 1))[0]
    return rows[selected], positions[selected], selected


def response_tokens(tokens: pa.Table) -> pa.Table:
    """example_id, position, token_id, corrupted for every response token, in file order."""
    rows, positions, flat_index = response_index(tokens)
    _, input_ids = flat_column(tokens, "input_ids")
    columns = {
        "example_id": tokens["example_id"].take(pa.array(rows)),
        "position": pa.array(positions.astype(np.int32)),
        "token_id": pa.array(input_ids[flat_index].astype(np.int32)),
    }
    if "corrupted" in tokens.column_names:
        columns["corrupted"] = pa.array(flat_column(tokens, "corrupted")[1][flat_index].astype(bool))
    return pa.table(columns)


def check_same_tokens(expected: pa.Table, actual: pa.Table, what: str, columns=("example_id", "position")) -> None:
    """Refuse a table whose tokens are not exactly the expected ones, in the same order."""
    if actual.num_rows != expected.num_rows:
        raise InputError(f"{what}: {actual.num_rows} tokens, expected {expected.num_rows} "
                         "(was it made from another tokenization or data split?)")
    for column in columns:
        mismatch = pc.not_equal(expected[column], actual[column])
        if pc.any(mismatch).as_py():
            first = pc.index(mismatch, True).as_py()
            raise InputError(
                f"{what}: column {column!r} differs from the tokenized data at token {first} "
                f"(example {actual['example_id'][first]}, position {actual['position'][first]}); "
                "was it made from another tokenization or data split?")


def token_column(tokens: pa.Table, table: pa.Table | None, column: str | None, what: str, fill=0) -> pa.ListArray:
    """A per-token value from a token table (one row per response token, file order) spread into
    per-example lists aligned with `labels`; `fill` elsewhere. Without a table: True on every
    response token (the mask of plain SFT)."""
    offsets, labels = flat_column(tokens, "labels")
    _, _, flat_index = response_index(tokens)
    if table is None:
        flat = np.zeros(len(labels), dtype=bool)
        flat[flat_index] = True
    else:
        check_same_tokens(response_tokens(tokens), table, what)
        values = table[column].to_numpy(zero_copy_only=False)
        flat = np.full(len(labels), fill, dtype=values.dtype)
        flat[flat_index] = values
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat))


def token_masks(tokens: pa.Table, partition: pa.Table | None) -> tuple[pa.Array, pa.Array]:
    """Per-example boolean lists aligned with `labels`: (positive, negative).

    Without a partition every response token is positive (plain SFT).
    """
    response = token_column(tokens, None, None, "response")
    is_response = response.values.to_numpy(zero_copy_only=False)
    if partition is None:
        return response, pa.ListArray.from_arrays(response.offsets, pa.array(np.zeros_like(is_response)))
    positive = token_column(tokens, partition, "positive", "partition", fill=False)
    negative = is_response & ~positive.values.to_numpy(zero_copy_only=False)
    return positive, pa.ListArray.from_arrays(positive.offsets, pa.array(negative))


def read_table(path: str, columns=None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowInvalid) as err:
        raise InputError(f"{path}: cannot read Parquet table: {err}") from None
