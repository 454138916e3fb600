"""Read and validate the records of a user pool source, wherever it lives.

A source is
  - a local `.jsonl` file: read line by line, errors name `FILE:LINE` (as the pipeline always did);
  - a local `.json` file (a JSON list of objects, or one object per line) or `.parquet` file,
    loaded with the `datasets` packaged builders; errors name `FILE[INDEX]` (0-based);
  - a local directory: each `.json`, `.jsonl` and `.parquet` file in it (or those matching
    `data_files`, globs relative to the directory), in name order, each read as above;
  - a Hugging Face Hub data set id (`owner/name`), with an optional revision, data_files and split:
    its files are fetched into the Hub cache (by the local rule fetch_pool, before the job that reads
    them runs offline) and loaded from there with `datasets` (HF_TOKEN is taken from the environment
    by huggingface_hub; it is never read or logged here). Errors name the data set and the index
    within the loaded split.

Every record is validated the same way, whatever the format: `messages` (system/user/assistant
turns, at least one non-empty assistant answer) or `prompt` + `completion`; an optional string
`id` (default: `{file stem}-{line or index}`), unique within the source; optional `corrupted`
(bool) and `corrupted_span` ({start, end, original} inside the last assistant answer). Other
fields (Tulu's `dataset`, ...) are ignored. In the table formats a null field counts as absent,
since a column that some records lack is null in the others.

Tables are converted in a temporary `datasets` cache beside the outputs, removed afterwards, so
nothing is left in ~/.cache; Hub files are downloaded to the Hugging Face cache (HF_HOME).
"""
from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from workflow_scripts.files import InputError, read_jsonl

log = logging.getLogger("pool_sources")

ROLES = ("assistant", "system", "user")
BUILDERS = {".json": "json", ".parquet": "parquet"}  # .jsonl is read line by line, for FILE:LINE errors
DATA_SUFFIXES = (".json", ".jsonl", ".parquet")
# A Hub data set id: owner/name. A missing local path such as data/pool.jsonl is not taken for one.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class Source:
    """Where a pool comes from. revision and split apply to Hub data sets only; data_files to Hub
    data sets and local directories."""
    location: str
    revision: str | None = None
    data_files: tuple[str, ...] = ()
    split: str | None = None


# ---------------------------------------------------------------- one record

def user_messages(record: dict) -> list[dict]:
    """The record's turns as [{role, content}]; raises ValueError with the problem."""
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list of {role, content} objects")
        for k, msg in enumerate(messages):
            if not (isinstance(msg, dict) and isinstance(msg.get("role"), str) and isinstance(msg.get("content"), str)):
                raise ValueError(f"messages[{k}] must be an object with string 'role' and 'content'")
            if msg["role"] not in ROLES:
                raise ValueError(f"messages[{k}] has unknown role {msg['role']!r} (allowed: {', '.join(ROLES)})")
            if msg["role"] == "assistant" and not msg["content"].strip():
                raise ValueError(f"messages[{k}] is an empty assistant answer")
        if not any(msg["role"] == "assistant" for msg in messages):
            raise ValueError("no assistant turn")
        return [{"role": msg["role"], "content": msg["content"]} for msg in messages]
    if "prompt" not in record and "completion" not in record:
        raise ValueError("needs 'messages' or 'prompt' and 'completion'")
    for key in ("prompt", "completion"):
        if not isinstance(record.get(key), str):
            raise ValueError(f"'{key}' must be a string")
    if not record["completion"].strip():
        raise ValueError("'completion' is an empty assistant answer")
    return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}]


def last_answer(messages: list[dict]) -> int:
    """Index of the last assistant turn: the one a corrupted_span points into."""
    return max(k for k, msg in enumerate(messages) if msg["role"] == "assistant")


def check_span(span, answer: str) -> None:
    """A corrupted_span must locate its corruption inside the answer, or tokenize mislabels tokens."""
    if span is None:
        return
    ok = (isinstance(span, dict) and isinstance(span.get("original"), str)
          and all(isinstance(span.get(k), int) and not isinstance(span.get(k), bool) for k in ("start", "end")))
    if not ok or not 0 <= span["start"] <= span["end"] <= len(answer):
        raise ValueError("'corrupted_span' must be null or {start, end, original} with "
                         f"0 <= start <= end <= {len(answer)} (the length of the last assistant answer)")


