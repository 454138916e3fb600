"""Several experiments in one config (workflow_scripts/experiments.py): how entries are laid over the
config, which are one experiment, which are refused and how the refusal names them; and the table
of the models of one data setting (workflow_scripts/models_table.py)."""
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from conftest import ROOT
from workflow_scripts import experiments, models_table
from workflow_scripts.experiments import ExperimentError
from workflow_scripts.files import InputError

SCHEMA = str(ROOT / "schemas/config.schema.yaml")


def default(**changes) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(config, SCHEMA, set_default=True)
    return experiments.merge(config, changes)


def expand(config):
    return experiments.expand(config, lambda whole: validate(whole, SCHEMA, set_default=True))


def test_a_config_without_experiments_is_its_own_one():
    config = default()
    shared = {key: value for key, value in config.items() if key != "experiments"}  # the schema's default []
    assert expand(config) == {("number-words", "smollm2-135m-instruct"): [shared]}


def test_entries_are_laid_over_the_config_as_a_configfile_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a file entry is read from the working directory
    (tmp_path / "b.yaml").write_text("data: {name: b}\nrho: [0.9]\n")
    found = expand(default(experiments=[{"data": {"name": "a", "noise_rate": 0.5}}, "b.yaml",
                                        ["b.yaml", {"data": {"name": "c"}, "seeds": [2]}]]))
    assert list(found) == [("a", "smollm2-135m-instruct"), ("b", "smollm2-135m-instruct"),
                           ("c", "smollm2-135m-instruct")]
    a, b, c = (entries[0] for entries in found.values())
    assert a["data"]["noise_rate"] == 0.5 and a["data"]["pool"] == "number_words"  # sections merge key by key
    assert b["rho"] == [0.9] and b["data"]["noise_rate"] == 0.3 and b["experiments"] == []  # none of its own
    assert c["rho"] == [0.9] and c["seeds"] == [2]  # a list of files and mappings, laid in order


def test_entries_of_one_folder_are_one_experiment_with_both_grids():
    found = expand(default(experiments=[{}, {"methods": ["ignore"], "rho": [0.9], "seeds": [2]}]))
    assert len(found) == 1 and len(next(iter(found.values()))) == 2


@pytest.mark.parametrize("entries, message", [
    ([{}, {"training": {"learning_rate": 0.01}}],
     "experiments[0] and experiments[1] are both results/number-words/smollm2-135m-instruct/ but set "
     "training.learning_rate differently: one folder holds one experiment"),
    ([{"data": {"name": "a"}}, {"data": {"name": "a", "noise_rate": 0.5}, "model": {"name": "m2"}}],
     "experiments[0] (data.name a) and experiments[1] (data.name a, model.name m2) share results/a/data/ "
     "(data.name a) but set data.noise_rate differently: give one of them another data.name"),
    ([{"data": {"name": "a"}}, {"data": {"name": "b"}, "model": {"dtype": "bfloat16"}}],
     "share resources/models/smollm2-135m-instruct/ (model.name smollm2-135m-instruct) but set model.dtype"),
    ([{"data": {"name": "a"}}, {"data": {"name": "b"}, "rho": [2.0]}],
     "experiments[1] (data.name b): Error validating config file"),
    ([{"experiments": [{}]}], "experiments[0]: an experiment cannot list experiments of its own"),
    (["missing.yaml"], "experiments[0]: no config file missing.yaml (paths are read from the working directory)"),
    ([3], "experiments[0]: an experiment is a mapping of config sections, a config file or a list of them, got 3"),
])
def test_refusals_name_the_entries(entries, message):
    with pytest.raises(ExperimentError) as caught:
        expand(default(experiments=entries))
    assert message in str(caught.value)


def test_lookup_by_either_name():
    found = {key: entries[0] for key, entries in expand(default(experiments=[
        {"data": {"name": "a"}}, {"data": {"name": "a"}, "model": {"name": "m2"}}])).items()}
    assert experiments.lookup(found, "a", "m2")["model"]["name"] == "m2"
    assert experiments.lookup(found, model="m2")["model"]["name"] == "m2"
    assert experiments.lookup(found, "a")["model"]["name"] == "smollm2-135m-instruct"  # the first with it
    with pytest.raises(ExperimentError, match="b/m2: no experiment of this config has it"):
        experiments.lookup(found, "b", "m2")


def test_the_models_table_by_hand(tmp_path):
    summaries = []
    for model, sft, forget, interval in (("m1", 0.30, 0.35, float("nan")), ("m2", 0.50, 0.45, 0.02)):
        path = tmp_path / f"{model}.csv"
        pd.DataFrame({"model": model, "method": ["base", "sft", "forget"], "variant": ["", "all", "rho0.7"],
                      "seeds": [1, 2, 2], "mean": [0.1, sft, forget], "mean_ci95": [float("nan"), interval, interval],
                      "mean_delta_sft": [0.1 - sft, 0.0, forget - sft]}).to_csv(path, index=False)
        summaries.append(str(path))
    out_md, out_csv = tmp_path / "models.md", tmp_path / "models.csv"
    models_table.main(["--summaries", *summaries, "--published", '{"m1": {"sft": 30.37, "forget": 34.86}}',
                       "--out-md", str(out_md), "--out-csv", str(out_csv)])
    text = out_md.read_text()
    assert "| m1 | forget | rho0.7 | 2 | 35.00 | +5.00 | 34.86 |" in text
    assert "| m2 | forget | rho0.7 | 2 | 45.00 ± 2.00 | -5.00 |  |" in text
    assert "| m1 | base |  | 1 | 10.00 | -20.00 |  |" in text
    assert len(pd.read_csv(out_csv)) == 6
    with pytest.raises(InputError, match="published numbers for m3, which no summary holds"):
        models_table.models_table(summaries, {"m3": {"sft": 1.0}})
