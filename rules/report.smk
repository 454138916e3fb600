# The summary table of every evaluated checkpoint.


rule summary:
    input:
        score_files(),
    output:
        csv="results/summary.csv",
        md="results/summary.md",
    log:
        "logs/summary.log",
    threads: group_threads("cpu")
    conda:
        conda_env("cpu")
    resources:
        **group_resources("cpu"),
    shell:
        "python -m workflow_scripts.summary --results results --out-csv {output.csv:q} "
        "--out-md {output.md:q} {input:q} > {log:q} 2>&1"
