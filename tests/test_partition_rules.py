"""The partition rules beside the paper's top rho (band, threshold, estimated share), the oracle
score, and the masks they give training: exact counts on hand-made score tables. The estimated
share's decision (forget or abstain by separation) in detail: test_noise_share.py."""
import json

import numpy as np
import pyarrow as pa
import pytest

from workflow_scripts.files import InputError
from workflow_scripts.noise_share import estimate_noise_share
from workflow_scripts.partition import main, partition
from workflow_scripts.token_table import response_tokens, token_masks


def scores(values, corrupted=None, loss_base=None):
    n = len(values)
    columns = {"example_id": [f"e{i // 2}" for i in range(n)], "position": [1 + i % 2 for i in range(n)],
               "influence": pa.array(values, pa.float32())}
    if loss_base is not None:
        columns["loss_base"] = pa.array(loss_base, pa.float32())
        columns["loss_ref"] = pa.array(np.subtract(loss_base, values), pa.float32())
    if corrupted is not None:
        columns["corrupted"] = pa.array(corrupted)
    return pa.table(columns)


def flags(out, column):
    return out[column].to_pylist()


def test_threshold_makes_the_tokens_below_it_negative():
    table = scores([0.5, -1.0, 0.0, -0.0, -0.25, 2.0], corrupted=[False, True, False, False, True, False])
    out, stats = partition(table, rule="threshold", threshold=0.0)
    assert flags(out, "negative") == [False, True, False, False, True, False]  # 0 and -0 are not below 0
    assert flags(out, "positive") == [True, False, True, True, False, True]
    assert (stats["n_negative"], stats["n_neither"], stats["negative_share"]) == (2, 0, 2 / 6)
    assert (stats["n_corrupted"], stats["n_corrupted_negative"]) == (2, 2)
    assert stats["threshold"] == 0.0 and stats["rule"] == "threshold"


def test_a_threshold_below_every_score_picks_no_negatives():
    out, stats = partition(scores([0.5, 1.0, 2.0]), rule="threshold", threshold=-3.0)
    assert flags(out, "negative") == [False] * 3 and stats["n_negative"] == 0 and stats["negative_share"] == 0.0


def test_band_leaves_the_middle_neither_learnt_nor_forgotten():
    #                 0     1    2    3     4    5    6    7    8    9
    values = [3.0, -2.0, 1.0, 1.0, 0.5, 2.0, -2.0, 0.0, 4.0, 1.0]
    out, stats = partition(scores(values), rho=0.5, rule="band", tail=0.2)
    # top 5: 4.0, 3.0, 2.0, then the first two 1.0s in table order (2, 3); lowest 2: the two -2.0s.
    assert flags(out, "positive") == [True, False, True, True, False, True, False, False, True, False]
    assert flags(out, "negative") == [False, True, False, False, False, False, True, False, False, False]
    assert (stats["n_positive"], stats["n_negative"], stats["n_neither"]) == (5, 2, 3)
    assert stats["threshold"] == 1.0  # the lowest positive score
    with pytest.raises(InputError, match="rho 0.9 and tail 0.2 overlap"):
        partition(scores(values), rho=0.9, rule="band", tail=0.2)


def test_band_ties_at_the_tail_go_by_table_order():
    out, _ = partition(scores([1.0, -1.0, -1.0, -1.0]), rho=0.25, rule="band", tail=0.5)
    assert flags(out, "negative") == [False, True, True, False]


def test_top_rho_writes_its_negatives_explicitly():
    out, stats = partition(scores([0.5, -1.0, 2.0, 0.1, 0.3]), rho=0.6)
    assert flags(out, "negative") == [not p for p in flags(out, "positive")] == [False, True, False, True, False]
    assert stats["rule"] == "top_rho" and stats["n_neither"] == 0


