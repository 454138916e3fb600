# What a person reads, per experiment (results/{dataset}/{model}/): the summary tables, the
# figures and the token page; all are in the self-contained `snakemake --report report.html`
# with the captions in report/. Each rule's inputs are its experiment's ({dataset}/{model}: `cfg`).
EXPERIMENT_DIR = "results/{dataset}/{model}"


rule noise_audit:
    input:
        influence=f"{EXPERIMENT_DIR}/influence.parquet",
        data="results/{dataset}/data/train.jsonl",
        model="resources/models/{model}",
        partitions=lambda wc: list(audit_partitions(cfg(wc)).values()),
    output:
        json=f"{EXPERIMENT_DIR}/noise_audit.json",
        figure=report(
            f"{EXPERIMENT_DIR}/plots/noise_audit.png", caption="../report/noise_audit.rst", category="Figures"
        ),
    log:
        "logs/{dataset}/{model}/noise_audit.log",
    benchmark:
        "logs/{dataset}/{model}/timings/noise_audit.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        partitions=lambda wc: [f"{label}={path}" for label, path in audit_partitions(cfg(wc)).items()],
    shell:
        "python -m workflow_scripts.noise_audit --influence {input.influence:q} --data {input.data:q} "
        "--model-dir {input.model:q} "
        "--labelled-partition {params.partitions:q} --out-json {output.json:q} --out-figure {output.figure:q} > {log:q} 2>&1"


rule summary:
    input:
        scores=lambda wc: score_files(cfg(wc)),
        decodings=lambda wc: decoding_files(cfg(wc)),
        noise_audit=lambda wc: f"{experiment_of(wc)}/noise_audit.json" if uses_influence(cfg(wc)) else [],
        # The estimated share's decisions (forget, or abstain and why), from its partition.json.
        partition_stats=lambda wc: [
            f"{experiment_of(wc)}/{label}/partition.json"
            for label in dict.fromkeys(run.partition for run in grid_of(cfg(wc)) if run.rule == runs.ESTIMATED_SHARE)
        ],
        split="results/{dataset}/data/split.json",
        skipped="results/{dataset}/data/skipped_records.jsonl",
        training_logs=lambda wc: training_logs(cfg(wc)),
    output:
        csv=f"{EXPERIMENT_DIR}/summary.csv",
        by_method=report(f"{EXPERIMENT_DIR}/summary_by_method.csv", caption="../report/summary.rst", category="Summary"),
        md=report(f"{EXPERIMENT_DIR}/summary.md", caption="../report/summary.rst", category="Summary"),
        timings=f"{EXPERIMENT_DIR}/timings.csv",
    log:
        "logs/{dataset}/{model}/summary.log",
    benchmark:
        "logs/{dataset}/{model}/timings/summary.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        # Every job of the experiment has finished when its scores are in. Its timings (Snakemake's
        # `benchmark:` files) lie in timings/{rule}[/...].tsv below these folders (the data's, the
        # model's, the experiment's).
        timings=lambda wc: [
            "logs/timings",
            f"logs/{wc.model}/timings",
            f"logs/{wc.dataset}/timings",
            f"logs/{wc.dataset}/{wc.model}/timings",
        ],
        noise_audit=lambda wc, input: cli_options({"noise_audit": input.noise_audit or None}),
        decodings=lambda wc, input: cli_words("--decodings", input.decodings),
        partition_stats=lambda wc, input: cli_words("--partition-stats", input.partition_stats),
        report_only=lambda wc: cli_words("--report-only", cfg(wc)["eval"]["report_only"]),
    shell:
        "python -m workflow_scripts.summary --out-csv {output.csv:q} --out-by-method {output.by_method:q} "
        "--out-md {output.md:q} --out-timings {output.timings:q} --timing-dirs {params.timings:q} "
        "{params.noise_audit} {params.decodings} {params.partition_stats} {params.report_only} --split-summary {input.split:q} --skipped {input.skipped:q} "
        "--training-logs {input.training_logs:q} --scores {input.scores:q} > {log:q} 2>&1"


rule plots:
    input:
        by_method=f"{EXPERIMENT_DIR}/summary_by_method.csv",
        influence=lambda wc: f"{experiment_of(wc)}/influence.parquet" if uses_influence(cfg(wc)) else [],
        partitions=lambda wc: global_partitions(cfg(wc)),
        training_logs=lambda wc: training_logs(cfg(wc)),
    output:
        scores=report(f"{EXPERIMENT_DIR}/plots/scores.png", caption="../report/scores.rst", category="Figures"),
        # A grid without the influence gets a figure that says so: an experiment's outputs are the same files.
        influence=report(f"{EXPERIMENT_DIR}/plots/influence.png", caption="../report/influence.rst", category="Figures"),
        training=report(f"{EXPERIMENT_DIR}/plots/training.png", caption="../report/training.rst", category="Figures"),
    log:
        "logs/{dataset}/{model}/plots.log",
    benchmark:
        "logs/{dataset}/{model}/timings/plots.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        influence=lambda wc, input: cli_options({"influence": input.influence or None}),
        training_logs=lambda wc: [f"{run.label}={path}" for run, path in zip(grid_of(cfg(wc)), training_logs(cfg(wc)))],
    shell:
        "python -m workflow_scripts.plots --by-method {input.by_method:q} {params.influence} --out-influence {output.influence:q} "
        "--partition-stats {input.partitions:q} --training-logs {params.training_logs:q} --out-scores {output.scores:q} "
        "--out-training {output.training:q} > {log:q} 2>&1"


rule token_page:
    input:
        tokens=f"{EXPERIMENT_DIR}/tokens/train.parquet",
        influence=f"{EXPERIMENT_DIR}/influence.parquet",
        partition=lambda wc: f"{shown_partition(cfg(wc))}/partition.parquet",
        stats=lambda wc: f"{shown_partition(cfg(wc))}/partition.json",
        model="resources/models/{model}",
    output:
        report(f"{EXPERIMENT_DIR}/tokens.html", caption="../report/tokens.rst", category="Tokens"),
    log:
        "logs/{dataset}/{model}/token_page.log",
    benchmark:
        "logs/{dataset}/{model}/timings/token_page.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.token_page --tokens {input.tokens:q} --influence {input.influence:q} "
        "--partition {input.partition:q} --model-dir {input.model:q} --out {output:q} > {log:q} 2>&1"


# Where several models share a data setting (the paper's six rows): their methods side by side,
# beside the numbers the config says were published for them.
rule models_table:
    input:
        lambda wc: [f"{experiment_dir(c)}/summary_by_method.csv" for c in experiments_with_data(wc.dataset)],
    output:
        md=report("results/{dataset}/models.md", caption="../report/models.rst", category="Summary"),
        csv="results/{dataset}/models.csv",
    log:
        "logs/{dataset}/models_table.log",
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        published=lambda wc: json.dumps({c["model"]["name"]: c["published"] for c in experiments_with_data(wc.dataset)}),
    shell:
        "python -m workflow_scripts.models_table --summaries {input:q} --published {params.published:q} "
        "--out-md {output.md:q} --out-csv {output.csv:q} > {log:q} 2>&1"
