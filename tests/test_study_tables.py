"""The study's README tables come from the experiments' own summary and audit files."""
import importlib.util
import json
import shutil

from conftest import ROOT
from workflow_scripts import summary

spec = importlib.util.spec_from_file_location("study_tables", ROOT / "scripts" / "study_tables.py")
study_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study_tables)


def test_tables_of_one_setting(tmp_path, monkeypatch, capsys):
    (tmp_path / "configs" / "study").mkdir(parents=True)
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copy(ROOT / "configs" / "study" / "common.yaml", tmp_path / "configs" / "study" / "common.yaml")
    shutil.copy(ROOT / "configs" / "boolq-asdiv.yaml", tmp_path / "configs" / "boolq-asdiv.yaml")
    setting = tmp_path / "configs" / "study" / "toy.yaml"
    setting.write_text("data: {name: toy}\n")
    experiment = tmp_path / "results" / "toy" / "smollm2-135m-instruct"
    experiment.mkdir(parents=True)
    scores = []
    for run, values in [("sft/all/seed1", [1, 0, 1, 0]), ("sft/all/seed2", [1, 1, 0, 0]),
                        ("forget/rho0.7-ascent-linear/seed1", [1, 1, 1, 0]),
                        ("forget/rho0.7-ascent-linear/seed2", [1, 1, 1, 1])]:
        path = tmp_path / f"{len(scores)}.json"
        path.write_text(json.dumps({"model": "smollm2-135m-instruct", "data": "toy", "run": run, "task": "boolq",
                                    "metric": "acc", "score": sum(values) / 4,
                                    "items": {"doc_id": [0, 1, 2, 3], "score": values}}))
        scores.append(str(path))
    summary.main(["--scores", *scores, "--out-csv", str(tmp_path / "s.csv"),
                  "--out-by-method", str(experiment / "summary_by_method.csv"),
                  "--out-timings", str(tmp_path / "b.csv"), "--out-md", str(tmp_path / "s.md")])
    (experiment / "noise_audit.json").write_text(json.dumps({
        "note": None, "scores": {"influence": "loss_base - loss_ref"},
        "strata": {"all": {"response": {"n_tokens": 10, "n_corrupted": 2, "auroc": {"influence": 0.75}},
                           "answer": {"n_tokens": 6, "n_corrupted": 2, "auroc": {"influence": 0.875}}}},
        "partitions": {"rho0.7": {"all": {"n_negative": 3, "n_corrupted_negative": 1, "precision": 1 / 3,
                                          "chance_precision": 0.2, "recall": 0.5, "chance_recall": 0.3}}}}))
    monkeypatch.setattr(study_tables, "ROOT", tmp_path)
    study_tables.main([str(setting)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "### toy (`results/toy/smollm2-135m-instruct`)"
    # sft 0.5, 0.5; forget 0.75, 1.0: std 0.1768, t(0.975, 1) = 12.706; per seed +0.25, +0.5.
    # Per item, forget minus sft over the seeds: 0, 0.5, 0.5, 0.5 (sd 0.25), t(0.975, 3) = 3.1824.
    assert "| sft | all | 0.5000 ± 0.0000 [±0.0000] | 0.5000 ± 0.0000 [±0.0000] |  |" in lines
    assert ("| forget | rho0.7-ascent-linear | 0.8750 ± 0.1768 [±1.5883] | 0.8750 ± 0.1768 [±1.5883] "
            "| +0.3750 [±1.5883 seeds, ±0.3978 items] |") in lines
    assert "| forget | rho0.7-ascent-linear | +0.3750 [±1.5883 seeds, ±0.3978 items] |" in lines
    # the summary's own section, under the setting's heading
    assert "#### Noise audit" in lines and "| all | answer | 6 | 2 | 0.875 |" in lines
    assert "| rho0.7 | all | 3 | 1 | 0.333 (0.200) | 0.500 (0.300) |" in lines
