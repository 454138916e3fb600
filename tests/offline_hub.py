"""A Hub for the offline tests (tests/test_offline.py locally, tests/test_slurm.py on the cluster):
the test experiment with its model and pool given as Hub ids, a cache laid out as huggingface_hub
lays it out (HF_HOME in the run's folder) and an endpoint that refuses every connection; a
sitecustomize on PYTHONPATH records every Python process of the run with its offline switches and
refuses any connection from a process that has them."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import make_test_workdir, slurm_config, snakemake
from workflow_scripts.constants import HUB_OFFLINE_SWITCHES as HUB_SWITCHES

COMMIT = "0123456789abcdef0123456789abcdef01234567"
# HUB_SWITCHES are unset on a submit host with network. Removed from each run's environment: modules
# and tests that run a stage in the test process (evaluate.main with a local source, modeling's import) set them.

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


def hub_snapshot(cache: Path, kind: str, repo: str) -> Path:
    """An empty snapshot folder of `repo` in huggingface_hub's cache layout, its `main` at COMMIT."""
    entry = cache / f"{kind}s--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(COMMIT)
    folder = entry / "snapshots" / COMMIT
    folder.mkdir(parents=True)
    return folder


def make_hub_workdir(workdir: Path, tiny_model_dir: Path, methods: list[str]) -> Path:
    """The test experiment as Hub ids (small jobs, BoolQ, `methods`), its Hub cache and the network
    guard in `workdir`."""
    def hub_config(config):
        slurm_config(config)
        config["methods"] = methods
        config["model"]["source"] = "tiny-org/tiny-llama"
        config["data"]["pool"] = {"source": "tiny-org/tiny-pool", "data_files": "pool.jsonl"}

    make_test_workdir(workdir, tiny_model_dir, hub_config)
    cache = workdir / "hf-home" / "hub"
    shutil.copytree(tiny_model_dir, hub_snapshot(cache, "model", "tiny-org/tiny-llama"), dirs_exist_ok=True)
    shutil.copy(workdir / "data" / "pool.jsonl", hub_snapshot(cache, "dataset", "tiny-org/tiny-pool"))
    (workdir / "guard").mkdir()
    (workdir / "guard" / "sitecustomize.py").write_text(GUARD)
    return workdir


def run_offline(workdir: Path, *args, profile="local") -> subprocess.CompletedProcess:
    """Snakemake on a Hub workdir: the cache, the refusing endpoint and the guard's log
    (network-{profile}.log), the Hub's offline switches unset as on a submit host."""
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
