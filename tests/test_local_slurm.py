"""scripts/local_slurm.sh touches only what it started and wrote: stop ends the daemons by the pids
it recorded, never by name, and a slurm.conf it did not write is neither overwritten nor removed.
Run on scratch paths (LOCAL_SLURM_CONF, LOCAL_SLURM_STATE) with `sleep` standing in for daemons."""
import os
import subprocess

import pytest

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "local_slurm.sh"
MARK = "# local-slurm: written by scripts/local_slurm.sh; removed by 'stop'"


@pytest.fixture
def scratch(tmp_path):
    paths = {"conf": tmp_path / "etc" / "slurm.conf", "state": tmp_path / "state"}
    paths["conf"].parent.mkdir()
    paths["state"].mkdir()
    env = {**os.environ, "LOCAL_SLURM_CONF": str(paths["conf"]), "LOCAL_SLURM_STATE": str(paths["state"])}
    sleepers = []

    def sleeper():
        process = subprocess.Popen(["sleep", "300"])
        sleepers.append(process)
        return process

    def script(command):
        return subprocess.run(["bash", str(SCRIPT), command], capture_output=True, text=True, env=env, timeout=60)

    yield paths, sleeper, script
    for process in sleepers:
        process.kill()
        process.wait()


def test_stop_ends_only_the_daemons_it_started(scratch):
    paths, sleeper, script = scratch
    ours, theirs = sleeper(), sleeper()  # both a process named `sleep`; one recorded as started here
    (paths["state"] / "slurmd.pid").write_text(f"{ours.pid}\n")
    (paths["state"] / "started").write_text(f"slurmd {paths['state'] / 'slurmd.pid'}\n")
    paths["conf"].write_text(MARK + "\nClusterName=local\n")
    result = script("stop")
    assert result.returncode == 0, result.stderr
    assert ours.wait(timeout=10) is not None
    assert theirs.poll() is None  # a process of the same name it did not start runs on
    assert not paths["conf"].exists() and not (paths["state"] / "started").exists()


def test_a_slurm_conf_it_did_not_write_is_left_alone(scratch):
    paths, _, script = scratch
    site = "ClusterName=site\n"
    paths["conf"].write_text(site)
    result = script("start")
    assert result.returncode != 0
    assert f"{paths['conf']} exists and was not written by this script; not touching it" in result.stderr
    assert script("stop").returncode == 0
    assert paths["conf"].read_text() == site
