"""The summary tables against the score JSONs they come from: per checkpoint, and per method
averaged over seeds with std, 95% t-interval and the difference to sft."""
import json
import math

import pandas as pd
import pytest

from workflow_scripts import score_statistics, summary
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
    assert ("| m | forget | rho0.7-ascent-linear | 2 | 0.6000 ± 1.2706 | 0.3000 ± 0.6353 | 0.4500 ± 0.3177 | "
            "+0.0750 ± 0.0000 |") in text
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
        score_statistics.read_scores([path])


def test_the_noise_audit_is_a_section_of_the_summary(tmp_path, outputs):
    def separation(n, corrupted, aurocs):
        return {"n_tokens": n, "n_corrupted": corrupted, "auroc": dict(zip(("influence", "reference_loss"), aurocs))}

    def partition(negative, hit, precision, chance_precision, recall, chance_recall):
        return {"n_negative": negative, "n_corrupted_negative": hit, "precision": precision,
                "chance_precision": chance_precision, "recall": recall, "chance_recall": chance_recall}

    audit = {"note": None, "scores": {"influence": "loss_base - loss_ref", "reference_loss": "-loss_ref"},
             "strata": {"all": {"response": separation(10, 2, (0.75, 0.5)), "answer": separation(6, 2, (0.875, None))},
                        "boolq": {"response": separation(4, 1, (1.0, 0.25)), "answer": separation(2, 1, (1.0, 0.0))}},
             "partitions": {"rho0.7": {"all": partition(3, 1, 1 / 3, 0.2, 0.5, 0.3),
                                       "boolq": partition(1, 1, 1.0, 0.25, 1.0, 0.25)}}}
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    lines = summary.noise_audit_markdown(str(tmp_path / "audit.json"))
    assert "| stratum | tokens | n | corrupted | AUROC influence | AUROC reference_loss |" in lines
    assert "| all | answer | 6 | 2 | 0.875 |  |" in lines
    assert "| boolq | response | 4 | 1 | 1.000 | 0.250 |" in lines
    assert "| rho0.7 | all | 3 | 1 | 0.333 (0.200) | 0.500 (0.300) |" in lines
    assert "| rho0.7 | boolq | 1 | 1 | 1.000 (0.250) | 1.000 (0.250) |" in lines
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
    long = score_statistics.read_scores(paths)
    table = score_statistics.by_method(score_statistics.summary_table(long), long).set_index("method")
    # forget - sft per item (doc 2, 0, 1): [0.5 - 1, 1 - 0.5, 1 - 0.5]; sd 0.57735 over 3 items.
    assert table.loc["forget", "boolq_acc_delta_sft_items_ci95"] == pytest.approx(4.302653 / 3, abs=1e-5)
    assert table.loc["forget", "logiqa_acc_norm_delta_sft_items_ci95"] == 0.0  # the same items right
    assert table.loc["forget", "mean_delta_sft_items_ci95"] == pytest.approx(4.302653 / 3 / 2, abs=1e-5)
    # base - sft: [-1, -0.5, -0.5], sd 0.288675.
    assert table.loc["base", "boolq_acc_delta_sft_items_ci95"] == pytest.approx(4.302653 / 6, abs=1e-5)
    assert pd.isna(table.loc["sft", "boolq_acc_delta_sft_items_ci95"])
    # Each method's own item interval: forget's per-item means [1, 0.5, 1] (doc 2, 0, 1), sd 0.288675;
    # base's are all 0 (sd 0); logiqa's [1, 0, 0] for everyone, sd 0.57735.
    assert table.loc["forget", "boolq_acc_items_ci95"] == pytest.approx(4.302653 / 6, abs=1e-5)
    assert table.loc["base", "boolq_acc_items_ci95"] == 0.0
    assert table.loc["sft", "logiqa_acc_norm_items_ci95"] == pytest.approx(4.302653 / 3, abs=1e-5)
    assert table.loc["forget", "mean_items_ci95"] == pytest.approx(math.hypot(4.302653 / 6, 4.302653 / 3) / 2, abs=1e-5)


