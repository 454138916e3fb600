# Final training: one merged checkpoint per method, variant (rho, where the method uses one) and seed.


rule train_final:
    input:
        model="resources/models/{model}",
        tokens="results/{model}/tokens/train.parquet",
        partition=partition_input,
    output:
        directory("results/{model}/{method}/{variant}/seed{seed}/model"),
    log:
        "logs/{model}/train_final/{method}_{variant}_seed{seed}.log",
    params:
        options=lambda wc: training_options(int(wc.seed)),
        partition=lambda wc, input: cli_options({"partition": input.partition or None}),
        forget=lambda wc: cli_options(config["forget"]) if wc.method == "forget" else "",
        launch=python_launcher("train"),
        distributed=distributed_options("train"),
        work_dir="results/{model}/.trainer/{method}/{variant}/seed{seed}",
    threads: group_threads("train")
    conda:
        conda_env("train")
    resources:
        **group_resources("train"),
    shell:
        "{params.launch} -m workflow_scripts.train_final --method {wildcards.method} --model-dir {input.model:q} "
        "--tokens {input.tokens:q} {params.partition} {params.forget} --out {output:q} "
        "--work-dir {params.work_dir:q} {params.options} {params.distributed} --threads {threads} > {log:q} 2>&1"
