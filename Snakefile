# The Forgetting fine-tuning pipeline (arXiv 2508.04329): see README.md and ../shared/DESIGN.md.
#   snakemake --profile profiles/local          # the embedded default, on this machine
#   snakemake --profile profiles/local -n       # what would run
from snakemake.utils import min_version, validate

min_version("9.0")

configfile: "config.yaml"


report: "report/workflow.rst"


validate(config, "schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/reference.smk"
include: "rules/influence.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/summary.csv",
        "results/summary_by_method.csv",
        "results/summary.md",
        rules.plots.output,
        "results/tokens.html" if uses_influence() else [],
