# Final training: one merged checkpoint per method, variant and seed. Every method of a seed
# shares the optimiser, schedule, steps and data order; only the objective differs.


rule train_final:
    input:
        unpack(final_training_inputs),
        model="resources/models/{model}",
        tokens="results/{model}/tokens/train.parquet",
    output:
        directory("results/{model}/{method}/{variant}/seed{seed}/model"),
    log:
        "logs/{model}/train_final/{method}_{variant}_seed{seed}.log",
    params:
        options=lambda wc: training_options(int(wc.seed)),
        inputs=lambda wc, input: cli_options({k: input.get(k) for k in ("partition", "reference_losses")}),
        objective=objective_options,
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
        "--tokens {input.tokens:q} {params.inputs} {params.objective} --out {output:q} "
        "--work-dir {params.work_dir:q} {params.options} {params.distributed} --threads {threads} > {log:q} 2>&1"


rule self_evolving_round:
    input:
        unpack(self_evolving_inputs),
        base="resources/models/{model}",
        tokens="results/{model}/tokens/train.parquet",
    output:
        model=directory("results/{model}/self_evolving/{variant}/seed{seed}/round{round}/model"),
        influence="results/{model}/self_evolving/{variant}/seed{seed}/round{round}/influence.parquet",
        partition="results/{model}/self_evolving/{variant}/seed{seed}/round{round}/partition.parquet",
        stats="results/{model}/self_evolving/{variant}/seed{seed}/round{round}/partition.json",
    log:
        "logs/{model}/self_evolving/{variant}_seed{seed}_round{round}.log",
    params:
        out="results/{model}/self_evolving/{variant}/seed{seed}/round{round}",
        rho=lambda wc: parse_variant(wc.variant)["rho"],
        rounds=lambda wc: parse_variant(wc.variant)["rounds"],
        objective=lambda wc: objective_options(wc, "self_evolving"),
        options=lambda wc: training_options(int(wc.seed)),
        batch_tokens=config["scoring"].get("max_batch_tokens", 4096),
        work_dir="results/{model}/.trainer/self_evolving/{variant}/seed{seed}/round{round}",
    threads: group_threads("train")
    conda:
        conda_env("train")
    resources:
        **group_resources("train"),
    shell:
        "python -m workflow_scripts.self_evolving --base-model {input.base:q} --reference {input.reference:q} "
        "--start-model {input.start:q} --tokens {input.tokens:q} --round {wildcards.round} --rounds {params.rounds} "
        "--rho {params.rho} {params.objective} --max-batch-tokens {params.batch_tokens} --out {params.out:q} "
        "--work-dir {params.work_dir:q} {params.options} --threads {threads} > {log:q} 2>&1"
