# What a person reads, per experiment (results/{dataset}/{model}/): the summary tables, the
# figures and the token page; all are in the self-contained `snakemake --report report.html`
# with the captions in report/. These rules build this config's experiment only.


rule noise_audit:
    input:
        influence=f"{EXPERIMENT}/influence.parquet",
        data=f"results/{DATASET}/data/train.jsonl",
        model=f"resources/models/{MODEL}",
        partitions=list(audit_partitions().values()),
    output:
        json=f"{EXPERIMENT}/noise_audit.json",
        figure=report(f"{EXPERIMENT}/plots/noise_audit.png", caption="../report/noise_audit.rst", category="Figures"),
    log:
        f"logs/{DATASET}/{MODEL}/noise_audit.log",
    benchmark:
        f"logs/{DATASET}/{MODEL}/timings/noise_audit.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        partitions=[f"{label}={path}" for label, path in audit_partitions().items()],
    shell:
        "python -m workflow_scripts.noise_audit --influence {input.influence:q} --data {input.data:q} "
        "--model-dir {input.model:q} "
        "--labelled-partition {params.partitions:q} --out-json {output.json:q} --out-figure {output.figure:q} > {log:q} 2>&1"


rule summary:
    input:
        scores=score_files(),
        decodings=decoding_files(),
        noise_audit=rules.noise_audit.output.json if uses_influence() else [],
        # The estimated share's decisions (forget, or abstain and why), from its partition.json.
        partition_stats=[
            f"{EXPERIMENT}/{label}/partition.json"
            for label in dict.fromkeys(run.partition for run in GRID if run.rule == runs.ESTIMATED_SHARE)
        ],
        split=f"results/{DATASET}/data/split.json",
        skipped=f"results/{DATASET}/data/skipped_records.jsonl",
        training_logs=[training_log_path(run) for run in GRID],
    output:
        csv=f"{EXPERIMENT}/summary.csv",
        by_method=report(f"{EXPERIMENT}/summary_by_method.csv", caption="../report/summary.rst", category="Summary"),
        md=report(f"{EXPERIMENT}/summary.md", caption="../report/summary.rst", category="Summary"),
        timings=f"{EXPERIMENT}/timings.csv",
    log:
        f"logs/{DATASET}/{MODEL}/summary.log",
    benchmark:
        f"logs/{DATASET}/{MODEL}/timings/summary.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        # Every job of the experiment has finished when its scores are in. Its timings (Snakemake's
        # `benchmark:` files) lie in timings/{rule}[/...].tsv below these folders (the data's, the
        # model's, the experiment's).
        timings=["logs/timings", f"logs/{MODEL}/timings", f"logs/{DATASET}/timings", f"logs/{DATASET}/{MODEL}/timings"],
        noise_audit=lambda wc, input: cli_options({"noise_audit": input.noise_audit or None}),
        decodings=lambda wc, input: (
            " ".join(["--decodings", *map(shlex.quote, input.decodings)]) if input.decodings else ""
        ),
        partition_stats=lambda wc, input: (
            " ".join(["--partition-stats", *map(shlex.quote, input.partition_stats)]) if input.partition_stats else ""
        ),
        report_only=" ".join(["--report-only", *config["eval"]["report_only"]]) if config["eval"]["report_only"] else "",
    shell:
        "python -m workflow_scripts.summary --out-csv {output.csv:q} --out-by-method {output.by_method:q} "
        "--out-md {output.md:q} --out-timings {output.timings:q} --timing-dirs {params.timings:q} "
        "{params.noise_audit} {params.decodings} {params.partition_stats} {params.report_only} --split-summary {input.split:q} --skipped {input.skipped:q} "
        "--training-logs {input.training_logs:q} --scores {input.scores:q} > {log:q} 2>&1"


rule plots:
    input:
        by_method=f"{EXPERIMENT}/summary_by_method.csv",
        influence=f"{EXPERIMENT}/influence.parquet" if uses_influence() else [],
        partitions=global_partitions(),
        training_logs=[training_log_path(run) for run in GRID],
    output:
        scores=report(f"{EXPERIMENT}/plots/scores.png", caption="../report/scores.rst", category="Figures"),
        influence=(
            report(f"{EXPERIMENT}/plots/influence.png", caption="../report/influence.rst", category="Figures")
            if uses_influence()
            else []
        ),
        training=report(f"{EXPERIMENT}/plots/training.png", caption="../report/training.rst", category="Figures"),
    log:
        f"logs/{DATASET}/{MODEL}/plots.log",
    benchmark:
        f"logs/{DATASET}/{MODEL}/timings/plots.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        influence=lambda wc, input, output: cli_options(
            {"influence": input.influence or None, "out_influence": output.influence or None}
        ),
        training_logs=[f"{run.label}={training_log_path(run)}" for run in GRID],
    shell:
        "python -m workflow_scripts.plots --by-method {input.by_method:q} {params.influence} "
        "--partition-stats {input.partitions:q} --training-logs {params.training_logs:q} --out-scores {output.scores:q} "
        "--out-training {output.training:q} > {log:q} 2>&1"


rule token_page:
    input:
        tokens=f"{EXPERIMENT}/tokens/train.parquet",
        influence=f"{EXPERIMENT}/influence.parquet",
        partition=f"{shown_partition()}/partition.parquet",
        stats=f"{shown_partition()}/partition.json",
        model=f"resources/models/{MODEL}",
    output:
        report(f"{EXPERIMENT}/tokens.html", caption="../report/tokens.rst", category="Tokens"),
    log:
        f"logs/{DATASET}/{MODEL}/token_page.log",
    benchmark:
        f"logs/{DATASET}/{MODEL}/timings/token_page.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.token_page --tokens {input.tokens:q} --influence {input.influence:q} "
        "--partition {input.partition:q} --model-dir {input.model:q} --out {output:q} > {log:q} 2>&1"