def test_a_cell_on_fewer_seeds_is_compared_with_sfts_same_seeds(tmp_path):
    """sft on seeds 1-3, forget on 1-2 (a cut): the difference and both intervals pair seed by seed."""
    items = {"sft/all/seed1": [1, 1, 0, 0], "sft/all/seed2": [1, 1, 1, 0], "sft/all/seed3": [1, 1, 1, 1],
             "forget/rho0.7-ascent-linear/seed1": [1, 1, 1, 0], "forget/rho0.7-ascent-linear/seed2": [1, 1, 1, 1]}
    paths = []
    for i, (run, values) in enumerate(items.items()):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps({"model": "m", "data": "d", "run": run, "task": "boolq", "metric": "acc",
                                    "score": sum(values) / 4, "items": {"doc_id": [0, 1, 2, 3], "score": values}}))
        paths.append(path)
    long = score_statistics.read_scores(paths)
    table = score_statistics.by_method(score_statistics.summary_table(long), long).set_index("method")
    # seed 1: 0.75 - 0.5, seed 2: 1.0 - 0.75 -> +0.25 (not 0.875 - 0.75 over all of sft's seeds)
    assert table.loc["forget", "boolq_acc_delta_sft"] == pytest.approx(0.25)
    assert table.loc["forget", "boolq_acc_delta_sft_ci95"] == 0.0  # the same difference on both seeds
    # per item: forget's mean [1, 1, 1, 0.5] - sft's seeds 1-2 [1, 1, 0.5, 0] = [0, 0, 0.5, 0.5]; sd 0.288675
    assert table.loc["forget", "boolq_acc_delta_sft_items_ci95"] == pytest.approx(3.182446 * 0.288675 / 2, abs=1e-5)
    assert table.loc["sft", "boolq_acc_delta_sft"] == 0.0 and table.loc["sft", "boolq_acc"] == pytest.approx(0.75)


def test_item_interval_needs_the_same_items(tmp_path):
    """A checkpoint scored on other items (another limit) cannot be paired item by item: NaN."""
    paths = []
    for run, doc_ids in [("sft/all/seed1", [0, 1]), ("forget/rho0.7-ascent-linear/seed1", [0, 2])]:
        path = tmp_path / f"{len(paths)}.json"
        path.write_text(json.dumps({"model": "m", "data": "d", "run": run, "task": "boolq", "metric": "acc",
                                    "score": 0.5, "items": {"doc_id": doc_ids, "score": [1, 0]}}))
        paths.append(path)
    long = score_statistics.read_scores(paths)
    table = score_statistics.by_method(score_statistics.summary_table(long), long).set_index("method")
    assert pd.isna(table.loc["forget", "boolq_acc_delta_sft_items_ci95"])


def test_report_only_tasks_are_shown_but_not_averaged(tmp_path):
    paths = []
    for run, mc2, mc1, boolq in [("sft/all/seed1", 0.4, 0.2, 0.6)]:
        paths += write_scores(tmp_path, run, {"truthfulqa_mc2": ("acc", mc2), "truthfulqa_mc1": ("acc", mc1),
                                             "boolq": ("acc", boolq)})
    table = score_statistics.summary_table(score_statistics.read_scores(list(paths)), report_only=("truthfulqa_mc1",))
    assert list(table.columns) == ["model", "method", "variant", "seed", "boolq_acc", "truthfulqa_mc2_acc", "mean",
                                   "truthfulqa_mc1_acc"]
    assert table.loc[0, "mean"] == pytest.approx(0.5)  # (0.6 + 0.4) / 2, mc1 left out


def test_the_data_section_counts_what_was_left_out(tmp_path):
    (tmp_path / "split.json").write_text(json.dumps({"reference": {"rows": 4}, "train": {"rows": 6},
                                                     "overlap": {"ids": 1, "dropped_from_train": False}}))
    (tmp_path / "skipped.jsonl").write_text('{"where": "a:3"}\n{"where": "a:5"}\n')
    lines = summary.data_markdown(str(tmp_path / "split.json"), str(tmp_path / "skipped.jsonl"))
    assert lines[2] == (f"- Reference and training subsets: 4 and 6 records; 1 training ids are also reference ids, "
                        f"kept in training (`{tmp_path / 'split.json'}`).")
    assert lines[3] == ("- Bad records skipped by `data.bad_records: skip`: 2, "
                        f"each listed in `{tmp_path / 'skipped.jsonl'}`.")


