"""The one definition of "a scored token", shared by scoring, influence, partition and training.

A response token is a position t >= 1 of an example whose label is not -100. Every token table
(losses, influence, partition) lists these tokens in the order of the tokenized file: examples
in file order, positions ascending. All work here is vectorised over the flat token arrays.

`example_id` in the token tables is dictionary-encoded: int32 indices into the tokenized file's
ids, so a 20M-token table holds 80 MB of indices instead of a string per token, and Parquet
stores it the same way (reading it back gives the same dictionary type). Readers that want
strings get them from `to_pylist()` / `to_numpy()`, which decode.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workflow_scripts.constants import IGNORE_INDEX  # noqa: F401  (re-exported for the stages)
from workflow_scripts.files import InputError

BLOCK = 1 << 20  # tokens per block of a pass over every token: temporaries of a few MB, not of the table


def flat_column(tokens: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets [n_examples + 1], flat values) of a list column."""
    array = tokens[column].combine_chunks()
    offsets = array.offsets.to_numpy().astype(np.int64)
    values = array.values.to_numpy(zero_copy_only=False)
    return offsets - offsets[0], values[offsets[0]: offsets[-1]]


@dataclass(frozen=True)
class Scored:
    """The response tokens of a tokenized table, found once and shared by every user of it.

    `mask` marks them in the flat token arrays (a boolean mask selects and scatters like an
    index, at an eighth of an int64 index's memory); rows and positions are int32.
    """
    offsets: np.ndarray    # int64 [examples + 1] into the flat token arrays
    mask: np.ndarray       # bool [flat tokens]
    rows: np.ndarray       # int32 [response tokens]: the example's row in the tokenized table
    positions: np.ndarray  # int32 [response tokens]: t, the index of the token in its example


def scored_tokens(tokens: pa.Table) -> Scored:
    offsets, labels = flat_column(tokens, "labels")
    lengths = np.diff(offsets)
    mask = labels != IGNORE_INDEX
    filled = lengths > 0
    starts = offsets[:-1][filled]
    mask[starts] = False  # position 0 predicts nothing
    counts = np.zeros(len(lengths), dtype=np.int64)
    if len(starts):  # response tokens per example (a byte view of the mask sums fastest)
        counts[filled] = np.add.reduceat(mask.view(np.uint8), starts, dtype=np.int32)
    rows = np.repeat(np.arange(len(lengths), dtype=np.int32), counts)
    # t = flat index - the example's first flat index, computed block by block of the flat
    # arrays into the int32 array of first indices: no int64 array of every token is made.
    positions = np.repeat(offsets[:-1].astype(np.int32), counts)
    done = 0
    for lo in range(0, len(mask), BLOCK):
        flat_index = np.flatnonzero(mask[lo: lo + BLOCK])
        flat_index += lo
        block = positions[done: done + len(flat_index)]
        np.subtract(flat_index, block, out=block, casting="unsafe")
        done += len(flat_index)
    return Scored(offsets, mask, rows, positions)


def example_ids(tokens: pa.Table, rows: np.ndarray) -> pa.Array:
    """The example_id of `rows` of the tokenized file, dictionary-encoded against all its ids."""
    ids = tokens["example_id"].combine_chunks()
    if pa.types.is_dictionary(ids.type):
        return ids.take(pa.array(rows))
    # safe=False: rows are row numbers of this table, in range by construction (no validating pass).
    return pa.DictionaryArray.from_arrays(pa.array(rows, pa.int32()), ids, safe=False)


