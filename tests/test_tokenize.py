"""One tokenization: answer tokens labelled, prompt tokens -100, noise spans mapped to tokens."""
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
    table, dropped = tokenize_data.tokenize_file(str(data), str(tiny_model_dir), max_seq_length=20)
    assert table["example_id"].to_pylist() == ["short"] and dropped == 1
    with pytest.raises(InputError, match=r"d.jsonl: 1 of 2 records \(50.0%\) have their whole answer beyond "
                                         r"max_seq_length=20, more than tokenize.max_dropped_fraction=0.25"):
        tokenize_data.tokenize_file(str(data), str(tiny_model_dir), max_seq_length=20, max_dropped_fraction=0.25)
    with pytest.raises(InputError, match=r"every record's answer lies beyond max_seq_length=3"):
        tokenize_data.tokenize_file(str(data), str(tiny_model_dir), max_seq_length=3)
