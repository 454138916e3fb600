"""File helpers shared by every stage: atomic writes, JSONL, Parquet, logging.

Every stage writes through `atomic_path` so that a killed job never leaves a file that
looks complete: the data goes to a temporary name beside the target and is renamed at the end.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq


class InputError(ValueError):
    """A bad input file or record. The message names the file, the record and the problem."""


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only on success.

    Works for files and for directories (a checkpoint directory is written whole, then moved).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        _remove(target)
        os.replace(tmp, target)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record) for each non-empty line; a bad line raises InputError."""
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"{path}:{lineno}: invalid UTF-8 ({err.reason} at byte {err.start})") from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{lineno}: malformed JSON: {err.msg} (character {err.pos + 1})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_parquet(path: str | os.PathLike, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def setup_logging(name: str) -> logging.Logger:
    """Log to stderr (which each rule redirects to its `log:` file) with timestamps."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    return logging.getLogger(name)


def log_job_environment() -> None:
    """Where this job runs: host, SLURM job and the GPUs it was given (for cluster debugging)."""
    keys = ("SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES")
    found = " ".join(f"{key}={os.environ[key]}" for key in keys if key in os.environ)
    logging.getLogger("workflow").info("host %s %s", os.uname().nodename, found or "(not in a SLURM job)")


def run_main(main, argv=None) -> None:
    """Run a stage's main(); an InputError ends the process with its message, not a traceback."""
    setup_logging("workflow")  # whatever the stage configures at import, the job's first line is logged
    log_job_environment()
    try:
        main(argv)
    except InputError as err:
        logging.getLogger("workflow").error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
