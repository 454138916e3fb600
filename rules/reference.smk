# The reference checkpoint: plain SFT with LoRA on the reference split, kept as its adapter.


rule train_reference:
    input:
        model="resources/models/{model}",
        tokens="results/{dataset}/{model}/tokens/reference.parquet",
    output:
        model=directory("results/{dataset}/{model}/reference"),
        training_log="results/{dataset}/{model}/reference.training_log.json",
    log:
        "logs/{dataset}/{model}/train_reference.log",
    benchmark:
        "logs/{dataset}/{model}/timings/train_reference.tsv"
    conda:
        conda_env("train")
    threads: group_threads("train")
    resources:
        **group_resources("train"),
    params:
        launch=LAUNCH,
        operational=OPERATIONAL["train"],
        options=lambda wc: training_options(wc, cfg(wc)["reference"]["seed"]),
        tracker=lambda wc: tracker_options(wc, "reference"),
        work_dir="results/{dataset}/{model}/.trainer/reference",
    shell:
        "exec {params.launch} -m workflow_scripts.train_reference --model-dir {input.model:q} --tokens {input.tokens:q} "
        "--out {output.model:q} --out-log {output.training_log:q} --work-dir {params.work_dir:q} {params.options} "
        "{params.operational} {params.tracker} --threads {threads} > {log:q} 2>&1"
