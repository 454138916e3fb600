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
                     "positive": [True, False, False, True], "negative": [False, True, True, False]})
    positive, negative = token_masks(tokens, part)
    assert positive.to_pylist() == [[False, False, True, False], [False, False, True]]
    assert negative.to_pylist() == [[False, False, False, True], [False, True, False]]
    sft_positive, sft_negative = token_masks(tokens, None)
    assert sft_positive.to_pylist() == [[False, False, True, True], [False, True, True]]
    assert not any(any(row) for row in sft_negative.to_pylist())


def test_training_refuses_a_partition_of_other_data():
    tokens = tokens_table()
    part = pa.table({"example_id": ["e1", "e1", "e2", "e9"], "position": [2, 3, 1, 2],
                     "positive": [True, False, False, True], "negative": [False, True, True, False]})
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


# ---------------------------------------------------------------- performance-minded internals

def stable_sort_partition(values, rho, groups=None):
    """The partition's definition, written as plainly as possible: a stable descending sort."""
    positive = np.zeros(len(values), dtype=bool)
    for group in ([np.arange(len(values))] if groups is None
                  else [np.flatnonzero(groups == g) for g in np.unique(groups)]):
        order = group[np.argsort(-values[group], kind="stable")]
        positive[order[: int(np.round(rho * len(group)))]] = True
    return positive


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_selection_partitions_equal_a_stable_sort(dtype):
    from workflow_scripts.partition import global_selection, per_example_top

    rng = np.random.default_rng(3)
    for trial in range(60):
        n = int(rng.integers(1, 400))
        values = (rng.normal(size=n) * 4).round(int(rng.integers(0, 2))).astype(dtype)  # many ties
        values[rng.random(n) < 0.1] = -0.0  # ties with 0.0
        values[rng.random(n) < 0.03] = [np.inf, -np.inf][trial % 2]
        groups = rng.integers(0, int(rng.integers(1, 12)), n)
        if trial % 3:
            groups = np.sort(groups)  # the workflow's case: examples contiguous
        rho = float(rng.choice([0.7, 0.5, 1.0, 0.01, rng.random()]))
        np.testing.assert_array_equal(global_selection(values, rho)[0], stable_sort_partition(values, rho))
        np.testing.assert_array_equal(per_example_top(values, groups, rho),
                                      stable_sort_partition(values, rho, groups))


def test_descending_keys_order_floats():
    from workflow_scripts.partition import descending_keys

    values = np.array([np.inf, 3.5, 1e-30, 0.0, -0.0, -1e-30, -2.0, -np.inf], dtype=np.float32)
    keys = descending_keys(values)
    assert keys[3] == keys[4]  # 0.0 and -0.0 tie
    assert (np.diff(keys[[0, 1, 2, 3, 5, 6, 7]].astype(np.int64)) > 0).all()


def test_example_id_is_dictionary_encoded_and_survives_parquet(tmp_path):
    import pyarrow.parquet as pq

    from workflow_scripts.files import write_parquet
    from workflow_scripts.token_table import read_table

    table = response_tokens(tokens_table())
    assert pa.types.is_dictionary(table["example_id"].type)
    assert table["example_id"].chunk(0).dictionary.to_pylist() == ["e1", "e2"]  # the file's ids, once
    write_parquet(tmp_path / "t.parquet", table)
    again = read_table(str(tmp_path / "t.parquet"))
    assert again.schema == table.schema and again.equals(table)
    assert pq.read_table(tmp_path / "t.parquet")["example_id"].to_pylist() == ["e1", "e1", "e2", "e2"]
    assert again["example_id"].to_numpy(zero_copy_only=False).tolist() == ["e1", "e1", "e2", "e2"]


def test_checks_accept_string_ids_and_other_dictionaries():
    from workflow_scripts.token_table import check_same_tokens

    expected = response_tokens(tokens_table())
    plain = pa.table({"example_id": ["e1", "e1", "e2", "e2"], "position": [2, 3, 1, 2]})
    check_same_tokens(expected, plain, "plain")
    # Shards gathered: chunks with their own dictionaries (here in another order).
    other = pa.DictionaryArray.from_arrays(pa.array([1, 1, 0], pa.int32()), pa.array(["e2", "e1"]))
    gathered = pa.table({"example_id": pa.chunked_array([other, pa.DictionaryArray.from_arrays(
                             pa.array([0], pa.int32()), pa.array(["e2"]))]),
                         "position": pa.chunked_array([[2, 3, 1], [2]])})
    check_same_tokens(expected, gathered, "gathered")
    wrong = pa.table({"example_id": pa.chunked_array([other, pa.DictionaryArray.from_arrays(
                          pa.array([0], pa.int32()), pa.array(["e9"]))]),
                      "position": pa.chunked_array([[2, 3, 1], [2]])})
    with pytest.raises(InputError, match=r"wrong: column 'example_id' differs .* at token 3 "
                                         r"\(example e9, position 2\)"):
        check_same_tokens(expected, wrong, "wrong")


