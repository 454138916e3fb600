"""The estimated share forgets a low population only where Ashman's D separates it from the next
component (>= 2), and abstains otherwise: the decision on hand-made mixtures with D computed by
hand, then the whole estimator on planted score tables, signed (below 0) and unsigned (the
highest losses), through partition() and its command line."""
import json
import math

import numpy as np
import pyarrow as pa
import pytest

from workflow_scripts.files import write_parquet
from workflow_scripts.noise_share import ashman_d, estimate_noise_share, judge, pooled
from workflow_scripts.partition import main, partition

# A planted population's fitted weight is its token share up to the posterior mass the
# neighbouring component leaks across (D > 5 here: under 1e-3): within 0.005, 5 tokens of 1000.
SHARE_TOLERANCE = 0.005


def fit(weights, means, sds):
    """A fitted mixture as fit_mixture returns it (components by mean)."""
    return {"k": len(weights), "weights": np.array(weights, float), "means": np.array(means, float),
            "variances": np.array(sds, float) ** 2}


def test_ashman_d_by_hand():
    assert ashman_d(0.0, 1.0, 2.0, 1.0) == pytest.approx(2.0, abs=1e-12)  # sqrt2 * 2 / sqrt2
    assert ashman_d(2.0, 1.0, 0.0, 1.0) == pytest.approx(2.0, abs=1e-12)  # symmetric
    # sqrt2 * 3.1 / sqrt(0.36 + 0.09) = 3.1 * sqrt(2 / 0.45) = 3.1 * 2.108185
    assert ashman_d(-2.5, 0.6, 0.6, 0.3) == pytest.approx(6.535374, abs=1e-6)


def test_pooled_components_keep_their_first_two_moments():
    assert pooled(np.array([0.05, 0.05]), np.array([-3.0, -1.0]), np.array([0.0, 0.0])) == \
        pytest.approx((0.1, -2.0, 1.0))
    assert pooled(np.array([0.05, 0.05]), np.array([-3.0, -1.0]), np.array([1.0, 1.0])) == \
        pytest.approx((0.1, -2.0, math.sqrt(2.0)))


def test_a_separated_low_component_is_forgotten_at_its_weight():
    decision = judge(fit([0.1, 0.3, 0.6], [-2.5, 0.6, 3.2], [0.6, 0.3, 0.6]), signed=True, n_tokens=1000)
    assert (decision["decision"], decision["share"], decision["noise_components"]) == ("forget", 0.1, 1)
    separation = decision["separation"]
    assert (separation["statistic"], separation["threshold"], separation["components"]) == ("Ashman's D", 2.0, 1)
    assert separation["value"] == pytest.approx(6.535374, abs=1e-6)
    assert decision["reason"].startswith("separated: Ashman's D 6.535 >= 2")


def test_overlapping_components_abstain():
    # sqrt2 * 1 / sqrt(1 + 0.09) = 1.354571 < 2
    decision = judge(fit([0.2, 0.8], [-0.5, 0.5], [1.0, 0.3]), signed=True, n_tokens=1000)
    assert (decision["decision"], decision["share"], decision["noise_components"]) == ("abstain", 0.0, 0)
    assert decision["separation"]["value"] == pytest.approx(1.354571, abs=1e-6)
    assert decision["reason"].startswith("not separated: Ashman's D 1.355 < 2")


def test_a_noise_population_split_in_two_components_is_pooled():
    """The lowest component alone overlaps the second (D 1.333); the two pooled (mean -2.6, sd
    sqrt(0.09 + 0.04)) are far from the clean one: D = sqrt2 * 3.2 / sqrt(0.13 + 0.09) = 9.648."""
    decision = judge(fit([0.05, 0.05, 0.9], [-2.8, -2.4, 0.6], [0.3, 0.3, 0.3]), signed=True, n_tokens=1000)
    assert [c["d"] for c in decision["candidates"]] == pytest.approx([1.333333, 9.648363], abs=1e-6)
    assert (decision["decision"], decision["noise_components"]) == ("forget", 2)
    assert decision["share"] == pytest.approx(0.1)


def test_one_component_or_a_majority_abstains():
    single = judge(fit([1.0], [0.0], [1.0]), signed=True, n_tokens=1000)
    assert (single["decision"], single["share"], single["separation"]["value"]) == ("abstain", 0.0, None)
    assert "one component: a single population" in single["reason"]
    majority = judge(fit([0.6, 0.4], [-2.0, 2.0], [0.1, 0.1]), signed=False, n_tokens=1000)
    assert (majority["decision"], majority["candidates"]) == ("abstain", [])
    assert "holds 0.600 of the tokens, not a minority" in majority["reason"]


