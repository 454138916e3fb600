"""What produced a result: the code's commit, the config, the packages, the machine and the seed.

The Snakefile computes the commit (and whether the working tree was dirty) and the merged config's
hash once per Snakemake process and hands both to every job through the environment
(`FORGETTING_COMMIT`, `FORGETTING_DIRTY`, `FORGETTING_CONFIG_SHA`): a job on a compute node needs
no git, and the values are not rule parameters, so a new commit reruns nothing. Each job adds
what only it can see (host, devices, package versions) with `record()`, into its training log or
score JSON; the summary reads them back and flags results of different commits or configs.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata

PACKAGES = ("torch", "transformers", "peft", "lm-eval", "datasets", "snakemake", "accelerate")
ENVIRONMENT = {"commit": "FORGETTING_COMMIT", "dirty": "FORGETTING_DIRTY", "config_sha": "FORGETTING_CONFIG_SHA"}


def git_state(directory) -> tuple[str | None, bool | None]:
    """(HEAD's commit, whether tracked or untracked non-ignored files differ from it), or (None,
    None) outside a git checkout or without git."""
    try:
        commit = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=30).stdout.strip()
        status = subprocess.run(["git", "-C", str(directory), "status", "--porcelain"], capture_output=True,
                                text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(status.strip())


def config_sha(config: dict) -> str:
    """A short hash of the merged, validated config (keys sorted): equal configs, equal hashes."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def environment(directory, config: dict) -> dict[str, str]:
    """The variables the Snakefile exports for its jobs."""
    commit, dirty = git_state(directory)
    return {ENVIRONMENT["commit"]: commit or "unknown", ENVIRONMENT["dirty"]: "unknown" if dirty is None else
            str(dirty).lower(), ENVIRONMENT["config_sha"]: config_sha(config)}


def devices() -> dict:
    """The accelerators this process sees (name and count), or the CPU."""
    try:
        import torch

        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            return {"kind": "cuda", "count": len(names), "names": names,
                    "cuda": torch.version.cuda, "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
    except ImportError:
        pass
    return {"kind": "cpu", "count": 0, "names": [], "cpu": platform.processor() or platform.machine(),
            "threads": os.cpu_count()}


def versions() -> dict[str, str | None]:
    out = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def record(seed: int | None = None) -> dict:
    """This job's provenance: the Snakemake process's commit and config hash, and its own host,
    devices, package versions and seed."""
    dirty = os.environ.get(ENVIRONMENT["dirty"])
    return {
        "commit": os.environ.get(ENVIRONMENT["commit"], "unknown"),
        "dirty": None if dirty in (None, "unknown") else dirty == "true",
        "config_sha": os.environ.get(ENVIRONMENT["config_sha"], "unknown"),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "devices": devices(),
        "versions": versions(),
        "seed": seed,
    }