def normalize(record: dict, default_id: str) -> dict:
    """The pool's record for one validated input record; raises ValueError with the problem."""
    messages = user_messages(record)
    id_ = record.get("id", default_id)
    if not isinstance(id_, str) or not id_:
        raise ValueError("'id' must be a non-empty string")
    corrupted = record.get("corrupted", False)
    if not isinstance(corrupted, bool):
        raise ValueError("'corrupted' must be true or false")
    span = record.get("corrupted_span")
    check_span(span, messages[last_answer(messages)]["content"])
    return {"id": id_, "messages": messages, "source": "user", "corrupted": corrupted, "corrupted_span": span}


# ---------------------------------------------------------------- records of one file or data set
# Each reader yields (where, default id, record); `where` names the record in error messages.

def jsonl_records(path: Path) -> Iterator[tuple[str, str, dict]]:
    for lineno, record in read_jsonl(path):
        yield f"{path}:{lineno}", f"{path.stem}-{lineno}", record


def table_records(name: str, stem: str, rows: list[dict]) -> Iterator[tuple[str, str, dict]]:
    for index, row in enumerate(rows):
        yield f"{name}[{index}]", f"{stem}-{index}", {k: v for k, v in row.items() if v is not None}


def load_table(name: str, failure: str, scratch: Path, **kwargs) -> list[dict]:
    """Rows of `datasets.load_dataset(**kwargs)` as dicts; a failure is an InputError `name: failure: why`."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its errors reach the user in the InputError
    # beside the outputs, but without creating their directory before every input is validated
    near = next(p for p in (scratch.absolute(), *scratch.absolute().parents) if p.is_dir())
    with tempfile.TemporaryDirectory(dir=near, prefix=".datasets-cache-") as cache_dir:
        try:
            loaded = datasets.load_dataset(**kwargs, cache_dir=cache_dir)
        except Exception as err:  # datasets, fsspec, huggingface_hub and pyarrow each raise their own kinds
            raise InputError(f"{name}: {failure}: {describe(err)}") from None
        if isinstance(loaded, datasets.DatasetDict):  # no split was named: there must be just one
            if len(loaded) != 1:
                raise InputError(f"{name}: has splits {', '.join(sorted(loaded))}; choose one with its split option")
            loaded = next(iter(loaded.values()))
        return loaded.to_list()


def describe(err: BaseException) -> str:
    """The root cause of a loading error, on one line (datasets wraps the builder's error)."""
    while type(err).__name__ == "DatasetGenerationError" and err.__cause__ is not None:
        err = err.__cause__
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:500]}" if text else type(err).__name__


def local_file_records(path: Path, scratch: Path) -> Iterator[tuple[str, str, dict]]:
    if path.suffix == ".jsonl":
        yield from jsonl_records(path)
        return
    if path.suffix not in BUILDERS:
        raise InputError(f"{path}: unsupported file type (use {', '.join(DATA_SUFFIXES)})")
    rows = load_table(str(path), f"cannot be read as {BUILDERS[path.suffix].upper()}", scratch,
                      path=BUILDERS[path.suffix], data_files=str(path), split="train")
    yield from table_records(str(path), path.stem, rows)


def directory_files(directory: Path, patterns: tuple[str, ...]) -> list[Path]:
    if patterns:
        found = {p for pattern in patterns for p in directory.glob(pattern)}
    else:
        found = set(directory.iterdir())
    files = sorted(p for p in found if p.is_file() and p.suffix in DATA_SUFFIXES)
    if not files:
        wanted = f"matching {', '.join(patterns)}" if patterns else f"({', '.join(DATA_SUFFIXES)})"
        raise InputError(f"{directory}: no data files {wanted}")
    return files


def hub_snapshot(source: Source) -> Path:
    """The folder of the Hub data set's files in the Hub cache (HF_HUB_CACHE): downloaded, or, offline
    (HF_HUB_OFFLINE=1, as every workflow job but the fetch rules runs), the copy already there."""
    from huggingface_hub import snapshot_download

    name, request = hub_name(source), hub_request(source)
    log.info("Hugging Face Hub: %s", request)
    patterns = [*source.data_files, "README.md"] if source.data_files else None  # README.md: its configs
    try:
        return Path(snapshot_download(source.location, repo_type="dataset", revision=source.revision,
                                      allow_patterns=patterns))
    except Exception as err:  # huggingface_hub raises its own kinds, and requests' and OSError
        raise InputError(f"{name}: could not be loaded from the Hugging Face Hub ({request}): "
                         f"{describe(err)}") from None


