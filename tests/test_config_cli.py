"""`--config` as Snakemake users type it (workflow_scripts/config_coercion.py): each form plans the
jobs its `--configfile` twin plans, a value no type of its place can hold is refused naming its key
and the value as typed before any job, and the reading itself on hand-made schemas."""
import re
import shutil

import pytest
import yaml
from snakemake.cli import parse_config
from snakemake.utils import update_config, validate

from conftest import ROOT, dry_runs, planned_jobs
from workflow_scripts.config_coercion import ConfigCoercionError, coerce, coerce_command_line

SCHEMA_PATH = ROOT / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())

# --config as typed -> the same values in a config file (laid over config.yaml, the embedded default).
FORMS = {
    "rho=0.9": "rho: [0.9]",  # a scalar where the grid takes a list
    "rho=[0.9]": "rho: [0.9]",
    "rho=[0.9,0.5]": "rho: [0.9, 0.5]",
    "seeds=[1,2]": "seeds: [1, 2]",
    "methods=sft": "methods: [sft]",
    "forget={'t_max':0.2}": "forget: {t_max: 0.2}",
    "eval={'limit':{'number_words':50}}": "eval: {limit: {number_words: 50}}",  # an additionalProperties map
    "eval={'limit':{'number_words':0.5}}": "eval: {limit: {number_words: 0.5}}",  # anyOf: a fraction
    "eval={'chat_template':false,'add_bos_token':true}": "eval: {chat_template: false, add_bos_token: true}",
    "training={'max_grad_norm':null,'lora_r':8}": "training: {max_grad_norm: null, lora_r: 8}",  # [number, null]
    "split={'train_size':None}": "split: {train_size: null}",
    "training={'save_steps':200}": "training: {save_steps: 200}",  # oneOf: an integer or the const auto
    "partition={'rule':[top_rho,threshold],'threshold':-0.5}":
        "partition: {rule: [top_rho, threshold], threshold: -0.5}",
    "forget={'forget_loss':npo,'npo_beta':[1,2.5]}": "forget: {forget_loss: npo, npo_beta: [1, 2.5]}",
}

# --config as typed -> what the refusal names: the key (a dotted path) and the value as typed.
REFUSED = {
    "rho=abc": "rho is 'abc' as typed, which is not a number",
    "seeds=[1,two]": "seeds[1] is 'two' as typed, which is not an integer",
    "seeds=[1.5]": "seeds[0] is '1.5' as typed, which is not an integer",
    "forget={'t_max':fast}": "forget.t_max is 'fast' as typed, which is not a number",
    "eval={'limit':{'number_words':many}}": "eval.limit.number_words is 'many' as typed, which is not a number",
    "eval={'chat_template':maybe}": "eval.chat_template is 'maybe' as typed, which is not a boolean",
    "training={'max_grad_norm':none}": "training.max_grad_norm is 'none' as typed, which is not a number or null",
    "eval=boolq": "eval is 'boolq' as typed, which is not a mapping",
}


def jobs(output: str) -> list[str]:
    """The jobs a dry run plans, each its rule, files, wildcards, resources and shell command (not
    its job id, time or reason; not the temporary files a dry run would remove, which follow the
    order of the jobs), in a stable order."""
    text = output.split("Building DAG of jobs...", 1)[-1]
    blocks = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text)[1:]:
        lines = [line for line in block.split("\n\n")[0].splitlines()
                 if re.match(r"(?:local)?rule \w+:|\s+\w+: |Shell command: ", line)
                 and not re.match(r"\s+(jobid|reason):", line)]
        blocks.append("\n".join(lines))
    return sorted(blocks)


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """name -> the dry run of the embedded default with each form, its twin, and each refused form."""
    workdir = tmp_path_factory.mktemp("config-cli")
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    runs = {}
    for i, (typed, twin) in enumerate(FORMS.items()):
        (workdir / f"twin{i}.yaml").write_text(twin + "\n")
        runs[("config", typed)] = ["--config", typed]
        runs[("configfile", typed)] = ["--configfile", workdir / f"twin{i}.yaml"]
    for typed in REFUSED:
        runs[("refused", typed)] = ["--config", typed]
    return dry_runs(workdir, runs)


