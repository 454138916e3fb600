"""Write the summary tables of an experiment (results/{dataset}/{model}/) from its score JSONs.

- summary.csv: one row per evaluated checkpoint (model, method, variant, seed), one column per task
  (its headline metric, as the evaluator recorded it) and their mean over the tasks;
- summary_by_method.csv: one row per model, method and variant, averaged over seeds, with the
  standard deviation over seeds, the 95% interval half-width (Student t over seeds; empty with one
  seed) and the difference to `sft` of the same model, with 95% intervals paired by seed and by
  item (the evaluator's per-item scores);
- timings.csv: every job's wall time, memory and CPU time (Snakemake's `benchmark:` files), and
  per rule the jobs, total and slowest time and peak memory in summary.md;
- summary.md: all of them, readable, and, given the decodings JSONs of workflow_scripts/decode.py,
  what the models write: each run's greedy answer to the first prompts of each task; given the
  partition.json files, what the estimated share decided (forget, or abstain and why).

The numbers are workflow_scripts/score_statistics.py's; this module renders them.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from workflow_scripts import runs
from workflow_scripts.files import InputError, atomic_path, run_main, setup_logging
from workflow_scripts.score_statistics import METHOD_ORDER, by_method, read_scores, score_columns, summary_table

log = setup_logging("summary")

def markdown_table(header: list[str], rows: list[list[str]], text_columns: int) -> list[str]:
    rule = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    return ["| " + " | ".join(line) + " |" for line in [header, rule, *rows]]


def to_markdown(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    columns = score_columns(table)

    def cell(row, column):
        value = f"{row[column]:.4f}"
        return value if math.isnan(row[f"{column}_ci95"]) else f"{value} ± {row[f'{column}_ci95']:.4f}"

    def delta(row):
        value, interval = row["mean_delta_sft"], row["mean_delta_sft_ci95"]
        if math.isnan(value):
            return ""
        return f"{value:+.4f}" if math.isnan(interval) else f"{value:+.4f} ± {interval:.4f}"

    def against_sft(row, column):
        value = row[f"{column}_delta_sft"]
        if math.isnan(value):
            return ""
        seeds, items = row[f"{column}_delta_sft_ci95"], row[f"{column}_delta_sft_items_ci95"]
        return " / ".join([f"{value:+.4f}", *(f"± {h:.4f} {what}" for h, what in ((seeds, "seeds"), (items, "items"))
                                               if not math.isnan(h))])

    method_rows = [[r["model"], r["method"], r["variant"], str(r["seeds"]), *(cell(r, c) for c in columns),
                    delta(r)] for _, r in summary.iterrows()]
    delta_rows = [[r["model"], r["method"], r["variant"], *(against_sft(r, c) for c in columns)]
                  for _, r in summary.iterrows() if r["method"] != runs.SFT and not math.isnan(r["mean_delta_sft"])]
    run_rows = [[*(str(v) for v in row[:4]), *(f"{v:.4f}" for v in row[4:])] for row in table.itertuples(index=False)]
    return "\n".join([
        "# Summary", "",
        "Scores are each task's headline metric (0-1); `mean` averages the tasks. Per method: the mean over",
        "seeds, ± the 95% interval half-width (Student t over seeds, shown with two or more seeds);",
        "`Δ mean vs sft` is the difference of the means to `sft` of the same model, ± the 95% interval of",
        "the per-seed differences (each method of a seed shares that seed's initialisation and data order).", "",
        *markdown_table(["model", "method", "variant", "seeds", *columns, "Δ mean vs sft"], method_rows, 3), "",
        "## Differences to sft", "",
        "Per task: the method's mean minus sft's, ± the 95% interval half-width paired by seed (training",
        "noise: seeds share initialisation and data order) and ± the one paired by item (evaluation noise:",
        "per item, the mean over seeds of the method minus that of sft). The item half-width is the",
        "smallest difference these evaluation items can tell from zero at 95%.", "",
        *markdown_table(["model", "method", "variant", *columns], delta_rows, 3), "",
        "## Every checkpoint", "",
        *markdown_table(list(table.columns), run_rows, 4), ""])


TIMING_COLUMNS = {"s": "seconds", "max_rss": "max_rss_mb", "cpu_time": "cpu_seconds"}


def timing_table(dirs: list[str]) -> pd.DataFrame:
    """One row per job from Snakemake's `benchmark:` files, `{dir}/{rule}[/{job}].tsv`."""
    rows = []
    for directory in map(Path, dirs):
        for path in sorted(directory.rglob("*.tsv")):
            parts = path.relative_to(directory).with_suffix("").parts
            record = pd.read_csv(path, sep="\t", na_values=["NA", "-"]).iloc[-1]  # a rerun appends: the last
            rows.append({"rule": parts[0], "job": "/".join(parts[1:]) or parts[0],
                         **{new: record.get(old) for old, new in TIMING_COLUMNS.items()}})
    return pd.DataFrame(rows, columns=["rule", "job", *TIMING_COLUMNS.values()])


