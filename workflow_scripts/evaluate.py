"""Score one checkpoint on one evaluation task: lm-evaluation-harness tasks (0-shot) or TyDi QA GoldP.

What each task is, which sources run it and what it reads: the catalogue, workflow_scripts/tasks.py.
Two sources of task data (`--source`):

- `local`: offline. Our tasks (boolq, boolq_short, asdiv, logiqa, number_words, clock_24h) use their YAML in
  `workflow_scripts/eval_tasks/` (copies of lm-eval's own, or variants of them that say why), reading
  the local JSONL given by `--data` (workflow_scripts/eval_sets.py's formats). truthfulqa_mc1/mc2 use
  lm-eval's stock YAML and utils unchanged, only pointed at a local JSONL of rows shaped like the
  Hub's `truthful_qa` "multiple_choice" validation split. Nothing may reach the Hugging Face Hub.
- `hub`: lm-eval's stock tasks by name (and the `tydiqa_goldp` tag of 9 languages), their datasets
  fetched from the Hub by the default TaskManager; HF_TOKEN is read from the environment by
  huggingface_hub and never logged.

A user's own task (`--include-path FOLDER`, the config's eval.include_path) is lm-eval's task of
that name in the folder, found and built by lm-eval's own `TaskManager(include_path=FOLDER)` as
`lm_eval --include_path FOLDER` builds it, reading the files its YAML names (relative to the working
directory), offline under either source; 0-shot like every task here.

`--metric` names the headline metric (one lm-eval reports for the task); without it, the
catalogue's, or for a folder's task the first of its metric_list.

`--task tydiqa` is this repository's TyDi QA GoldP as the paper ran it (open-instruct's 1-shot
protocol, `workflow_scripts/tydiqa.py`), read from the official JSON files `--tydiqa-dev` and
`--tydiqa-train` under either source. The model is always a local directory and is loaded offline.

    python -m workflow_scripts.evaluate --source local --task boolq --data results/data/eval/boolq.jsonl \
        --model-dir DIR --model-name smollm2 --data-name embedded --run base \
        --limit 50 --batch-size 8 --threads 2 --dtype float32 --out results/.../scores/boolq.json

Output: one JSON per checkpoint and task, written atomically:
    {"task", "metric", "score", "stderr", "n", "metrics": {...}, "model", "data", "run", "source",
     "model_dir", "num_fewshot", "limit", "lm_eval_version", "device", "wall_seconds",
     "items": {"doc_id": [...], "score": [...]}}
`items` holds the headline metric of every item (null for TyDi QA and multi-language tags), so
that the summary can compare two checkpoints item by item.
TyDi QA adds "n_per_language", "demonstrations" and "predictions"; tydiqa_goldp adds "n_per_language".
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from workflow_scripts import provenance, tasks
from workflow_scripts.constants import HUB_OFFLINE_SWITCHES
from workflow_scripts.eval_sets import read_eval_set
from workflow_scripts.files import InputError, run_main, setup_logging, write_json

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# lm-eval's own task directory, found without importing lm_eval (which reads the offline switches).
LM_EVAL_TASKS_DIR = Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks"
# lm-eval's tydiqa_goldp subtasks are named by language code; our TyDi QA by language name.
GOLDP_LANGUAGES = {"ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian",
                   "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"}

NUM_FEWSHOT = 0

log = logging.getLogger("evaluate")


class HubFetchError(InputError):
    """A benchmark dataset could not be fetched from the Hub; the message says which and why."""


def configure_environment(source: str) -> None:
    """Force offline mode for the local source only.

    Must run before datasets, huggingface_hub or lm_eval are imported: they read these variables
    once, at import. The hub source leaves them as the caller set them: in the workflow every job
    runs offline (rules/common.smk) and reads the data sets that the local rule fetch_eval_data put
    in HF_DATASETS_CACHE; run by hand, it downloads them. The model is kept offline by
    `local_files_only` either way.
    """
    if source == "local":
        for key in HUB_OFFLINE_SWITCHES:
            os.environ[key] = "1"


# ----------------------------------------------------------------------------- options

def parse_limit(text: str) -> int | float:
    """lm-eval's limit: a fraction of each task in (0, 1) or a count >= 1 (every item: no --limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1) or a count >= 1, got {text!r}")
    if value == 0:
        raise argparse.ArgumentTypeError("0: leave --limit out to score every item")
    if value < 1:
        return value
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"a count must be a whole number, got {text!r}")
    return int(value)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def check_task(name: str, source: str = "local", include_path=None) -> tasks.Task:
    """The catalogue's task `name`, if `source` can run it (with its YAML in place), or the task of
    that name in the folders `include_path` (a folder or a list)."""
    try:
        own = tasks.folder_tasks(include_path) if name not in tasks.TASKS else {}
        task = tasks.get(name, source, own)
    except ValueError as err:
        raise InputError(str(err)) from None
    if task.folder:
        errors = tasks.folder_task_errors(task)
        if errors:
            raise InputError("; ".join(errors))
        return task
    path = task.local_yaml(LM_EVAL_TASKS_DIR)
    if source == "local" and task.protocol == "lm_eval" and not path.is_file():
        raise InputError(f"task {name!r}: missing task config {path}")
    return task


