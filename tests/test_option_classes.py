"""Every option of the schema says what it is (workflow_scripts/option_classes.py): the rules whose
artifacts it changes, or why it changes none; the operational ones reach the rules outside their
params. What Snakemake then plans for a change of each: tests/test_workflow.py."""
import re

import pytest
import yaml
from snakemake.utils import validate

from conftest import ROOT
from option_changes import CHANGES
from workflow_scripts import option_classes
from workflow_scripts.option_classes import Option, plan_problems, read_in

SCHEMA = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
OPTIONS = option_classes.options(SCHEMA)
# Rules declared, and rules made from another (`use rule prepare_data as prepare_subsets with:`).
RULES = {match for path in [ROOT / "Snakefile", *(ROOT / "rules").glob("*.smk")]
         for match in re.findall(r"^(?:rule|checkpoint|use rule \w+ as) (\w+)(?::| with:)", path.read_text(), re.M)}


def test_every_option_is_classified():
    unclassified = [path for path, option in OPTIONS.items() if not option.classified]
    assert not unclassified, f"give each of {unclassified} x-reads or x-operational in the schema"
    assert len(OPTIONS) > 70 and "training.report_to" in OPTIONS and "resources" in OPTIONS


def test_an_option_without_a_class_is_found():
    schema = {"properties": {"a": {"type": "object", "properties": {
        "b": {"type": "integer"}, "c": {"type": "integer", "x-reads": ["split"]},
        "d": {"type": "object", "x-operational": "why", "properties": {"e": {"type": "integer"}}}}}}}
    options = option_classes.options(schema)
    assert list(options) == ["a.b", "a.c", "a.d"]
    assert [path for path, option in options.items() if not option.classified] == ["a.b"]
    both = option_classes.options({"properties": {"f": {"x-reads": ["split"], "x-operational": "why"}}})
    assert not both["f"].classified  # one class, not two
    grid = option_classes.options({"properties": {"g": {"x-grid": ["train_final"], "x-reads": ["summary"]}}})["g"]
    assert grid.classified and (grid.grid, grid.reads) == (("train_final",), ("summary",))
    assert read_in(grid, {})


def test_classes_name_rules_and_options_that_exist():
    for path, option in OPTIONS.items():
        assert set(option.reads) <= RULES, (path, set(option.reads) - RULES)
        assert set(option.grid) <= RULES, (path, set(option.grid) - RULES)
        for case in option.when if isinstance(option.when, list) else [option.when]:
            assert set(case) <= set(OPTIONS), (path, set(case) - set(OPTIONS))


def test_every_option_has_a_planned_change():
    missing = sorted(set(OPTIONS) - set(CHANGES))
    assert not missing, f"add a valid change of {missing} to tests/option_changes.py"
    assert not set(CHANGES) - set(OPTIONS)  # none of an option that is gone


def test_the_operational_options_are_the_schemas():
    operational = {path for path, option in OPTIONS.items() if option.operational}
    assert operational == {"model.trust_remote_code", "data.bad_records", "data.max_skipped_fraction",
                           "tokenize.max_dropped_fraction", "training.gradient_checkpointing", "training.save_steps",
                           "training.report_to", "scoring.max_batch_tokens", "eval.batch_size", "resources",
                           "multi_gpu", "experiments"}
    # and no rule reads them but through Operational (rules/resources.smk): params Snakemake does not record
    rules = "\n".join(path.read_text() for path in (ROOT / "rules").glob("*.smk"))
    for path in operational:
        section, _, key = path.partition(".")
        if key:
            assert not re.search(rf'\["{section}"\]\["{key}"\]', rules), path  # config[..], cfg(wc)[..]


def test_the_grid_options_are_the_schemas():
    """Options whose values add or drop jobs (x-grid): the grid's dimensions and the tasks."""
    assert {path for path, option in OPTIONS.items() if option.grid} == {"methods", "rho", "seeds", "eval.tasks",
                                                                         "eval.report_only"}


