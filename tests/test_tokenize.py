"""One tokenization: answer tokens labelled, prompt tokens -100, noise spans mapped to tokens; both templates."""
import json

import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from workflow_scripts import tokenize_data
from workflow_scripts.files import InputError


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_labels_cover_exactly_the_answer_and_eos(tmp_path, tiny_model_dir):
    data = write(tmp_path / "d.jsonl", [
        {"id": "x", "messages": [{"role": "user", "content": "There are 3 apples."},
                                 {"role": "assistant", "content": "7 fruits."}],
         "corrupted_span": {"start": 0, "end": 1, "original": "3"}},
    ])
    tokenize_data.main(["--data", str(data), "--model-dir", str(tiny_model_dir), "--max-seq-length", "256",
                        "--max-dropped-fraction", "0.1", "--template", "chat_template",
                        "--out", str(tmp_path / "t.parquet")])
    row = pq.read_table(tmp_path / "t.parquet").to_pylist()[0]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tok.decode(row["input_ids"]) == "<s><|user|>\nThere are 3 apples.\n<|assistant|>\n7 fruits.</s>\n"
    answer = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
    assert tok.decode(answer) == "7 fruits.</s>"
    assert all(label in (-100, t) for t, label in zip(row["input_ids"], row["labels"]))
    assert tok.decode([t for t, c in zip(row["input_ids"], row["corrupted"]) if c]).strip() == "7"


def test_answers_cut_off_by_max_length_are_dropped(tmp_path, tiny_model_dir):
    long_prompt = "apples " * 40
    data = write(tmp_path / "d.jsonl", [
        {"id": "short", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]},
        {"id": "long", "messages": [{"role": "user", "content": long_prompt}, {"role": "assistant", "content": "no"}]},
    ])
    table, dropped = tokenize_data.tokenize_file(str(data), str(tiny_model_dir), max_seq_length=20,
                                                 max_dropped_fraction=1.0, template="chat_template")
    assert table["example_id"].to_pylist() == ["short"] and dropped == 1
    with pytest.raises(InputError, match=r"d.jsonl: 1 of 2 records \(50.0%\) have their whole answer beyond "
                                         r"max_seq_length=20, more than tokenize.max_dropped_fraction=0.25"):
        tokenize_data.tokenize_file(str(data), str(tiny_model_dir), max_seq_length=20, max_dropped_fraction=0.25,
                                    template="chat_template")
    with pytest.raises(InputError, match=r"every record's answer lies beyond max_seq_length=3"):
        tokenize_data.tokenize_file(str(data), str(tiny_model_dir), max_seq_length=3, max_dropped_fraction=1.0,
                                    template="chat_template")


# ---------------------------------------------------------------- open-instruct's Tulu format

CONVERSATION = [
    {"role": "system", "content": "Answer yes or no."},
    {"role": "user", "content": "Is the sky blue?"},
    {"role": "assistant", "content": "yes"},
    {"role": "user", "content": "There are 3 apples and 4 pears. How many fruits are there?"},
    {"role": "assistant", "content": "7 fruits."},
]
# (token, learnt) on the tiny tokenizer, which adds no BOS of its own
TULU_LAYOUT = (
    [("<|", 0), ("system", 0), ("|>", 0), ("\n", 0), ("A", 0), ("ns", 0), ("wer", 0), (" yes", 0), (" ", 0), ("o", 0),
     ("r", 0), (" no", 0), (".", 0), ("\n", 0)]
    + [("<|", 0), ("user", 0), ("|>", 0), ("\n", 0), ("I", 0), ("s", 0), (" the", 0), (" sky", 0), (" blue", 0),
       ("?", 0), ("\n", 0)]
    + [("<|", 0), ("assistant", 0), ("|>", 0), ("\n", 0), ("yes", 1), ("</s>", 1), ("\n", 0)]
    + [("<|", 0), ("user", 0), ("|>", 0), ("\n", 0), ("There", 0), (" are", 0), (" 3", 0), (" apples", 0), (" and", 0),
       (" 4", 0), (" pears", 0), (".", 0), (" How", 0), (" many", 0), (" fruits", 0), (" are", 0), (" there", 0),
       ("?", 0), ("\n", 0)]
    + [("<|", 0), ("assistant", 0), ("|>", 0), ("\n", 0), ("7", 1), (" fruits", 1), (".", 1), ("</s>", 1)]
)


