"""The map's table and figure (`make map`): every cell's difference to sft beside its negatives'
precision and recall, per task family and noise setting.

The map is an experiments file (configs/map/all.yaml): each entry a setting of configs/map/
(noise0.yaml, clock0.3.yaml, ...) with its layers (oracle.yaml, conclusion.yaml, abstaining.yaml),
laid over config.yaml, the number-words study's common file and configs/map/common.yaml, as `make
map` runs them. A setting's cells are the union of its entries' grids, scored on its first eval
task; every run of them is a cell's seed, and a run whose scores are missing (cut, or not run yet)
is listed as missing, never dropped silently. Scores, intervals and differences come from
workflow_scripts/score_statistics.py (as summary.md's); precision and recall from each partition's
partition.json (the pool's noise marks); the answers from each run's decodings.
    python scripts/map.py configs/map/all.yaml --out-md results/map.md --out-figure results/map.png
"""
import argparse
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from snakemake.utils import update_config, validate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from workflow_scripts import runs  # noqa: E402
from workflow_scripts.score_statistics import by_method, read_scores, summary_table  # noqa: E402
from workflow_scripts.summary import markdown_table  # noqa: E402

BASES = ["config.yaml", "configs/number-words-study/common.yaml", "configs/map/common.yaml"]


def layered_config(paths) -> dict:
    config = {}
    for path in paths:
        update_config(config, yaml.safe_load((ROOT / path).read_text()) or {})
    validate(config, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    return config


def settings(map_file: Path) -> dict[str, list[list[str]]]:
    """setting name -> the layers of each of its entries (the setting's file first), in file order."""
    found = {}
    for entry in yaml.safe_load((ROOT / map_file).read_text())["experiments"]:
        entry = entry if isinstance(entry, list) else [entry]
        found.setdefault(Path(entry[0]).stem, []).append(entry)
    return found


def setting_runs(entries: list[list[str]]) -> tuple[Path, list[runs.Run], str]:
    """The setting's experiment folder, every run of its entries' grids in grid order, and its task."""
    cells = {}
    for layers in entries:
        config = layered_config([*BASES, *layers])
        cells.update({run.label: run for run in runs.grid(config)})
    return ROOT / runs.experiment_dir(config), list(cells.values()), config["eval"]["tasks"][0]


def partition_counts(directory: Path, run: runs.Run) -> dict:
    """Negatives, precision and recall of the run's partition against the pool's noise marks: from
    its partition.json, or from the experiment's noise audit for a partition.json without the counts."""
    if not run.partition:
        return {}
    path = directory / run.partition / "partition.json"
    stats = json.loads(path.read_text()) if path.is_file() else {}
    if "n_corrupted" not in stats and (directory / "noise_audit.json").is_file():
        audit = json.loads((directory / "noise_audit.json").read_text())
        stats = audit.get("partitions", {}).get(run.partition, {}).get("all", stats)
    negative, hit, marked = stats.get("n_negative"), stats.get("n_corrupted_negative"), stats.get("n_corrupted")
    if negative is None:
        return {}
    return {"negatives": negative, "all_positive": negative == 0 and stats.get("n_neither") == 0,
            "precision": hit / negative if negative and hit is not None else math.nan,
            "recall": hit / marked if marked and hit is not None else math.nan}


def setting_table(entries: list[list[str]]) -> tuple[pd.DataFrame, list[str], dict]:
    directory, grid, task = setting_runs(entries)
    labels = ["base", *(run.label for run in grid)]
    paths = {label: directory / label / "scores" / f"{task}.json" for label in labels}
    # A partition with every token positive (the rule abstained; the oracle where nothing is noise) makes
    # ignore's and forget's loss sft's, so such a run computes sft's adapter byte for byte
    # (tests/test_training_options.py): named apart from the runs still to run, never given scores.
    counts = {run.label: partition_counts(directory, run) for run in grid}
    empty = {run.label for run in grid if run.method != runs.RANDOM and counts[run.label].get("all_positive")}
    missing = [label for label, path in paths.items() if not path.is_file() and label not in empty]
    as_sft = [label for label, path in paths.items() if not path.is_file() and label in empty]
    found = [path for path in paths.values() if path.is_file()]
    extra = {"directory": directory, "answers": {}, "task": task, "as_sft": as_sft}
    if not found:  # nothing of this setting has run yet: every run is listed as missing
        table = pd.DataFrame(columns=["method", "variant", "seeds", "negatives", "precision", "recall"])
        return table, missing, extra
    long = read_scores(found)
    summary = by_method(summary_table(long), long)
    by_cell = {}
    for run in grid:  # a cell's partitions: one, or the random control's one per seed (averaged)
        by_cell.setdefault((run.method, run.variant), []).append(counts[run.label])
    for key in ("negatives", "precision", "recall", "all_positive"):
        summary[key] = [pd.Series([c.get(key, math.nan) for c in by_cell.get((r.method, r.variant), [{}])]).mean()
                        for r in summary.itertuples()]
    for label in labels:
        path = directory / label / "decodings" / f"{task}.json"
        if path.is_file():
            extra["answers"][label] = json.loads(path.read_text())["items"]
    return summary, missing, extra


def cell(value: float, digits: int = 3, sign: bool = False) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else \
        f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def markdown(setting: str, summary: pd.DataFrame, missing: list[str], extra: dict) -> list[str]:
    column = f"{extra['task']}_acc"
    rows = []
    for r in summary.itertuples():
        row = r._asdict()
        spread = "" if r.seeds < 2 else f" ± {cell(row[column + '_std'])}"
        halves = [f"±{cell(row[f'{column}_delta_sft{key}'])} {what}"
                  for key, what in (("_ci95", "seeds"), ("_items_ci95", "items"))
                  if not math.isnan(row[f"{column}_delta_sft{key}"])]
        delta = "" if r.method == runs.SFT else \
            f"{cell(row[column + '_delta_sft'], sign=True)}" + (f" [{', '.join(halves)}]" if halves else "")
        rows.append([r.method, r.variant, str(r.seeds), f"{cell(row[column])}{spread}", delta,
                     cell(r.negatives, 0), cell(r.precision, 2), cell(r.recall, 2)])
    lines = [f"### {setting} (`{extra['directory'].relative_to(ROOT)}`, {extra['task']})", "",
             *markdown_table(["method", "variant", "seeds", "accuracy", "− sft", "negatives", "precision", "recall"],
                             rows, 3), ""]
    if missing:
        lines += [f"Missing (not run, or cut): {', '.join(f'`{m}`' for m in missing)}.", ""]
    if extra["as_sft"]:
        lines += ["Not run: their partition has no negatives, so their loss is sft's and their adapter sft's of the "
                  f"same seed: {', '.join(f'`{m}`' for m in extra['as_sft'])}.", ""]
    first = {label: items[:4] for label, items in extra["answers"].items()
             if label.endswith("seed1") or label == "base"}
    if first:
        prompts = next(iter(first.values()))
        lines += ["What seed 1 of each cell writes for the first held-out prompts (greedy):", "",
                  *markdown_table(["run", *(f"{prompt_words(item['prompt'])} → {item['target']}"
                                            for item in prompts)],
                                  [[f"`{label}`", *(f"`{item['output']}`" for item in items)]
                                   for label, items in first.items()], 1), ""]
    return lines


def prompt_words(prompt: str) -> str:
    """What a generated prompt asks about: "Write 7:05 PM in 24-hour time. Answer ..." -> "7:05 PM"."""
    return prompt.split(".")[0].removeprefix("Write ").removesuffix(" in digits").removesuffix(" in 24-hour time")


def overview(tables: dict) -> list[str]:
    """One row per cell, one column per setting: the difference to sft with its 95% half-widths over
    seeds and items (sft: its accuracy), and the seeds it rests on."""
    cells = {}
    for name, (summary, _, extra) in tables.items():
        column = f"{extra['task']}_acc"
        for r in summary.itertuples():
            row = r._asdict()
            if r.method == runs.SFT:
                text = f"{cell(row[column])} (sft, {r.seeds} seed{'' if r.seeds == 1 else 's'})"
            else:
                halves = [cell(row[f"{column}_delta_sft{key}"], 2) for key in ("_ci95", "_items_ci95")]
                text = f"{cell(row[column + '_delta_sft'], 2, sign=True)} [±{halves[0] or '–'}, ±{halves[1] or '–'}]" \
                    f" ({r.seeds})"
                if r.all_positive == 1:  # sft's loss, so sft's adapter (setting_table)
                    text = f"{cell(row[column + '_delta_sft'], 2, sign=True)} (no negatives: sft's runs; {r.seeds})"
            cells.setdefault((r.method, r.variant), {})[name] = text
    order = {method: i for i, method in enumerate(runs.METHODS)}  # sft first, then each method's cells by name
    rows = [[method, variant, *(by_setting.get(name, "") for name in tables)]
            for (method, variant), by_setting in sorted(cells.items(), key=lambda c: (order.get(c[0][0], -1), c[0][1]))
            if method != "base"]
    return ["Accuracy − sft per cell [95% half-widths over seeds, over items] (seeds); a cell whose partition has no "
            "negatives trains sft's loss, so it ran one seed and its runs are sft's:", "",
            *markdown_table(["method", "variant", *tables], rows, 2), ""]


def figure(tables: dict):
    fig, axes = plt.subplots(len(tables), 2, figsize=(13, 0.32 * max(len(t) for t, *_ in tables.values()) * len(tables)
                                                       + 1.5), squeeze=False, gridspec_kw={"width_ratios": [3, 2]})
    for (name, (summary, _, extra)), (left, right) in zip(tables.items(), axes):
        column = f"{extra['task']}_acc"
        cells = summary[~summary["method"].isin(["base", runs.SFT])].iloc[::-1]
        if cells.empty:
            left.set_title(f"{name}: nothing run yet", fontsize=10)
            continue
        y = range(len(cells))
        names = [f"{m} {v}" for m, v in zip(cells["method"], cells["variant"])]
        delta = cells[f"{column}_delta_sft"]
        left.errorbar(delta, y, xerr=cells[f"{column}_delta_sft_items_ci95"], fmt="none", ecolor="C1", elinewidth=6,
                      alpha=0.4, label="95% over items")
        left.errorbar(delta, y, xerr=cells[f"{column}_delta_sft_ci95"], fmt="o", color="C0", capsize=3,
                      label="95% over seeds")
        left.axvline(0, color="grey", linewidth=0.8)
        left.set_yticks(list(y), names, fontsize=7)
        left.set_title(f"{name}: accuracy − sft ({extra['task']})", fontsize=10)
        left.legend(fontsize=7, loc="lower left")
        right.barh([i + 0.2 for i in y], cells["precision"], height=0.4, label="precision")
        right.barh([i - 0.2 for i in y], cells["recall"], height=0.4, label="recall")
        right.set_yticks(list(y), [""] * len(cells))
        right.set_xlim(0, 1)
        right.set_title("negatives against the pool's noise marks", fontsize=10)
        right.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("map", type=Path, help="the map's experiments file (configs/map/all.yaml)")
    parser.add_argument("--out-md", required=True)
    parser.add_argument("--out-figure", required=True)
    args = parser.parse_args(argv)
    tables = {name: setting_table(entries) for name, entries in settings(args.map).items()}
    lines = ["# The map", "", *overview(tables)]
    for name, table in tables.items():
        lines += markdown(name, *table)
    Path(args.out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out_md).write_text("\n".join(lines) + "\n")
    figure(tables).savefig(args.out_figure, dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
