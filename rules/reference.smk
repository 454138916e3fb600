# The reference checkpoint: plain SFT with LoRA on the reference split, merged.


rule train_reference:
    input:
        model="resources/models/{model}",
        tokens="results/{model}/tokens/reference.parquet",
    output:
        directory("results/{model}/reference"),
    log:
        "logs/{model}/train_reference.log",
    params:
        options=training_options(config["reference"].get("seed", 0)),
        launch=python_launcher("train"),
        distributed=distributed_options("train"),
        work_dir="results/{model}/.trainer/reference",
    threads: group_threads("train")
    conda:
        conda_env("train")
    resources:
        **group_resources("train"),
    shell:
        "{params.launch} -m workflow_scripts.train_reference --model-dir {input.model:q} --tokens {input.tokens:q} "
        "--out {output:q} --work-dir {params.work_dir:q} {params.options} {params.distributed} --threads {threads} > {log:q} 2>&1"