# ----------------------------------------------------------------------------- local data

def check_data(name: str, data: str | os.PathLike | None) -> int:
    """Validate the local eval JSONL of task `name`; return its number of rows."""
    if data is None:
        raise InputError(f"task {name!r} from the local source needs --data (its eval JSONL)")
    return len(read_eval_set(data, tasks.TASKS[name].record_format, what=name))


def task_config(name: str, data: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The lm-eval task config dict for task `name`, reading its evaluation split from the local JSONL `data`.

    The YAML is read with lm-eval's own loader, so `!function` references resolve against the
    YAML's directory (ours, or lm-eval's for a stock task) exactly as lm-eval would.
    """
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(check_task(name, "local").local_yaml(LM_EVAL_TASKS_DIR), resolve_func=True)
    split = "validation" if cfg.get("validation_split") and not cfg.get("test_split") else "test"
    dataset_kwargs: dict[str, Any] = {"data_files": {split: str(Path(data).resolve())}}
    if cache_dir is not None:
        dataset_kwargs["cache_dir"] = str(cache_dir)
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs=dataset_kwargs)
    for key in ("training_split", "validation_split", "test_split", "fewshot_split"):
        cfg.pop(key, None)
    cfg[f"{split}_split"] = split
    return cfg


def task_manager(include_path=None):
    """A TaskManager that indexes none of lm-eval's built-in tasks (ours come in as dicts), only
    the folder of a user's own task, when given."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=False)


def build_folder_task(task: tasks.Task):
    """A folder's task as lm-eval builds it by name from that folder, its data loaded; a YAML or a
    data file lm-eval cannot read is refused naming the YAML."""
    try:
        return task_manager(task.folder).load([task.name])["tasks"][task.name]
    except Exception as err:  # datasets and lm-eval raise many kinds for a bad file or template
        raise InputError(f"task {task.name} ({task.folder_yaml}, data {', '.join(task.data_files)}): lm-eval could "
                         f"not build it: {type(err).__name__}: {err}") from err


def build_task(task: str, data: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
               include_path=None):
    """The lm-eval Task object built from our config (a folder's task: from its folder), with its
    data loaded (for inspection/tests)."""
    found = check_task(task, "local", include_path)
    if found.folder:
        return build_folder_task(found)
    return task_manager().load([task_config(task, data, cache_dir)])["tasks"][task]


# ----------------------------------------------------------------------------- hub data

def _redact(text: str) -> str:
    token = os.environ.get("HF_TOKEN")
    return text.replace(token, "<HF_TOKEN>") if token else text


