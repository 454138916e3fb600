"""Tokenize a chat JSONL split once, for every later stage: results/{data}/{model}/tokens/{split}.parquet.

Columns: `example_id`, `input_ids`, `labels` (the token id on assistant tokens, -100 elsewhere),
`corrupted` (per token: inside the recorded corrupted span of the answer, for the noise audit).
Training, scoring and the partition all read this file, so token positions always line up.

Two renderings (`--template`):
  chat_template  the tokenizer's chat template (or the Tulu `<|user|>/<|assistant|>` format when
                 it has none). Assistant character spans are found by rendering the prefixes of the
                 conversation, so any prefix-stable template works without `{% generation %}` markers.
  tulu           open-instruct's format, as the paper's authors trained (finetune.py,
                 `encode_with_messages_format`): per message `<|system|>\n{content}\n`,
                 `<|user|>\n{content}\n` or `<|assistant|>\n{content}{eos}\n`, each content stripped,
                 the whole string stripped, BOS in front where the tokenizer adds one.
In both, every assistant answer and its end-of-turn token are learnt and everything else (the
role headers, the newline after EOS) is -100; tokens are labelled through the fast tokenizer's
offset mapping.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
from tqdm import tqdm

from workflow_scripts.constants import IGNORE_INDEX
from workflow_scripts.files import InputError, read_jsonl, run_main, setup_logging, write_parquet
from workflow_scripts.pool_sources import ROLES

log = setup_logging("tokenize")

TEMPLATES = ("chat_template", "tulu")

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


@dataclass(frozen=True)
class Answer:
    """Where one assistant turn lies in the rendered text."""
    start: int     # its first character: the first learnt one
    end: int       # one past its end-of-turn token: the last learnt character
    content: str   # the answer as rendered
    shift: int     # characters of the message's content left out before `content` (stripped)


def load_tokenizer(model_dir: str, template: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.is_fast:
        raise InputError(f"{model_dir}: a fast tokenizer is required (offset mapping labels the answer tokens)")
    if template == "tulu" and not tokenizer.eos_token:
        raise InputError(f"{model_dir}: the tokenizer has no eos_token, which the tulu template ends each answer with")
    if template == "chat_template" and not tokenizer.chat_template:
        tokenizer.chat_template = TULU_TEMPLATE
    return tokenizer


def render_chat_template(tokenizer, messages: list[dict]) -> tuple[str, list[Answer]]:
    """The conversation through the tokenizer's chat template, and where each answer lies."""
    render = lambda msgs, gen=False: tokenizer.apply_chat_template(  # noqa: E731
        msgs, tokenize=False, add_generation_prompt=gen)
    text = render(messages)
    answers = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before, through = render(messages[:i], gen=True), render(messages[: i + 1])
        if not (text.startswith(through) and through.startswith(before)):
            raise InputError("the chat template is not prefix-stable; cannot locate the assistant turns")
        # The answer and its end-of-turn token are learnt; trailing whitespace is layout.
        answers.append(Answer(len(before), len(through.rstrip()), message["content"], 0))
    return text, answers


def bos_prefix(tokenizer) -> str:
    """open-instruct tokenizes with the tokenizer's special tokens: a BOS only where it adds one."""
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    adds = tokenizer.bos_token is not None and ids[:1] == [tokenizer.bos_token_id]
    return tokenizer.bos_token if adds else ""


def render_tulu(bos: str, eos: str, messages: list[dict]) -> tuple[str, list[Answer]]:
    """open-instruct's `_concat_messages(messages).strip()` with `bos` in front, and where each answer lies."""
    body, answers = "", []
    for message in messages:
        if message["role"] not in ROLES:  # open-instruct refuses other roles too
            raise InputError(f"the tulu template has no role {message['role']!r} (allowed: {', '.join(ROLES)})")
        content = message["content"].strip()
        body += f"<|{message['role']}|>\n"
        if message["role"] == "assistant":
            shift = len(message["content"]) - len(message["content"].lstrip())
            answers.append(Answer(len(bos) + len(body), len(bos) + len(body) + len(content) + len(eos), content, shift))
            body += content + eos + "\n"
        else:
            body += content + "\n"
    # Stripping only drops trailing newlines: the body starts with `<|` and every answer ends in EOS.
    return bos + body.strip(), answers


def renderer(tokenizer, template: str):
    if template == "tulu":
        return partial(render_tulu, bos_prefix(tokenizer), tokenizer.eos_token)
    return partial(render_chat_template, tokenizer)


def noisy_range(text: str, answers: list[Answer], record: dict) -> tuple[int, int] | None:
    """Characters of the recorded corrupted span (inside the last assistant answer) in the text."""
    span = record.get("corrupted_span")
    if not (span and answers):
        return None
    answer = answers[-1]
    if text[answer.start: answer.start + len(answer.content)] != answer.content:
        return None
    return answer.start + span["start"] - answer.shift, answer.start + span["end"] - answer.shift


def tokenize_record(tokenizer, render, record: dict, max_seq_length: int) -> dict | None:
    text, answers = render(record["messages"])
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids, offsets = enc["input_ids"][:max_seq_length], enc["offset_mapping"][:max_seq_length]
    noisy = noisy_range(text, answers, record)

    spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    start, end = spans[:, 0], spans[:, 1]
    in_answer = np.zeros(len(start), dtype=bool)
    for answer in answers:  # a token is learnt where it starts inside an answer
        in_answer |= (answer.start <= start) & (start < answer.end)
    if not in_answer[1:].any():
        return None  # the whole answer was cut off by max_seq_length
    labels = np.where(in_answer, np.asarray(input_ids, dtype=np.int64), IGNORE_INDEX)
    corrupted = in_answer & (start < noisy[1]) & (end > noisy[0]) if noisy else np.zeros(len(start), dtype=bool)
    return {"example_id": str(record["id"]), "input_ids": input_ids, "labels": labels.tolist(),
            "corrupted": corrupted.tolist()}


def tokenize_file(path: str, model_dir: str, max_seq_length: int, max_dropped_fraction: float,
                  template: str) -> tuple[pa.Table, int]:
    tokenizer = load_tokenizer(model_dir, template)
    render = renderer(tokenizer, template)
    rows, dropped = [], 0
    records = list(read_jsonl(path))
    for lineno, record in tqdm(records, desc=f"tokenize {os.path.basename(path)}", unit="ex", mininterval=5):
        try:
            row = tokenize_record(tokenizer, render, record, max_seq_length)
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
    parser.add_argument("--max-dropped-fraction", type=float, required=True,
                        help="fail when more records than this lose their whole answer to truncation")
    parser.add_argument("--template", choices=TEMPLATES, required=True,
                        help="chat_template: the tokenizer's (Tulu-like fallback); tulu: open-instruct's format")
    parser.add_argument("--out", required=True, help="output Parquet")
    args = parser.parse_args(argv)

    table, dropped = tokenize_file(args.data, args.model_dir, args.max_seq_length, args.max_dropped_fraction,
                                   args.template)
    lengths = pa.compute.list_value_length(table["input_ids"])
    n_labels = pa.compute.sum(pa.compute.not_equal(pa.compute.list_flatten(table["labels"]), IGNORE_INDEX)).as_py()
    log.info("%d examples, %d tokens (max %d), %d answer tokens; %d dropped (answer beyond max_seq_length=%d)",
             table.num_rows, pa.compute.sum(lengths).as_py(), pa.compute.max(lengths).as_py(),
             n_labels, dropped, args.max_seq_length)
    write_parquet(args.out, table)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_main(main)
