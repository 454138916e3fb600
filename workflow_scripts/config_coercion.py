"""`--config` values read by the types of schemas/config.schema.yaml, before the Snakefile validates.

Why: Snakemake parses a top-level `--config key=value` with int, float, True/False or YAML, but
reads a list or a mapping with YAML's BaseLoader, so every value inside it stays a string
(snakemake#2099): `--config 'rho=[0.9]'` gives `['0.9']`, `"forget={'t_max':0.2}"` gives
`{'t_max': '0.2'}`, and `rho=0.9` gives a bare number where the schema wants a list. Validation
would refuse each of them, although the same values in a `--configfile` plan. So the command
line's values are read again here, each by what the schema says at its place:

- a number where the schema says number, an integer where it says integer, a boolean where it says
  boolean (YAML's words: true/false, yes/no, on/off), null where it allows null and the value is
  null, ~ or None; a string stays a string where the schema allows one;
- a value where the schema takes only a list becomes a one-value list (`rho=0.9` -> `[0.9]`);
- `$ref`, `oneOf`/`anyOf`/`allOf`, type lists (`[number, "null"]`) and `additionalProperties`
  maps (`eval.limit`) are followed.

A value that cannot be read as any type its place allows is refused, naming its key (a dotted
path, `[i]` for a list item) and the value as typed, before any job. Values already typed (a
config given through the API, or a top-level number) pass unchanged, so reading twice changes
nothing. What the schema constrains beyond types (ranges, enums, unknown keys) stays the
validator's.

How they merge: Snakemake lays the command line over the config files key by key, a mapping into
the section it names (`forget={'t_max':0.2}` keeps the other keys of `forget`), a list or scalar
replacing the value (snakemake/utils.py: update_config), as a second `--configfile` does. The
values read here are laid over the merged config the same way, so they land where the strings
were and nothing else moves. Which values came from the command line: Snakemake keeps them apart
from the config files (`workflow.config_settings.config`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

NULL_WORDS = {"null", "Null", "NULL", "~", "None"}
# YAML 1.1's booleans, as a value in a config file reads (PyYAML's safe_load).
TRUE_WORDS = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}
FALSE_WORDS = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}
KIND_WORDS = {"null": "null", "boolean": "a boolean", "integer": "an integer", "number": "a number",
              "string": "a string", "array": "a list", "object": "a mapping"}


class ConfigCoercionError(WorkflowError, ValueError):
    """`--config` values that no type of their place in the schema can hold (a WorkflowError:
    Snakemake prints its message without a traceback)."""


def coerce_command_line(config: dict, command_line: Mapping, schema_path: str | Path) -> dict:
    """Lay `command_line` (the `--config` values), read by the schema at `schema_path`, over
    `config` (the merged config) in place; returns `config`. Raises ConfigCoercionError."""
    if command_line:
        schema = yaml.safe_load(Path(schema_path).read_text())
        merge(config, coerce(dict(command_line), schema))
    return config


def merge(config: dict, values: Mapping) -> None:
    """Snakemake's update_config: mappings merge key by key, anything else replaces."""
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(config.get(key), Mapping):
            merge(config[key], value)
        else:
            config[key] = dict(value) if isinstance(value, Mapping) else value


def coerce(value, schema: dict, root: dict | None = None):
    """`value` read by `schema` (`root`: the schema `$ref`s resolve in; default `schema`).
    Raises ConfigCoercionError listing every value that cannot be read, with its path."""
    problems: list[str] = []
    result = _coerce(value, schema, schema if root is None else root, "", problems)
    if problems:
        raise ConfigCoercionError(
            "--config: " + "; ".join(problems) + " (schemas/config.schema.yaml; "
            "a list is written [a,b], a section {'key':value}, in quotes for the shell)")
    return result


# ---------------------------------------------------------------- the schema's alternatives

