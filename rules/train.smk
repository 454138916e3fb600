# Final training: one checkpoint (a LoRA adapter) per run of the grid (runs.py: method, variant, seed).
# Every method of a seed shares the optimiser, schedule, steps and data order; only the
# objective differs. Training commands `exec` Python, so that SLURM's warning signal before the
# time limit reaches the trainer (which saves its state and exits for the retry to resume), not a
# shell that would die of it first.


rule train_final:
    input:
        unpack(final_training_inputs),
        model="resources/models/{model}",
        tokens="results/{dataset}/{model}/tokens/train.parquet",
    output:
        model=directory("results/{dataset}/{model}/{run}/model"),
        training_log="results/{dataset}/{model}/{run}/training_log.json",
    log:
        "logs/{dataset}/{model}/train_final/{run}.log",
    benchmark:
        "logs/{dataset}/{model}/timings/train_final/{run}.tsv"
    conda:
        conda_env("train")
    threads: group_threads("train")
    resources:
        **group_resources("train"),
    params:
        launch=LAUNCH,
        operational=OPERATIONAL["train"],
        method=lambda wc: run_of(wc).method,
        options=lambda wc: training_options(wc),
        inputs=lambda wc, input: cli_options(
            {k: input.get(k) for k in ("partition", "reference_losses", "base_losses")}
        ),
        objective=objective_options,
        tracker=lambda wc: tracker_options(wc, wc.run),
        work_dir="results/{dataset}/{model}/.trainer/{run}",
    shell:
        "exec {params.launch} -m workflow_scripts.train_final --method {params.method} --model-dir {input.model:q} "
        "--tokens {input.tokens:q} {params.inputs} {params.objective} --out {output.model:q} "
        "--out-log {output.training_log:q} --work-dir {params.work_dir:q} {params.options} {params.operational} {params.tracker} "
        "--threads {threads} > {log:q} 2>&1"


# A round's folder below its run (runs.ROUND_DIR); its wildcard is {round}.
ROUND = f"results/{{dataset}}/{{model}}/{{run}}/{runs.ROUND_DIR}"


rule self_evolving_round:
    input:
        unpack(round_inputs),
        base="resources/models/{model}",
        tokens="results/{dataset}/{model}/tokens/train.parquet",
    output:
        model=directory(f"{ROUND}/model"),
        training_log=f"{ROUND}/training_log.json",
        influence=f"{ROUND}/influence.parquet",
        partition=f"{ROUND}/partition.parquet",
        stats=f"{ROUND}/partition.json",
    log:
        f"logs/{{dataset}}/{{model}}/self_evolving_round/{{run}}/{runs.ROUND_DIR}.log",
    benchmark:
        f"logs/{{dataset}}/{{model}}/timings/self_evolving_round/{{run}}/{runs.ROUND_DIR}.tsv"
    conda:
        conda_env("train")
    threads: group_threads("train")
    resources:
        **group_resources("train"),
    params:
        launch=LAUNCH,
        operational_score=OPERATIONAL["score"],
        operational_train=OPERATIONAL["train"],
        out=ROUND,
        rho=lambda wc: run_of(wc, in_rounds=True).rho,
        rounds=lambda wc: run_of(wc, in_rounds=True).rounds,
        score=lambda wc: run_of(wc, in_rounds=True).score,
        objective=objective_options,
        options=lambda wc: training_options(wc),
        tracker=lambda wc: tracker_options(wc, f"{wc.run}/{runs.ROUND_DIR.format(round=wc.round)}"),
        work_dir=f"results/{{dataset}}/{{model}}/.trainer/{{run}}/{runs.ROUND_DIR}",
    shell:
        "exec {params.launch} -m workflow_scripts.self_evolving --base-model {input.base:q} --reference-model {input.reference_model:q} "
        "--start-model {input.start:q} --tokens {input.tokens:q} --round {wildcards.round} --rounds {params.rounds} "
        "--rho {params.rho} --score {params.score} {params.objective} {params.operational_score} --out {params.out:q} "
        "--out-log {output.training_log:q} --work-dir {params.work_dir:q} {params.options} {params.operational_train} {params.tracker} "
        "--threads {threads} > {log:q} 2>&1"


# A merged copy of an adapter, for a user who deploys one model directory: only on demand (a target
# of its own, `merged_checkpoints`, or the path), never read by the workflow, which merges in memory.
rule merge_checkpoint:
    input:
        unpack(merge_inputs),
    output:
        directory("results/{dataset}/{model}/{adapter}.merged"),
    log:
        "logs/{dataset}/{model}/merge_checkpoint/{adapter}.log",
    wildcard_constraints:
        adapter=ADAPTER_PATTERN,
    conda:
        conda_env("convert")
    threads: group_threads("convert")
    resources:
        **group_resources("convert"),
    params:
        options=lambda wc: cli_options({"dtype": cfg(wc)["model"]["dtype"]}),
    shell:
        "python -m workflow_scripts.merge_checkpoint --adapter {input.adapter:q} {params.options} --out {output:q} "
        "> {log:q} 2>&1"


# Every checkpoint the config trains, merged: `snakemake --profile profiles/local merged_checkpoints`.
rule merged_checkpoints:
    input:
        merged_copies(),
