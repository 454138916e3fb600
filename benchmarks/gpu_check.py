"""The GPU check's steps, each time-boxed, into one JSON (run by benchmarks/gpu_check.sh).

1. install: the carried wheels into a --target folder (results/bench/gpu_check/site), put first
   on PYTHONPATH, so that they shadow the image's older copies (transformers, huggingface-hub, ...);
2. imports: every package the workflow imports, its version and whether it came from the carried
   wheels; each carried distribution's requirements against what this Python then imports;
3. dag: the tiny model (tests/tiny.py), then the test experiment (.test/config.yaml: every method,
   2 rho x 2 seeds, 117 jobs; --small: one rho and one seed) with the local profile, in bfloat16
   on the GPU (float32 with --cpu, unless --dtype says otherwise);
   what shows where it ran: the score JSONs' device, the training logs' provenance, and the
   workflow modules that nvidia-smi saw holding the GPU;
4. throughput: benchmarks/gpu.py's bf16 figures (--cpu: its --smoke run);
5. deepspeed: one ZeRO-2 training of the tiny model (forget, envs/deepspeed_zero2.json, the
   Trainer's AdamW: no compiled op) under `accelerate launch --use_deepspeed`, with the options the
   train_final rule passes (benchmarks/deepspeed_train.py: DeepSpeed's log says the ZeRO stage).
   With --cpu it runs on DeepSpeed's CPU accelerator (gloo), which first compiles a small op.

Only the standard library is imported here (this runs before the install); the steps run in
subprocesses. A failed step is recorded and the next one runs where it can.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from tiny import train_args  # noqa: E402  (the training options the rules pass; no torch at import)

WORK = ROOT / "results" / "bench" / "gpu_check"
DEEPSPEED_CONFIG = "envs/deepspeed_zero2.json"
MODULES = ("torch", "numpy", "pandas", "pyarrow", "scipy", "sklearn", "matplotlib", "yaml", "tokenizers",
           "safetensors", "huggingface_hub", "transformers", "peft", "accelerate", "gguf", "datasets", "evaluate",
           "lm_eval", "jsonschema", "pydantic", "snakemake", "deepspeed")
# Required in metadata but left out of the wheels on purpose (envs/gpu-wheels.txt says why).
OMITTED = ("pulp",)
# (name, seconds at most, seconds kept back for it while earlier steps run), for the 480 s box;
# a longer box (GPU_CHECK_SECONDS) scales them. The DAG is the longest: 117 jobs, most of them a
# Python start with torch and lm-eval.
STEPS = (("install", 90, 10), ("imports", 60, 15), ("dag", 300, 60), ("throughput", 150, 60), ("deepspeed", 120, 60))
BOX = 480

PROBE = r"""
import importlib, json, sys, time
from importlib import metadata

site, modules, omitted = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
out = {"python": sys.version.split()[0], "modules": {}, "errors": {}}
for name in modules:
    start = time.perf_counter()
    try:
        module = importlib.import_module(name)
    except Exception as error:  # a broken install shows as any exception, not only ImportError
        out["errors"][name] = f"{type(error).__name__}: {error}"[:400]
        continue
    try:
        version = getattr(module, "__version__", None) or metadata.version(name)
    except metadata.PackageNotFoundError:
        version = None
    out["modules"][name] = {"version": version,
                            "carried": (getattr(module, "__file__", "") or "").startswith(site),
                            "seconds": round(time.perf_counter() - start, 2)}
import torch
out.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
           device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
           bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported())
from packaging.requirements import Requirement
unmet = set()
for dist in metadata.distributions(path=[site]):
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.name.lower() in omitted or requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            found = metadata.version(requirement.name)  # the first on sys.path: a carried one shadows
        except metadata.PackageNotFoundError:
            found = None
        if found is None or not requirement.specifier.contains(found, prereleases=True):
            unmet.add(f"{dist.metadata['Name']} needs {requirement}, found {found}")
