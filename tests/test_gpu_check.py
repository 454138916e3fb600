"""The GPU check (benchmarks/gpu_check.sh) and the wheels it carries (scripts/gpu_wheels.sh,
envs/gpu-wheels.txt), without a GPU or the network: the check refuses clearly and installs nothing
where torch sees no CUDA device; the wheel list pins one version per distribution, our versions;
the wheel folder keeps one wheel per pin and enforces the device machine's size limit; the DAG's
evidence is read from the files the workflow writes."""
import json
import os
import re
import subprocess
import sys
import zipfile

from packaging.utils import canonicalize_name

from conftest import ROOT
from benchmarks import gpu_check

WHEEL_LIST = ROOT / "envs" / "gpu-wheels.txt"


def pins() -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in WHEEL_LIST.read_text().splitlines()]
    return dict(line.split("==") for line in lines if line)


def pinned(path) -> dict[str, str]:
    return {canonicalize_name(m.group(1)): m.group(2)
            for m in re.finditer(r"^\s*-?\s*([A-Za-z0-9_.-]+)==(\S+)\s*$", path.read_text(), re.M)}


def run_check(tmp_path, *args, **env):
    """benchmarks/gpu_check.sh with this test's Python (a CPU build of torch), TMPDIR and OUT in tmp_path."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    (tmp_path / "out").mkdir(exist_ok=True)
    environment = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path / "tmp"),
                   "OUT": str(tmp_path / "out"), **env}
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args], capture_output=True,
                          text=True, env=environment, timeout=120)


def test_the_check_refuses_without_cuda_and_installs_nothing(tmp_path):
    import torch

    assert not torch.cuda.is_available()  # this machine's torch is a CPU build
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"")
    site = gpu_check.WORK / "site"  # where the install would go (a local --cpu run may have left one)
    before = site.stat().st_mtime_ns if site.exists() else None
    result = run_check(tmp_path, GPU_WHEELS=str(wheels))
    assert result.returncode == 2
    message = result.stderr.strip()
    assert f"torch {torch.__version__} sees no CUDA device" in message
    assert "refused (nothing installed)" in message and "CPU build" in message and "--cpu" in message
    # Nothing installed, nothing written: the --target folder untouched, no temporary file, no JSON.
    assert (site.stat().st_mtime_ns if site.exists() else None) == before
    assert not any((tmp_path / "tmp").iterdir()) and not any((tmp_path / "out").iterdir())


def test_the_check_refuses_without_wheels(tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    result = run_check(tmp_path, "--cpu", GPU_WHEELS=str(empty))
    assert result.returncode == 2
    assert "no wheels in" in result.stderr and "make gpu-wheels" in result.stderr
    assert not any((tmp_path / "out").iterdir())


def test_the_wheel_list_pins_one_version_of_each_and_ours():
    lines = [line.split("#")[0].strip() for line in WHEEL_LIST.read_text().splitlines()]
    lines = [line for line in lines if line]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+", line) for line in lines), lines
    names = [canonicalize_name(line.split("==")[0]) for line in lines]
    assert len(names) == len(set(names))
    ours = {**pinned(ROOT / "envs" / "constraints.txt"), **pinned(ROOT / "envs" / "requirements.txt"),
            **pinned(ROOT / "envs" / "cuda.yaml")}
    mismatched = {name: (version, ours[canonicalize_name(name)]) for name, version in pins().items()
                  if canonicalize_name(name) in ours and ours[canonicalize_name(name)] != version}
    assert not mismatched
    assert "pulp" not in names  # 16 MB, only for the ILP scheduler: the check runs --scheduler greedy
    assert {"transformers", "huggingface-hub", "datasets", "lm-eval", "snakemake", "deepspeed"} <= set(names)


def fake_wheel(folder, name, version, size=0):
    path = folder / f"{canonicalize_name(name).replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.txt", "")
    if size:
        with open(path, "ab") as handle:
            handle.truncate(size)  # sparse: counted by its apparent size, as the transfer counts it
    return path


def run_wheels(folder):
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_wheels.sh"), str(folder)], capture_output=True,
                          text=True, env={**os.environ, "PYTHON": sys.executable, "PYTHON_VERSION": "3.12"},
                          timeout=120)


def test_the_wheel_folder_keeps_one_wheel_per_pin(tmp_path):
    """Every pin present (nothing to fetch: no network needed); another version is removed."""
    for name, version in pins().items():
        fake_wheel(tmp_path, name, version)
    stale = fake_wheel(tmp_path, "transformers", "5.17.0")
    result = run_wheels(tmp_path)
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and "removing transformers-5.17.0" in result.stderr
    assert len(list(tmp_path.glob("*.whl"))) == len(pins())
    assert re.search(rf"{len(pins())} wheels for CPython 3.12, [\d.]+ MiB \(budget [\d.]+ MiB", result.stdout)


def test_the_wheel_folder_must_fit_the_device_machine(tmp_path):
    for name, version in pins().items():
        fake_wheel(tmp_path, name, version, size=(70 << 20) if name == "transformers" else 0)
    result = run_wheels(tmp_path)
    assert result.returncode == 1 and "too large to carry" in result.stderr


def test_the_dag_evidence_is_read_from_the_workflow_files(tmp_path):
    experiment = tmp_path / "results" / "pool" / "tiny"
    for run, device in (("base", "cuda"), ("sft/all/seed1", "cuda"), ("forget/x/seed1", "cpu")):
        (experiment / run / "scores").mkdir(parents=True)
        (experiment / run / "scores" / "boolq.json").write_text(json.dumps({"device": device}))
    training = {"provenance": {"devices": {"kind": "cuda"}}}
    (experiment / "reference.training_log.json").write_text(json.dumps(training))
    (experiment / "sft" / "all" / "seed1" / "training_log.json").write_text(json.dumps(training))
    for rule, run, seconds in (("train_final", "sft/all/seed1", 3.5), ("train_final", "forget/x/seed1", 1.5),
                               ("summary", None, 0.7)):
        path = tmp_path / "logs" / "pool" / "tiny" / "timings" / rule / f"{run}.tsv" if run else \
            tmp_path / "logs" / "pool" / "tiny" / "timings" / f"{rule}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:0{int(seconds)}\t100\n")
    log = tmp_path / "dag.log"
    log.write_text("2 of 5 steps (40%) done\nError in rule evaluate:\n3 of 5 steps (60%) done\n")
    evidence = gpu_check.dag_evidence(tmp_path, log)
    assert evidence["jobs_done"] == "3 of 5" and evidence["failed_rules"] == ["evaluate"]
    assert evidence["scores_by_device"] == {"cuda": 2, "cpu": 1}
    assert evidence["training_logs_by_device"] == {"cuda": 2}
    assert evidence["rule_seconds"] == {"summary": [1, 0.7, 0.7], "train_final": [2, 5.0, 3.5]}


def test_the_steps_fit_the_box():
    """Every step's reserve fits in the 8-minute box, and the DAG's longest share leaves the others theirs."""
    floors = sum(floor for _, _, floor in gpu_check.STEPS)
    assert gpu_check.BOX == 480 and floors <= gpu_check.BOX
    dag = dict((name, box) for name, box, _ in gpu_check.STEPS)["dag"]
    assert dag + sum(floor for name, _, floor in gpu_check.STEPS if name != "dag") <= gpu_check.BOX


def tiny_wheel(folder):
    """A pure wheel, `carried_demo` 1.0, made by hand (what pip needs: the module, METADATA, WHEEL, RECORD)."""
    path = folder / "carried_demo-1.0-py3-none-any.whl"
    info = "carried_demo-1.0.dist-info"
    files = {"carried_demo/__init__.py": "ANSWER = 42\n",
             f"{info}/METADATA": "Metadata-Version: 2.1\nName: carried-demo\nVersion: 1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def test_the_install_puts_the_wheels_first_and_a_python_on_path(tmp_path, monkeypatch):
    """After the install step, the jobs' `python` (the Snakefile's shell commands) is the check's own
    interpreter even where its folder has only `python3`, and it imports the carried packages."""
    tiny_wheel(tmp_path)
    monkeypatch.setattr(gpu_check, "WORK", tmp_path / "work")
    check = gpu_check.Check(gpu_check.argparse.Namespace(
        device="cpu", dtype=None, seconds=60, out=str(tmp_path / "gpu_check.json"), wheels=str(tmp_path)))
    bare = tmp_path / "image-bin"  # the image's interpreter, in a folder without `python`
    bare.mkdir()
    check.python = str(bare / "python3")
    (bare / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bare / "python3").chmod(0o755)
    check.env["PATH"] = str(bare)
    status, details = check.step_install(60)
    assert status == "ok" and details["wheels"] == 1, details
    result = subprocess.run(["python", "-c", "import sys, carried_demo; print(sys.executable, carried_demo.ANSWER)"],
                            env=check.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [sys.executable, "42"]
