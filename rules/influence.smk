# Token losses under the base and the reference model, their difference, and the partition.


rule score_shard:
    input:
        unpack(scoring_inputs),
        tokens="results/{dataset}/{model}/tokens/train.parquet",
    output:
        temp("results/{dataset}/{model}/losses/{scorer}.shards/{shard}of{shards}.parquet"),
    log:
        "logs/{dataset}/{model}/token_losses/{scorer}_{shard}of{shards}.log",
    benchmark:
        "logs/{dataset}/{model}/timings/score_shard/{scorer}_{shard}of{shards}.tsv"
    conda:
        conda_env("score")
    threads: group_threads("score")
    resources:
        **group_resources("score"),
    params:
        operational=OPERATIONAL["score"],
        options=lambda wc: cli_options({"dtype": cfg(wc)["scoring"]["dtype"]}),
    shell:
        "python -m workflow_scripts.token_losses score --model-dir {input.model:q} --tokens {input.tokens:q} "
        "--shard {wildcards.shard} --num-shards {wildcards.shards} {params.options} {params.operational} --threads {threads} "
        "--out {output:q} > {log:q} 2>&1"


rule gather_losses:
    input:
        tokens="results/{dataset}/{model}/tokens/train.parquet",
        parts=score_shards,
    output:
        "results/{dataset}/{model}/losses/{scorer}.parquet",
    log:
        "logs/{dataset}/{model}/token_losses/{scorer}.log",
    benchmark:
        "logs/{dataset}/{model}/timings/gather_losses/{scorer}.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.token_losses gather --tokens {input.tokens:q} --out {output:q} "
        "{input.parts:q} > {log:q} 2>&1"


rule influence:
    input:
        tokens="results/{dataset}/{model}/tokens/train.parquet",
        base="results/{dataset}/{model}/losses/base.parquet",
        reference="results/{dataset}/{model}/losses/reference.parquet",
    output:
        "results/{dataset}/{model}/influence.parquet",
    log:
        "logs/{dataset}/{model}/influence.log",
    benchmark:
        "logs/{dataset}/{model}/timings/influence.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.influence --tokens {input.tokens:q} --base-losses {input.base:q} "
        "--reference-losses {input.reference:q} --out {output:q} > {log:q} 2>&1"


rule partition:
    input:
        "results/{dataset}/{model}/influence.parquet",
    output:
        parquet="results/{dataset}/{model}/{partition}/partition.parquet",
        stats="results/{dataset}/{model}/{partition}/partition.json",
    log:
        "logs/{dataset}/{model}/partition/{partition}.log",
    benchmark:
        "logs/{dataset}/{model}/timings/partition/{partition}.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        # The rule and its options, read from the folder's name (runs.py's grammar).
        options=lambda wc: cli_options(runs.parse_partition(wc.partition)),
    shell:
        "python -m workflow_scripts.partition --influence {input:q} {params.options} "
        "--out {output.parquet:q} --out-stats {output.stats:q} > {log:q} 2>&1"


rule random_partition:
    input:
        "results/{dataset}/{model}/tokens/train.parquet",
    output:
        parquet=f"results/{{dataset}}/{{model}}/{runs.RANDOM_PARTITION_DIR}/partition.parquet",
        stats=f"results/{{dataset}}/{{model}}/{runs.RANDOM_PARTITION_DIR}/partition.json",
    log:
        f"logs/{{dataset}}/{{model}}/partition/{runs.RANDOM_PARTITION_DIR}.log",
    benchmark:
        "logs/{dataset}/{model}/timings/random_partition/rho{rho}_seed{seed}.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.partition --tokens {input:q} --random-seed {wildcards.seed} --rho {wildcards.rho} "
        "--out {output.parquet:q} --out-stats {output.stats:q} > {log:q} 2>&1"