def test_scored_tokens_with_several_turns_and_empty_examples():
    from workflow_scripts.token_table import scored_tokens

    tokens = pa.table({
        "example_id": ["a", "b", "c", "d", "e"],
        "input_ids": [[1, 2, 3, 4, 5, 6], [], [7, 8], [9], [10, 11, 12]],
        # a: two answer spans; b: empty; c: no answer; d: a label at position 0 only; e: all labelled
        "labels": [[-100, 2, -100, -100, 5, 6], [], [-100, -100], [9], [10, 11, 12]],
    })
    scored = scored_tokens(tokens)
    rows, positions, flat = scored.rows, scored.positions, np.flatnonzero(scored.mask)
    assert rows.tolist() == [0, 0, 0, 4, 4]
    assert positions.tolist() == [1, 4, 5, 1, 2]
    assert flat.tolist() == [1, 4, 5, 10, 11]
    positive, negative = token_masks(tokens, None)
    assert positive.to_pylist() == [[False, True, False, False, True, True], [], [False, False], [False],
                                    [False, True, True]]
    assert not any(any(row) for row in negative.to_pylist())


def test_scored_tokens_equal_a_loop_over_tokens():
    from workflow_scripts.token_table import scored_tokens

    rng = np.random.default_rng(5)
    ids, labels = [], []
    for _ in range(200):
        n = int(rng.integers(0, 30))
        row = rng.integers(0, 50, n).tolist()
        ids.append(row)
        labels.append([t if rng.random() < 0.6 else -100 for t in row])
    tokens = pa.table({"example_id": [f"x{i}" for i in range(200)], "input_ids": ids, "labels": labels})
    expected = [(r, t) for r, row in enumerate(labels) for t, label in enumerate(row) if t >= 1 and label != -100]
    scored = scored_tokens(tokens)
    rows, positions = scored.rows, scored.positions
    assert list(zip(rows.tolist(), positions.tolist())) == expected
    table = response_tokens(tokens)
    assert table["token_id"].to_pylist() == [ids[r][t] for r, t in expected]


def test_partition_command_line(tmp_path):
    from workflow_scripts import partition as partition_stage
    from workflow_scripts.files import write_parquet

    keys = response_tokens(tokens_table())
    influence_values = pa.array([0.5, 0.1, 0.3, 0.1], pa.float32())
    write_parquet(tmp_path / "influence.parquet", keys.append_column("influence", influence_values))
    outputs = []
    for run in ("a", "b"):
        partition_stage.main(["--influence", str(tmp_path / "influence.parquet"), "--rho", "0.5", "--scope", "global",
                              "--out", str(tmp_path / f"{run}.parquet"), "--out-stats", str(tmp_path / f"{run}.json")])
        outputs.append((tmp_path / f"{run}.parquet").read_bytes())
    assert outputs[0] == outputs[1]  # identical reruns, byte for byte
    with pytest.raises(SystemExit):
        partition_stage.main(["--influence", str(tmp_path / "influence.parquet"), "--scope", "global",
                              "--out", str(tmp_path / "c.parquet"), "--out-stats", str(tmp_path / "c.json")])


def test_a_partition_file_is_read_with_its_negatives_or_refused(tmp_path):
    """Every reader of a partition file (training, the noise audit, the token page) reads it through
    read_partition: a band's negatives as written, and a file without the column refused by name."""
    import pyarrow.parquet as pq

    from workflow_scripts.token_table import read_partition

    tokens = tokens_table()
    keys = response_tokens(tokens)
    band = pa.table({"example_id": keys["example_id"], "position": keys["position"],
                     "positive": [True, False, False, True], "negative": [False, False, True, False]})
    pq.write_table(band, tmp_path / "band.parquet")
    positive, negative = token_masks(tokens, read_partition(str(tmp_path / "band.parquet")))
    assert positive.to_pylist() == [[False, False, True, False], [False, False, True]]
    assert negative.to_pylist() == [[False, False, False, False], [False, True, False]]  # e1's position 3: neither
    pq.write_table(band.drop_columns(["negative"]), tmp_path / "old.parquet")
    with pytest.raises(InputError, match=r"old.parquet: partition is missing column.s. negative .*--forcerun"):
        read_partition(str(tmp_path / "old.parquet"))
    with pytest.raises(InputError, match=r"nothing.parquet: cannot read Parquet table"):
        read_partition(str(tmp_path / "nothing.parquet"))
