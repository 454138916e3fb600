# What each job asks the scheduler for, how its Python is launched, and every other operational
# option (schemas/config.schema.yaml: x-operational). Rule groups (cpu, convert, train, score,
# evaluate) take their resources from `resources:` in the config of the job's experiment.


def group_resources(group):
    """The `resources:` of a group of rules, each a function of the job's wildcards, its experiment's
    (experiments may ask for other GPUs and memory). GPU-less jobs ask for no GPU at all; a key an
    experiment leaves out is not asked for (None)."""
    keys = dict.fromkeys(key for c in EXPERIMENTS.values() for key in c["resources"][group])
    return {key: lambda wc, key=key: resource(wc, group, key) for key in keys}


def resource(wildcards, group, key):
    res = cfg(wildcards)["resources"][group]
    if res.get(key) in (None, "") or (key in ("gpu", "gpu_model") and not res.get("gpu")):
        return None
    return res[key]


def group_threads(group):
    """The group's cpus_per_task; run locally, at most half the cores, so that two jobs share the
    machine. On 2 cores, two 1-thread jobs side by side took 23% less time per training and 18%
    less per evaluation than one 2-thread job, with identical results (docs/performance.md#threads).
    Cluster jobs, and the job inside a SLURM allocation, keep cpus_per_task; --set-threads wins."""

    def threads(wildcards):
        count = cfg(wildcards)["resources"][group]["cpus_per_task"]
        if workflow.local_exec and not workflow.remote_exec:
            try:
                count = min(count, max(1, workflow.cores // 2))
            except WorkflowError:  # no --cores (a dry run): nothing is scheduled
                pass
        return count

    return threads


def gpus(wildcards, group) -> int:
    return cfg(wildcards)["resources"][group].get("gpu") or 0


def conda_env(group):
    """For --use-conda: the CUDA environment for groups that get GPUs, else the CPU one."""
    return lambda wc: "../envs/cuda.yaml" if gpus(wc, group) else "../envs/cpu.yaml"


def python_launcher(wildcards, group):
    """`python`, or `accelerate launch` with one process per GPU when a job gets several (DDP;
    DeepSpeed ZeRO when multi_gpu.strategy says so: see distributed_options)."""
    count = gpus(wildcards, group)
    if count <= 1:
        return "python"
    return f"accelerate launch --multi_gpu --num_machines 1 --num_processes {count}"


def distributed_options(wildcards, group):
    multi_gpu = cfg(wildcards)["multi_gpu"]
    if gpus(wildcards, group) > 1 and multi_gpu["strategy"] == "deepspeed":
        return cli_options({"deepspeed": multi_gpu["deepspeed_config"]})
    return ""


class Operational:
    """Command-line options that change no artifact (x-operational in the schema), as a `params`
    value: Snakemake writes it into the command (str) but records only params of Python's own types
    for its rerun triggers, so a change of these reruns nothing. That each operational option reruns
    nothing and every other one reruns what reads it: tests/test_workflow.py, one change per option."""

    def __init__(self, *parts: str):
        self.options = " ".join(filter(None, parts))

    def __str__(self):
        return self.options


def operational(wildcards, section) -> str:
    """The operational options of a config section (the schema says which) as a stage's options."""
    values = option_classes.section(OPTIONS, cfg(wildcards), section, operational=True)
    return cli_options(values, say_false=True)


def operational_params(*sections, group=None):
    """A stage's operational options as a params function: its experiment's, as an Operational."""
    return lambda wc: Operational(
        *(operational(wc, name) for name in sections), distributed_options(wc, group) if group else ""
    )


# Each stage's operational options: `params: operational=OPERATIONAL[stage]`.
OPERATIONAL = {
    "base_model": operational_params("model"),
    "prepare_data": operational_params("data"),
    "tokenize": operational_params("tokenize"),
    "score": operational_params("scoring"),
    "evaluate": operational_params("eval"),
    "train": operational_params("training", group="train"),
}
# How a training job's Python starts (python, or accelerate launch over the job's GPUs).
LAUNCH = lambda wc: Operational(python_launcher(wc, "train"))
