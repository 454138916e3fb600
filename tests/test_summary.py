"""The summary tables against the score JSONs they come from: per checkpoint, and per method
averaged over seeds with std, 95% t-interval and the difference to sft."""
import json

import pandas as pd
import pytest

from workflow_scripts import summary


def write_scores(results, run, scores):
    for task, (metric, value) in scores.items():
        path = results / "m" / run / "scores" / f"{task}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"task": task, "metric": metric, "score": value}))
        yield path


@pytest.fixture
def outputs(tmp_path):
    results = tmp_path / "results"
    paths = []
    for run, boolq, logiqa in [("base", 0.30, 0.25), ("sft/all/seed1", 0.40, 0.30), ("sft/all/seed2", 0.50, 0.30),
                               ("forget/rho0.7-ascent-linear/seed1", 0.50, 0.35),
                               ("forget/rho0.7-ascent-linear/seed2", 0.70, 0.25)]:
        paths += write_scores(results, run, {"boolq": ("acc", boolq), "logiqa": ("acc_norm", logiqa)})
    out = {name: tmp_path / name for name in ("summary.csv", "by_method.csv", "summary.md")}
    summary.main(["--results", str(results), "--out-csv", str(out["summary.csv"]), "--out-by-method",
                  str(out["by_method.csv"]), "--out-md", str(out["summary.md"]), *map(str, paths)])
    return out


def test_one_row_per_checkpoint(outputs):
    table = pd.read_csv(outputs["summary.csv"], keep_default_na=False)
    assert list(table.columns) == ["model", "method", "variant", "seed", "boolq_acc", "logiqa_acc_norm", "mean"]
    assert table[["method", "seed"]].astype(str).values.tolist() == [
        ["base", ""], ["sft", "1"], ["sft", "2"], ["forget", "1"], ["forget", "2"]]
    assert table["mean"].tolist() == pytest.approx([0.275, 0.35, 0.40, 0.425, 0.475])


def test_per_method_mean_std_interval_and_delta(outputs):
    table = pd.read_csv(outputs["by_method.csv"]).set_index("method")
    forget = table.loc["forget"]
    assert forget["seeds"] == 2
    assert forget["boolq_acc"] == pytest.approx(0.6)
    assert forget["boolq_acc_std"] == pytest.approx(0.141421, abs=1e-6)
    assert forget["boolq_acc_ci95"] == pytest.approx(12.7062 * 0.1, abs=1e-4)  # t(0.975, 1) * std / sqrt(2)
    assert forget["boolq_acc_delta_sft"] == pytest.approx(0.6 - 0.45)
    assert forget["mean_delta_sft"] == pytest.approx(0.45 - 0.375)
    assert pd.isna(table.loc["base", "boolq_acc_ci95"])  # one seed: no interval
    assert table.loc["base", "mean_delta_sft"] == pytest.approx(0.275 - 0.375)


def test_markdown_shows_both_tables(outputs):
    text = outputs["summary.md"].read_text()
    assert "| m | forget | rho0.7-ascent-linear | 2 | 0.6000 ± 1.2706 | 0.3000 ± 0.6353 | 0.4500 ± 0.3177 | +0.0750 |" in text
    assert "| m | base |  | 1 | 0.3000 | 0.2500 | 0.2750 | -0.1000 |" in text
    assert "| m | sft | all | 2 | 0.5000 | 0.3000 | 0.4000 |" in text  # the checkpoint table
