# Benchmark scores through lm-evaluation-harness: one JSON per checkpoint and task.


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        "results/{dataset}/{model}/{run}/scores/{task}.json",
    log:
        "logs/{dataset}/{model}/evaluate/{run}/{task}.log",
    benchmark:
        "logs/{dataset}/{model}/timings/evaluate/{run}/{task}.tsv"
    conda:
        conda_env("evaluate")
    threads: group_threads("evaluate")
    resources:
        **group_resources("evaluate"),
    params:
        operational=OPERATIONAL["evaluate"],
        data=lambda wc, input: cli_options({k: input.get(k) for k in ("data", "tydiqa_dev", "tydiqa_train")}),
        options=evaluate_options,
    shell:
        "python -m workflow_scripts.evaluate --model-dir {input.model:q} --task {wildcards.task} "
        "{params.data} {params.options} {params.operational} --model-name {wildcards.model} "
        "--data-name {wildcards.dataset} --run {wildcards.run:q} --threads {threads} --out {output:q} > {log:q} 2>&1"


# What the model writes: greedy answers to the first eval.decodings prompts of a task, as the
# evaluator puts them (summary.md's "What the models write"; workflow_scripts/decode.py).
rule decode:
    input:
        unpack(decode_inputs),
    output:
        "results/{dataset}/{model}/{run}/decodings/{task}.json",
    log:
        "logs/{dataset}/{model}/decode/{run}/{task}.log",
    benchmark:
        "logs/{dataset}/{model}/timings/decode/{run}/{task}.tsv"
    conda:
        conda_env("evaluate")
    threads: group_threads("evaluate")
    resources:
        **group_resources("evaluate"),
    params:
        data=lambda wc, input: cli_options({"data": input.get("data")}),
        options=decode_options,
    shell:
        "python -m workflow_scripts.decode --model-dir {input.model:q} --task {wildcards.task} {params.data} "
        "{params.options} --run {wildcards.run:q} --threads {threads} --out {output:q} > {log:q} 2>&1"
