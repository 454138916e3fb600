"""Running the workflow from tests: the checked-in test experiment (.test/) in a fresh working
directory, and one way to call Snakemake on it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEST_DIR = ROOT / ".test"


def load_test_config() -> dict:
    return yaml.safe_load((TEST_DIR / "config.yaml").read_text())


def make_test_workdir(workdir: Path, tiny_model_dir: Path, change=None) -> Path:
    """`workdir` holding .test/'s data and config.yaml, the model source pointing at the tiny model
    built by the test session; `change(config)` edits the config first."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(TEST_DIR / "data", workdir / "data")
    config = load_test_config()
    config["model"]["source"] = str(tiny_model_dir)
    if change:
        change(config)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def snakemake(workdir: Path, *args, profile: str = "local", snakefile: Path = ROOT / "Snakefile",
              timeout: int = 900) -> subprocess.CompletedProcess:
    """`python -m snakemake` on `workdir` with a profile of this repository, as a user runs it."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
               "--profile", str(ROOT / "profiles" / profile)]
    if profile == "local":
        command += ["--cores", "2"]
    else:  # timeout -s INT: Snakemake may ignore SIGTERM while it polls a cluster
        command = ["timeout", "-s", "INT", str(timeout)] + command
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout + 60)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    if "Job stats:" not in result.stdout:
        return {}
    stats = result.stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