def tokenize_one(tmp_path, model_dir, record, template="tulu"):
    data = write(tmp_path / "d.jsonl", [record])
    tokenize_data.main(["--data", str(data), "--model-dir", str(model_dir), "--max-seq-length", "256",
                        "--max-dropped-fraction", "0", "--template", template, "--out", str(tmp_path / "t.parquet")])
    return pq.read_table(tmp_path / "t.parquet").to_pylist()[0]


def test_tulu_template_layout(tmp_path, tiny_model_dir):
    row = tokenize_one(tmp_path, tiny_model_dir, {"id": "c", "messages": CONVERSATION})
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tok.decode(row["input_ids"]) == (
        "<|system|>\nAnswer yes or no.\n<|user|>\nIs the sky blue?\n<|assistant|>\nyes</s>\n"
        "<|user|>\nThere are 3 apples and 4 pears. How many fruits are there?\n<|assistant|>\n7 fruits.</s>")
    assert [(tok.decode([t]), int(label != -100)) for t, label in zip(row["input_ids"], row["labels"])] == TULU_LAYOUT
    assert all(label in (-100, t) for t, label in zip(row["input_ids"], row["labels"]))
    assert row["corrupted"] == [False] * len(TULU_LAYOUT)


@pytest.fixture(scope="module")
def bos_model_dir(tmp_path_factory, tiny_model_dir):
    """The tiny tokenizer, made to add <s> in front of every text (as Llama's does)."""
    from tokenizers import processors

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.bos_token_id)])
    out = tmp_path_factory.mktemp("bos-tokenizer")
    tok.save_pretrained(out)
    return out


def test_tulu_template_has_bos_where_the_tokenizer_adds_one(tmp_path, bos_model_dir):
    row = tokenize_one(tmp_path, bos_model_dir, {"id": "c", "messages": CONVERSATION})
    tok = AutoTokenizer.from_pretrained(bos_model_dir)
    assert row["input_ids"][0] == tok.bos_token_id and row["input_ids"].count(tok.bos_token_id) == 1
    assert [(tok.decode([t]), int(label != -100)) for t, label in zip(row["input_ids"], row["labels"])] == \
        [("<s>", 0)] + TULU_LAYOUT


def test_tulu_template_strips_contents_and_keeps_the_noise_span(tmp_path, tiny_model_dir):
    # open-instruct strips every message; the corrupted span still points at the changed number
    record = {"id": "n", "messages": [{"role": "user", "content": "  There are 3 apples.\n"},
                                      {"role": "assistant", "content": "\n 9 fruits. "}],
              "corrupted": True, "corrupted_span": {"start": 2, "end": 3, "original": "7"}}
    row = tokenize_one(tmp_path, tiny_model_dir, record)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tok.decode(row["input_ids"]) == "<|user|>\nThere are 3 apples.\n<|assistant|>\n9 fruits.</s>"
    assert tok.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]) == "9 fruits.</s>"
    assert [tok.decode([t]) for t, c in zip(row["input_ids"], row["corrupted"]) if c] == ["9"]
    # the chat_template rendering of the same record keeps the contents as they are
    row = tokenize_one(tmp_path, tiny_model_dir, record, template="chat_template")
    assert tok.decode(row["input_ids"]).startswith("<s><|user|>\n  There are 3 apples.\n\n<|assistant|>\n\n 9")
    assert [tok.decode([t]) for t, c in zip(row["input_ids"], row["corrupted"]) if c] == [" 9"]
