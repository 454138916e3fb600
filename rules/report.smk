# What a person reads: the summary tables, the figures and the token page; all are in the
# self-contained `snakemake --report report.html` with the captions in report/.


rule summary:
    input:
        score_files(),
    output:
        csv="results/summary.csv",
        by_method=report("results/summary_by_method.csv", caption="../report/summary.rst", category="Summary"),
        md=report("results/summary.md", caption="../report/summary.rst", category="Summary"),
    log:
        "logs/summary.log",
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.summary --results results --out-csv {output.csv:q} "
        "--out-by-method {output.by_method:q} --out-md {output.md:q} {input:q} > {log:q} 2>&1"


rule plots:
    input:
        by_method="results/summary_by_method.csv",
        influence=f"results/{MODEL}/influence.parquet" if uses_influence() else [],
        partitions=[f"results/{MODEL}/rho{rho_label(r)}/partition.json" for r in config["rho"]]
        if uses_influence() and "global" in as_list(config["partition"].get("scope", "global")) else [],
        models=[model_dir(MODEL, run) for run in final_runs()],
    output:
        scores=report("results/plots/scores.png", caption="../report/scores.rst", category="Figures"),
        influence=report("results/plots/influence.png", caption="../report/influence.rst", category="Figures")
        if uses_influence() else [],
        training=report("results/plots/training.png", caption="../report/training.rst", category="Figures"),
    log:
        "logs/plots.log",
    params:
        influence=lambda wc, input, output: cli_options({"influence": input.influence or None,
                                                          "out_influence": output.influence or None}),
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.plots --by-method {input.by_method:q} {params.influence} "
        "--partitions {input.partitions:q} --models {input.models:q} --out-scores {output.scores:q} "
        "--out-training {output.training:q} > {log:q} 2>&1"


rule token_page:
    input:
        tokens=f"results/{MODEL}/tokens/train.parquet",
        influence=f"results/{MODEL}/influence.parquet",
        partition=f"results/{MODEL}/rho{rho_label(config['rho'][0])}/partition.parquet",
        stats=f"results/{MODEL}/rho{rho_label(config['rho'][0])}/partition.json",
        model=f"resources/models/{MODEL}",
    output:
        report("results/tokens.html", caption="../report/tokens.rst", category="Tokens"),
    log:
        "logs/token_page.log",
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.token_page --tokens {input.tokens:q} --influence {input.influence:q} "
        "--partition {input.partition:q} --model-dir {input.model:q} --out {output:q} > {log:q} 2>&1"