def leaf_tasks(manager, task: str) -> list[str]:
    """The task itself, or the member tasks of a tag such as tydiqa_goldp."""
    import lm_eval
    from lm_eval.tasks._index import Kind

    entry = manager.task_index.get(task)
    if entry is None:
        raise InputError(f"lm-eval {lm_eval.__version__} has no task {task!r}")
    return sorted(entry.tags) if entry.kind is Kind.TAG else [task]


def fetch_stock_task(manager, task: str):
    """lm-eval's stock Task `task` with its dataset downloaded; a failure names the dataset and why."""
    cfg = manager.task_index[task].cfg or {}
    what = f"dataset {cfg.get('dataset_path')!r}"
    if cfg.get("dataset_name"):
        what += f" (config {cfg['dataset_name']!r})"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    log.info("task %s: fetching %s from %s (HF_TOKEN %s)", task, what, endpoint,
             "set" if os.environ.get("HF_TOKEN") else "not set")
    try:
        return manager.load([task])["tasks"][task]
    except Exception as err:  # datasets raises many kinds (connection, gated repo, missing config)
        offline = ("; offline (HF_DATASETS_OFFLINE is set): the workflow's fetch_eval_data rule fills the "
                   "cache on the submit host" if os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("", "0") else "")
        raise HubFetchError(f"task {task}: could not fetch {what} from the Hugging Face Hub at {endpoint}: "
                            f"{type(err).__name__}: {_redact(str(err))}{offline}") from err


# ----------------------------------------------------------------------------- results

def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def collect_metrics(task_results: dict[str, Any]) -> dict[str, float | None]:
    """Every "metric,filter" entry of lm-eval's per-task results, named by the metric alone where
    the task has one filter (",none" for the catalogue's; a folder's task may name its one filter
    otherwise) and "metric,filter" where it has several (tasks.folder_tasks names them so).

    Bookkeeping entries (alias, name, sample_len) are left out; a value lm-eval could not compute
    (e.g. "N/A" for the stderr of a single item) becomes None.
    """
    entries = {key: value for key, value in task_results.items() if "," in key}
    filters = {key.split(",", 1)[1] for key in entries}
    return {(key.split(",", 1)[0] if len(filters) == 1 else key): _number(value) for key, value in entries.items()}


def _n_effective(out: dict, task: str, fallback: int) -> int:
    return int(out.get("n-samples", {}).get(task, {}).get("effective", fallback))


def language_metrics(out: dict, leaves: list[str]) -> tuple[dict[str, float | None], dict[str, int]]:
    """tydiqa_goldp: each language's f1 and exact_match, and their unweighted means over the languages.

    The stderr of a mean of independent per-language means is sqrt(sum of squares) / languages.
    """
    metrics: dict[str, float | None] = {}
    n_per_language = {}
    per_language = {}
    for leaf in leaves:
        lang = GOLDP_LANGUAGES.get(leaf.rsplit("_", 1)[1], leaf)
        per_language[lang] = collect_metrics(out["results"][leaf])
        n_per_language[lang] = _n_effective(out, leaf, 0)
    for name in ("f1", "exact_match"):
        values = [m.get(name) for m in per_language.values()]
        metrics.update({f"{name}_{lang}": m.get(name) for lang, m in per_language.items()})
        metrics[name] = None if None in values else sum(values) / len(values)
        stderrs = [m.get(f"{name}_stderr") for m in per_language.values()]
        metrics[f"{name}_stderr"] = None if None in stderrs else math.sqrt(sum(s * s for s in stderrs)) / len(stderrs)
    return metrics, n_per_language


def item_scores(samples: list[dict], metric: str) -> dict[str, list] | None:
    """The headline metric of each evaluated item, by lm-eval's doc_id (ascending); None if the
    samples do not carry it. A "metric,filter" headline reads that filter's samples."""
    name, _, wanted = metric.partition(",")
    pairs = sorted((sample["doc_id"], _number(sample.get(name))) for sample in samples
                   if not wanted or sample.get("filter") == wanted)
    if not pairs or any(value is None for _, value in pairs):
        return None
    return {"doc_id": [doc_id for doc_id, _ in pairs], "score": [value for _, value in pairs]}


