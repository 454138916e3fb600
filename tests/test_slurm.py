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
    # Every method, and the decode jobs the test experiment leaves out (eval.decodings: 0).
    (workdir / "every-method.yaml").write_text(yaml.safe_dump({"methods": list(runs.METHODS),
                                                               "eval": {"decodings": 1}}))
    result = slurm(workdir, "--dry-run", "--forceall", "--default-resources", "slurm_partition=debug",
                   "--configfile", workdir / "config.yaml", workdir / "every-method.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dry_run_resources(result.stdout)
    groups = rule_groups()
    assert set(jobs) <= set(groups)
    assert {rule for rule in jobs if groups[rule]} == {rule for rule, group in groups.items() if group}
    gpu = gpu_rules(yaml.safe_load((workdir / "config.yaml").read_text()))
    assert {"train_reference", "score_shard", "train_final", "self_evolving_round", "evaluate", "decode"} == gpu
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
    gpu_logs = [p for p in logs if re.search(r"train_reference|train_final|token_losses/.*of|evaluate", str(p))]
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
    shell: "echo attempt {resources.try_number} $SLURM_JOB_ID >> attempts.txt; test {resources.try_number} -ge 2; \
touch {output}"

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
    assert (sorted(line.split()[:2] for line in attempts if line.startswith("attempt"))
            == [["attempt", "1"], ["attempt", "2"]])
    assert len([line for line in attempts if line.startswith("broken")]) == 4  # retries: 3 in the profile
    assert all(re.search(r"\s\d+$", line) for line in attempts)  # each attempt ran in a SLURM job
    assert "Error in rule broken" in result.stderr


def test_a_training_job_signalled_before_its_time_limit_resumes_in_its_retry(tmp_path_factory, tiny_model_dir):
    """SLURM's warning signal (the profile asks for SIGUSR1 five minutes before the limit; here sent
    with scancel to the running job's steps): the training job saves its state and fails, the
    profile's retry resumes from the saved step, and the run ends with the per-step log of a run
    that was never interrupted (losses equal to a relative 1e-5: the same computation, resumed)."""
    import json
    import sys
    import time

    from conftest import ROOT, venv_env

    reason = cluster_up()
    if reason:
        pytest.skip(reason)

    def long_training(config):
        slurm_config(config)
        config.update(methods=[runs.SFT])
        config["training"].update(epochs=60, save_steps=0)  # 240 steps of the tiny model: time to signal it

    run = "sft/all/seed1"
    target = f"results/tiny-pool/tiny/{run}/model"
    whole = make_test_workdir(tmp_path_factory.mktemp("uninterrupted"), tiny_model_dir, long_training)
    assert snakemake(whole, target).returncode == 0

    workdir = make_test_workdir(tmp_path_factory.mktemp("signalled"), tiny_model_dir, long_training)
    command = ["timeout", "-s", "INT", "1200", sys.executable, "-m", "snakemake",
               "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--profile", str(ROOT / "profiles" / "slurm"), target, *LOCAL_CLUSTER]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=venv_env())
    log = workdir / "logs" / "tiny-pool" / "tiny" / "train_final" / f"{run}.log"
    signalled = None
    deadline = time.time() + 900
    while signalled is None and time.time() < deadline and process.poll() is None:
        time.sleep(1)
        if log.is_file() and log.read_text().count("'loss'") >= 20:
            jobs = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True).stdout
            ids = [line.split()[0] for line in jobs.splitlines() if "train_final" in line]
            if ids:
                subprocess.run(["scancel", "--signal=USR1", ids[0]], check=True)
                signalled = ids[0]
    output = process.communicate(timeout=1200)[0]
    assert signalled, output[-3000:]
    assert process.returncode == 0, output[-5000:]
    # The retry's log: it went on from a checkpoint, which only the signal can have saved (save_steps 0).
    assert re.search(r"resuming from .*/checkpoint-\d+", log.read_text())

    def losses(directory):
        history = json.loads((directory / "results/tiny-pool/tiny" / run / "training_log.json").read_text())
        return [(entry["step"], entry["loss"]) for entry in history["log_history"] if "loss" in entry]

    expected = losses(whole)
    assert len(expected) == 240
    assert [(step, pytest.approx(loss, rel=1e-5)) for step, loss in losses(workdir)] == expected
