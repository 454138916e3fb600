"""The summary tables against the score JSONs they come from: per checkpoint, and per method
averaged over seeds with std, 95% t-interval and the difference to sft."""
import json

import pandas as pd
import pytest

from workflow_scripts import statistics, summary
from workflow_scripts.files import InputError


def write_scores(directory, run, scores):
    """Score records as the evaluator writes them; their file names say nothing of the run."""
    for task, (metric, value) in scores.items():
        path = directory / f"{len(list(directory.iterdir()))}.json"
        path.write_text(json.dumps({"model": "m", "data": "d", "run": run, "task": task, "metric": metric,
                                    "score": value}))
        yield path


def write_timings(logs):
    """Snakemake benchmark files, {rule}[/{job}].tsv (a rerun appends a line: the last counts)."""
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    jobs = {"split.tsv": [(2.5, 100.0)], "train_final/sft/all/seed1.tsv": [(10.0, 900.0)],
            "train_final/sft/all/seed2.tsv": [(99.0, 1.0), (14.0, 1100.5)]}
    for name, lines in jobs.items():
        path = logs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + "".join(f"{s}\t0:00:{int(s):02d}\t{rss}\t1\t1\t1\t0\t0\t50\t{s / 2}\n"
                                         for s, rss in lines))


@pytest.fixture
def outputs(tmp_path):
    (tmp_path / "scores").mkdir()
    paths = []
    for run, boolq, logiqa in [("base", 0.30, 0.25), ("sft/all/seed1", 0.40, 0.30), ("sft/all/seed2", 0.50, 0.30),
                               ("forget/rho0.7-ascent-linear/seed1", 0.50, 0.35),
                               ("forget/rho0.7-ascent-linear/seed2", 0.70, 0.25)]:
        paths += write_scores(tmp_path / "scores", run, {"boolq": ("acc", boolq), "logiqa": ("acc_norm", logiqa)})
    write_timings(tmp_path / "timings")
    out = {name: tmp_path / name for name in ("summary.csv", "by_method.csv", "summary.md", "timings.csv")}
    summary.main(["--out-csv", str(out["summary.csv"]), "--out-by-method", str(out["by_method.csv"]),
                  "--out-md", str(out["summary.md"]), "--out-timings", str(out["timings.csv"]),
                  "--timing-dirs", str(tmp_path / "timings"), "--scores", *map(str, paths)])
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
    # Paired by seed: boolq forget - sft is 0.10 and 0.20; the mean's differences are 0.075 twice.
    assert forget["boolq_acc_delta_sft_ci95"] == pytest.approx(12.7062 * 0.070711 / 2 ** 0.5, abs=1e-4)
    assert forget["mean_delta_sft_ci95"] == pytest.approx(0.0, abs=1e-12)
    assert pd.isna(table.loc["base", "mean_delta_sft_ci95"])  # base has no seed to pair


def test_markdown_shows_both_tables(outputs):
    text = outputs["summary.md"].read_text()
    assert "| m | forget | rho0.7-ascent-linear | 2 | 0.6000 ± 1.2706 | 0.3000 ± 0.6353 | 0.4500 ± 0.3177 | +0.0750 ± 0.0000 |" in text
    assert "| m | base |  | 1 | 0.3000 | 0.2500 | 0.2750 | -0.1000 |" in text
    assert "| m | sft | all | 2 | 0.5000 | 0.3000 | 0.4000 |" in text  # the checkpoint table


def test_timings_per_job_and_per_rule(outputs):
    table = pd.read_csv(outputs["timings.csv"])
    assert table.values.tolist() == [["split", "split", 2.5, 100.0, 1.25],
                                     ["train_final", "sft/all/seed1", 10.0, 900.0, 5.0],
                                     ["train_final", "sft/all/seed2", 14.0, 1100.5, 7.0]]
    text = outputs["summary.md"].read_text()
    assert "| train_final | 2 | 24.0 | 14.0 | 1100 |" in text  # jobs, total s, slowest s, peak MB
    assert "| split | 1 | 2.5 | 2.5 | 100 |" in text


def test_a_score_of_an_unknown_run_is_refused(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"model": "m", "data": "d", "run": "forget/rho0.7/seed1", "task": "boolq",
                                "metric": "acc", "score": 0.5}))
    with pytest.raises(InputError, match="bad.json: 'rho0.7' is not a variant of forget"):
        statistics.read_scores([path])