def run_lm_eval(model_dir: Path, task: tasks.Task, source: str, data, limit, batch_size: int, dtype: str,
                device: str, cache_dir, chat_template: bool = False,
                add_bos_token: bool | None = None, metric: str | None = None) -> dict[str, Any]:
    """Run lm-eval on one task (or tag); return the score record's task part. `add_bos_token`: None
    leaves it to lm-eval (0.4.13: to the tokenizer, so Llama prompts get a BOS), True or False says.
    `metric`: the headline, when not the task's own."""
    import lm_eval

    from workflow_scripts.modeling import load_causal_lm

    extra: dict[str, Any] = {}
    name = task.name if source == "local" or task.folder else task.hub_task
    if task.folder:  # under either source: its data are the files its YAML names
        built = build_folder_task(task)
        log.info("task %s: %d items from %s (%s)", task.name, len(built.eval_docs), ", ".join(task.data_files),
                 task.folder_yaml)
        manager, requests, leaves = task_manager(task.folder), [built], [name]
    elif source == "local":
        rows = check_data(task.name, data)
        log.info("task %s: %d rows in %s", task.name, rows, data)
        manager, requests, leaves = task_manager(), [task_config(task.name, data, cache_dir)], [name]
    else:
        from lm_eval.tasks import TaskManager

        manager = TaskManager()
        leaves = leaf_tasks(manager, name)
        requests = [fetch_stock_task(manager, leaf) for leaf in leaves]
    log.info("task %s (%s)%s%s; model %s on %s (%s); BOS: %s", task.name, source, f", limit {limit}" if limit else "",
             ", in the model's chat template" if chat_template else "", model_dir, device, dtype,
             {None: "the tokenizer's choice", True: "added", False: "not added"}[add_bos_token])
    # The model object, not its directory: a run's checkpoint is an adapter that load_causal_lm merges
    # into its base model; the tokenizer is read by lm-eval as before (with add_bos_token).
    model_args = {"pretrained": load_causal_lm(str(model_dir), dtype, place=False).to(device),
                  "tokenizer": str(model_dir), "trust_remote_code": False}
    if chat_template:  # score the answer's tokens only, never the template's own (answer_scoring.py)
        from workflow_scripts.answer_scoring import MODEL_NAME as model
    else:
        model = "hf"
    if add_bos_token is not None:
        model_args["add_bos_token"] = add_bos_token

    start = time.perf_counter()
    out = lm_eval.simple_evaluate(
        model=model,
        # The model is a local directory: never look it up on the Hub, whatever the source.
        model_args=model_args,
        tasks=requests,
        task_manager=manager,
        num_fewshot=NUM_FEWSHOT,
        limit=limit,
        apply_chat_template=chat_template,
        batch_size=batch_size,
        device=device,
        # Per-item scores: the summary pairs two checkpoints item by item to size its intervals.
        log_samples=True,
    )
    wall = time.perf_counter() - start
    if out is None:  # only on non-zero ranks of a distributed run
        raise RuntimeError("lm-eval returned no results")

    headline = metric or task.metric
    if leaves == [name]:
        metrics = collect_metrics(out["results"][name])
        n = _n_effective(out, name, 0)
        extra["items"] = item_scores(out.get("samples", {}).get(name, []), headline)
    else:
        metrics, extra["n_per_language"] = language_metrics(out, leaves)
        n = sum(extra["n_per_language"].values())
    if metrics.get(headline) is None:
        reported = [key for key, value in metrics.items() if value is not None and not key.endswith("_stderr")]
        raise InputError(f"lm-eval reported no {headline!r} for {task.name}; it reported {', '.join(reported)}"
                         + (" (eval.metric names the headline)" if metric else f": {out['results']}"))
    log.info("task %s: %s = %.4f over %d items in %.1f s", task.name, headline, metrics[headline], n, wall)
    return {
        "task": task.name,
        "metric": headline,
        "score": metrics[headline],
        "stderr": metrics.get(f"{headline}_stderr"),
        "n": n,
        "metrics": metrics,
        "num_fewshot": NUM_FEWSHOT,
        "chat_template": chat_template,
        "add_bos_token": add_bos_token,
        "wall_seconds": round(wall, 3),
        **extra,
    }


