# Benchmark scores through lm-evaluation-harness: one JSON per checkpoint and task.


rule evaluate:
    input:
        model=checkpoint_dir,
        data="results/data/eval/{task}.jsonl",
    output:
        "results/{model}/{run}/scores/{task}.json",
    log:
        "logs/{model}/evaluate/{run}/{task}.log",
    params:
        limit=lambda wc: config["eval"].get("limit", {}).get(wc.task, 0),
        batch_size=config["eval"].get("batch_size", 8),
        dtype=config["eval"].get("dtype", "float32"),
    threads: group_threads("evaluate")
    conda:
        conda_env("evaluate")
    resources:
        **group_resources("evaluate"),
    shell:
        "python -m workflow_scripts.evaluate --model-dir {input.model:q} --task {wildcards.task} "
        "--data {input.data:q} --limit {params.limit} --batch-size {params.batch_size} "
        "--dtype {params.dtype} --threads {threads} --out {output:q} > {log:q} 2>&1"
