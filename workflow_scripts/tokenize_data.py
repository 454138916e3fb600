"""Tokenize a chat JSONL split once, for every later stage: results/{model}/tokens/{split}.parquet.

Columns: `example_id`, `input_ids`, `labels` (the token id on assistant tokens, -100 elsewhere),
`corrupted` (per token: inside the recorded corrupted span of the answer, for the noise audit).
Training, scoring and the partition all read this file, so token positions always line up.

The conversation is rendered with the tokenizer's chat template (or the Tulu
`<|user|>/<|assistant|>` format when it has none). Assistant character spans are found by
rendering the prefixes of the conversation, and tokens are labelled through the fast tokenizer's
offset mapping, so any prefix-stable template works without `{% generation %}` markers.
"""
from __future__ import annotations

import argparse
import os

import pyarrow as pa
from tqdm import tqdm

from workflow_scripts.constants import IGNORE_INDEX
from workflow_scripts.files import InputError, read_jsonl, run_main, setup_logging, write_parquet

log = setup_logging("tokenize")


# open-instruct's Tulu format, for tokenizers without a chat template of their own.
TULU_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}"
    "{% else %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

TOKENS_SCHEMA = pa.schema([
    ("example_id", pa.string()),
    ("input_ids", pa.list_(pa.int32())),
    ("labels", pa.list_(pa.int32())),
    ("corrupted", pa.list_(pa.bool_())),
])


def load_tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.is_fast:
        raise InputError(f"{model_dir}: a fast tokenizer is required (offset mapping labels the answer tokens)")
    if not tokenizer.chat_template:
        tokenizer.chat_template = TULU_TEMPLATE
    return tokenizer


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int, int]]]:
    """Render the conversation; return the text and (start, end, content_start) per assistant turn."""
    render = lambda msgs, gen=False: tokenizer.apply_chat_template(  # noqa: E731
        msgs, tokenize=False, add_generation_prompt=gen)
    text = render(messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before, through = render(messages[:i], gen=True), render(messages[: i + 1])
        if not (text.startswith(through) and through.startswith(before)):
            raise InputError("the chat template is not prefix-stable; cannot locate the assistant turns")
        # The answer and its end-of-turn token are learnt; trailing whitespace is layout.
        spans.append((len(before), len(through.rstrip()), len(before)))
    return text, spans


def tokenize_record(tokenizer, record: dict, max_seq_length: int) -> dict | None:
    text, spans = assistant_spans(tokenizer, record["messages"])
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids, offsets = enc["input_ids"][:max_seq_length], enc["offset_mapping"][:max_seq_length]

    # The corrupted span is recorded inside the last assistant message's content.
    noisy = None
    span = record.get("corrupted_span")
    if span and spans:
        content_start = spans[-1][2]
        content = record["messages"][-1]["content"]
        if text[content_start: content_start + len(content)] == content:
            noisy = (content_start + span["start"], content_start + span["end"])

    labels, corrupted = [], []
    for token_id, (start, end) in zip(input_ids, offsets):
        in_answer = any(s <= start < e for s, e, _ in spans)
        labels.append(token_id if in_answer else IGNORE_INDEX)
        corrupted.append(bool(noisy and in_answer and start < noisy[1] and end > noisy[0]))
    if all(label == IGNORE_INDEX for label in labels[1:]):
        return None  # the whole answer was cut off by max_seq_length
    return {"example_id": str(record["id"]), "input_ids": input_ids, "labels": labels, "corrupted": corrupted}


def tokenize_file(path: str, model_dir: str, max_seq_length: int, max_dropped_fraction: float = 1.0) -> tuple[pa.Table, int]:
    tokenizer = load_tokenizer(model_dir)
    rows, dropped = [], 0
    records = list(read_jsonl(path))
    for lineno, record in tqdm(records, desc=f"tokenize {os.path.basename(path)}", unit="ex", mininterval=5):
        try:
            row = tokenize_record(tokenizer, record, max_seq_length)
        except InputError as err:
            raise InputError(f"{path}:{lineno}: {err}") from None
        if row is None:
            dropped += 1
        else:
            rows.append(row)
    if not rows:
        raise InputError(f"{path}: every record's answer lies beyond max_seq_length={max_seq_length}")
    if dropped > max_dropped_fraction * len(records):
        raise InputError(
            f"{path}: {dropped} of {len(records)} records ({dropped / len(records):.1%}) have their whole answer "
            f"beyond max_seq_length={max_seq_length}, more than tokenize.max_dropped_fraction="
            f"{max_dropped_fraction}; raise max_seq_length or the limit")
    return pa.Table.from_pylist(rows, schema=TOKENS_SCHEMA), dropped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="split JSONL (chat messages)")
    parser.add_argument("--model-dir", required=True, help="base model directory (its tokenizer is used)")
    parser.add_argument("--max-seq-length", type=int, required=True)
    parser.add_argument("--max-dropped-fraction", type=float, default=0.1,
                        help="fail when more records than this lose their whole answer to truncation")
    parser.add_argument("--out", required=True, help="output Parquet")
    args = parser.parse_args(argv)

    table, dropped = tokenize_file(args.data, args.model_dir, args.max_seq_length, args.max_dropped_fraction)
    lengths = pa.compute.list_value_length(table["input_ids"])
    n_labels = sum(sum(1 for x in labels if x != IGNORE_INDEX) for labels in table["labels"].to_pylist())
    log.info("%d examples, %d tokens (max %d), %d answer tokens; %d dropped (answer beyond max_seq_length=%d)",
             table.num_rows, pa.compute.sum(lengths).as_py(), pa.compute.max(lengths).as_py(),
             n_labels, dropped, args.max_seq_length)
    write_parquet(args.out, table)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_main(main)