def hub_records(source: Source, scratch: Path) -> Iterator[tuple[str, str, dict]]:
    """The split of the data set as the Hub defines it (its README's configs, or its files' names),
    read from the snapshot folder by the same `datasets` rules."""
    folder = hub_snapshot(source)
    rows = load_table(hub_name(source), f"could not be read ({hub_request(source)})", scratch,
                      path=str(folder), data_files=list(source.data_files) or None, split=source.split)
    stem = Path(source.data_files[0]).stem if len(source.data_files) == 1 else source.location.split("/")[1]
    yield from table_records(hub_name(source), stem, rows)


def hub_name(source: Source) -> str:
    """The source's name in messages, e.g. `owner/name@main:tulu_10k_sample.json` or `owner/name (split train)`."""
    name = source.location + (f"@{source.revision}" if source.revision else "")
    if source.data_files:
        name += ":" + ",".join(source.data_files)
    return name + (f" (split {source.split})" if source.split else "")


def hub_request(source: Source) -> str:
    """Everything that was asked of the Hub, for the log and for errors."""
    return (f"data set {source.location}, revision {source.revision or '(default branch)'}, "
            f"data_files {', '.join(source.data_files) or '(the data set configuration)'}, "
            f"split {source.split or '(the only one)'}")


def is_hub_id(location: str) -> bool:
    return not Path(location).exists() and bool(HUB_ID.match(location)) and Path(location).suffix not in DATA_SUFFIXES


def source_records(source: Source, scratch: Path) -> Iterator[tuple[str, str, dict]]:
    if is_hub_id(source.location):
        yield from hub_records(source, scratch)
        return
    path = Path(source.location)
    if not path.exists():
        raise InputError(f"{path}: pool file not found")
    for option, value in (("revision", source.revision), ("split", source.split)):
        if value is not None:
            raise InputError(f"{path}: {option} applies to Hub data sets only, and this is a local path")
    if path.is_dir():
        for file in directory_files(path, source.data_files):
            yield from local_file_records(file, scratch)
        return
    if source.data_files:
        raise InputError(f"{path}: data_files applies to Hub data sets and local directories, not to a file")
    yield from local_file_records(path, scratch)


# ---------------------------------------------------------------- a whole source

def load_pool(source: Source, scratch: str | Path, skipped: list | None = None,
              max_skipped_fraction: float = 0.0) -> list[dict]:
    """The validated, normalized records of `source`, in its order; ids unique within it.

    A bad record (one that fails validation, or repeats an earlier id) stops the load, or, given a
    `skipped` list, is appended to it as {source, where, reason} and left out; more than
    `max_skipped_fraction` of the source's records bad stops the load all the same. (A file that
    is not valid JSON at all still stops it: that is no single record's fault.)
    The temporary `datasets` cache goes to `scratch` (or its nearest existing parent).
    """
    pool, first, bad = [], {}, []
    for where, default_id, record in source_records(source, Path(scratch)):
        try:
            row = normalize(record, default_id)
            if row["id"] in first:
                raise ValueError(f"duplicate id {row['id']!r} (first {first_seen(first[row['id']], where)})")
        except ValueError as err:
            if skipped is None:
                raise InputError(f"{where}: {err}") from None
            bad.append({"source": source.location, "where": where, "reason": str(err)})
            continue
        first[row["id"]] = where
        pool.append(row)
    total = len(pool) + len(bad)
    if bad:
        log.warning("%s: %d of %d records skipped (first: %s: %s)", source.location, len(bad), total,
                    bad[0]["where"], bad[0]["reason"])
        if len(bad) > max_skipped_fraction * total:
            raise InputError(f"{source.location}: {len(bad)} of {total} records are bad, more than the "
                             f"{max_skipped_fraction:g} share data.max_skipped_fraction allows "
                             f"(first: {bad[0]['where']}: {bad[0]['reason']})")
        skipped.extend(bad)
    if not pool:
        raise InputError(f"{source.location}: no records")
    return pool


def first_seen(first: str, where: str) -> str:
    """'on line 3' within the same JSONL file (the pipeline's long-standing message), else 'at <where>'."""
    same_file = first.rpartition(":")[0] == where.rpartition(":")[0]
    if same_file and first.rpartition(":")[2].isdigit() and where.rpartition(":")[2].isdigit():
        return f"on line {first.rpartition(':')[2]}"
    return f"at {first}"
