"""results/tokens.html: sample training responses with every token coloured by its influence.

Blue tokens have high influence (the reference learnt them), red tokens low or negative; negative
tokens (below the rho threshold: forgotten by `forget`) are struck through, and tokens of an
injected noise span are outlined. Hovering a token shows its losses. A static page: no server,
no script, no external resource.
"""
from __future__ import annotations

import argparse
import html
import json
from pathlib import Path

import numpy as np

from workflow_scripts.files import atomic_path, run_main, setup_logging
from workflow_scripts.token_table import IGNORE_INDEX, read_partition, read_table

log = setup_logging("token_page")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; color: #222; }
.example { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; margin: 1em 0; }
.meta { color: #666; font-size: 0.85em; margin-bottom: 0.4em; }
.prompt { color: #777; font-size: 0.85em; white-space: pre-wrap; margin-bottom: 0.5em; }
.response { font-family: ui-monospace, monospace; line-height: 2; white-space: pre-wrap; }
.tok { padding: 2px 1px; border-radius: 3px; }
.neg { text-decoration: line-through; text-decoration-thickness: 2px; }
.noisy { outline: 2px solid #c00; }
.legend span { margin-right: 1.5em; }
"""


def colour(value: float, scale: float) -> str:
    """Diverging: red (low influence) - white - blue (high)."""
    x = float(np.clip(value / scale, -1, 1)) if scale > 0 else 0.0
    if x >= 0:
        return f"rgb({int(255 - 155 * x)},{int(255 - 105 * x)},255)"
    return f"rgb(255,{int(255 + 135 * x)},{int(255 + 135 * x)})"


def pick_examples(example_ids: np.ndarray, corrupted: np.ndarray, n: int) -> list[str]:
    """Up to n examples in file order, half of them with a corrupted answer where there are some."""
    order = list(dict.fromkeys(example_ids.tolist()))
    noisy = list(dict.fromkeys(example_ids[corrupted].tolist()))
    chosen = noisy[: n // 2]
    chosen += [e for e in order if e not in chosen][: n - len(chosen)]
    return sorted(chosen, key=order.index)


def render(tokens, influence, partition, tokenizer, n_examples: int, stats: dict) -> str:
    ids = influence["example_id"].to_numpy(zero_copy_only=False)
    values = influence["influence"].to_numpy(zero_copy_only=False)
    corrupted = (influence["corrupted"].to_numpy(zero_copy_only=False).astype(bool)
                 if "corrupted" in influence.column_names else np.zeros(len(values), bool))
    positive = partition["positive"].to_numpy(zero_copy_only=False).astype(bool)
    scale = float(np.percentile(np.abs(values), 95)) if len(values) else 1.0
    rows = {e: i for i, e in enumerate(tokens["example_id"].to_pylist())}
    parts = []
    for example in pick_examples(ids, corrupted, n_examples):
        row = tokens.slice(rows[example], 1).to_pylist()[0]
        at = {int(p): i for i, p in zip(np.nonzero(ids == example)[0],
                                        influence["position"].to_numpy()[ids == example])}
        prompt = [t for t, label in zip(row["input_ids"], row["labels"]) if label == IGNORE_INDEX]
        spans = []
        for position, (token, label) in enumerate(zip(row["input_ids"], row["labels"])):
            if label == IGNORE_INDEX or position not in at:
                continue
            i = at[position]
            classes = "tok" + ("" if positive[i] else " neg") + (" noisy" if corrupted[i] else "")
            title = (f"influence {values[i]:+.2f} = {influence['loss_base'][i].as_py():.2f} (base) - "
                     f"{influence['loss_ref'][i].as_py():.2f} (reference); {'positive' if positive[i] else 'negative'}")
            spans.append(f'<span class="{classes}" style="background:{colour(values[i], scale)}" '
                         f'title="{html.escape(title)}">{html.escape(tokenizer.decode([token]))}</span>')
        noisy = " · answer corrupted" if corrupted[list(at.values())].any() else ""
        parts.append(f'<div class="example"><div class="meta">{html.escape(example)}{noisy}</div>'
                     f'<div class="prompt">{html.escape(tokenizer.decode(prompt)[-400:])}</div>'
                     f'<div class="response">{"".join(spans)}</div></div>')
    legend = (f'<p class="legend"><span class="tok" style="background:{colour(scale, scale)}">high influence</span>'
              f'<span class="tok" style="background:{colour(-scale, scale)}">low influence</span>'
              '<span class="tok neg">negative (forgotten)</span><span class="tok noisy">injected noise</span></p>')
    threshold = stats.get("threshold")
    summary = (f"rho {stats.get('rho')}, ranked by {stats.get('score') or 'influence'}: {stats.get('n_positive')} "
               f"positive and {stats.get('n_negative')} negative of {stats.get('n_tokens')} response tokens; "
               f"threshold {'none' if threshold is None else f'{threshold:.2f}'}")
    if "n_corrupted" in stats:
        summary += f"; {stats['n_corrupted_negative']} of {stats['n_corrupted']} corrupted tokens are negative"
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Token influence</title>"
            f"<style>{STYLE}</style></head><body><h1>Token influence</h1><p>{html.escape(summary)}. The prompt is "
            "shown grey (last 400 characters); hover a token for its losses.</p>" + legend + "".join(parts)
            + "</body></html>\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", required=True, help="tokenized training split")
    parser.add_argument("--influence", required=True)
    parser.add_argument("--partition", required=True, help="partition Parquet (its .json beside it)")
    parser.add_argument("--model-dir", required=True, help="for the tokenizer")
    parser.add_argument("--examples", type=int, default=24)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    stats_path = Path(args.partition).with_suffix(".json")
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    page = render(read_table(args.tokens), read_table(args.influence), read_partition(args.partition),
                  AutoTokenizer.from_pretrained(args.model_dir), args.examples, stats)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run_main(main)