def resolve(reference: str, root: dict) -> dict:
    """A local `$ref` (`#/definitions/name`)."""
    if not reference.startswith("#"):
        raise ValueError(f"only local $ref are followed, not {reference!r}")
    node = root
    for part in filter(None, reference[1:].split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def alternatives(schema: dict, root: dict, depth: int = 0) -> list[dict]:
    """The schemas a value at this place may match, each without $ref/oneOf/anyOf/allOf: a `$ref`
    followed (its siblings kept), each branch of oneOf/anyOf with the siblings laid under it, the
    members of allOf merged."""
    if depth > 50:
        raise ValueError("a $ref cycle in the schema")
    if not isinstance(schema, dict):
        return [{}]  # `true`: anything
    schema = dict(schema)
    if "$ref" in schema:
        target = resolve(schema.pop("$ref"), root)
        return [{**branch, **schema} for branch in alternatives(target, root, depth + 1)] if schema else \
            alternatives(target, root, depth + 1)
    if "allOf" in schema:
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        branches = [merged]
        for member in schema["allOf"]:
            branches = [{**branch, **alt} for branch in branches for alt in alternatives(member, root, depth + 1)]
        return [b for branch in branches for b in alternatives(branch, root, depth + 1)]
    for keyword in ("oneOf", "anyOf"):
        if keyword in schema:
            rest = {key: value for key, value in schema.items() if key != keyword}
            return [{**rest, **alt} for branch in schema[keyword] for alt in alternatives(branch, root, depth + 1)]
    return [schema]


def kinds(branch: dict) -> list[str] | None:
    """The JSON types a branch admits, in the schema's order; None: any."""
    if "type" in branch:
        types = branch["type"]
        return list(types) if isinstance(types, list) else [types]
    values = [branch["const"]] if "const" in branch else branch.get("enum")
    if values is not None:
        return list(dict.fromkeys(kind_of(value) for value in values))
    if "properties" in branch or "additionalProperties" in branch or "required" in branch:
        return ["object"]
    if "items" in branch:
        return ["array"]
    return None


def kind_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def admits(branch: dict, value) -> bool:
    allowed = set(kinds(branch) or ["any"])
    if "any" in allowed:
        return True
    kind = kind_of(value)
    if kind == "integer":
        return bool(allowed & {"integer", "number"})
    if kind == "number":
        return "number" in allowed or ("integer" in allowed and math.isfinite(value) and value.is_integer())
    return kind in allowed


# ---------------------------------------------------------------- reading a value

def readings(text: str) -> list:
    """What a string typed on the command line may mean, in the order a YAML file reads it: null,
    a boolean, an integer, a number, then the string itself."""
    out: list = []
    if text in NULL_WORDS:
        out.append(None)
    if text in TRUE_WORDS or text in FALSE_WORDS:
        out.append(text in TRUE_WORDS)
    stripped = text.strip()
    try:
        out.append(int(stripped))
    except ValueError:
        try:
            number = float(stripped)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                out.append(number)
    out.append(text)
    return out


def expected(branches: list[dict]) -> str:
    names = []
    for branch in branches:
        for kind in kinds(branch) or []:
            word = KIND_WORDS.get(kind, kind)
            if word not in names:
                names.append(word)
    if "a number" in names and "an integer" in names:  # every integer is a number
        names.remove("an integer")
    return " or ".join(names) or "a value"


def _coerce(value, schema, root: dict, path: str, problems: list[str]):
    branches = alternatives(schema, root)
    if isinstance(value, Mapping):
        for branch in branches:
            if admits(branch, value):
                return _coerce_mapping(value, branch, root, path, problems)
    elif isinstance(value, (list, tuple)):
        for branch in branches:
            if admits(branch, value):
                return _coerce_items(list(value), branch, root, path, problems)
    else:
        candidates = readings(value) if isinstance(value, str) else [value]
        for candidate in candidates:
            if any(admits(branch, candidate) for branch in branches):
                return candidate
        # a scalar where only a list fits: a one-value list (a grid of one)
        for branch in branches:
            if "array" in (kinds(branch) or []):
                return _coerce_items([value], branch, root, path, problems, wrapped=True)
    typed = "empty" if value is None else repr(value)
    problems.append(f"{path or 'the config'} is {typed} as typed, which is not {expected(branches)}")
    return value


def _coerce_mapping(value: Mapping, branch: dict, root: dict, path: str, problems: list[str]) -> dict:
    properties = branch.get("properties", {})
    extra = branch.get("additionalProperties", True)
    out = {}
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key in properties:
            out[key] = _coerce(item, properties[key], root, where, problems)
        elif isinstance(extra, dict):
            out[key] = _coerce(item, extra, root, where, problems)
        else:  # an unknown key: the validator names it
            out[key] = item
    return out


def _coerce_items(items: list, branch: dict, root: dict, path: str, problems: list[str],
                  wrapped: bool = False) -> list:
    schema = branch.get("items", True)
    if isinstance(schema, list):  # tuple validation (older drafts): no such list here
        schema = True
    return [_coerce(item, schema, root, path if wrapped else f"{path}[{i}]", problems)
            for i, item in enumerate(items)]