def test_provenance_flags_results_of_different_commits_or_configs():
    def record(commit, sha, gpus=0):
        devices = {"kind": "cuda", "count": gpus, "names": ["NVIDIA H200"] * gpus} if gpus else {"kind": "cpu"}
        return {"commit": commit, "dirty": False, "config_sha": sha, "host": "n1", "devices": devices}

    same = summary.provenance_markdown({"a.json": record("a" * 40, "c1"), "b.json": record("a" * 40, "c1")})
    assert "| aaaaaaaaaaaa | no | c1 | 2 | n1 | CPU |" in same and not any("Warning" in line for line in same)
    mixed = summary.provenance_markdown({"a.json": record("a" * 40, "c1"), "b.json": record("b" * 40, "c1", 2),
                                         "c.json": None})
    assert "**Warning: these results were made by 3 different commits or configs**; the rows below say which " \
           "made how many (see each file's `provenance`)." in mixed
    assert "| bbbbbbbbbbbb | no | c1 | 1 | n1 | 2 x NVIDIA H200 |" in mixed
    assert "| unknown | unknown | unknown | 1 | unknown | unknown |" in mixed


def write_decodings(path, run, outputs):
    """A decodings record as workflow_scripts/decode.py writes it: number_words, one item per output."""
    targets = ["318", "7", "42", "12", "5", "9"]
    words = ["three hundred eighteen", "seven", "forty two", "twelve", "five", "nine"]
    items = [{"doc_id": i, "prompt": f"Write {w} in digits. Answer with the number only.", "target": t, "output": o,
              "exact": o == t} for i, (w, t, o) in enumerate(zip(words, targets, outputs))]
    path.write_text(json.dumps({"task": "number_words", "run": run, "model_dir": "m", "chat_template": True,
                                "max_new_tokens": 16, "n": len(items), "items": items,
                                "exact_share": sum(i["exact"] for i in items) / len(items)}))
    return str(path)


def summarise(tmp_path, *extra):
    (tmp_path / "scores").mkdir(parents=True, exist_ok=True)
    paths = [*write_scores(tmp_path / "scores", "base", {"boolq": ("acc", 0.3)}),
             *write_scores(tmp_path / "scores", "forget/rho0.7-ascent-linear/seed1", {"boolq": ("acc", 0.5)})]
    out = {name: tmp_path / name for name in ("summary.csv", "by_method.csv", "summary.md", "timings.csv")}
    summary.main(["--out-csv", str(out["summary.csv"]), "--out-by-method", str(out["by_method.csv"]),
                  "--out-md", str(out["summary.md"]), "--out-timings", str(out["timings.csv"]),
                  "--scores", *map(str, paths), *extra])
    return out["summary.md"].read_text()


def test_what_the_models_write_is_a_section_of_the_summary(tmp_path):
    """Two runs' decodings, given forget first: base's column comes first; five prompts are shown,
    the exact counts cover all six; a pipe is escaped, a newline marked, an empty output said."""
    files = [write_decodings(tmp_path / "forget.json", "forget/rho0.7-ascent-linear/seed1",
                             ["318", "7", "4|2", "12", "", "9"]),
             write_decodings(tmp_path / "base.json", "base", ["31", "7\n8", "42", "1", "5", "8"])]
    text = summarise(tmp_path, "--decodings", *files)
    lines = text.splitlines()
    start = lines.index("## What the models write")
    assert lines[start + 6:start + 20] == [
        "### number_words",
        "",
        "| prompt | target | base | forget/rho0.7-ascent-linear/seed1 |",
        "| --- | --- | --- | --- |",
        "| Write three hundred eighteen in digits. Answer with the number only. | `318` | `31` | `318` |",
        "| Write seven in digits. Answer with the number only. | `7` | `7⏎8` | `7` |",
        "| Write forty two in digits. Answer with the number only. | `42` | `42` | `4\\|2` |",
        "| Write twelve in digits. Answer with the number only. | `12` | `1` | `12` |",
        "| Write five in digits. Answer with the number only. | `5` | `5` | *(empty)* |",
        "",
        "- `base`: 2 of 6 exact (0.33)",
        "- `forget/rho0.7-ascent-linear/seed1`: 4 of 6 exact (0.67)",
        "",
        "## Provenance",
    ]


def test_without_decodings_the_summary_is_unchanged(tmp_path):
    without = summarise(tmp_path / "a")
    assert "What the models write" not in without
    assert summarise(tmp_path / "b", "--decodings") == without


def test_two_decodings_of_one_run_and_task_are_refused(tmp_path):
    files = [write_decodings(tmp_path / f"{i}.json", "base", ["318"]) for i in range(2)]
    with pytest.raises(InputError, match=r"1\.json: a second decodings file of task 'number_words' and run 'base'"):
        summary.decodings_markdown(files)