def response_tokens(tokens: pa.Table, scored: Scored | None = None, keys_only: bool = False) -> pa.Table:
    """example_id, position, token_id, corrupted for every response token, in file order
    (only example_id and position with `keys_only`).

    `scored`: scored_tokens(tokens), when the caller already has it.
    """
    scored = scored if scored is not None else scored_tokens(tokens)
    columns = {"example_id": example_ids(tokens, scored.rows), "position": pa.array(scored.positions, pa.int32())}
    if keys_only:
        return pa.table(columns)
    _, input_ids = flat_column(tokens, "input_ids")
    columns["token_id"] = pa.array(input_ids[scored.mask].astype(np.int32, copy=False))
    if "corrupted" in tokens.column_names:
        columns["corrupted"] = pa.array(flat_column(tokens, "corrupted")[1][scored.mask].astype(bool, copy=False))
    return pa.table(columns)


def dictionary_codes(column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray] | None:
    """(dictionary, int indices) of a dictionary column, one dictionary for all chunks; else None."""
    if not pa.types.is_dictionary(column.type):
        return None
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    column = column.unify_dictionaries()
    if column.num_chunks == 0:
        return pa.array([], column.type.value_type), np.zeros(0, np.int32)
    indices = [chunk.indices.to_numpy(zero_copy_only=False) for chunk in column.chunks]
    return column.chunk(0).dictionary, indices[0] if len(indices) == 1 else np.concatenate(indices)


def _comparable(expected: pa.Array, chunk: pa.Array):
    """(expected, chunk) as numpy arrays that are equal where the tokens are, or None to compare in Arrow."""
    if pa.types.is_dictionary(expected.type) and pa.types.is_dictionary(chunk.type):
        # Tables of one tokenized file share its ids as their dictionary: compare the indices.
        if chunk.dictionary.equals(expected.dictionary):
            return expected.indices.to_numpy(zero_copy_only=False), chunk.indices.to_numpy(zero_copy_only=False)
        return None
    if pa.types.is_dictionary(expected.type) or pa.types.is_dictionary(chunk.type):
        return None
    if chunk.null_count or expected.null_count or not pa.types.is_primitive(chunk.type):
        return None
    return expected.to_numpy(zero_copy_only=False), chunk.to_numpy(zero_copy_only=False)


def _decoded(array: pa.Array) -> pa.Array:
    return array.cast(array.type.value_type) if pa.types.is_dictionary(array.type) else array


def first_difference(expected, actual) -> int | None:
    """The first row where two equally long columns differ, or None.

    Chunk by chunk of `actual` (a Parquet file read back has one chunk per row group), so no
    column-sized temporary is made.
    """
    expected = expected.combine_chunks() if isinstance(expected, pa.ChunkedArray) else expected
    chunks = actual.chunks if isinstance(actual, pa.ChunkedArray) else [actual]
    start = 0
    for chunk in chunks:
        part = expected.slice(start, len(chunk))
        arrays = _comparable(part, chunk)
        if arrays is not None:
            mismatch = arrays[0] != arrays[1]
        else:
            mismatch = pc.not_equal(_decoded(part), _decoded(chunk)).to_numpy(zero_copy_only=False)
            mismatch = mismatch.astype(bool) | (part.is_null().to_numpy(zero_copy_only=False)
                                                != chunk.is_null().to_numpy(zero_copy_only=False))
        if mismatch.any():
            return start + int(np.argmax(mismatch))
        start += len(chunk)
    return None


def check_same_tokens(expected: pa.Table, actual: pa.Table, what: str, columns=("example_id", "position")) -> None:
    """Refuse a table whose tokens are not exactly the expected ones, in the same order."""
    if actual.num_rows != expected.num_rows:
        raise InputError(f"{what}: {actual.num_rows} tokens, expected {expected.num_rows} "
                         "(was it made from another tokenization or data split?)")
    for column in columns:
        first = first_difference(expected[column], actual[column])
        if first is not None:
            raise InputError(
                f"{what}: column {column!r} differs from the tokenized data at token {first} "
                f"(example {actual['example_id'][first].as_py()}, position {actual['position'][first].as_py()}); "
                "was it made from another tokenization or data split?")


def _spread(offsets: np.ndarray, flat: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat))