@pytest.mark.parametrize("typed", FORMS)
def test_a_config_form_plans_as_its_configfile_twin(plans, typed):
    command_line, configfile = plans[("config", typed)], plans[("configfile", typed)]
    assert configfile.returncode == 0, configfile.stdout[-2000:] + configfile.stderr[-2000:]
    assert command_line.returncode == 0, command_line.stdout[-2000:] + command_line.stderr[-2000:]
    assert planned_jobs(command_line) and planned_jobs(command_line) == planned_jobs(configfile)
    assert jobs(command_line.stdout) == jobs(configfile.stdout)


def test_a_section_on_the_command_line_keeps_the_config_files_other_keys(plans):
    """training={'max_grad_norm':null,'lora_r':8}: config.yaml's learning rate stays beside them."""
    output = plans[("config", "training={'max_grad_norm':null,'lora_r':8}")].stdout
    commands = [line for line in output.splitlines() if "workflow_scripts.train_final" in line]
    assert commands and all("--lora-r 8 " in line and "--learning-rate 0.001 " in line for line in commands)
    limits = [line for line in plans[("config", "eval={'limit':{'number_words':50}}")].stdout.splitlines()
              if "workflow_scripts.evaluate" in line]
    assert limits and all(re.search(r"--limit 50\b", line) for line in limits), limits[:1]


@pytest.mark.parametrize("typed", REFUSED)
def test_a_value_that_cannot_be_read_is_refused_naming_key_and_value(plans, typed):
    result = plans[("refused", typed)]
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ConfigCoercionError" in output and "--config: " in output and REFUSED[typed] in output
    assert not planned_jobs(result) and "Building DAG" not in output  # before any job


# ---------------------------------------------------------------- the reading, on hand-made schemas

def obj(**properties):
    return {"type": "object", "additionalProperties": False, "properties": properties}


