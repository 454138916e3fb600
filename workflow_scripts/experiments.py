"""The experiments one invocation plans: the config itself, or every overlay of its `experiments:` list.

An experiment is a data setting and a model, `results/{data.name}/{model.name}/`. A config that lists
experiments lays each entry over the rest of the config (dicts merge key by key, anything else is
replaced: as Snakemake layers --configfile files) and validates the result as a whole config, so that
one `snakemake` plans all of them as one DAG; the rules find a job's experiment by the `{dataset}` and
`{model}` wildcards its paths already carry (rules/common.smk, `cfg`).

An entry is a mapping (the overlay itself), a YAML file's path (read from the working directory, as
--configfile reads it) or a list of them laid in order: `[configs/map/noise0.3.yaml,
configs/map/oracle.yaml]`.

What experiments share is planned once: a data setting's folder (`results/{dataset}/data/`) by every
experiment with that data name, a base model (`resources/models/{model}/`) by every experiment with
that model name; so those experiments must agree on what builds the shared folder. Entries with the
same data and model name are one experiment whose runs are the union of their grids (the map's
oracle cells and extra seeds beside its main grid), so they must agree on every option but the grid's
own (methods, seeds and the options a run's path names: runs.CONFIG_KEYS). Each refusal names the
entries, before any job.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import yaml

from workflow_scripts.runs import CONFIG_KEYS

# What builds the folders experiments share, keyed by the name that makes the folder.
SHARED = {"data": ("data", "split"), "model": ("model",)}
# The grid's own options: entries of one experiment folder may set them differently.
GRID_PATHS = [("methods",), ("seeds",), *CONFIG_KEYS.values()]


class ExperimentError(ValueError):
    """A config whose experiments cannot be planned together; the message names them."""


def merge(base: dict, overlay: dict) -> dict:
    """`overlay` laid over `base`: nested dicts merge, other values replace (a copy; neither changes)."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def describe(index: int, overlay: dict) -> str:
    """How an error names an experiment: its place in the list and what the overlay sets of its names."""
    names = [f"{section}.name {overlay[section]['name']}" for section in ("data", "model")
             if isinstance(overlay.get(section), dict) and "name" in overlay[section]]
    return f"experiments[{index}]" + (f" ({', '.join(names)})" if names else "")


def read_overlay(entry, name: str) -> dict:
    """An entry's overlay: a mapping, a YAML file, or a list of them laid in order."""
    if isinstance(entry, dict):
        return entry
    if isinstance(entry, str):
        path = Path(entry)
        if not path.is_file():
            raise ExperimentError(f"{name}: no config file {entry} (paths are read from the working directory)")
        overlay = yaml.safe_load(path.read_text()) or {}
        if not isinstance(overlay, dict):
            raise ExperimentError(f"{name}: {entry} holds no mapping of config sections")
        return overlay
    if isinstance(entry, list) and entry:
        layered: dict = {}
        for part in entry:
            layered = merge(layered, read_overlay(part, name))
        return layered
    raise ExperimentError(f"{name}: an experiment is a mapping of config sections, a config file or a list of "
                          f"them, got {entry!r}")


def grid_free(config: dict) -> dict:
    """The config without the grid's own options: what entries of one experiment folder share."""
    out = copy.deepcopy(config)
    for path in GRID_PATHS:
        *parents, last = path
        section = out
        for key in parents:
            section = section.get(key, {})
        section.pop(last, None)
    return out


def expand(config: dict, validate: Callable[[dict], None]) -> dict[tuple[str, str], list[dict]]:
    """(data name, model name) -> the validated configs of that experiment's entries (one, or several
    whose grids it unites), in the config's order. `validate` checks a whole config (and fills its
    defaults) or raises."""
    entries = config.get("experiments") or []
    shared = {key: value for key, value in config.items() if key != "experiments"}
    if not entries:
        return {(shared["data"]["name"], shared["model"]["name"]): [shared]}
    found: dict[tuple[str, str], list[dict]] = {}
    where: dict[tuple[str, str], str] = {}
    for index, entry in enumerate(entries):
        overlay = read_overlay(entry, f"experiments[{index}]")
        name = describe(index, overlay)
        if "experiments" in overlay:
            raise ExperimentError(f"{name}: an experiment cannot list experiments of its own")
        merged = merge(shared, overlay)
        try:
            validate(merged)
        except Exception as err:  # the validator's own error, with the experiment named
            raise ExperimentError(f"{name}: {err}") from None
        key = (merged["data"]["name"], merged["model"]["name"])
        if key in found:
            first = found[key][0]
            differ = sorted(differences(grid_free(first), grid_free(merged)))
            if differ:
                raise ExperimentError(
                    f"{where[key]} and {name} are both results/{key[0]}/{key[1]}/ but set {', '.join(differ)} "
                    "differently: one folder holds one experiment (entries of one folder may differ in their grids "
                    "only); give one of them another data.name or model.name")
            found[key].append(merged)
        else:
            found[key], where[key] = [merged], name
    check_shared({key: configs[0] for key, configs in found.items()}, where)
    return found


def differences(one: dict, other: dict, prefix: str = "") -> list[str]:
    """The dotted paths whose values differ between two configs."""
    out = []
    for key in dict.fromkeys([*one, *other]):
        a, b = one.get(key), other.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def check_shared(found: dict[tuple[str, str], dict], where: dict[tuple[str, str], str]) -> None:
    """Experiments that share a data setting's or a base model's folder build it the same way."""
    for by, sections in SHARED.items():
        first: dict[str, tuple[tuple[str, str], dict]] = {}
        for key, config in found.items():
            name = key[0] if by == "data" else key[1]
            mine = {section: config[section] for section in sections}
            if name not in first:
                first[name] = (key, mine)
                continue
            other_key, theirs = first[name]
            differ = differences(theirs, mine)
            if differ:
                folder = f"results/{name}/data/" if by == "data" else f"resources/models/{name}/"
                raise ExperimentError(
                    f"{where[other_key]} and {where[key]} share {folder} ({by}.name {name}) but set "
                    f"{', '.join(differ)} differently: give one of them another {by}.name")


def lookup(experiments: dict[tuple[str, str], dict], dataset: str | None = None, model: str | None = None) -> dict:
    """The config of the experiment with this data and model name; with one of them, the first
    experiment that has it (they agree on what the shared folder is made from); with neither, the first."""
    for (data_name, model_name), config in experiments.items():
        if dataset in (None, data_name) and model in (None, model_name):
            return config
    known = ", ".join(f"results/{d}/{m}/" for d, m in experiments)
    asked = "/".join(part for part in (dataset, model) if part is not None)
    raise ExperimentError(f"{asked}: no experiment of this config has it (its experiments: {known})")
