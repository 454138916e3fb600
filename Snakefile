# The Forgetting fine-tuning pipeline (arXiv 2508.04329): see README.md.
#   snakemake --profile profiles/local          # the embedded default, on this machine
#   snakemake --profile profiles/local -n       # what would run
#   snakemake --profile slurm                   # on a SLURM cluster (profiles/slurm)
from snakemake.utils import min_version, validate

from workflow_scripts.config_coercion import coerce_command_line

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


# `--config` values inside a list or a mapping arrive as strings: read them by the schema's types.
coerce_command_line(config, workflow.config_settings.config, f"{workflow.basedir}/schemas/config.schema.yaml")
# Fills in the schema's defaults: they are the only defaults (rules read config[...] directly).
validate(config, "schemas/config.schema.yaml", set_default=True)


include: "rules/common.smk"


# Names are single path components; `data` is the data folder of an experiment, never a model.
# `run` is loose on purpose: run_of() refuses a label outside the grammar with a message that names
# the allowed variants, which a strict constraint would turn into a bare "no rule to produce".
wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    model=r"(?!data/)[A-Za-z0-9][A-Za-z0-9._-]*",
    run=r"base|[a-z_0-9]+/[^/]+/seed[^/]+",
    partition=f"(?:{runs.PARTITION_PATTERN})",
    rho=runs.RHO_PATTERN,
    seed=runs.SEED_PATTERN,
    split=r"reference|train",
    scorer=r"base|reference",
    task=tasks.NAME_PATTERN,  # the catalogue's names and lm-eval's (a folder's tasks)
    eval_set="|".join([*tasks.WHEEL_EVAL_SETS, *tasks.GENERATED_EVAL_SETS]),
    shard=r"\d+",
    shards=r"\d+",
    round=r"[1-9]\d*",


include: "rules/resources.smk"
include: "rules/fetch.smk"
include: "rules/data.smk"
include: "rules/reference.smk"
include: "rules/influence.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


# Every experiment of the config (one, or each entry of its `experiments:` list): checkpoints,
# summary, figures and token page; the models of a data setting side by side where it has several.
rule all:
    input:
        [target for c in EXPERIMENTS.values() for target in experiment_targets(c)],
        models_tables(),


onstart:
    write_run_config()
