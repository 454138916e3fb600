# Token losses under the base and the reference model, their difference, and the partition.


rule score_shard:
    input:
        model=lambda wc: f"resources/models/{wc.model}" if wc.scorer == "base" else f"results/{wc.model}/reference",
        tokens="results/{model}/tokens/train.parquet",
    output:
        temp("results/{model}/losses/{scorer}.shards/{shard}of{shards}.parquet"),
    log:
        "logs/{model}/score_tokens/{scorer}_{shard}of{shards}.log",
    params:
        options=cli_options({k: v for k, v in config["scoring"].items() if k != "shards"}),
    threads: group_threads("score")
    conda:
        conda_env("score")
    resources:
        **group_resources("score"),
    shell:
        "python -m workflow_scripts.score_tokens score --model-dir {input.model:q} --tokens {input.tokens:q} "
        "--shard {wildcards.shard} --num-shards {wildcards.shards} {params.options} --threads {threads} "
        "--out {output:q} > {log:q} 2>&1"


rule score_tokens:
    input:
        tokens="results/{model}/tokens/train.parquet",
        parts=score_shards,
    output:
        "results/{model}/losses/{scorer}.parquet",
    log:
        "logs/{model}/score_tokens/{scorer}.log",
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.score_tokens gather --tokens {input.tokens:q} --out {output:q} "
        "{input.parts:q} > {log:q} 2>&1"


rule influence:
    input:
        tokens="results/{model}/tokens/train.parquet",
        base="results/{model}/losses/base.parquet",
        reference="results/{model}/losses/reference.parquet",
    output:
        "results/{model}/influence.parquet",
    log:
        "logs/{model}/influence.log",
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.influence --tokens {input.tokens:q} --base {input.base:q} "
        "--reference {input.reference:q} --out {output:q} > {log:q} 2>&1"


rule partition:
    input:
        "results/{model}/influence.parquet",
    output:
        parquet="results/{model}/{partition}/partition.parquet",
        stats="results/{model}/{partition}/partition.json",
    log:
        "logs/{model}/partition_{partition}.log",
    params:
        rho=lambda wc: parse_variant(wc.partition)["rho"],
        scope=lambda wc: parse_variant(wc.partition)["scope"],
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.partition --influence {input:q} --rho {params.rho} --scope {params.scope} "
        "--out {output.parquet:q} --out-stats {output.stats:q} > {log:q} 2>&1"


rule random_partition:
    input:
        "results/{model}/tokens/train.parquet",
    output:
        parquet="results/{model}/rho{rho}-random/seed{seed}/partition.parquet",
        stats="results/{model}/rho{rho}-random/seed{seed}/partition.json",
    log:
        "logs/{model}/partition_rho{rho}-random_seed{seed}.log",
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.partition --tokens {input:q} --random-seed {wildcards.seed} --rho {wildcards.rho} "
        "--out {output.parquet:q} --out-stats {output.stats:q} > {log:q} 2>&1"
