"""The config is validated at start, with the key and the rule broken named; config values
reach the shell quoted, never executed."""

import pytest
import yaml

from conftest import ROOT, snakemake



def dry_run(tmp_path, change):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    change(config)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return snakemake(tmp_path, "--dry-run", timeout=300)  # the local profile prints shell commands


@pytest.mark.parametrize("change,message,key", [
    (lambda c: c.update(rho=[1.5]), "1.5 is greater than the maximum of 1", "['rho'][0]"),
    (lambda c: c.update(methods=["sft", "dpo"]), "'dpo' is not one of ['sft', 'ignore', 'forget', 'random', 'rho1', "
                                                 "'self_evolving']", "['methods'][1]"),
    (lambda c: c["training"].update(learnig_rate=0.1),
     "Additional properties are not allowed ('learnig_rate' was unexpected)", "['training']"),
    (lambda c: c["split"].update(reference_size=0), "0 is less than the minimum of 1", "['split']['reference_size']"),
    (lambda c: c["model"].update(name="my model; rm -rf /"), "does not match '^(?!data$)[A-Za-z0-9][A-Za-z0-9._-]*$'",
     "['model']['name']"),
    (lambda c: c["data"].update(name="data"), "'data' does not match", "['data']['name']"),
    (lambda c: c.update(rho=[1e-13]), "1e-13 is less than the minimum of 1e-12", "['rho'][0]"),
])
def test_bad_config_is_rejected_naming_the_key(tmp_path, change, message, key):
    result = dry_run(tmp_path, change)
    assert result.returncode != 0
    output = result.stdout + result.stderr  # snakemake prints the error on stdout
    assert "Error validating config file" in output
    assert message in output
    assert f"On instance{key}:" in output


def test_config_values_reach_the_shell_quoted(tmp_path):
    source = str(tmp_path / "my models" / "it's; touch pwned")
    result = dry_run(tmp_path, lambda c: c["model"].update(source=source, gguf_file=None))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--source '" + source.replace("'", "'\"'\"'") + "'" in result.stdout


@pytest.mark.parametrize("change,message", [
    (lambda c: c["data"].update(pool=None), "data: give either `pool` or both `reference_pool` and `train_pool`"),
    (lambda c: c["data"].update(reference_pool="a.jsonl", train_pool="b.jsonl"),
     "data: give either `pool` or both `reference_pool` and `train_pool` (with `pool: null`), "
     "got pool, reference_pool"),
    (lambda c: c["eval"].update(tasks=["tydiqa"]),
     "eval task tydiqa with eval.source: local needs eval.tydiqa_dev and eval.tydiqa_train"),
    (lambda c: c["eval"].update(tasks=["truthfulqa_mc2"]),
     "eval task truthfulqa_mc2 with eval.source: local needs eval.truthfulqa"),
    (lambda c: c["eval"].update(tasks=["boolq_short"], source="hub"),
     "eval task boolq_short (BoolQ validation questions whose passage has at most 50 words: the embedded pool's "
     "in-distribution slice) runs only with eval.source: local"),
    (lambda c: c["eval"].update(tasks=["boolq", "hellaswag"]),
     "eval.tasks: unknown task 'hellaswag'; known tasks are boolq, boolq_short, asdiv, logiqa, number_words, "
     "clock_24h, truthfulqa_mc2, truthfulqa_mc1, tydiqa, tydiqa_goldp"),
    (lambda c: c["eval"]["limit"].update(boolk=3), "eval.limit: 'boolk' is not a task; known tasks are boolq,"),
])
def test_what_the_schema_cannot_say_is_checked_before_any_job(tmp_path, change, message):
    result = dry_run(tmp_path, change)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_every_key_of_the_default_config_is_commented():
    """config.yaml says what each value is (the README promises it): every key that holds a value
    has a comment on its line or on the line above it; a section's keys speak for the section."""
    import re

    lines = (ROOT / "config.yaml").read_text().splitlines()
    silent = [line for above, line in zip(["#", *lines], lines)
              if re.match(r"\s*[\w-]+:\s*[^\s#]", line) and "#" not in line and not above.lstrip().startswith("#")]
    assert not silent, silent
    keys = [line for line in lines if re.match(r"\s*[\w-]+:", line)]
    assert len(keys) >= 80  # every key of the file was looked at
