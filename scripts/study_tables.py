"""Print the noise study's tables (the README's "Results"), read from the experiments `make study` ran.

For each setting (a config file of configs/study/ or configs/number-words-study/, laid over config.yaml
and its study's common files, STUDY_BASES),
from results/{data.name}/{model.name}/: the scores per method (mean ± std over seeds [95% interval
half-width over seeds]), each method minus sft with its seed-paired and item-paired 95% intervals,
and the noise audit.
    python scripts/study_tables.py configs/study/noisy-reference.yaml configs/study/clean-reference.yaml ...
"""
import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import update_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from workflow_scripts import runs  # noqa: E402
from workflow_scripts.summary import audit_markdown, markdown_table  # noqa: E402


# The files a study's setting is laid over (after config.yaml), as its make target passes them.
STUDY_BASES = {"study": ["configs/boolq-asdiv.yaml", "configs/study/common.yaml"],
               "number-words-study": ["configs/number-words-study/common.yaml"]}


def experiment_dir(setting: Path) -> Path:
    """The setting's experiment folder: its files laid over config.yaml and its study's common
    files, key by key as Snakemake's --configfile does."""
    config = {}
    for path in (ROOT / "config.yaml", *(ROOT / base for base in STUDY_BASES[setting.parent.name]), setting):
        update_config(config, yaml.safe_load(path.read_text()) or {})
    return ROOT / runs.experiment_dir(config)


def number(value: float, sign: bool = False) -> str:
    return "" if math.isnan(value) else f"{value:+.4f}" if sign else f"{value:.4f}"


def score_cell(row, column: str) -> str:
    if row["seeds"] < 2:
        return number(row[column])
    return f"{number(row[column])} ± {number(row[f'{column}_std'])} [±{number(row[f'{column}_ci95'])}]"


def delta_cell(row, column: str) -> str:
    value = row[f"{column}_delta_sft"]
    halves = [(row.get(f"{column}_delta_sft_ci95", math.nan), "seeds"),
              (row.get(f"{column}_delta_sft_items_ci95", math.nan), "items")]
    halves = ", ".join(f"±{number(h)} {what}" for h, what in halves if not math.isnan(h))
    return f"{number(value, sign=True)} [{halves}]" if halves else number(value, sign=True)


def scores_section(summary: pd.DataFrame) -> list[str]:
    tasks = [c[: -len("_std")] for c in summary.columns if c.endswith("_std") and c != "mean_std"]
    columns = [*tasks, "mean"]
    rows = [[r["method"], r["variant"], *(score_cell(r, c) for c in columns),
             "" if r["method"] == runs.SFT else delta_cell(r, "mean")] for _, r in summary.iterrows()]
    lines = markdown_table(["method", "variant", *columns, "mean − sft"], rows, 2)
    deltas = [[r["method"], r["variant"], *(delta_cell(r, c) for c in tasks)]
              for _, r in summary.iterrows() if r["method"] != runs.SFT]
    return [*lines, "", *markdown_table(["method", "variant", *(f"{c} − sft" for c in tasks)], deltas, 2)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("settings", nargs="+", type=Path, help="the configs/study/ file of each setting")
    args = parser.parse_args(argv)
    out = []
    for setting in args.settings:
        directory = experiment_dir(setting)
        summary = pd.read_csv(directory / "summary_by_method.csv", keep_default_na=False, na_values=[""])
        summary["variant"] = summary["variant"].fillna("")
        out += [f"### {setting.stem} (`{directory.relative_to(ROOT)}`)", "", *scores_section(summary), ""]
        audit_path = directory / "noise_audit.json"
        if audit_path.is_file():
            out += audit_markdown(json.loads(audit_path.read_text()), heading="#### Noise audit")
    print("\n".join(out))


if __name__ == "__main__":
    main()