def check_chat_template(model_dir: Path) -> None:
    from transformers import AutoTokenizer

    if not AutoTokenizer.from_pretrained(model_dir, local_files_only=True).chat_template:
        raise InputError(f"{model_dir}: the tokenizer has no chat template, so its prompts cannot be put in one; "
                         "score the raw prompts (eval.chat_template: false) or give the model a chat template")


def evaluate(model_dir: str | os.PathLike, task: str, source: str = "local", data: str | os.PathLike | None = None,
             limit: int | float | None = None, batch_size: int = 8, dtype: str = "float32",
             device: str | None = None, cache_dir: str | os.PathLike | None = None, chat_template: bool = False,
             add_bos_token: bool | None = None, tydiqa_dev: str | os.PathLike | None = None,
             tydiqa_train: str | os.PathLike | None = None, decoding=None, include_path=None,
             metric: str | None = None) -> dict[str, Any]:
    """Score one task; return the record without the run's names (not written)."""
    import torch
    import lm_eval

    from workflow_scripts.modeling import check_model_dir

    task = check_task(task, source, include_path)
    if metric and task.protocol != "lm_eval":
        raise InputError(f"--metric: task {task.name} is scored by its own protocol, whose headline is {task.metric}")
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if task.protocol == "tydiqa":
        from workflow_scripts.tydiqa import evaluate_tydiqa

        if tydiqa_dev is None or tydiqa_train is None:
            raise InputError("task 'tydiqa' needs --tydiqa-dev and --tydiqa-train (the official GoldP v1.1 JSON files)")
        record = evaluate_tydiqa(model_dir, tydiqa_dev, tydiqa_train, limit, batch_size, dtype, device, decoding)
    else:
        if chat_template:
            check_chat_template(model_dir)
        record = run_lm_eval(model_dir, task, source, data, limit, batch_size, dtype, device, cache_dir,
                             chat_template, add_bos_token, metric)
    return {**record, "model_dir": str(model_dir), "limit": limit, "source": source,
            "lm_eval_version": lm_eval.__version__, "device": device}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="local transformers checkpoint directory")
    parser.add_argument("--model-name", required=True, help="the model's name in the config (recorded as 'model')")
    parser.add_argument("--data-name", required=True, help="the training data's name (recorded as 'data')")
    parser.add_argument("--run", required=True, help="'base' or METHOD/VARIANT/seedN (recorded verbatim as 'run')")
    parser.add_argument("--source", required=True, choices=tasks.SOURCES,
                        help="local: offline, data from files; hub: lm-eval's stock tasks, data from the Hub")
    parser.add_argument("--task", required=True,
                        help=" | ".join(f"{source}: {', '.join(tasks.names_for(source))}" for source in tasks.SOURCES))
    parser.add_argument("--out", required=True, help="score JSON to write")
    parser.add_argument("--limit", default=None, type=parse_limit,
                        help="items per task (per language for TyDi QA): a count >= 1 or a fraction in (0, 1); "
                             "default: all")
    parser.add_argument("--batch-size", required=True, type=positive_int)
    parser.add_argument("--threads", required=True, type=int, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--dtype", required=True, choices=["float32", "bfloat16", "float16", "auto"])
    parser.add_argument("--data", default=None, help="local source, lm-eval tasks: the task's eval JSONL")
    parser.add_argument("--include-path", default=None,
                        help="a folder of lm-eval task YAMLs that holds --task (the config's eval.include_path)")
    parser.add_argument("--metric", default=None,
                        help="the headline metric, one lm-eval reports for the task; default: the catalogue's, or "
                             "the first of a folder's task's metric_list")
    parser.add_argument("--tydiqa-dev", default=None, help="task tydiqa: tydiqa-goldp-v1.1-dev.json")
    parser.add_argument("--tydiqa-train", default=None, help="task tydiqa: tydiqa-goldp-v1.1-train.json")
    parser.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=False,
                        help="lm-eval tasks: put each prompt in the model's chat template (lm-eval's "
                             "apply_chat_template), as the pipeline fine-tunes; TyDi QA keeps its own protocol")
    parser.add_argument("--add-bos-token", action=argparse.BooleanOptionalAction, default=None,
                        help="lm-eval tasks: prepend the BOS token (true) or not (false); default: lm-eval's "
                             "choice (0.4.13: the tokenizer's; the paper's lm-eval added none)")
    parser.add_argument("--tydiqa-temperature", type=float, default=0.0,
                        help="task tydiqa: 0 decodes greedily; above 0 samples at that temperature (the authors: 1)")
    parser.add_argument("--tydiqa-samples", type=positive_int, default=1,
                        help="task tydiqa, sampling: answers drawn per question (the score averages them)")
    parser.add_argument("--tydiqa-seed", type=int, default=42, help="task tydiqa, sampling: the torch seed")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--cache-dir", default=None, help="datasets cache directory (default: HF_DATASETS_CACHE)")
    return parser.parse_args(argv)