@pytest.mark.parametrize("when, config, read", [
    ({}, {}, True),
    ({"data.pool": "embedded"}, {"data": {"pool": "embedded"}}, True),
    ({"data.pool": "embedded"}, {"data": {"pool": "data/pool.jsonl"}}, False),
    ({"data.pool": ["embedded", "number_words"]}, {"data": {"pool": "number_words"}}, True),
    ({"data.pool": None}, {"data": {"pool": None}}, True),
    ({"experiments": {"not": []}}, {"experiments": []}, False),  # a list option against a whole list
    ({"experiments": {"not": []}}, {"experiments": [{}]}, True),
    ({"eval.tasks": "tydiqa"}, {"eval": {"tasks": ["boolq", "tydiqa"]}}, True),  # a list holds it
    ({"eval.tasks": "tydiqa"}, {"eval": {"tasks": ["boolq"]}}, False),
    ({"eval.decodings": {"not": 0}}, {"eval": {"decodings": 0}}, False),
    ({"eval.decodings": {"not": 0}}, {"eval": {"decodings": 8}}, True),
    ({"eval.tasks": "tydiqa", "eval.tydiqa_temperature": {"not": 0}},  # every key of a mapping
     {"eval": {"tasks": ["tydiqa"], "tydiqa_temperature": 0}}, False),
    ([{"data.pool": "embedded"}, {"data.eval": "embedded"}],  # any mapping of a list
     {"data": {"pool": "x.jsonl", "eval": "embedded"}}, True),
    ([{"data.pool": "embedded"}, {"data.eval": "embedded"}], {"data": {"pool": "x.jsonl", "eval": "dir"}}, False),
])
def test_when_an_option_is_read(when, config, read):
    assert read_in(Option("x.y", reads=("split",), when=when), config) is read
    assert read_in(Option("x.y", operational="why", when=when), config) is False


def test_the_default_reads_its_pool_options_and_no_others():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(config, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    conditional = {path for path, option in OPTIONS.items() if option.when}
    assert {path for path in conditional if read_in(OPTIONS[path], config)} == {
        "data.number_words_pool_size", "data.noise_rate", "data.seed", "eval.decodings", "eval.decode_max_new_tokens"}


# Plans Snakemake made on the test experiment (tests/test_workflow.py's per-option dry runs), recorded:
# the rules of the jobs a change planned, those where it entered the plan, and the rules with jobs
# in the changed config's DAG.
TEST_DAG = {"base_model", "prepare_data", "prepare_eval_set", "split", "tokenize", "train_reference", "score_shard",
            "gather_losses", "influence", "partition", "random_partition", "train_final", "self_evolving_round",
            "evaluate", "noise_audit", "summary", "plots", "token_page"}
PLANS = {
    # partition: {scope: per_example}: the top_rho partition and what trains on it; no self-evolving round
    "partition.scope": ({"partition", "train_final", "evaluate", "noise_audit", "summary", "plots", "token_page"},
                        {"partition"}, TEST_DAG),
    # methods: [sft, ignore, forget]: the runs kept stay; the audit and the tables read the whole list
    "methods": ({"noise_audit", "summary", "plots"}, {"noise_audit"}, TEST_DAG - {"random_partition",
                                                                                 "self_evolving_round"}),
}


def test_the_options_classes_agree_with_their_recorded_plans():
    for path, (planned, entered, dag) in PLANS.items():
        assert plan_problems(OPTIONS[path], True, planned, entered, dag) == [], path


def test_an_x_reads_rule_that_the_change_does_not_rerun_is_flagged():
    """A wrong annotation in both directions: a rule named that the change leaves as it is (the
    schema once said a self-evolving round reads partition.scope), and a rule entered but not named."""
    planned, entered, dag = PLANS["partition.scope"]
    wrong = Option("partition.scope", reads=("partition", "self_evolving_round"))
    assert plan_problems(wrong, True, planned, entered, dag) == [
        "partition.scope names ['self_evolving_round'] in x-reads, yet the change reruns none of their jobs"]
    # a rule the config has no jobs of is not asked for (no self-evolving run in the grid)
    assert plan_problems(wrong, True, planned, entered, dag - {"self_evolving_round"}) == []
    narrow = Option("partition.scope", reads=("train_final",))
    assert plan_problems(narrow, True, planned, entered, dag) == [
        "partition.scope reads ['train_final'], yet ['partition'] rerun"]
    # a grid option naming the runs' rules as x-reads: dropping a method leaves the others' jobs as they are
    planned, entered, dag = PLANS["methods"]
    as_reads = Option("methods", reads=("partition", "train_final", "noise_audit", "summary", "plots"))
    assert plan_problems(as_reads, True, planned, entered, dag) == [
        "methods names ['partition', 'train_final'] in x-reads, yet the change reruns none of their jobs"]


def test_an_option_not_read_plans_nothing():
    operational = Option("eval.batch_size", operational="items per forward pass")
    assert plan_problems(operational, False, set(), set(), TEST_DAG) == []
    assert plan_problems(operational, False, {"evaluate"}, {"evaluate"}, TEST_DAG) == [
        "eval.batch_size (items per forward pass) plans ['evaluate']"]
    assert plan_problems(Option("x.y", reads=("split",)), True, set(), set(), TEST_DAG) == [
        "x.y reads ['split'] and plans nothing"]
