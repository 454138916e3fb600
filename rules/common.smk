# Path helpers and target lists shared by the rule files.
import re
import shlex

MODEL = config["model"]["name"]
METHODS = ("sft", "ignore", "forget", "random", "rho1", "self_evolving")
LOSS_KINDS = ("ascent", "unlikelihood")
SCHEDULES = ("linear", "constant", "cosine")

# Every rule runs `python -m workflow_scripts.<stage>` from this repository, whatever the workdir.
shell.prefix(f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

# A run's variant names what makes it different: rho, the partition (influence ranked globally,
# per example, or random) and, for the forget loss, its kind and lambda schedule.
VARIANT = r"all|rho[0-9.]+(-per_example|-random|-K\d+)?(-(ascent|unlikelihood)-(linear|constant|cosine))?"

wildcard_constraints:
    model=r"[^/]+",
    method="|".join(METHODS),
    variant=VARIANT,
    partition=r"rho[0-9.]+(-per_example)?",
    seed=r"\d+",
    rho=r"[0-9.]+",
    split=r"reference|train",
    scorer=r"base|reference",
    task=r"[a-z0-9_]+",
    run=rf"base|({'|'.join(METHODS)})/({VARIANT})/seed\d+",
    shard=r"\d+",
    shards=r"\d+",
    round=r"\d+",


def as_list(value):
    return value if isinstance(value, list) else [value]


def rho_label(rho):
    """0.7 -> '0.7', 1.0 -> '1': the rho path component."""
    return f"{float(rho):g}"


def method_variants(method):
    """Every variant of a method in the config's grid."""
    rhos = [f"rho{rho_label(r)}" for r in config["rho"]]
    scopes = ["" if s == "global" else f"-{s}" for s in as_list(config["partition"].get("scope", "global"))]
    objectives = [f"-{loss}-{schedule}" for loss in as_list(config["forget"].get("forget_loss", "ascent"))
                  for schedule in as_list(config["forget"].get("lambda_schedule", "linear"))]
    if method == "sft":
        return ["all"]
    if method == "rho1":
        return rhos
    if method == "ignore":
        return [r + s for r in rhos for s in scopes]
    if method == "forget":
        return [r + s + o for r in rhos for s in scopes for o in objectives]
    if method == "random":
        return [r + "-random" + o for r in rhos for o in objectives]
    if method == "self_evolving":
        return [f"{r}-K{config['self_evolving']['rounds']}{o}" for r in rhos for o in objectives]
    raise ValueError(f"unknown method {method!r}")


def parse_variant(variant):
    """'rho0.7-per_example-ascent-linear' -> {'rho': '0.7', 'scope': 'per_example', 'loss': ..., 'schedule': ...}"""
    parts = variant.split("-")
    return {
        "rho": parts[0][3:] if parts[0].startswith("rho") else None,
        "scope": next((p for p in parts if p in ("per_example", "random")), "global"),
        "loss": next((p for p in parts if p in LOSS_KINDS), None),
        "schedule": next((p for p in parts if p in SCHEDULES), None),
        "rounds": next((int(p[1:]) for p in parts if re.fullmatch(r"K\d+", p)), None),
    }


def final_runs():
    """`{method}/{variant}/seed{seed}` for every trained checkpoint of the grid."""
    return [f"{method}/{variant}/seed{seed}" for seed in config["seeds"] for method in config["methods"]
            for variant in method_variants(method)]


def evaluated_runs():
    return ["base"] + final_runs()


def score_files():
    return expand("results/{model}/{run}/scores/{task}.json",
                  model=MODEL, run=evaluated_runs(), task=config["eval"]["tasks"])


def model_dir(model, run):
    """Where the checkpoint of a run lies (`base`: the converted base model)."""
    if run == "base":
        return f"resources/models/{model}"
    method, variant, _ = run.split("/")
    if method == "self_evolving":
        return f"results/{model}/{run}/round{parse_variant(variant)['rounds']}/model"
    return f"results/{model}/{run}/model"


def checkpoint_dir(wildcards):
    return model_dir(wildcards.model, wildcards.run)


def uses_influence():
    return bool(set(config["methods"]) & {"ignore", "forget", "self_evolving"})


def self_evolving_inputs(wildcards):
    """Round 1 learns from the base model against the reference checkpoint; round k > 1 both
    starts from and is judged against the model of round k - 1."""
    k = int(wildcards.round)
    if k == 1:
        return {"reference": f"results/{wildcards.model}/reference", "start": f"resources/models/{wildcards.model}"}
    previous = f"results/{wildcards.model}/self_evolving/{wildcards.variant}/seed{wildcards.seed}/round{k - 1}/model"
    return {"reference": previous, "start": previous}


def final_training_inputs(wildcards):
    """What a final training run reads besides the base model and its tokens."""
    v = parse_variant(wildcards.variant)
    if wildcards.method in ("ignore", "forget"):
        scope = "" if v["scope"] == "global" else f"-{v['scope']}"
        return {"partition": f"results/{wildcards.model}/rho{v['rho']}{scope}/partition.parquet"}
    if wildcards.method == "random":
        return {"partition": f"results/{wildcards.model}/rho{v['rho']}-random/seed{wildcards.seed}/partition.parquet"}
    if wildcards.method == "rho1":
        return {"reference_losses": f"results/{wildcards.model}/losses/reference.parquet"}
    return {}


def objective_options(wildcards, method=None):
    """The objective's command-line options, from the method and its variant."""
    v = parse_variant(wildcards.variant)
    method = method or wildcards.method
    if method in ("forget", "random", "self_evolving"):
        return cli_options({"forget_loss": v["loss"], "lambda_schedule": v["schedule"],
                            "t_min": config["forget"]["t_min"], "t_max": config["forget"]["t_max"]})
    if method == "rho1":
        return cli_options({"keep": v["rho"]})
    return ""


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