def unused_options(args: argparse.Namespace) -> list[str]:
    """Task-specific options given to a task that does not read them (a wiring mistake, most likely)."""
    task = tasks.TASKS.get(args.task)  # None: a folder's task, whose YAML names its data
    uses_data = args.source == "local" and task is not None and task.protocol == "lm_eval"
    tydiqa = task is not None and task.protocol == "tydiqa"
    files = task.files if task is not None else ()
    given = {"--data": args.data is not None and not uses_data,
             "--include-path": args.include_path is not None and task is not None,
             "--tydiqa-dev": args.tydiqa_dev is not None and "tydiqa_dev" not in files,
             "--tydiqa-train": args.tydiqa_train is not None and "tydiqa_train" not in files,
             "--add-bos-token": args.add_bos_token is not None and tydiqa,
             "--tydiqa-temperature": args.tydiqa_temperature != 0.0 and not tydiqa,
             "--tydiqa-samples": args.tydiqa_samples != 1 and not tydiqa}
    return [option for option, unused in given.items() if unused]


def main(argv=None) -> dict[str, Any]:
    setup_logging("evaluate")
    args = parse_args(argv)
    # A folder's task reads local files under either source (decided before lm_eval is imported).
    configure_environment("local" if args.task not in tasks.TASKS else args.source)
    check_task(args.task, args.source, args.include_path)
    for option in unused_options(args):
        log.warning("%s is ignored by task %s from the %s source", option, args.task, args.source)
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    from workflow_scripts.tydiqa import Decoding

    record = evaluate(args.model_dir, args.task, args.source, args.data, limit=args.limit,
                      batch_size=args.batch_size, dtype=args.dtype, device=args.device, cache_dir=args.cache_dir,
                      chat_template=args.chat_template,
                      add_bos_token=args.add_bos_token,
                      tydiqa_dev=args.tydiqa_dev, tydiqa_train=args.tydiqa_train,
                      decoding=Decoding(args.tydiqa_temperature, args.tydiqa_samples, args.tydiqa_seed),
                      include_path=args.include_path, metric=args.metric)
    record = {**record, "model": args.model_name, "data": args.data_name, "run": args.run,
              "provenance": provenance.record()}
    write_json(args.out, record)
    log.info("wrote %s (total wall time %.1f s)", args.out, time.perf_counter() - start)
    return record


if __name__ == "__main__":
    run_main(main)
