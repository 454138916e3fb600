"""What each config option is, as schemas/config.schema.yaml says beside it.

- `x-reads: [rule, ...]`: the option changes the artifacts of those rules; changing it reruns their
  jobs and what follows them, nothing else. `x-when: {path: value, ...}` narrows it to the configs
  where those rules read it at all (an option of one pool, one task, one partition rule): elsewhere
  a change reruns nothing. A list of values means any of them (for a list option: it holds one of
  them), `{not: value}` any other value, and a list of such mappings any of the mappings.
- `x-grid: [rule, ...]`: the option's values are a dimension of the DAG (a run's method, rho or
  seed; a task): each value has jobs of those rules, so a value added plans its jobs and a value
  dropped drops them, while the jobs of the values kept stay as they are. A grid option names the
  rules that read its whole list (the tables) as x-reads.
- `x-operational: why`: performance, trackers, resources, checks that only accept or refuse. The
  rules pass these as params Snakemake does not record (rules/resources.smk, Operational), so a
  change reruns nothing.

An annotation on a section covers every key below it (`resources`). tests/test_option_classes.py
refuses a schema leaf with neither, and tests/test_workflow.py checks every one against the plan
Snakemake makes on the test experiment (`plan_problems`).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Option:
    path: str  # section.key, as in the config
    reads: tuple[str, ...] = ()  # the rules whose artifacts it changes (empty: operational)
    operational: str | None = None  # why it changes no artifact
    when: dict | list = field(default_factory=dict)
    grid: tuple[str, ...] = ()  # the rules whose jobs its values add or drop

    @property
    def classified(self) -> bool:
        return bool(self.reads or self.grid) != (self.operational is not None)


def options(schema: dict) -> dict[str, Option]:
    """path -> Option for every leaf of the schema (or annotated section); an unclassified leaf is
    an Option with neither `reads` nor `operational`."""
    found = {}

    def walk(node: dict, path: str) -> None:
        annotated = any(f"x-{name}" in node for name in ("reads", "grid", "operational"))
        if path and (annotated or "properties" not in node):
            found[path] = Option(path, tuple(node.get("x-reads", ())), node.get("x-operational"),
                                 node.get("x-when", {}), tuple(node.get("x-grid", ())))
            return
        for key, child in node["properties"].items():
            walk(child, f"{path}.{key}" if path else key)

    walk(schema, "")
    return found


def value_at(config: dict, path: str):
    for key in path.split("."):
        config = config[key]
    return config


def matches(value, wanted) -> bool:
    if isinstance(wanted, dict) and set(wanted) == {"not"}:
        return not matches(value, wanted["not"])
    if value == wanted:  # a list option compared with a whole list (experiments: [])
        return True
    wanted = wanted if isinstance(wanted, list) else [wanted]
    values = value if isinstance(value, list) else [value]
    return any(v in wanted for v in values)


def read_in(option: Option, config: dict) -> bool:
    """Whether some rule reads the option under this (validated) config."""
    cases = option.when if isinstance(option.when, list) else [option.when]
    return bool(option.reads or option.grid) and any(
        all(matches(value_at(config, path), wanted) for path, wanted in case.items()) for case in cases)


def plan_problems(option: Option, read: bool, planned: set[str], entered: set[str], dag: set[str]) -> list[str]:
    """How the plan Snakemake made for a change of `option` alone contradicts the option's class
    (none: it agrees). `read`: whether the changed config reads the option (`read_in`); `planned`: the
    rules of the planned jobs; `entered`: those of the planned jobs that no other planned job feeds,
    where the change enters the plan; `dag`: the rules that have jobs in the changed config's DAG
    (`planned` itself will do where every x-reads rule is planned). Both directions: a rule entered
    that the class does not name, and a rule the class names (x-reads) with jobs in the DAG that the
    change leaves as they are."""
    if not read:
        return [f"{option.path} ({option.operational or 'not read here'}) plans {sorted(planned)}"] if planned else []
    if not planned:
        return [f"{option.path} reads {list(option.reads)} and plans nothing"]
    problems = []
    if outside := entered - set(option.reads) - set(option.grid):
        problems.append(f"{option.path} reads {list(option.reads)}, yet {sorted(outside)} rerun")
    if unplanned := (set(option.reads) & dag) - planned:
        problems.append(f"{option.path} names {sorted(unplanned)} in x-reads, yet the change reruns none of their jobs")
    return problems


def section(schema_options: dict[str, Option], config: dict, name: str, *, operational: bool) -> dict:
    """The options of a config section that are (or are not) operational, with their values."""
    return {key: value for key, value in config[name].items()
            if (schema_options[f"{name}.{key}"].operational is not None) == operational}