out["unmet"] = sorted(unmet)
print(json.dumps(out))
"""


class Check:
    def __init__(self, args):
        self.args = args
        self.cuda = args.device == "cuda"
        self.dtype = args.dtype or ("bfloat16" if self.cuda else "float32")
        self.python = sys.executable
        self.start = float(os.environ.get("GPU_CHECK_START", time.time()))
        self.deadline = self.start + args.seconds
        self.scale = args.seconds / BOX
        out_dir = os.environ.get("OUT")
        self.out = Path(args.out) if args.out else Path(out_dir) / "gpu_check.json" if out_dir else \
            ROOT / "results" / "bench" / "gpu_check.json"
        # Beside the other outputs, replaced by the next check (never removed at the end: deleting
        # its 25k files took 90 s on a loaded machine, time the box cannot spare).
        self.site = WORK / "site"
        self.env = dict(os.environ)
        self.record = {"check": "gpu_check", "mode": args.device, "dtype": self.dtype, "status": "running",
                       "box_seconds": args.seconds, "python": sys.version.split()[0], "executable": self.python,
                       "steps": {}}

    # ------------------------------------------------------------ running and recording

    def seconds_left(self) -> float:
        return self.deadline - time.time()

    def write(self):
        self.record["seconds"] = round(time.time() - self.start, 1)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record, indent=1, default=str) + "\n")
        os.replace(tmp, self.out)

    def run(self, command, timeout: float, log: Path, cwd=ROOT) -> tuple[int | str, float]:
        """Run `command` in its own process group, output to `log`; past `timeout`, SIGINT to the
        group (Snakemake then stops its jobs), SIGKILL 10 s later. (exit status or 'timeout', s)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.time()
        with open(log, "w") as handle:
            process = subprocess.Popen([str(c) for c in command], cwd=cwd, env=self.env, stdout=handle,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            try:
                return process.wait(timeout=max(timeout, 1)), time.time() - start
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                return "timeout", time.time() - start
            finally:  # whatever the step left behind in its group (jobs of a stopped Snakemake)
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def steps(self):
        for index, (name, box, _) in enumerate(STEPS):
            later = sum(floor for _, _, floor in STEPS[index + 1:]) * self.scale
            timeout = min(box * self.scale, self.seconds_left() - later)
            entry = self.record["steps"][name] = {"status": "running", "timeout": round(timeout)}
            self.write()
            start = time.time()
            try:
                if name != "install" and self.record["steps"]["install"]["status"] != "ok":
                    status, details = "skipped", {"why": "the install failed"}
                elif name not in ("install", "imports", *self.args.steps):
                    status, details = "skipped", {"why": "not asked for (--steps)"}
                elif timeout < 10:
                    status, details = "skipped", {"why": "no time left in the box"}
                else:
                    status, details = getattr(self, "step_" + name)(timeout)
            except Exception as error:  # a bug of this script must not lose the other steps
                status, details = "failed", {"error": f"{type(error).__name__}: {error}"}
            entry.update(status=status, seconds=round(time.time() - start, 1), **details)
            print(f"gpu_check: {name}: {status} in {entry['seconds']} s"
                  + (f" ({details.get('why') or details.get('error')})" if status != "ok" else ""), flush=True)
            self.write()

    # ------------------------------------------------------------ the steps

    def step_install(self, timeout):
        wheels = sorted(Path(self.args.wheels).glob("*.whl"))
        shutil.rmtree(self.site, ignore_errors=True)  # a fresh machine has none: no time lost there
        log = WORK / "install.log"
        rc, _ = self.run([self.python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile",
                          "--no-cache-dir", "--disable-pip-version-check", "--target", self.site, *wheels],
                         timeout, log)
        details = {"wheels": len(wheels), "mib": round(sum(w.stat().st_size for w in wheels) / 2**20, 1),
                   "site": str(self.site)}
        if rc != 0:
            return "failed", {**details, "rc": rc, "log_tail": tail(log)}
        # Carried packages first, then the repository (workflow_scripts); their scripts (snakemake)
        # and this interpreter first on PATH, as the Snakefile runs jobs with `python`. An image may
        # have only `python3`, and a symlink outside a venv loses the venv: a script that execs it.
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.site), str(ROOT), self.env.get("PYTHONPATH")]))
        shim = self.site / "bin" / "python"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(f'#!/bin/sh\nexec "{self.python}" "$@"\n')
        shim.chmod(0o755)
        self.env["PATH"] = os.pathsep.join([str(self.site / "bin"), str(Path(self.python).parent), self.env["PATH"]])
        self.env["HF_HUB_OFFLINE"] = self.env["HF_DATASETS_OFFLINE"] = "1"  # nothing outside can be reached there
        return "ok", details

    def step_imports(self, timeout):
        log = WORK / "imports.log"
        rc, _ = self.run([self.python, "-c", PROBE, self.site, ",".join(MODULES), ",".join(OMITTED)], timeout, log)
        text = log.read_text()
        try:
            probe = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return "failed", {"rc": rc, "log_tail": tail(log)}
        self.record.update({k: probe[k] for k in ("torch", "cuda", "device", "bf16")})
        self.record["versions"] = {name: m["version"] for name, m in probe["modules"].items()}
        details = {"carried": sorted(n for n, m in probe["modules"].items() if m["carried"]),
                   "errors": probe["errors"], "unmet": probe["unmet"],
                   "slowest": sorted(((m["seconds"], n) for n, m in probe["modules"].items()), reverse=True)[:3]}
        problems = [*(f"{n} does not import" for n in probe["errors"]), *probe["unmet"],
                    *(["torch sees no CUDA device"] if self.cuda and not probe["cuda_available"] else [])]
        if problems:
            details["why"] = "; ".join(problems)[:500]
        return ("ok" if rc == 0 and not problems else "failed"), details

    def snakemake(self, work: Path, timeout: float, log: Path, *targets):
        cores = self.args.cores or os.cpu_count()
        command = [self.python, "-m", "snakemake", "--snakefile", ROOT / "Snakefile", "--directory", work,
                   "--profile", ROOT / "profiles" / "local", "--cores", cores, "--keep-going",
                   "--scheduler", "greedy"]  # the ILP scheduler needs pulp, which is not carried
        if self.cuda:
            # `gpu` is a scheduling token: the tiny model's jobs share the one GPU, many at a time.
            command += ["--resources", f"gpu={self.args.gpu_jobs or cores}"]
        return self.run([*command, *targets], timeout, log)

    def step_dag(self, timeout):
        import yaml  # the image's (this step runs after the install, which carries it where missing)

        shutil.rmtree(WORK / "dag", ignore_errors=True)
        work = WORK / "dag"
        start = time.time()
        rc, _ = self.run([self.python, ROOT / "tests" / "tiny.py", work / "tiny-model"], 60, WORK / "tiny.log")
        if rc != 0:
            return "failed", {"why": "building the tiny model failed", "log_tail": tail(WORK / "tiny.log")}
        shutil.copytree(ROOT / ".test" / "data", work / "data")
        config = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
        dtype = self.dtype
        config["model"]["source"] = str(work / "tiny-model")
        for section in ("model", "scoring", "eval"):
            config.setdefault(section, {})["dtype"] = dtype
        config["training"]["bf16"] = dtype == "bfloat16"
        if self.args.small:  # every rule still runs, for one rho and one seed
            config.update(rho=config["rho"][:1], seeds=config["seeds"][:1])
        (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

        log = WORK / "dag.log"
        sampler = GpuSampler() if self.cuda else None
        rc, seconds = self.snakemake(work, timeout - (time.time() - start), log)
        gpu = sampler.stop() if sampler else None
        details = {"rc": rc, "snakemake_seconds": round(seconds, 1), "dtype": dtype, **dag_evidence(work, log)}
        if gpu is not None:
            details["gpu_seen"] = gpu
        expected = "cuda" if self.cuda else "cpu"
        devices_ok = (set(details["scores_by_device"]) == {expected}
                      and set(details["training_logs_by_device"]) == {expected})
        if rc != 0 or not devices_ok:
            details["why"] = (f"snakemake exit {rc}, failed rules {details['failed_rules']}, jobs done "
                              f"{details['jobs_done']}; scores by device {details['scores_by_device']}, "
                              f"trainings by device {details['training_logs_by_device']} (expected {expected})")
            details["log_tail"] = tail(log)
        return ("ok" if rc == 0 and devices_ok else "failed"), details

    def step_throughput(self, timeout):
        out, log = WORK / "gpu.json", WORK / "throughput.log"
        out.unlink(missing_ok=True)
        extra = [] if self.cuda else ["--smoke", "--device", "cpu"]
        rc, _ = self.run([self.python, "-m", "benchmarks.gpu", "--out", out, *extra], timeout, log)
        if rc != 0 or not out.is_file():
            return "failed", {"rc": rc, "why": f"benchmarks.gpu exit {rc}", "log_tail": tail(log)}
        self.record["figures"] = json.loads(out.read_text())
        return "ok", {"smoke": not self.cuda}

    def step_deepspeed(self, timeout):
        work, ds = WORK / "dag", WORK / "deepspeed"
        shutil.rmtree(ds, ignore_errors=True)
        experiment = work / "results" / "tiny-pool" / "tiny"
        model, tokens = work / "resources" / "models" / "tiny", experiment / "tokens" / "train.parquet"
        partition = experiment / "rho0.7" / "partition.parquet"
        start = time.time()
        if not (model.is_dir() and tokens.is_file() and partition.is_file()):  # the DAG stopped before them
            targets = [p.relative_to(work) for p in (model, tokens, partition)]
            self.snakemake(work, timeout / 2, ds / "inputs.log", *targets)
            if not partition.is_file():
                return "failed", {"why": "no tiny model, tokens and partition from the DAG",
                                  "log_tail": tail(ds / "inputs.log")}
        bf16 = self.dtype == "bfloat16"
        log = ds / "train.log"
        command = [self.python, "-m", "accelerate.commands.launch", "--use_deepspeed",
                   "--deepspeed_config_file", DEEPSPEED_CONFIG, "--num_processes", "1", "--num_machines", "1",
                   "--mixed_precision", "bf16" if bf16 else "no", "-m", "benchmarks.deepspeed_train",
                   "--method", "forget", "--model-dir", model, "--tokens", tokens, "--partition", partition,
                   "--t-min", "1e-05", "--t-max", "0.25", "--lambda-schedule", "linear", "--forget-loss", "ascent",
                   "--out", ds / "model", "--out-log", ds / "training_log.json", "--work-dir", ds / "trainer",
                   *train_args(bf16=bf16, dtype=self.dtype), "--deepspeed", DEEPSPEED_CONFIG, "--threads", "2"]
        rc, _ = self.run(command, timeout - (time.time() - start), log)
        text = log.read_text(errors="replace")
        stage = re.findall(r"Creating (\S+) ZeRO stage (\d) optimizer", text)
        optimizer = re.findall(r"DeepSpeed Final Optimizer = (\w+)", text)
        details = {"rc": rc, "dtype": self.dtype, "zero_stage": int(stage[-1][1]) if stage else None,
                   "zero_dtype": stage[-1][0] if stage else None, "optimizer": optimizer[-1] if optimizer else None}
        training_log = ds / "training_log.json"
        if training_log.is_file():
            result = json.loads(training_log.read_text())
            details.update(steps=result["steps"], train_loss=result["train_loss"],
                           device=result["provenance"]["devices"].get("kind"))
        expected = "cuda" if self.cuda else "cpu"
        ok = rc == 0 and details.get("device") == expected and bool(details.get("steps")) and details["zero_stage"] == 2
        if not ok:
            details.update(why=f"exit {rc}, device {details.get('device')} (expected {expected}), "
                               f"steps {details.get('steps')}, ZeRO stage {details['zero_stage']}", log_tail=tail(log))
        return ("ok" if ok else "failed"), details

    def finish(self):
        statuses = [s["status"] for s in self.record["steps"].values()]
        self.record["status"] = "ok" if all(s in ("ok", "skipped") for s in statuses) else "failed"
        self.write()
        # The jobs' logs beside the JSON (they come back from $OUT with it; models stay behind).
        logs = [*WORK.glob("*.log"), WORK / "dag" / "config.yaml", *(WORK / "dag" / "logs").rglob("*"),
                *(WORK / "deepspeed").glob("*.log")]
        with tarfile.open(self.out.with_name("gpu_check_logs.tar.gz"), "w:gz") as archive:
            for path in sorted(p for p in logs if p.is_file()):
                archive.add(path, arcname=str(path.relative_to(WORK)))
        return 0 if self.record["status"].startswith("ok") else 1


# ---------------------------------------------------------------- evidence from the DAG's files

def dag_evidence(work: Path, log: Path) -> dict:
    """Jobs done and planned, failed rules, where scores and trainings ran, time per rule."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    done = re.findall(r"(\d+) of (\d+) steps", text)
    failed = sorted(set(re.findall(r"Error in rule (\w+)", text)))
    scores = list(work.glob("results/**/scores/*.json"))
    trainings = [*work.glob("results/**/training_log.json"), *work.glob("results/**/*.training_log.json")]
    return {
        "jobs_done": f"{done[-1][0]} of {done[-1][1]}" if done else "0",
        "failed_rules": failed,
        "scores_by_device": count(json.loads(p.read_text()).get("device") for p in scores),
        "training_logs_by_device": count(json.loads(p.read_text())["provenance"]["devices"]["kind"]
                                         for p in trainings),
        "rule_seconds": rule_seconds(work),
    }


def rule_seconds(work: Path) -> dict:
    """rule -> [jobs, total s, longest s] from the benchmark files (logs/.../timings/<rule>/...)."""
    out = {}
    for path in work.glob("logs/**/timings/**/*.tsv"):
        parts = path.relative_to(work).parts
        rule = parts[parts.index("timings") + 1].removesuffix(".tsv")
        lines = path.read_text().splitlines()
        if len(lines) < 2:
            continue
        seconds = float(lines[1].split("\t")[0])
        jobs, total, longest = out.get(rule, [0, 0.0, 0.0])
        out[rule] = [jobs + 1, round(total + seconds, 1), round(max(longest, seconds), 1)]
    return dict(sorted(out.items()))


def count(values) -> dict:
    out = {}
    for value in values:
        out[str(value)] = out.get(str(value), 0) + 1
    return out


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class GpuSampler:
    """Once a second, nvidia-smi's compute processes: which workflow modules held the GPU, the most
    at once and the most memory they used together. Evidence beside the files' own records (the
    scoring jobs write none)."""

    def __init__(self):
        self.modules, self.peak_processes, self.peak_mib, self.samples, self.error = set(), 0, 0, 0, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(1.0):
            try:
                text = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                       "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                      timeout=10).stdout
            except (OSError, subprocess.SubprocessError) as error:
                self.error = f"{type(error).__name__}: {error}"
                return
            rows = [line.split(",") for line in text.strip().splitlines() if line.strip()]
            self.samples += 1
            self.peak_processes = max(self.peak_processes, len(rows))
            self.peak_mib = max(self.peak_mib, sum(int(r[1]) for r in rows if r[1].strip().isdigit()))
            for row in rows:
                try:
                    command = Path(f"/proc/{row[0].strip()}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                self.modules.update(re.findall(r"workflow_scripts\.(\w+)", command))

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=15)
        return {"modules": sorted(self.modules), "peak_processes": self.peak_processes,
                "peak_mib": self.peak_mib, "samples": self.samples, "error": self.error}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--wheels", default="resources/gpu-wheels")
    parser.add_argument("--seconds", type=float, default=BOX, help="the whole check's time box")
    parser.add_argument("--cores", type=int, default=None, help="Snakemake's --cores (default: every core)")
    parser.add_argument("--gpu-jobs", type=int, default=None, help="GPU jobs at a time (default: --cores)")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default=None,
                        help="the DAG's dtype (default: bfloat16 on the GPU, float32 with --cpu)")
    parser.add_argument("--small", action="store_true", help="the DAG for one rho and one seed (every rule still runs)")
    parser.add_argument("--steps", nargs="+", choices=("dag", "throughput", "deepspeed"),
                        default=("dag", "throughput", "deepspeed"),
                        help="the steps after install and imports (deepspeed alone reuses the last DAG's files)")
    parser.add_argument("--out", default=None, help="default $OUT/gpu_check.json, else results/bench/gpu_check.json")
    check = Check(parser.parse_args(argv))
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        check.steps()
    except KeyboardInterrupt:  # the outer timeout: keep what was measured
        check.record["interrupted"] = True
    code = check.finish()
    print(f"gpu_check: {check.record['status']} in {check.record['seconds']} s -> {check.out}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
