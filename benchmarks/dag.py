"""What a rerun costs: results/bench/dag.json.

On a finished run of a small grid of the test experiment (.test/: a tiny model built in code;
sft, ignore and forget at rho 0.7, one seed, BoolQ and ASDiv), this times a no-op `snakemake`
(planning only: nothing to be done) and lists, from dry runs, the rules that would rerun when only
rho changes (a second value added), only forget.t_max changes, or only one task's eval limit
changes. The run is kept under --work and reused.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.common import ROOT, WORK, report
from workflow_scripts import runs

sys.path.insert(0, str(ROOT / "tests"))
from tiny import build_tiny_model  # noqa: E402  (the test experiment's model, built in code)


def snakemake(workdir: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
                           "--directory", str(workdir), "--profile", str(ROOT / "profiles" / "local"),
                           "--cores", "2", *map(str, args)], capture_output=True, text=True, env=env)


def rerun_rules(workdir: Path, change: dict) -> list[str]:
    """The rules a dry run plans after `change` is laid over the config (sorted; `all` left out)."""
    overlay = workdir / "change.yaml"
    overlay.write_text(yaml.safe_dump(change))
    result = snakemake(workdir, "--dry-run", "--configfile", workdir / "config.yaml", overlay)
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    if "Job stats:" not in result.stdout:
        return []
    stats = result.stdout.split("Job stats:")[1].split("total")[0]
    return sorted(m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", stats, re.M) if m.group(1) != "all")


def finished_run(work: Path) -> Path:
    workdir = work / "dag"
    if not (workdir / "config.yaml").is_file():
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.copytree(ROOT / ".test" / "data", workdir / "data")
        build_tiny_model(workdir / "tiny-model")
        config = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
        config.update(methods=[runs.SFT, runs.IGNORE, runs.FORGET], rho=[0.7], seeds=[1])
        config["eval"].update(tasks=["boolq", "asdiv"], limit={"boolq": 4, "asdiv": 4})
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(workdir)  # builds what is missing; nothing when the run is complete
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    return workdir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(WORK), help="where the finished tiny run is kept")
    parser.add_argument("--repeats", type=int, default=3, help="no-op reruns timed (the fastest counts)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    workdir = finished_run(Path(args.work))
    noop = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = snakemake(workdir)
        noop.append(time.perf_counter() - start)
        if "Nothing to be done" not in result.stdout + result.stderr:
            raise RuntimeError("the finished run is not a no-op:\n" + result.stdout[-2000:])
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    values = {
        "noop_seconds": round(min(noop), 2),
        "noop_runs_seconds": [round(s, 2) for s in noop],
        "rerun_on_rho_change": rerun_rules(workdir, {"rho": [0.7, 0.5]}),
        "rerun_on_t_max_change": rerun_rules(workdir, {"forget": {"t_max": 0.5}}),
        "rerun_on_eval_limit_change": rerun_rules(workdir,
                                                  {"eval": {"limit": {**config["eval"]["limit"], "boolq": 3}}}),
    }
    report("dag", values, f"no-op rerun {values['noop_seconds']:.2f} s; rho change reruns "
           f"{', '.join(values['rerun_on_rho_change'])}; t_max change reruns "
           f"{', '.join(values['rerun_on_t_max_change'])}; a BoolQ limit change reruns "
           f"{', '.join(values['rerun_on_eval_limit_change'])}", args.out)


if __name__ == "__main__":
    main()
