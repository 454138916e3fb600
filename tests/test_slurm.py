"""The SLURM profile: a dry run shows GPU requests for the GPU rules only; on a real local cluster
(scripts/local_slurm.sh start) the tiny DAG runs with every GPU rule inside a SLURM job with its
GPU, and a failing job is retried as the profile says and then reported as failed."""
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import dry_run_resources, gpu_rules, make_test_workdir, rule_groups, snakemake
from workflow_scripts import runs

# A cluster without slurmdbd: squeue for status checks (see profiles/slurm/config.yaml).
LOCAL_CLUSTER = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                 "--default-resources", "slurm_partition=debug", "runtime=10", "mem_mb=500"]


def cluster_up() -> str | None:
    """None when a SLURM controller answers, else the reason to skip."""
    if not shutil.which("sbatch"):
        return "no SLURM client here (CI installs one: scripts/local_slurm.sh start)"
    probe = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if probe.returncode != 0 or not re.search(r"idle|mix|alloc", probe.stdout):
        return f"no idle SLURM node (scripts/local_slurm.sh start): {probe.stderr.strip()[:200]}"
    return None


def slurm(workdir, *args, **kwargs):
    return snakemake(workdir, *args, profile="slurm", timeout=1200, **kwargs)


def slurm_config(config):
    config.update(methods=[runs.SFT, runs.IGNORE, runs.FORGET], rho=[0.7], seeds=[1])
    config["eval"]["tasks"] = ["boolq"]
    config["scoring"] = {"shards": 2}
    small = {"mem_mb": 500, "runtime": 10, "cpus_per_task": 1}
    config["resources"] = {group: {**small, **({"gpu": 1} if group in ("train", "score", "evaluate") else {})}
                           for group in ("cpu", "convert", "train", "score", "evaluate")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_model_dir):
    return make_test_workdir(tmp_path_factory.mktemp("slurm"), tiny_model_dir, slurm_config)


def test_dry_run_asks_gpus_for_gpu_rules_only(workdir):
    """Every rule of the workflow that asks the scheduler for resources is planned (every method
    in the grid), and each asks for a GPU exactly when its group gets one."""
    (workdir / "every-method.yaml").write_text(yaml.safe_dump({"methods": list(runs.METHODS)}))
    result = slurm(workdir, "--dry-run", "--forceall", "--default-resources", "slurm_partition=debug",
                   "--configfile", workdir / "config.yaml", workdir / "every-method.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dry_run_resources(result.stdout)
    groups = rule_groups()
    assert set(jobs) <= set(groups)
    assert {rule for rule in jobs if groups[rule]} == {rule for rule, group in groups.items() if group}
    gpu = gpu_rules(yaml.safe_load((workdir / "config.yaml").read_text()))
    assert {"train_reference", "score_shard", "train_final", "self_evolving_round", "evaluate"} == gpu
    for rule, lines in jobs.items():
        for line in lines if groups[rule] else []:
            assert ("gpu=1" in line) == (rule in gpu), (rule, line)
            assert "mem_mb=500" in line and "slurm_partition=debug" in line, (rule, line)


def test_tiny_dag_runs_in_slurm_jobs_with_their_gpus(workdir):
    reason = cluster_up()
    if reason:
        pytest.skip(reason)
    result = slurm(workdir, *LOCAL_CLUSTER)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (workdir / "results/tiny-pool/tiny/summary.csv").is_file()
    logs = {path: path.read_text() for path in (workdir / "logs").rglob("*.log")}
    gpu_logs = [p for p in logs if re.search(r"train_reference|train_final|score_tokens/.*of|evaluate", str(p))]
    assert len(gpu_logs) >= 1 + 3 + 4 + 4  # reference, 3 methods, 2 scorers x 2 shards, 4 checkpoints x boolq
    for path in gpu_logs:
        assert re.search(r"SLURM_JOB_ID=\d+", logs[path]), path
        assert re.search(r"SLURM_GPUS_ON_NODE=1 CUDA_VISIBLE_DEVICES=\d\b", logs[path]), path
    influence_log = next(text for path, text in logs.items() if path.name == "influence.log")
    assert "SLURM_JOB_ID=" in influence_log and "CUDA_VISIBLE_DEVICES" not in influence_log


FLAKY_SNAKEFILE = """
rule all:
    input: "flaky.txt", "broken.txt"

rule flaky:  # fails on its first attempt, succeeds when the profile retries it
    output: "flaky.txt"
    resources: runtime=5, mem_mb=100, try_number=lambda wildcards, attempt: attempt
    shell: "echo attempt {resources.try_number} $SLURM_JOB_ID >> attempts.txt; test {resources.try_number} -ge 2; touch {output}"

rule broken:
    output: "broken.txt"
    resources: runtime=5, mem_mb=100
    shell: "echo broken $SLURM_JOB_ID >> attempts.txt; exit 3"
"""


def test_failing_jobs_are_retried_then_reported(tmp_path):
    reason = cluster_up()
    if reason:
        pytest.skip(reason)
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(FLAKY_SNAKEFILE)
    result = snakemake(tmp_path, *LOCAL_CLUSTER, profile="slurm", snakefile=snakefile, timeout=600)
    assert result.returncode != 0
    assert (tmp_path / "flaky.txt").is_file()
    attempts = (tmp_path / "attempts.txt").read_text().splitlines()
    assert sorted(line.split()[:2] for line in attempts if line.startswith("attempt")) == [["attempt", "1"], ["attempt", "2"]]
    assert len([line for line in attempts if line.startswith("broken")]) == 2  # retries: 1 in the profile
    assert all(re.search(r"\s\d+$", line) for line in attempts)  # each attempt ran in a SLURM job
    assert "Error in rule broken" in result.stderr