def timing_markdown(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    per_rule = table.groupby("rule", sort=False).agg(jobs=("job", "size"), total=("seconds", "sum"),
                                                    slowest=("seconds", "max"), peak=("max_rss_mb", "max"))
    rows = [[rule, str(int(r.jobs)), f"{r.total:.1f}", f"{r.slowest:.1f}",
             "" if math.isnan(r.peak) else f"{r.peak:.0f}"] for rule, r in per_rule.iterrows()]
    return ["## Time and memory per rule", "",
            "From each job's Snakemake `benchmark:` file (`timings.csv` has every job); wall seconds, peak RSS in MB.",
            "", *markdown_table(["rule", "jobs", "total s", "slowest s", "peak MB"], rows, 1), ""]


def provenance_markdown(results: dict[str, dict | None]) -> list[str]:
    """Which code and config made the results (path -> its `provenance`): one row per commit and
    config, with the hosts and devices; a warning when the table mixes several."""
    groups: dict[tuple, list] = {}
    for path, record in results.items():
        record = record or {}
        key = (record.get("commit", "unknown"), record.get("dirty"), record.get("config_sha", "unknown"))
        groups.setdefault(key, []).append((path, record))
    rows = []
    for (commit, dirty, sha), members in groups.items():
        devices = sorted({f"{r['devices']['count']} x {', '.join(sorted(set(r['devices']['names'])))}"
                          if r.get("devices", {}).get("kind") == "cuda" else "CPU" for _, r in members if r})
        hosts = sorted({r.get("host", "?") for _, r in members if r})
        rows.append([commit[:12] if commit else "unknown", {True: "yes", False: "no"}.get(dirty, "unknown"), sha,
                     str(len(members)), ", ".join(hosts) or "unknown", ", ".join(devices) or "unknown"])
    lines = ["## Provenance", "",
             "The code and config that made each result (the training logs and score JSONs record it, with the",
             "package versions; the experiment's configs/{config_sha}.yaml holds each config).", ""]
    if len(groups) > 1:
        lines += [f"**Warning: these results were made by {len(groups)} different commits or configs**; the "
                  "rows below say which made how many (see each file's `provenance`).", ""]
    return lines + markdown_table(["commit", "dirty", "config", "results", "hosts", "devices"], rows, 3) + [""]


def read_provenance(paths: list[str]) -> dict[str, dict | None]:
    return {path: json.loads(Path(path).read_text()).get("provenance") for path in paths}


def data_markdown(split_path: str | None, skipped_path: str | None) -> list[str]:
    """What the data setting left out: records skipped as bad (prepare_data) and training records
    that share an id with the reference subset (split), each counted, where they are listed."""
    lines = []
    if split_path:
        split = json.loads(Path(split_path).read_text())
        overlap = split.get("overlap", {})
        lines.append(f"- Reference and training subsets: {split['reference']['rows']} and {split['train']['rows']} "
                     f"records; {overlap.get('ids', 0)} training ids are also reference ids"
                     + (", dropped from training" if overlap.get("dropped_from_train") else
                        ", kept in training" if overlap.get("ids") else "") + f" (`{split_path}`).")
    if skipped_path:
        skipped = Path(skipped_path).read_text().splitlines()
        lines.append(f"- Bad records skipped by `data.bad_records: skip`: {len(skipped)}"
                     + (f", each listed in `{skipped_path}`." if skipped else "."))
    return ["## Data", "", *lines, ""] if lines else []


def noise_audit_markdown(path: str | None) -> list[str]:
    """The noise audit read from its JSON (workflow_scripts/noise_audit.py)."""
    return audit_markdown(json.loads(Path(path).read_text()), heading="## Noise audit") if path else []


def audit_markdown(audit: dict, heading: str) -> list[str]:
    """Does a low token score find the corrupted tokens, per stratum and token set, and does each
    partition's negative set hold them? The summary's section and the study's tables alike."""
    if audit.get("note"):
        return [heading, "", audit["note"], ""]

    def number(value, digits=3):
        return "" if value is None else f"{value:.{digits}f}"

    scores = list(audit["scores"])
    separation = [[stratum, tokens, str(s["n_tokens"]), str(s["n_corrupted"]), *(number(s["auroc"][k]) for k in scores)]
                  for stratum, sets in audit["strata"].items() for tokens, s in sets.items()]
    partitions = [[label, stratum, str(p["n_negative"]), str(p["n_corrupted_negative"]),
                   f"{number(p['precision'])} ({number(p['chance_precision'])})",
                   f"{number(p['recall'])} ({number(p['chance_recall'])})"]
                  for label, strata in audit["partitions"].items() for stratum, p in strata.items()]
    return [heading, "",
            "AUROC of a low token score at finding the corrupted tokens (0.5 = chance, below it inverted), per",
            "stratum (`all` pools the pool sources) over all response tokens and over answer tokens (no special",
            "or whitespace-only tokens); the scores: "
            + "; ".join(f"`{k}` = {v}" for k, v in audit["scores"].items()) + ".",
            "Then, per partition, the precision and recall of its negative set against the corrupted tokens,",
            "a random partition's in brackets.", "",
            *markdown_table(["stratum", "tokens", "n", "corrupted", *(f"AUROC {k}" for k in scores)], separation, 2),
            "",
            *(markdown_table(["partition", "stratum", "negatives", "corrupted negatives", "precision (chance)",
                              "recall (chance)"], partitions, 2) if partitions else []), ""]


def estimate_markdown(paths: list[str]) -> list[str]:
    """What the estimated_share partitions decided (partition.json's `estimate`, noise_share.py):
    forgotten, or abstained and why. A partition of another rule has no estimate and is not shown."""
    rows = []
    for path in paths:
        stats = json.loads(Path(path).read_text())
        estimate = stats.get("estimate")
        if not estimate:
            continue
        separation = estimate.get("separation", {})
        value = separation.get("value")
        rows.append([Path(path).parent.name, stats.get("score") or "", estimate.get("decision", ""),
                     text_cell(estimate.get("reason", "")), "" if value is None else f"{value:.3f}",
                     f"{separation.get('threshold', math.nan):g}", str(stats["n_negative"]),
                     f"{stats['negative_share']:.4f}"])
    if not rows:
        return []
    abstained = [row[0] for row in rows if row[2] == "abstain"]
    return ["## Estimated share: forget or abstain", "",
            "The `estimated_share` rule forgets the lowest population of a token score only where it is separated",
            "from the rest, Ashman's D >= 2 to the next component of the score's mixture (docs/methods.md,",
            "Partition rules); otherwise it abstains and nothing is negative: its runs learn every token.", "",
            *markdown_table(["partition", "score", "decision", "why", "Ashman's D", "threshold", "negatives",
                             "negative share"], rows, 4), "",
            *([f"**Abstained**: {', '.join(f'`{label}`' for label in abstained)}: nothing negative, so the "
               "ignore and forget runs on it learn every token and forget none.", ""] if abstained else [])]


SHOWN_DECODINGS = 5  # prompts per task in the table; the exact shares count every decoded item


def run_order(label: str) -> tuple:
    """Where a run label sorts: base first, then as the checkpoint table (method order, variant, seed)."""
    if label == "base":
        return METHOD_ORDER["base"], "", ""
    run = runs.parse(label)
    return METHOD_ORDER.get(run.method, len(METHOD_ORDER)), run.variant, str(run.seed)


def read_decodings(paths: list[str]) -> dict[str, dict[str, dict]]:
    """task -> run label -> the decodings record, runs in the summary's order."""
    found: dict[str, dict[str, dict]] = {}
    for path in paths:
        record = json.loads(Path(path).read_text())
        missing = [key for key in ("task", "run", "items") if key not in record]
        if missing:
            raise InputError(f"{path}: decodings record without {', '.join(missing)}")
        if record["run"] in found.get(record["task"], {}):
            raise InputError(f"{path}: a second decodings file of task {record['task']!r} and run {record['run']!r}")
        found.setdefault(record["task"], {})[record["run"]] = record
    try:
        return {task: dict(sorted(by_run.items(), key=lambda pair: run_order(pair[0])))
                for task, by_run in sorted(found.items())}
    except ValueError as err:  # a run label the grammar does not read
        raise InputError(f"decodings: {err}") from None


def text_cell(text: str) -> str:
    """Text in a Markdown table cell: a pipe would end the cell, a newline the row."""
    return text.replace("|", "\\|").replace("\n", "<br>")


def code_cell(text: str | None) -> str:
    """What a model wrote, verbatim in a code span (where <br> would show as such: ⏎ marks a newline)."""
    if text is None:  # this run has no decoding of the prompt
        return ""
    if not text:
        return "*(empty)*"
    text = text.replace("|", "\\|").replace("\n", "⏎")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def decodings_markdown(paths: list[str]) -> list[str]:
    """Per task, the first prompts with their target and each run's greedy output, then each run's
    share of exact outputs over all its decoded items (workflow_scripts/decode.py's JSONs)."""
    if not paths:
        return []
    lines = ["## What the models write", "",
             "Each checkpoint's greedy answer to the first prompts its task scores (`workflow_scripts/decode.py`:",
             "the evaluator's prompts, in the chat template where it uses one), as written; per task the first",
             f"{SHOWN_DECODINGS} prompts, then each run's count of outputs equal to the target over all it decoded.",
             ""]
    for task, by_run in read_decodings(paths).items():
        outputs = {label: {item["doc_id"]: item for item in record["items"]} for label, record in by_run.items()}
        firsts = {}  # doc_id -> the item (prompt, target) of the first run that decoded it
        for items in outputs.values():
            for doc_id, item in items.items():
                firsts.setdefault(doc_id, item)
        rows = [[text_cell(firsts[doc_id]["prompt"]), code_cell(firsts[doc_id]["target"]),
                 *(code_cell(items[doc_id]["output"] if doc_id in items else None) for items in outputs.values())]
                for doc_id in sorted(firsts)[:SHOWN_DECODINGS]]
        header = ["prompt", "target", *by_run]
        lines += [f"### {task}", "", *markdown_table(header, rows, len(header)), "",
                  *(exact_line(label, record["items"]) for label, record in by_run.items()), ""]
    return lines


def exact_line(label: str, items: list[dict]) -> str:
    exact = sum(bool(item["exact"]) for item in items)
    return f"- `{label}`: {exact} of {len(items)} exact" + (f" ({exact / len(items):.2f})" if items else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scores", nargs="+", required=True, help="score JSON files")
    parser.add_argument("--timing-dirs", nargs="*", default=[],
                        help="folders of Snakemake's benchmark files, {rule}[/...].tsv")
    parser.add_argument("--noise-audit", default=None, help="noise_audit.json, where the experiment has one")
    parser.add_argument("--report-only", nargs="*", default=[],
                        help="tasks shown beside the others but left out of the headline mean")
    parser.add_argument("--split-summary", default=None, help="the data setting's split.json (its overlap)")
    parser.add_argument("--skipped", default=None, help="skipped_records.jsonl of prepare_data (bad records left out)")
    parser.add_argument("--training-logs", nargs="*", default=[], help="training logs (their provenance)")
    parser.add_argument("--decodings", nargs="*", default=[],
                        help="decodings JSONs of workflow_scripts/decode.py (any runs and tasks): the section "
                             "'What the models write'")
    parser.add_argument("--partition-stats", nargs="*", default=[],
                        help="partition.json files: the estimated share's decisions (forget or abstain, and why)")
    parser.add_argument("--out-csv", required=True, help="one row per checkpoint")
    parser.add_argument("--out-by-method", required=True, help="one row per model, method and variant")
    parser.add_argument("--out-timings", required=True, help="one row per job: wall time, memory, CPU time")
    parser.add_argument("--out-md", required=True)
    args = parser.parse_args(argv)

    long = read_scores([Path(p) for p in args.scores])
    table = summary_table(long, tuple(args.report_only))
    summary = by_method(table, long)
    timings = timing_table(args.timing_dirs)
    with atomic_path(args.out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(args.out_by_method) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(args.out_timings) as tmp:
        timings.to_csv(tmp, index=False, float_format="%.3f")
    with atomic_path(args.out_md) as tmp:
        sections = decodings_markdown(args.decodings) + data_markdown(args.split_summary, args.skipped) + \
            estimate_markdown(args.partition_stats) + noise_audit_markdown(args.noise_audit) + \
            provenance_markdown(read_provenance([*args.training_logs, *args.scores])) + timing_markdown(timings)
        Path(tmp).write_text(to_markdown(table, summary) + "\n" + "\n".join(sections), encoding="utf-8")
    log.info("%d checkpoints x %d tasks -> %s; %d timed jobs", len(table), len(table.columns) - 5,
             args.out_csv, len(timings))


if __name__ == "__main__":
    run_main(main)
