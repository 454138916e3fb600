"""The map (configs/map/, scripts/map.py): its declared cells plan as declared, and its table comes
from the runs' own score, partition and decoding files, every missing run named."""
import importlib.util
import json
import re
import shutil

from conftest import ROOT, planned_jobs, user_snakemake

spec = importlib.util.spec_from_file_location("map_script", ROOT / "scripts" / "map.py")
map_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(map_script)

LAYERS = [ROOT / "config.yaml", ROOT / "configs/number-words-study/common.yaml", ROOT / "configs/map/common.yaml",
          ROOT / "configs/map/noise0.5.yaml"]


def test_the_map_plans_its_declared_cells():
    result = user_snakemake("--dry-run", "--forceall", "--configfile", *LAYERS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = planned_jobs(result)
    # 3 seeds x (sft; ignore under rho 0.7, rho 0.9, below0, estimated; forget under the same four x
    # ascent and npo1; random at both rho x ascent and npo1) = 3 x 17
    assert jobs["train_final"] == 51 and jobs["partition"] == 4 and jobs["random_partition"] == 6
    assert jobs["evaluate"] == jobs["decode"] == 52
    for path in ("rho0.7", "rho0.9", "below0", "estimated"):
        assert f"results/number-words-noise0.5/smollm2-135m-instruct/{path}/partition.json" in result.stdout
    assert "forget/estimated-npo1-linear/seed3/model" in result.stdout
    oracle = user_snakemake("--dry-run", "--forceall", "--configfile", *LAYERS, ROOT / "configs/map/oracle.yaml",
                            "--omit-from", "summary", "plots", "noise_audit", "token_page")
    assert oracle.returncode == 0, oracle.stdout[-3000:] + oracle.stderr[-3000:]
    assert planned_jobs(oracle)["train_final"] == 9 and planned_jobs(oracle)["partition"] == 1
    assert "forget/below0-oracle-npo1-linear/seed2/model" in oracle.stdout
    assert "summary" not in planned_jobs(oracle)
    # The conclusion's cells to five seeds: sft; ignore and forget (ascent, npo) under rho 0.7 and the
    # estimated share (7 runs per seed), and the oracle's 3
    for layers, runs_per_seed in (([], 7), ([ROOT / "configs/map/oracle.yaml"], 3)):
        conclusion = user_snakemake("--dry-run", "--forceall", "--configfile", *LAYERS,
                                    ROOT / "configs/map/conclusion.yaml", *layers, "--omit-from", "summary", "plots",
                                    "noise_audit", "token_page")
        assert conclusion.returncode == 0, conclusion.stdout[-3000:] + conclusion.stderr[-3000:]
        assert planned_jobs(conclusion)["train_final"] == 5 * runs_per_seed
        assert "forget/estimated-npo1-linear/seed5/model" in conclusion.stdout or layers


def test_the_whole_map_is_one_dag():
    """configs/map/all.yaml: every setting with its layers in one invocation, as `make map` runs it."""
    result = user_snakemake("--dry-run", "--forceall", "--configfile", *LAYERS[:3], ROOT / "configs/map/all.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = planned_jobs(result)
    # number_words at 3 noise rates: the 51 runs of common.yaml, the oracle's 9, the conclusion's 7 cells
    # x seeds 4 and 5, the abstaining share's 2 cells on reference_loss x 5 seeds (its influence cells
    # are the estimated share's, now abstaining, already there), and the oracle's seeds 4 and 5 at
    # noise 0.3 and 0.5; the clock at 2 rates: sft and the abstaining 4 cells x 5 seeds, the oracle's 3 x 5
    assert jobs["train_final"] == 3 * (51 + 9 + 7 * 2 + 2 * 5) + 2 * 3 * 2 + 2 * (5 * 5 + 3 * 5) == 344
    assert jobs["base_model"] == 1 and jobs["prepare_data"] == 5 and jobs["summary"] == 5
    for path in ("number-words-noise0.5/smollm2-135m-instruct/ignore/estimated-reference_loss/seed5",
                 "clock-24h-noise0.3/smollm2-135m-instruct/forget/estimated-reference_loss-npo1-linear/seed5",
                 "clock-24h-noise0.5/smollm2-135m-instruct/forget/below0-oracle-npo1-linear/seed4"):
        assert f"results/{path}/model" in result.stdout, path
    # configs/map/label-free.yaml, the conclusion's cells alone: at each of the 5 settings, sft, the
    # abstaining share's 4 cells and the oracle's 3, five seeds (the oracle three at noise 0, where it
    # marks nothing); every one of them a run of all.yaml
    label_free = user_snakemake("--dry-run", "--forceall", "--configfile", *LAYERS[:3],
                                ROOT / "configs/map/label-free.yaml")
    assert label_free.returncode == 0, label_free.stdout[-3000:] + label_free.stderr[-3000:]
    assert planned_jobs(label_free)["train_final"] == 5 * 5 * (1 + 4 + 3) - 2 * 3 == 194
    models = set(re.findall(r"results/\S+/seed\d/model\b", label_free.stdout))
    assert len(models) == 194 and models <= set(re.findall(r"results/\S+/seed\d/model\b", result.stdout))


def test_the_map_table_reads_every_run_and_names_the_missing(tmp_path, monkeypatch):
    for path in ("config.yaml", "configs/number-words-study/common.yaml", "configs/map/common.yaml",
                 "configs/map/oracle.yaml", "configs/map/conclusion.yaml", "schemas/config.schema.yaml"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    (tmp_path / "configs/map/toy.yaml").write_text("data: {name: toy}\n")
    layers = ["configs/map/oracle.yaml", "configs/map/conclusion.yaml", "configs/map/oracle.yaml"]
    (tmp_path / "configs/map/toy-map.yaml").write_text(  # as all.yaml lists a setting with its layers
        "experiments:\n  - configs/map/toy.yaml\n  - [configs/map/toy.yaml, configs/map/oracle.yaml]\n"
        "  - [configs/map/toy.yaml, configs/map/conclusion.yaml]\n"
        f"  - [configs/map/toy.yaml, {layers[1]}, {layers[2]}]\n")
    monkeypatch.setattr(map_script, "ROOT", tmp_path)
    experiment = tmp_path / "results/toy/smollm2-135m-instruct"
    items = {"base": [0, 0, 0, 0], "sft/all/seed1": [1, 1, 1, 0], "sft/all/seed2": [1, 1, 0, 1],
             "forget/below0-oracle-npo1-linear/seed1": [1, 1, 1, 1],
             "forget/below0-oracle-npo1-linear/seed2": [1, 1, 1, 0]}
    for run, values in items.items():
        (experiment / run / "scores").mkdir(parents=True)
        (experiment / run / "scores/number_words.json").write_text(json.dumps(
            {"model": "smollm2-135m-instruct", "data": "toy", "run": run, "task": "number_words", "metric": "acc",
             "score": sum(values) / 4, "items": {"doc_id": [0, 1, 2, 3], "score": values}}))
        (experiment / run / "decodings").mkdir()
        (experiment / run / "decodings/number_words.json").write_text(json.dumps(
            {"items": [{"prompt": "Write three hundred eighteen in digits. Answer with the number only.",
                        "target": "318", "output": "31" if run == "base" else "318"}]}))
    (experiment / "below0-oracle").mkdir()
    (experiment / "below0-oracle/partition.json").write_text(json.dumps(
        {"n_negative": 50, "n_corrupted_negative": 40, "n_corrupted": 80}))
    (experiment / "estimated").mkdir()  # the estimated share abstained: every token positive
    (experiment / "estimated/partition.json").write_text(json.dumps(
        {"n_negative": 0, "n_neither": 0, "n_corrupted_negative": 0, "n_corrupted": 80}))
    out_md, out_png = tmp_path / "map.md", tmp_path / "map.png"
    map_script.main(["configs/map/toy-map.yaml", "--out-md", str(out_md), "--out-figure", str(out_png)])
    text = out_md.read_text()
    assert "| sft | all | 2 | 0.750 ± 0.000 |  |  |  |  |" in text
    # (1 + 0.75) / 2 - 0.75 = +0.125; seed-paired: differences 0.25 and 0 -> t(0.975, 1) x 0.1768 / sqrt(2)
    assert "| forget | below0-oracle-npo1-linear | 2 | 0.875 ± 0.177 | +0.125 [±1.588 seeds, " in text
    assert "| 50 | 0.80 | 0.50 |" in text
    # every declared run without scores is named, none dropped
    assert ("Missing (not run, or cut): " in text and "`ignore/rho0.9/seed3`" in text
            and "`random/rho0.7-random-npo1-linear/seed1`" in text
            and "`forget/below0-oracle-npo1-linear/seed5`" in text)  # the conclusion's seeds too
    # ... but a run whose partition has no negatives is sft's by construction: named apart, not missing
    missing, not_run = text.split("Missing (not run, or cut): ")[1].split("\n")[0], \
        text.split("Not run: their partition has no negatives")[1].split("\n")[0]
    assert "`ignore/estimated/seed3`" in not_run and "`forget/estimated-npo1-linear/seed1`" in not_run
    assert "estimated/" not in missing and "rho0.9" not in not_run
    assert "| `forget/below0-oracle-npo1-linear/seed1` | `318` |" in text and "| `base` | `31` |" in text
    assert out_png.stat().st_size > 10_000
