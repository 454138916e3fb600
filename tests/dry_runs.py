"""Many Snakemake command lines at once, each in a process forked from this one after it imported
Snakemake: the same CLI a user types, without paying Python's and Snakemake's start-up per run
(a dry run of the test experiment spends half its time importing). Used by conftest.dry_runs.

    python tests/dry_runs.py WORKERS < [{"args": [...], "stdout": path, "stderr": path}, ...]
prints one exit code per run, in order, as a JSON list."""
import json
import os
import sys
import traceback

from snakemake.cli import main


def run(args: list[str], stdout: str, stderr: str) -> None:
    """In the forked child: Snakemake's CLI with its output in two files; never returns."""
    for fd, path in ((1, stdout), (2, stderr)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.argv = [sys.argv[0].replace("tests/dry_runs.py", "snakemake"), *args]  # the header's `Command:`
    code = 1
    try:
        main(args)
        code = 0
    except SystemExit as stop:  # sys.exit(): None is success, a message is failure
        code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # os._exit below would swallow it: the traceback goes to the run's stderr
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_all(runs: list[dict], workers: int) -> list[int]:
    codes, running, queue = [None] * len(runs), {}, list(enumerate(runs))
    while queue or running:
        while queue and len(running) < workers:
            index, spec = queue.pop(0)
            pid = os.fork()
            if pid == 0:
                run(spec["args"], spec["stdout"], spec["stderr"])
            running[pid] = index
        pid, status = os.wait()
        codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
    return codes


if __name__ == "__main__":
    print(json.dumps(run_all(json.load(sys.stdin), int(sys.argv[1]))))
