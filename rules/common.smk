# Path helpers and target lists shared by the rule files.
import shlex
import sys

MODEL = config["model"]["name"]
METHODS_WITH_RHO = ("ignore", "forget")

# Every rule runs `python -m workflow_scripts.<stage>` from this repository, whatever the workdir.
shell.prefix(f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

wildcard_constraints:
    model=r"[^/]+",
    method=r"sft|ignore|forget",
    variant=r"all|rho[0-9.]+",
    seed=r"\d+",
    rho=r"[0-9.]+",
    split=r"reference|train",
    scorer=r"base|reference",
    task=r"[a-z0-9_]+",
    run=r"base|(sft|ignore|forget)/(all|rho[0-9.]+)/seed\d+",
    shard=r"\d+",
    shards=r"\d+",


def rho_label(rho):
    """0.7 -> '0.7', 1.0 -> '1': the rho path component."""
    return f"{float(rho):g}"


def final_runs():
    """`{method}/{variant}/seed{seed}` for every trained checkpoint of the grid."""
    runs = []
    for seed in config["seeds"]:
        for method in config["methods"]:
            variants = [f"rho{rho_label(r)}" for r in config["rho"]] if method in METHODS_WITH_RHO else ["all"]
            runs += [f"{method}/{variant}/seed{seed}" for variant in variants]
    return runs


def evaluated_runs():
    return ["base"] + final_runs()


def score_files():
    return expand("results/{model}/{run}/scores/{task}.json",
                  model=MODEL, run=evaluated_runs(), task=config["eval"]["tasks"])


def checkpoint_dir(wildcards):
    if wildcards.run == "base":
        return f"resources/models/{wildcards.model}"
    return f"results/{wildcards.model}/{wildcards.run}/model"


def partition_input(wildcards):
    if wildcards.method not in METHODS_WITH_RHO:
        return []
    return f"results/{wildcards.model}/{wildcards.variant}/partition.parquet"


def group_resources(group):
    """The `resources:` of a rule group from the config; GPU-less jobs ask for no GPU at all."""
    res = {k: v for k, v in config["resources"][group].items() if v not in (None, "")}
    if not res.get("gpu"):
        res.pop("gpu", None)
        res.pop("gpu_model", None)
    return res


def conda_env(group):
    """For --use-conda: the CUDA environment for groups that get GPUs, else the CPU one."""
    return "../envs/cuda.yaml" if config["resources"][group].get("gpu") else "../envs/cpu.yaml"


def python_launcher(group):
    """`python`, or `accelerate launch` with one process per GPU when a job gets several (DDP;
    DeepSpeed ZeRO when multi_gpu.strategy says so: see distributed_options)."""
    gpus = config["resources"][group].get("gpu", 0)
    if gpus <= 1:
        return "python"
    return f"accelerate launch --multi_gpu --num_machines 1 --num_processes {gpus}"


def distributed_options(group):
    multi_gpu = config.get("multi_gpu", {})
    if config["resources"][group].get("gpu", 0) > 1 and multi_gpu.get("strategy") == "deepspeed":
        return cli_options({"deepspeed": multi_gpu.get("deepspeed_config", "envs/deepspeed_zero2.json")})
    return ""


def group_threads(group):
    return config["resources"][group]["cpus_per_task"]


def score_shards(wildcards):
    """The shard tables gathered into one loss table; `scoring.shards` jobs score in parallel."""
    n = config["scoring"].get("shards", 1)
    return [f"results/{wildcards.model}/losses/{wildcards.scorer}.shards/{i}of{n}.parquet" for i in range(n)]


def cli_options(options):
    """{'learning_rate': 1e-4, 'bf16': True} -> "--learning-rate 0.0001 --bf16", shell-quoted."""
    words = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value not in (None, False):
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)


def training_options(seed):
    return cli_options({**config["training"], "seed": seed, "dtype": config["model"].get("dtype", "float32")})
