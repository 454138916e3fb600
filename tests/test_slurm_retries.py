"""Retries on the local SLURM cluster (scripts/local_slurm.sh start): a failing job is retried as
the profile says and then reported as failed; a training job signalled before its time limit saves,
fails and resumes in its retry with the log of an uninterrupted run. A module of its own, so that
its jobs wait for SLURM beside test_slurm.py's DAG (make test runs modules on parallel workers)."""
import json
import re
import subprocess
import sys
import time

import pytest

from conftest import LOCAL_CLUSTER, ROOT, cluster_up, make_test_workdir, slurm_config, snakemake, venv_env

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


def test_a_training_job_signalled_before_its_time_limit_resumes_in_its_retry(tmp_path, tiny_model_dir):
    """SLURM's warning signal (the profile asks for SIGUSR1 five minutes before the limit; here sent
    with scancel to the running job's steps): the training job saves its state and fails, the
    profile's retry resumes from the saved step, and the run ends with the per-step log of a run
    that was never interrupted (losses equal to a relative 1e-5: the same computation, resumed).
    The uninterrupted run is the same job on this host, before it; the cluster reruns that job alone."""
    reason = cluster_up()
    if reason:
        pytest.skip(reason)

    def long_training(config):
        slurm_config(config)
        config.update(methods=["sft"])
        config["training"].update(epochs=60, save_steps=0)  # 240 steps of the tiny model: time to signal it

    run = "sft/all/seed1"
    target = f"results/tiny-pool/tiny/{run}/model"
    workdir = make_test_workdir(tmp_path, tiny_model_dir, long_training)

    def losses():
        history = json.loads((workdir / "results/tiny-pool/tiny" / run / "training_log.json").read_text())
        return [(entry["step"], entry["loss"]) for entry in history["log_history"] if "loss" in entry]

    assert snakemake(workdir, target).returncode == 0
    expected = losses()
    assert len(expected) == 240
    log = workdir / "logs" / "tiny-pool" / "tiny" / "train_final" / f"{run}.log"
    log.unlink()  # the signal waits for this job's own log lines

    command = ["timeout", "-s", "INT", "1200", sys.executable, "-m", "snakemake",
               "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--profile", str(ROOT / "profiles" / "slurm"), target, "--forcerun", "train_final", *LOCAL_CLUSTER]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=venv_env())
    signalled = None
    deadline = time.time() + 900
    while signalled is None and time.time() < deadline and process.poll() is None:
        time.sleep(1)
        if log.is_file() and log.read_text().count("'loss'") >= 20:
            # This run's training job: its working directory is this test's (other tests share the cluster).
            jobs = subprocess.run(["squeue", "-h", "-o", "%i|%Z|%k"], capture_output=True, text=True).stdout
            ids = [job for job, folder, comment in (line.split("|", 2) for line in jobs.splitlines())
                   if folder == str(workdir) and "train_final" in comment]
            if ids:
                subprocess.run(["scancel", "--signal=USR1", ids[0]], check=True)
                signalled = ids[0]
    output = process.communicate(timeout=1200)[0]
    assert signalled, output[-3000:]
    assert process.returncode == 0, output[-5000:]
    # The retry's log: it went on from a checkpoint, which only the signal can have saved (save_steps 0).
    assert re.search(r"resuming from .*/checkpoint-\d+", log.read_text())
    assert [(step, pytest.approx(loss, rel=1e-5)) for step, loss in losses()] == expected
