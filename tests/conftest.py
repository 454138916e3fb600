"""What the tests share: the repository's paths, the tiny model, the checked-in test experiment
(.test/) and the ways tests run Snakemake: on a working directory as `snakemake --directory`
(`snakemake`; many dry runs at once: `dry_runs`), typed in the repository root as a user types it
(`user_snakemake`), or on the local SLURM cluster (`LOCAL_CLUSTER`, `cluster_up`, `slurm_config`).
Test modules import these names from here (`from conftest import ROOT, snakemake`)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TEST_DIR = ROOT / ".test"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


# The modules that wait longest, first: `make test` runs the modules on parallel workers, a module on
# one worker (pytest-xdist's --dist loadfile), in this order. The cluster's jobs mostly wait for
# SLURM's status checks, so the other workers' tests run beside them.
SLOWEST_FIRST = ["test_slurm.py", "test_slurm_retries.py", "test_workflow.py", "test_offline.py",
                 "test_own_tasks.py", "test_noise_share.py"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def same_environment_for_every_test():
    """Stages called in this process set variables (evaluate.main with a local source sets the Hub's
    offline switches); without this, a test's environment would depend on the tests before it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def chat_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with a chat template in its tokenizer (the tiny tokenizer has none)."""
    from transformers import AutoTokenizer

    from workflow_scripts.tokenize_data import TULU_TEMPLATE

    directory = tmp_path_factory.mktemp("chat-model")
    shutil.copytree(tiny_model_dir, directory, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.chat_template = TULU_TEMPLATE
    tokenizer.save_pretrained(directory)
    return directory


# ---------------------------------------------------------------- the test experiment

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


# ---------------------------------------------------------------- running Snakemake

def venv_env(**extra) -> dict:
    """This environment with the running Python's bin first on PATH (the venv's snakemake)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **extra}


def snakemake(workdir: Path, *args, profile: str = "local", snakefile: Path = ROOT / "Snakefile",
              timeout: int = 900) -> subprocess.CompletedProcess:
    """`python -m snakemake` on `workdir` with a profile of this repository, as a user runs it."""
    command = [sys.executable, "-m", "snakemake", *snakemake_options(workdir, profile, snakefile)]
    if profile != "local":  # timeout -s INT: Snakemake may ignore SIGTERM while it polls a cluster
        command = ["timeout", "-s", "INT", str(timeout)] + command
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, env=venv_env(),
                          timeout=timeout + 60)


def snakemake_options(workdir: Path, profile: str = "local", snakefile: Path = ROOT / "Snakefile") -> list[str]:
    """The options every test run of Snakemake on `workdir` starts with (the local profile: 2 cores)."""
    options = ["--snakefile", str(snakefile), "--directory", str(workdir),
               "--profile", str(ROOT / "profiles" / profile)]
    return options + (["--cores", "2"] if profile == "local" else [])


def dry_runs(workdir: Path, runs: dict[str, list], workers: int = 2) -> dict[str, subprocess.CompletedProcess]:
    """name -> `snakemake --dry-run ARGS` on `workdir` (the local profile), for many ARGS at once:
    each a fork of one process that imported Snakemake (tests/dry_runs.py), `workers` at a time."""
    import json
    import tempfile

    base = [*snakemake_options(workdir), "--dry-run", "--nolock"]
    with tempfile.TemporaryDirectory() as out:
        specs = [{"args": base + list(map(str, args)), "stdout": f"{out}/{i}.out", "stderr": f"{out}/{i}.err"}
                 for i, args in enumerate(runs.values())]
        codes = subprocess.run([sys.executable, str(ROOT / "tests" / "dry_runs.py"), str(workers)],
                               input=json.dumps(specs), capture_output=True, text=True, env=venv_env(),
                               check=True, timeout=1800)
        return {name: subprocess.CompletedProcess(spec["args"], code, Path(spec["stdout"]).read_text(),
                                                  Path(spec["stderr"]).read_text())
                for name, spec, code in zip(runs, specs, json.loads(codes.stdout.splitlines()[-1]))}


def user_snakemake(*args, cwd=ROOT, path=None) -> subprocess.CompletedProcess:
    """`snakemake ARGS` typed in `cwd`; with `path`, under that PATH instead of the venv's."""
    env = venv_env(HF_HUB_OFFLINE="1")  # a dry run must not need the Hub
    if path:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "snakemake", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    if "Job stats:" not in result.stdout:
        return {}
    stats = result.stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


# ---------------------------------------------------------------- the local SLURM cluster

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


def slurm_config(config):
    """The test experiment made small for a cluster run: forget alone (every GPU rule of its path),
    one rho and seed, BoolQ, the losses in two shards, small jobs with a GPU for the GPU groups."""
    config.update(methods=["forget"], rho=[0.7], seeds=[1])
    config["eval"]["tasks"] = ["boolq"]
    config["scoring"] = {"shards": 2}
    small = {"mem_mb": 500, "runtime": 10, "cpus_per_task": 1}
    config["resources"] = {group: {**small, **({"gpu": 1} if group in ("train", "score", "evaluate") else {})}
                           for group in ("cpu", "convert", "train", "score", "evaluate")}


def dry_run_resources(output: str) -> dict[str, list[str]]:
    """rule -> the `resources:` line of each of its planned jobs."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        match = re.match(r"(?:local)?rule (\w+):", block)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        if match and resources:
            jobs.setdefault(match.group(1), []).append(resources.group(1))
    return jobs


def rule_groups() -> dict[str, str | None]:
    """Every rule of the workflow -> the resource group it asks the scheduler for (None: a local
    rule or the target rule `all`: no resources), read from the Snakefile and rules/*.smk."""
    groups = {}
    for path in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        for block in re.split(r"\n(?=rule \w+:)", path.read_text()):
            name = re.match(r"rule (\w+):", block)
            if name:
                group = re.search(r'\*\*group_resources\("(\w+)"\)', block)
                groups[name.group(1)] = group.group(1) if group else None
        for used, name in re.findall(r"^use rule (\w+) as (\w+)", path.read_text(), re.M):
            groups[name] = groups[used]  # `use rule A as B with:` keeps A's resources
    return groups


def gpu_rules(config: dict) -> set[str]:
    """The rules whose group gets GPUs under `config`'s resources."""
    return {rule for rule, group in rule_groups().items()
            if group and config["resources"][group].get("gpu", 0) > 0}


def spy_scored_requests(monkeypatch) -> list:
    """Every request lm-eval's HF model scores, as (strings, context ids, continuation ids), recorded
    as the evaluator runs (the model itself still computes every score)."""
    from lm_eval.models.huggingface import HFLM

    seen = []
    real = HFLM._loglikelihood_tokens

    def spy(self, requests, *args, **kwargs):
        seen.extend(requests)
        return real(self, requests, *args, **kwargs)

    monkeypatch.setattr(HFLM, "_loglikelihood_tokens", spy)
    return seen