def _scatter(tokens: pa.Table, scored: Scored, table: pa.Table, column: str, what: str, fill,
             check: bool = True) -> np.ndarray:
    """`table[column]` (one value per response token, checked to be this file's tokens unless
    `check` is False: already checked) placed on the flat token arrays; `fill` elsewhere."""
    if check:
        check_same_tokens(response_tokens(tokens, scored, keys_only=True), table, what)
    values = table[column].to_numpy(zero_copy_only=False)
    flat = np.full(len(scored.mask), fill, dtype=values.dtype)
    flat[scored.mask] = values
    return flat


def token_column(tokens: pa.Table, table: pa.Table | None, column: str | None, what: str, fill=0,
                 scored: Scored | None = None) -> pa.ListArray:
    """A per-token value from a token table (one row per response token, file order) spread into
    per-example lists aligned with `labels`; `fill` elsewhere. Without a table: True on every
    response token (the mask of plain SFT). `scored`: scored_tokens(tokens), if already known."""
    scored = scored if scored is not None else scored_tokens(tokens)
    if table is None:
        return _spread(scored.offsets, scored.mask)
    return _spread(scored.offsets, _scatter(tokens, scored, table, column, what, fill))


def token_masks(tokens: pa.Table, partition: pa.Table | None) -> tuple[pa.Array, pa.Array]:
    """Per-example boolean lists aligned with `labels`: (positive, negative).

    Without a partition every response token is positive (plain SFT). A partition's `negative`
    column marks what is forgotten (a band leaves tokens neither positive nor negative).
    """
    scored = scored_tokens(tokens)  # once, for the response mask and the partition's check
    if partition is None:
        return _spread(scored.offsets, scored.mask), _spread(scored.offsets, np.zeros_like(scored.mask))
    positive = _scatter(tokens, scored, partition, "positive", "partition", False)
    negative = _scatter(tokens, scored, partition, "negative", "partition", False, check=False) & ~positive
    return _spread(scored.offsets, positive), _spread(scored.offsets, scored.mask & negative)


def table_columns(path: str) -> list[str]:
    """The column names of a Parquet file, read from its footer alone."""
    try:
        return pq.read_schema(path).names
    except (OSError, pa.ArrowInvalid) as err:
        raise InputError(f"{path}: cannot read Parquet table: {err}") from None


# What every partition file holds (workflow_scripts/partition.py writes them all, random ones too).
PARTITION_COLUMNS = ("example_id", "position", "positive", "negative")


def read_partition(path: str, what: str = "partition") -> pa.Table:
    """A partition file, refused (an InputError naming it) where a column is missing: every reader
    takes its `negative` column as written, never derives it from `positive` (a band's middle is
    neither)."""
    missing = [c for c in PARTITION_COLUMNS if c not in table_columns(path)]
    if missing:
        raise InputError(f"{path}: {what} is missing column(s) {', '.join(missing)} (workflow_scripts/partition.py "
                         "writes them all; a file from an older version: rerun it, snakemake --forcerun partition "
                         "random_partition)")
    return read_table(path, columns=list(PARTITION_COLUMNS))


def read_table(path: str, columns=None) -> pa.Table:
    """A Parquet file as one table, one chunk per row group.

    (pq.read_table cuts it into 128k-row batches, each with its own copy of a dictionary
    column's dictionary: for 50k example ids that is 100 MB more per 20M-token table.) The file
    is mapped, not copied into buffers first.
    """
    try:
        table = pq.ParquetFile(path, memory_map=True, pre_buffer=False).read(columns=columns)
    except (OSError, pa.ArrowInvalid) as err:
        raise InputError(f"{path}: cannot read Parquet table: {err}") from None
    # Decoding leaves scratch memory in Arrow's allocator (a few hundred MB for a 20M-token
    # table) that it would keep for the life of the process: give it back.
    pa.default_memory_pool().release_unused()
    return table
