"""The SLURM profile: a dry run shows GPU requests for the GPU rules only; on a real local cluster
(scripts/local_slurm.sh start) one small DAG, the test experiment's forget path with its model and
pool as Hub ids (tests/offline_hub.py), runs with every GPU rule inside a SLURM job with its GPU,
only the fetches on the submit host and every other job offline. The retries: test_slurm_retries.py,
on the same cluster at the same time (each test reads only its own jobs)."""
import re

import pytest
import yaml

from conftest import (LOCAL_CLUSTER, cluster_up, dry_run_resources, gpu_rules, make_test_workdir, rule_groups,
                      slurm_config, snakemake)
from offline_hub import make_hub_workdir, processes, run_offline
from workflow_scripts import runs


def slurm(workdir, *args, **kwargs):
    return snakemake(workdir, *args, profile="slurm", timeout=1200, **kwargs)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_model_dir):
    return make_test_workdir(tmp_path_factory.mktemp("slurm"), tiny_model_dir, slurm_config)


def test_dry_run_asks_gpus_for_gpu_rules_only(workdir):
    """Every rule of the workflow that asks the scheduler for resources is planned (every method
    in the grid), and each asks for a GPU exactly when its group gets one."""
    # Every method, and the decode jobs the test experiment leaves out (eval.decodings: 0); a second
    # model on its data (the models table) and a data setting given as two subsets (prepare_subsets);
    # the merged copies, asked for by their target.
    subsets = {"name": "tiny-subsets", "pool": None, "reference_pool": "data/pool.jsonl",
               "train_pool": "data/pool.jsonl"}
    (workdir / "every-method.yaml").write_text(yaml.safe_dump({
        "methods": list(runs.METHODS), "eval": {"decodings": 1},
        "experiments": [{}, {"model": {"name": "tiny-b"}, "methods": ["sft"]}, {"data": subsets, "methods": ["sft"]}]}))
    result = slurm(workdir, "--dry-run", "--forceall", "--default-resources", "slurm_partition=debug",
                   "--configfile", workdir / "config.yaml", workdir / "every-method.yaml", "--", "all",
                   "merged_checkpoints")
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


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory, tiny_model_dir):
    """The one DAG run on the cluster: the GPU requests, the offline switches and the fetches' place."""
    reason = cluster_up()
    if reason:
        pytest.skip(reason)
    workdir = make_hub_workdir(tmp_path_factory.mktemp("cluster"), tiny_model_dir, methods=["forget"])
    result = run_offline(workdir, *LOCAL_CLUSTER, profile="slurm")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir


def test_every_gpu_rule_runs_in_a_slurm_job_with_its_gpu(cluster_run):
    assert (cluster_run / "results/tiny-pool/tiny/summary.csv").is_file()
    logs = {path: path.read_text() for path in (cluster_run / "logs").rglob("*.log")}
    gpu_logs = [p for p in logs if re.search(r"train_reference|train_final|token_losses/.*of|evaluate", str(p))]
    assert len(gpu_logs) == 1 + 1 + 4 + 2  # reference, forget, 2 scorers x 2 shards, 2 checkpoints x boolq
    for path in gpu_logs:
        assert re.search(r"SLURM_JOB_ID=\d+", logs[path]), path
        assert re.search(r"SLURM_GPUS_ON_NODE=1 CUDA_VISIBLE_DEVICES=\d\b", logs[path]), path
    influence_log = next(text for path, text in logs.items() if path.name == "influence.log")
    assert "SLURM_JOB_ID=" in influence_log and "CUDA_VISIBLE_DEVICES" not in influence_log


def test_on_the_cluster_only_the_fetches_run_outside_slurm_jobs_and_every_job_offline(cluster_run):
    log = cluster_run / "network-slurm.log"
    assert "REFUSED" not in log.read_text()
    ran = processes(log)
    assert len([argv for _, argv in ran if "fetch_hub" not in argv]) > 10
    assert all(switch == "1" for switch, argv in ran if "fetch_hub" not in argv)
    for name in ("fetch_model.log", "fetch_pool_pool.log"):
        assert "SLURM_JOB_ID=" not in next((cluster_run / "logs").rglob(name)).read_text()
    assert "SLURM_JOB_ID=" in next((cluster_run / "logs").rglob("base_model.log")).read_text()
