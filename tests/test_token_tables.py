"""Token tables: which tokens are scored, influence, the partition and the training masks."""
import numpy as np
import pyarrow as pa
import pytest

from workflow_scripts.files import InputError
from workflow_scripts.influence import influence_table
from workflow_scripts.partition import partition
from workflow_scripts.token_table import response_tokens, token_masks


def tokens_table():
    # e1: response at positions 2, 3; e2: response at 1, 2 (position 0 never counts).
    return pa.table({
        "example_id": ["e1", "e2"],
        "input_ids": [[5, 6, 7, 8], [9, 10, 11]],
        "labels": [[-100, -100, 7, 8], [9, 10, 11]],
        "corrupted": [[False, False, True, False], [False, False, False]],
    })


def test_response_tokens_in_file_order():
    table = response_tokens(tokens_table())
    assert table.to_pydict() == {"example_id": ["e1", "e1", "e2", "e2"], "position": [2, 3, 1, 2],
                                 "token_id": [7, 8, 10, 11], "corrupted": [True, False, False, False]}


def losses(values, token_ids=(7, 8, 10, 11)):
    keys = response_tokens(tokens_table())
    return pa.table({"example_id": keys["example_id"], "position": keys["position"],
                     "token_id": pa.array(token_ids, pa.int32()), "loss": pa.array(values, pa.float32())})


def test_influence_is_base_minus_reference_exactly():
    base, ref = losses([2.5, 1.0, 0.25, 3.0]), losses([0.5, 1.5, 0.25, 1.0])
    table = influence_table(tokens_table(), base, ref)
    assert table["influence"].to_pylist() == [2.0, -0.5, 0.0, 2.0]
    assert table["corrupted"].to_pylist() == [True, False, False, False]


def test_influence_refuses_tables_from_another_tokenization():
    with pytest.raises(InputError, match=r"ref.parquet: column 'token_id' differs from the tokenized data at "
                                         r"token 1 \(example e1, position 3\)"):
        influence_table(tokens_table(), losses([1, 1, 1, 1]), losses([1, 1, 1, 1], token_ids=(7, 99, 10, 11)),
                        paths=("base.parquet", "ref.parquet"))
    short = losses([1, 1, 1, 1]).slice(0, 3)
    with pytest.raises(InputError, match="base.parquet: 3 tokens, expected 4"):
        influence_table(tokens_table(), short, losses([1, 1, 1, 1]), paths=("base.parquet", "ref.parquet"))


def influence(values, example_ids=None):
    n = len(values)
    return pa.table({"example_id": example_ids or [f"e{i}" for i in range(n)], "position": list(range(1, n + 1)),
                     "influence": pa.array(values, pa.float32())})


def test_global_partition_top_rho():
    out, stats = partition(influence([0.5, -1.0, 2.0, 0.1, 0.3]), rho=0.6)
    assert out["positive"].to_pylist() == [True, False, True, False, True]
    assert stats["n_positive"] == 3 and stats["n_negative"] == 2
    assert stats["threshold"] == pytest.approx(0.3)


def test_global_partition_count_is_round_rho_n_and_ties_by_order():
    values = np.random.default_rng(0).normal(size=1001).round(1)  # many ties
    out, stats = partition(influence(values.tolist()), rho=0.7)
    assert stats["n_positive"] == round(0.7 * 1001) == 701
    positive = np.array(out["positive"].to_pylist())
    assert values[positive].min() >= values[~positive].max()
    again, _ = partition(influence(values.tolist()), rho=0.7)
    assert again.equals(out)


def test_per_example_partition():
    table = influence([3.0, 1.0, 2.0, -1.0, 5.0], example_ids=["a", "a", "a", "b", "b"])
    out, stats = partition(table, rho=0.5, scope="per_example")
    # a: round(1.5) = 2 of 3 -> 3.0 and 2.0; b: round(1.0) = 1 of 2 -> 5.0
    assert out["positive"].to_pylist() == [True, False, True, False, True]


def test_partition_rejects_bad_rho():
    with pytest.raises(InputError, match=r"rho must be in \(0, 1\], got 1.5"):
        partition(influence([1.0]), rho=1.5)


def test_training_masks_follow_the_partition():
    tokens = tokens_table()
    keys = response_tokens(tokens)
    part = pa.table({"example_id": keys["example_id"], "position": keys["position"],
                     "positive": [True, False, False, True]})
    positive, negative = token_masks(tokens, part)
    assert positive.to_pylist() == [[False, False, True, False], [False, False, True]]
    assert negative.to_pylist() == [[False, False, False, True], [False, True, False]]
    sft_positive, sft_negative = token_masks(tokens, None)
    assert sft_positive.to_pylist() == [[False, False, True, True], [False, True, True]]
    assert not any(any(row) for row in sft_negative.to_pylist())


def test_training_refuses_a_partition_of_other_data():
    tokens = tokens_table()
    part = pa.table({"example_id": ["e1", "e1", "e2", "e9"], "position": [2, 3, 1, 2],
                     "positive": [True, False, False, True]})
    with pytest.raises(InputError, match=r"partition: column 'example_id' differs .* at token 3"):
        token_masks(tokens, part)


def test_random_partition_has_the_influence_partition_counts():
    from workflow_scripts.partition import random_partition

    tokens = pa.table({"example_id": [f"e{i}" for i in range(40)],
                       "input_ids": [[1, 2, 3, 4]] * 40, "labels": [[-100, 2, 3, 4]] * 40})
    keys = response_tokens(tokens)
    influence_part, influence_stats = partition(keys.append_column("influence", pa.array(np.arange(120.0))), 0.7)
    random_part, stats = random_partition(tokens, 0.7, seed=1)
    assert stats["n_positive"] == influence_stats["n_positive"] == 84
    assert random_part.select(["example_id", "position"]).equals(influence_part.select(["example_id", "position"]))
    assert random_partition(tokens, 0.7, seed=1)[0].equals(random_part)
    assert not random_partition(tokens, 0.7, seed=2)[0].equals(random_part)


def test_self_evolving_rounds_cover_the_training_split_once():
    from workflow_scripts.self_evolving import chunk_rows

    chunks = [chunk_rows(10, k, 3).tolist() for k in (1, 2, 3)]
    assert chunks == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(InputError, match="round 4 is not in 1..3"):
        chunk_rows(10, 4, 3)
    with pytest.raises(InputError, match="5 rounds need at least 5 training examples, got 4"):
        chunk_rows(4, 1, 5)