def test_the_masks_carry_three_states():
    """ignore learns the positives; forget forgets the negatives only; a band's middle is neither."""
    tokens = pa.table({"example_id": ["e1", "e2"], "input_ids": [[5, 6, 7, 8], [9, 10, 11]],
                       "labels": [[-100, -100, 7, 8], [9, 10, 11]]})
    keys = response_tokens(tokens)
    part = keys.append_column("positive", pa.array([True, False, False, False])) \
               .append_column("negative", pa.array([False, True, False, False]))
    positive, negative = token_masks(tokens, part)
    assert positive.to_pylist() == [[False, False, True, False], [False, False, False]]
    assert negative.to_pylist() == [[False, False, False, True], [False, False, False]]


def test_nan_and_empty_tables_are_refused():
    for rule, options in (("top_rho", {"rho": 0.5}), ("threshold", {"threshold": 0.0}),
                          ("band", {"rho": 0.5, "tail": 0.1}), ("estimated_share", {})):
        with pytest.raises(InputError, match="1 NaN values"):
            partition(scores([1.0, float("nan"), 0.0]), rule=rule, **options)
        with pytest.raises(InputError, match="no response tokens to partition"):
            partition(scores([]), rule=rule, **options)


def test_the_oracle_marks_exactly_the_corrupted_tokens():
    table = scores([0.5, -1.0, 2.0, 0.1], corrupted=[False, False, True, None])
    out, stats = partition(table, score="oracle", rule="threshold", threshold=0.0)
    assert flags(out, "negative") == [False, False, True, False]
    assert (stats["n_corrupted"], stats["n_corrupted_negative"], stats["score"]) == (1, 1, "oracle")


def test_the_oracle_is_refused_for_a_pool_without_noise_marks():
    with pytest.raises(InputError, match="score 'oracle' reads the pool's own noise marks, and this pool has none"):
        partition(scores([0.5, -1.0]), score="oracle", rule="threshold", threshold=0.0)