def test_the_noise_audit_is_a_section_of_the_summary(tmp_path, outputs):
    audit = {"note": None,
             "all": {"n_tokens": 10, "n_corrupted": 2, "auroc": 0.75, "mean_influence_corrupted": 1.0,
                     "mean_influence_clean": 2.5},
             "answer": {"n_tokens": 6, "n_corrupted": 2, "auroc": 0.875, "mean_influence_corrupted": 1.0,
                        "mean_influence_clean": 3.0},
             "partitions": {"rho0.7": {"n_negative": 3, "n_corrupted_negative": 1, "precision": 1 / 3,
                                       "chance_precision": 0.2, "recall": 0.5, "chance_recall": 0.3}}}
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    lines = summary.noise_audit_markdown(str(tmp_path / "audit.json"))
    assert "| answer | 6 | 2 | 0.875 | 1.000 | 3.000 |" in lines
    assert "| rho0.7 | 3 | 1 | 0.333 | 0.200 | 0.500 | 0.300 |" in lines
    (tmp_path / "none.json").write_text(json.dumps({**audit, "note": "no corrupted tokens recorded"}))
    assert summary.noise_audit_markdown(str(tmp_path / "none.json")) == \
        ["## Noise audit", "", "no corrupted tokens recorded", ""]


def test_item_paired_interval_is_the_smallest_difference_the_items_can_tell(tmp_path):
    """Per item: the method's mean over seeds minus sft's, then Student t over the items."""
    items = {"base": [0, 0, 0], "sft/all/seed1": [1, 0, 1], "sft/all/seed2": [1, 1, 0],
             "forget/rho0.7-ascent-linear/seed1": [1, 1, 1], "forget/rho0.7-ascent-linear/seed2": [0, 1, 1]}
    paths = []
    for i, (run, values) in enumerate(items.items()):
        for task, metric, scores in [("boolq", "acc", values), ("logiqa", "acc_norm", [1, 0, 0])]:
            path = tmp_path / f"{i}-{task}.json"
            path.write_text(json.dumps({"model": "m", "data": "d", "run": run, "task": task, "metric": metric,
                                        "score": sum(scores) / 3,
                                        "items": {"doc_id": [2, 0, 1], "score": scores}}))
            paths.append(path)
    long = statistics.read_scores(paths)
    table = statistics.by_method(statistics.summary_table(long), long).set_index("method")
    # forget - sft per item (doc 2, 0, 1): [0.5 - 1, 1 - 0.5, 1 - 0.5]; sd 0.57735 over 3 items.
    assert table.loc["forget", "boolq_acc_delta_sft_items_ci95"] == pytest.approx(4.302653 / 3, abs=1e-5)
    assert table.loc["forget", "logiqa_acc_norm_delta_sft_items_ci95"] == 0.0  # the same items right
    assert table.loc["forget", "mean_delta_sft_items_ci95"] == pytest.approx(4.302653 / 3 / 2, abs=1e-5)
    # base - sft: [-1, -0.5, -0.5], sd 0.288675.
    assert table.loc["base", "boolq_acc_delta_sft_items_ci95"] == pytest.approx(4.302653 / 6, abs=1e-5)
    assert pd.isna(table.loc["sft", "boolq_acc_delta_sft_items_ci95"])


def test_item_interval_needs_the_same_items(tmp_path):
    """A checkpoint scored on other items (another limit) cannot be paired item by item: NaN."""
    paths = []
    for run, doc_ids in [("sft/all/seed1", [0, 1]), ("forget/rho0.7-ascent-linear/seed1", [0, 2])]:
        path = tmp_path / f"{len(paths)}.json"
        path.write_text(json.dumps({"model": "m", "data": "d", "run": run, "task": "boolq", "metric": "acc",
                                    "score": 0.5, "items": {"doc_id": doc_ids, "score": [1, 0]}}))
        paths.append(path)
    long = statistics.read_scores(paths)
    table = statistics.by_method(statistics.summary_table(long), long).set_index("method")
    assert pd.isna(table.loc["forget", "boolq_acc_delta_sft_items_ci95"])