def test_a_signed_score_looks_below_zero_an_unsigned_one_at_its_low_end():
    """The same fit: a population at 0.2, far below the rest at 3, but above 0. On the influence the
    reference did not make those tokens less likely, so no noise; on a loss it is the high-loss end."""
    mixture = fit([0.1, 0.9], [0.2, 3.0], [0.3, 0.5])
    signed = judge(mixture, signed=True, n_tokens=1000)
    assert (signed["decision"], signed["share"]) == ("abstain", 0.0)
    assert "no component's mean is below 0" in signed["reason"]
    unsigned = judge(mixture, signed=False, n_tokens=1000)
    assert (unsigned["decision"], unsigned["share"]) == ("forget", 0.1)
    # sqrt2 * 2.8 / sqrt(0.09 + 0.25) = 6.790998
    assert unsigned["separation"]["value"] == pytest.approx(6.790998, abs=1e-6)


def test_a_separated_population_of_no_whole_token_abstains():
    decision = judge(fit([0.001, 0.999], [-5.0, 1.0], [0.1, 0.5]), signed=True, n_tokens=100)
    assert (decision["decision"], decision["share"]) == ("abstain", 0.0)
    assert "holds 0.10 of 100 tokens" in decision["reason"]


def two_clusters_and_noise(noise_mean, noise_sd, n_noise=100, n_clean=900, seed=0):
    """Clean scores in two position clusters and a planted noise population; (scores, marks) in a
    seeded order."""
    rng = np.random.default_rng(seed)
    clean = np.r_[rng.normal(3.5, 0.5, n_clean // 2), rng.normal(0.6, 0.3, n_clean - n_clean // 2)]
    values = np.r_[clean, rng.normal(noise_mean, noise_sd, n_noise)]
    marks = np.r_[np.zeros(n_clean, bool), np.ones(n_noise, bool)]
    order = rng.permutation(len(values))
    return values[order].astype(np.float32), marks[order]


def influence_table(values, marks):
    n = len(values)
    return pa.table({"example_id": [f"e{i // 4}" for i in range(n)], "position": [i % 4 for i in range(n)],
                     "influence": pa.array(values, pa.float32()), "corrupted": pa.array(marks)})


def test_a_planted_separated_population_is_found():
    values, marks = two_clusters_and_noise(-2.5, 0.6)
    out, stats = partition(influence_table(values, marks), rule="estimated_share")
    estimate = stats["estimate"]
    assert estimate["decision"] == "forget" and estimate["share"] == pytest.approx(0.1, abs=SHARE_TOLERANCE)
    assert estimate["separation"]["value"] >= 2 and estimate["separation"]["threshold"] == 2.0
    assert [c["noise"] for c in estimate["components"]].count(True) == estimate["separation"]["components"]
    assert stats["n_negative"] == round(estimate["share"] * 1000)
    assert stats["n_corrupted_negative"] >= 97  # the lowest tokens are the planted ones
    assert stats == partition(influence_table(values, marks), rule="estimated_share")[1]  # deterministic


def test_overlapping_populations_abstain_and_nothing_is_negative():
    rng = np.random.default_rng(5)
    values = np.r_[rng.normal(-0.5, 1.0, 300), rng.normal(0.5, 0.3, 700)].astype(np.float32)
    out, stats = partition(influence_table(values, np.zeros(1000, bool)), rule="estimated_share")
    estimate = stats["estimate"]
    assert (estimate["decision"], estimate["share"]) == ("abstain", 0.0)
    assert estimate["separation"]["value"] is None or estimate["separation"]["value"] < 2
    assert (stats["n_negative"], stats["n_positive"], stats["n_neither"]) == (0, 1000, 0)
    assert not any(out["negative"].to_pylist())
    assert stats["threshold"] == pytest.approx(float(values.min()))  # every token positive, the lowest too


@pytest.mark.parametrize("signed", [True, False])
def test_a_single_population_abstains(signed):
    values = np.random.default_rng(3).normal(0.0, 1.0, 500)
    estimate = estimate_noise_share(values, signed=signed)
    assert (estimate["decision"], estimate["share"], estimate["k"]) == ("abstain", 0.0, 1)
    assert not any(c["noise"] for c in estimate["components"])


def test_one_value_is_one_population():
    estimate = estimate_noise_share(np.full(100, 0.25))
    assert (estimate["decision"], estimate["share"], estimate["k"]) == ("abstain", 0.0, 1)


def loss_table(loss_ref, marks):
    """An influence table whose reference losses are given (loss_base: 2 nats more)."""
    n = len(loss_ref)
    loss_ref = pa.array(loss_ref, pa.float32())
    return pa.table({"example_id": [f"e{i // 4}" for i in range(n)], "position": [i % 4 for i in range(n)],
                     "loss_base": pa.array(np.asarray(loss_ref) + 2.0, pa.float32()), "loss_ref": loss_ref,
                     "influence": pa.array(np.full(n, 2.0), pa.float32()), "corrupted": pa.array(marks)})


def planted_high_loss(seed=4):
    """Reference losses: clean tokens near 0 and near 0.6 nats, 100 of 1000 noisy ones near 3.5."""
    rng = np.random.default_rng(seed)
    clean = np.r_[np.abs(rng.normal(0.05, 0.03, 450)), rng.normal(0.6, 0.2, 450).clip(0.01)]
    losses = np.r_[clean, rng.normal(3.5, 0.7, 100).clip(1.5)]
    marks = np.r_[np.zeros(900, bool), np.ones(100, bool)]
    order = rng.permutation(1000)
    return losses[order], marks[order]


def test_the_unsigned_estimator_finds_a_planted_high_loss_population():
    losses, marks = planted_high_loss()
    out, stats = partition(loss_table(losses, marks), score="reference_loss", rule="estimated_share")
    estimate = stats["estimate"]
    assert estimate["signed"] is False and estimate["decision"] == "forget"
    assert estimate["share"] == pytest.approx(0.1, abs=SHARE_TOLERANCE)
    assert estimate["separation"]["value"] >= 2
    assert stats["n_corrupted_negative"] >= 97 and stats["n_negative"] <= 105
    # Every score is below 0 (a negated loss): "below zero" would not be a rule at all, and the
    # signed reading, which admits only components below 0, is not what reference_loss gets.
    assert all(c["mean"] < 0 for c in estimate["components"])


def test_partition_json_records_the_decision_from_the_command_line(tmp_path):
    losses, marks = planted_high_loss()
    write_parquet(tmp_path / "influence.parquet", loss_table(losses, marks))
    main(["--influence", str(tmp_path / "influence.parquet"), "--rule", "estimated_share", "--score",
          "reference_loss", "--out", str(tmp_path / "p.parquet"), "--out-stats", str(tmp_path / "p.json")])
    stats = json.loads((tmp_path / "p.json").read_text())
    assert (stats["rule"], stats["score"], stats["estimate"]["decision"]) == ("estimated_share", "reference_loss",
                                                                               "forget")
    assert set(stats["estimate"]["separation"]) == {"statistic", "definition", "value", "threshold", "components"}
    assert stats["estimate"]["reason"].startswith("separated: Ashman's D")


def test_the_summary_says_where_the_rule_abstained_and_why(tmp_path):
    from workflow_scripts import summary

    marks = np.r_[np.zeros(90, bool), np.ones(10, bool)]
    for label, corrupted in (("estimated-oracle", marks), ("estimated", np.zeros(100, bool))):
        table = influence_table(-corrupted.astype(np.float32), corrupted)
        score = "oracle" if label.endswith("oracle") else "influence"
        (tmp_path / label).mkdir()
        write_parquet(tmp_path / "influence.parquet", table)
        main(["--influence", str(tmp_path / "influence.parquet"), "--rule", "estimated_share", "--score", score,
              "--out", str(tmp_path / label / "partition.parquet"),
              "--out-stats", str(tmp_path / label / "partition.json")])
    (tmp_path / "rho0.7").mkdir()
    (tmp_path / "rho0.7" / "partition.json").write_text(json.dumps({"rule": "top_rho", "n_negative": 30}))
    score_paths = []
    for run, value in (("base", 0.1), ("ignore/estimated/seed1", 0.5)):
        score_paths.append(tmp_path / f"{len(score_paths)}.json")
        score_paths[-1].write_text(json.dumps({"model": "m", "data": "d", "run": run, "task": "t", "metric": "acc",
                                               "score": value}))
    out = {name: str(tmp_path / name) for name in ("s.csv", "m.csv", "s.md", "t.csv")}
    summary.main(["--out-csv", out["s.csv"], "--out-by-method", out["m.csv"], "--out-md", out["s.md"],
                  "--out-timings", out["t.csv"], "--scores", *map(str, score_paths), "--partition-stats",
                  *(str(tmp_path / label / "partition.json") for label in ("estimated-oracle", "estimated", "rho0.7"))])
    text = (tmp_path / "s.md").read_text()
    assert "## Estimated share: forget or abstain" in text
    rows = [line for line in text.splitlines() if line.startswith("| estimated")]
    assert rows[0].startswith("| estimated-oracle | oracle | forget | separated: Ashman's D 100.000 >= 2")
    assert rows[0].endswith("| 100.000 | 2 | 10 | 0.1000 |")
    assert rows[1].startswith("| estimated | influence | abstain | the mixture AIC prefers has one component")
    assert rows[1].endswith("|  | 2 | 0 | 0.0000 |")
    assert len(rows) == 2  # rho0.7 estimates nothing
    assert "**Abstained**: `estimated`: nothing negative, so the ignore and forget runs on it learn every token" in text
