# What each job asks the scheduler for, how its Python is launched, and every other operational
# option (schemas/config.schema.yaml: x-operational). Rule groups (cpu, convert, train, score,
# evaluate) take their resources from `resources:` in the config.


def group_resources(group):
    """The `resources:` of a rule group from the config; GPU-less jobs ask for no GPU at all."""
    res = {k: v for k, v in config["resources"][group].items() if v not in (None, "")}
    if not res.get("gpu"):
        res.pop("gpu", None)
        res.pop("gpu_model", None)
    return res


def group_threads(group):
    """The group's cpus_per_task; run locally, at most half the cores, so that two jobs share the
    machine. On 2 cores, two 1-thread jobs side by side took 23% less time per training and 18%
    less per evaluation than one 2-thread job, with identical results (docs/performance.md#threads).
    Cluster jobs, and the job inside a SLURM allocation, keep cpus_per_task; --set-threads wins."""
    threads = config["resources"][group]["cpus_per_task"]
    if workflow.local_exec and not workflow.remote_exec:
        try:
            threads = min(threads, max(1, workflow.cores // 2))
        except WorkflowError:  # no --cores (a dry run): nothing is scheduled
            pass
    return threads


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
    multi_gpu = config["multi_gpu"]
    if config["resources"][group].get("gpu", 0) > 1 and multi_gpu["strategy"] == "deepspeed":
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


def operational(section) -> str:
    """The operational options of a config section (the schema says which) as a stage's options."""
    return cli_options(option_classes.section(OPTIONS, config, section, operational=True), say_false=True)


# Each stage's operational options: `params: operational=OPERATIONAL[stage]`.
OPERATIONAL = {
    "base_model": Operational(operational("model")),
    "prepare_data": Operational(operational("data")),
    "tokenize": Operational(operational("tokenize")),
    "score": Operational(operational("scoring")),
    "evaluate": Operational(operational("eval")),
    "train": Operational(operational("training"), distributed_options("train")),
}
# How a training job's Python starts (python, or accelerate launch over the job's GPUs).
LAUNCH = Operational(python_launcher("train"))