def planted(n_clean=4500, n_noise=500, seed=0):
    """Clean scores in three position clusters (as on the number-words pool) and a noisy population below 0."""
    rng = np.random.default_rng(seed)
    clean = np.concatenate([rng.normal(4.3, 0.5, n_clean // 3), rng.normal(3.2, 0.6, n_clean // 3),
                            rng.normal(0.6, 0.3, n_clean - 2 * (n_clean // 3))])
    noise = rng.normal(-2.5, 0.6, n_noise)
    values = np.concatenate([clean, noise])
    marks = np.r_[np.zeros(len(clean), bool), np.ones(n_noise, bool)]
    order = rng.permutation(len(values))
    return values[order].astype(np.float32), marks[order]


def test_the_estimator_recovers_a_planted_share():
    values, marks = planted()
    estimate = estimate_noise_share(values)
    assert estimate["share"] == pytest.approx(0.10, abs=0.01)
    assert estimate["k"] >= 3  # the clean clusters get components of their own
    assert sum(c["noise"] for c in estimate["components"]) == 1
    # the noise (-2.5, sd 0.6) against the lowest clean cluster (0.6, sd 0.3): D about 6.5
    assert estimate["decision"] == "forget" and estimate["separation"]["value"] > 5
    out, stats = partition(scores(values.tolist(), corrupted=marks.tolist()), rule="estimated_share")
    assert stats["estimate"]["share"] == estimate["share"]
    assert stats["n_negative"] == round(estimate["share"] * len(values))
    assert stats["n_corrupted_negative"] >= 0.97 * 500


def test_a_two_component_fit_would_split_the_clean_clusters():
    """The reason for choosing K: with two components the lower one holds clean tokens too."""
    from workflow_scripts.noise_share import fit_mixture

    values, _ = planted()
    two = fit_mixture(values.astype(np.float64), 2)
    assert two["weights"][0] > 0.3  # far more than the planted 0.1


def test_the_estimator_abstains_where_no_population_is_below_zero():
    """Two separated populations (D about 5.3), both above 0: on a signed score neither is noise."""
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(3.0, 0.5, 300), rng.normal(0.8, 0.3, 300)]).astype(np.float32)
    estimate = estimate_noise_share(values)
    assert (estimate["decision"], estimate["share"]) == ("abstain", 0.0)
    assert "no component's mean is below 0" in estimate["reason"]
    out, stats = partition(scores(values.tolist()), rule="estimated_share")
    assert stats["n_negative"] == 0 and not any(flags(out, "negative"))
    assert stats["estimate"]["decision"] == "abstain"


def test_the_estimator_refuses_too_few_tokens_and_abstains_on_one_value():
    with pytest.raises(InputError, match="5 tokens are too few"):
        estimate_noise_share(np.arange(5, dtype=np.float32))
    # one value is one population: nothing separated, nothing forgotten (an oracle on a clean pool)
    estimate = estimate_noise_share(np.ones(100, np.float32))
    assert (estimate["decision"], estimate["share"], estimate["k"]) == ("abstain", 0.0, 1)
    out, stats = partition(scores(np.zeros(100).tolist(), corrupted=[False] * 100), score="oracle",
                           rule="estimated_share")
    assert (stats["n_negative"], stats["estimate"]["decision"]) == (0, "abstain")


def test_the_estimated_share_of_the_oracle_is_the_marked_share():
    marks = np.r_[np.zeros(90, bool), np.ones(10, bool)]
    out, stats = partition(scores(np.zeros(100).tolist(), corrupted=marks.tolist()), score="oracle",
                           rule="estimated_share")
    assert stats["estimate"]["share"] == pytest.approx(0.1, abs=1e-6)
    assert flags(out, "negative") == marks.tolist()
    # -1 and 0, each a component of the floor's width (sd 0.01): D = sqrt2 * 1 / sqrt(2e-4) = 100
    assert stats["estimate"]["separation"]["value"] == pytest.approx(100.0, rel=1e-6)


def test_command_line_rules_and_their_refusals(tmp_path, capsys):
    from workflow_scripts.files import write_parquet

    write_parquet(tmp_path / "influence.parquet", scores([0.5, -1.0, 2.0, 0.1], corrupted=[False, True, False, False]))
    common = ["--influence", str(tmp_path / "influence.parquet"), "--out", str(tmp_path / "p.parquet"),
              "--out-stats", str(tmp_path / "p.json")]
    main([*common, "--rule", "threshold", "--threshold", "0.2"])
    stats = json.loads((tmp_path / "p.json").read_text())
    assert (stats["rule"], stats["n_negative"], stats["n_corrupted_negative"]) == ("threshold", 2, 1)
    with pytest.raises(SystemExit):
        main([*common, "--rule", "band", "--rho", "0.5"])  # no --tail
    assert "--rule band needs --tail" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*common, "--rule", "threshold"])  # no --threshold
    assert "--rule threshold needs --threshold" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*common, "--rule", "band"])  # the rule's numbers, as the grammar declares them (runs.RULE_NUMBERS)
    assert "--rule band needs --rho and --tail" in capsys.readouterr().err
    with pytest.raises(InputError, match="too few to fit"):  # needs no number: refused only for its 4 tokens
        main([*common, "--rule", "estimated_share"])


def test_a_random_partition_counts_the_marked_tokens_it_makes_negative():
    from workflow_scripts.partition import random_partition

    tokens = pa.table({"example_id": [f"e{i}" for i in range(10)], "input_ids": [[1, 2, 3]] * 10,
                       "labels": [[-100, 2, 3]] * 10, "corrupted": [[False, False, i % 2 == 0] for i in range(10)]})
    out, stats = random_partition(tokens, 0.5, seed=3)
    marked = np.array([p == 2 and i % 2 == 0 for i in range(10) for p in (1, 2)])
    negative = np.array(flags(out, "negative"))
    assert stats["n_corrupted"] == 5 and stats["n_corrupted_negative"] == int((negative & marked).sum())