@pytest.mark.parametrize("schema,typed,read", [
    ({"type": "number"}, "0.2", 0.2),
    ({"type": "number"}, "1", 1),  # as a YAML file reads it: an integer is a number
    ({"type": "number"}, "1e-5", 1e-5),
    ({"type": "integer"}, "7", 7),
    ({"type": "integer"}, 7, 7),  # typed already: unchanged
    ({"type": "boolean"}, "true", True),
    ({"type": "boolean"}, "False", False),
    ({"type": "boolean"}, "off", False),
    ({"type": "string"}, "true", "true"),  # a string where the schema says string
    ({"type": "string"}, "0.2", "0.2"),
    ({"type": ["number", "null"]}, "null", None),
    ({"type": ["number", "null"]}, "None", None),
    ({"type": ["number", "null"]}, "~", None),
    ({"type": ["number", "null"]}, "3.5", 3.5),
    ({"type": ["string", "null"]}, "null", None),  # as YAML: null where null is allowed
    ({"type": ["string", "null"]}, "x", "x"),
    ({"type": "array", "items": {"type": "number"}}, "0.9", [0.9]),  # a one-value grid
    ({"type": "array", "items": {"type": "number"}}, 0.9, [0.9]),
    ({"type": "array", "items": {"type": "integer"}}, ["1", "2"], [1, 2]),
    ({"type": "array", "items": {"type": "string"}}, "sft", ["sft"]),
    ({"oneOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "array", "items": {"type": "string"}}]}, "a", "a"),
    ({"oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]}, "2", 2),
    ({"oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]}, ["1", "2.5"], [1, 2.5]),
    ({"oneOf": [{"type": "integer", "minimum": 0}, {"const": "auto"}]}, "200", 200),
    ({"oneOf": [{"type": "integer", "minimum": 0}, {"const": "auto"}]}, "auto", "auto"),
    ({"anyOf": [{"type": "integer"}, {"type": "number", "exclusiveMaximum": 1}]}, "0.5", 0.5),
    ({"enum": [1, 2, "x"]}, "2", 2),
    ({}, "anything", "anything"),  # no type: YAML's reading, here a string
])
def test_a_value_is_read_by_the_type_at_its_place(schema, typed, read):
    result = coerce(typed, schema)
    assert result == read and type(result) is type(read)


def test_refs_maps_and_sections():
    schema = {
        "definitions": {"count": {"type": "integer", "minimum": 1},
                        "source": {"oneOf": [{"type": "string"}, obj(source={"type": "string"},
                                                                         revision={"type": ["string", "null"]})]}},
        **obj(size={"$ref": "#/definitions/count", "default": 4},
              pool={"oneOf": [{"type": "null"}, {"$ref": "#/definitions/source"}]},
              limit={"type": "object", "additionalProperties": {"anyOf": [{"type": "integer"}, {"type": "number"}]}},
              section=obj(flag={"type": "boolean"}, names={"type": "array", "items": {"type": "string"}}))}
    typed = {"size": "3", "pool": {"source": "a.jsonl", "revision": "null"}, "limit": {"x": "5", "y": "0.25"},
             "section": {"flag": "yes", "names": "one", "unknown": "1"}}
    assert coerce(typed, schema) == {"size": 3, "pool": {"source": "a.jsonl", "revision": None},
                                     "limit": {"x": 5, "y": 0.25},
                                     # an unknown key passes unread: the validator names it
                                     "section": {"flag": True, "names": ["one"], "unknown": "1"}}
    assert coerce({"pool": "null"}, schema) == {"pool": None}
    assert coerce({"pool": "data/pool.jsonl"}, schema) == {"pool": "data/pool.jsonl"}


def test_every_value_that_cannot_be_read_is_named_with_its_path():
    schema = obj(a=obj(b={"type": "number"}), c={"type": "array", "items": {"type": "integer"}},
                 d={"type": "number"}, e=obj())
    with pytest.raises(ConfigCoercionError) as error:
        coerce({"a": {"b": "x"}, "c": ["1", "y"], "d": ["1"], "e": "z"}, schema)
    message = str(error.value)
    assert message.startswith("--config: ")
    for part in ("a.b is 'x' as typed, which is not a number", "c[1] is 'y' as typed, which is not an integer",
                 "d is ['1'] as typed, which is not a number", "e is 'z' as typed, which is not a mapping"):
        assert part in message
    assert isinstance(error.value, ValueError)


def test_reading_twice_changes_nothing():
    typed = parse_config(["rho=0.9", "seeds=[1,2]", "forget={'t_max':0.2,'lambda_schedule':[linear,cosine]}",
                          "eval={'limit':{'number_words':50},'add_bos_token':null}"])
    once = coerce(typed, SCHEMA)
    assert once == {"rho": [0.9], "seeds": [1, 2], "forget": {"t_max": 0.2, "lambda_schedule": ["linear", "cosine"]},
                    "eval": {"limit": {"number_words": 50}, "add_bos_token": None}}
    assert coerce(once, SCHEMA) == once


def test_command_line_sections_merge_into_the_config_files():
    """As Snakemake lays --config over the config files (update_config): a section's other keys stay,
    a list is replaced."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    typed = parse_config(["forget={'t_max':0.2}", "eval={'limit':{'number_words':50}}", "rho=[0.9,0.5]"])
    raw = yaml.safe_load(yaml.safe_dump(config))
    update_config(raw, typed)  # what the Snakefile's config holds before the reading
    coerce_command_line(raw, typed, SCHEMA_PATH)
    assert raw["forget"] == {**config["forget"], "t_max": 0.2}
    assert raw["eval"]["limit"] == {**config["eval"]["limit"], "number_words": 50}
    assert raw["rho"] == [0.9, 0.5]
    assert coerce_command_line(raw, {}, SCHEMA_PATH) == raw  # no --config: nothing read
    validate(raw, str(SCHEMA_PATH), set_default=True)


def leaves(node: dict, path: str = ""):
    for key, child in node.get("properties", {}).items():
        where = f"{path}.{key}" if path else key
        if "properties" in child:
            yield from leaves(child, where)
        elif "default" in child:
            yield where, child["default"]


@pytest.mark.parametrize("path,default", list(leaves(SCHEMA)))
def test_every_default_of_the_schema_typed_on_the_command_line_reads_back(path, default):
    """Each option's default, written as --config writes it inside a section (a string, or a list
    of strings), reads back as the default: every construct of the schema is followed."""
    section, _, key = path.partition(".")
    if isinstance(default, list):
        typed = [str(item) for item in default]
    elif isinstance(default, dict):
        typed = {name: str(value) for name, value in default.items()}
    else:
        typed = "null" if default is None else str(default)
    if key:
        read = coerce({section: {key: typed}}, SCHEMA)[section][key]
    else:  # a top-level option (experiments, published)
        read = coerce({section: typed}, SCHEMA)[section]
    assert read == default and type(read) is type(default)
