"""Atomic outputs (a killed stage leaves nothing that looks finished) and no pickle anywhere."""
import re
from pathlib import Path

import pytest

from workflow_scripts.files import InputError, atomic_path, read_jsonl, write_json

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_path_publishes_only_on_success(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary file
    write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'


def test_atomic_directory_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.bin").write_text("new")
        assert (target / "old.bin").exists()  # the old directory stands until the new one is complete
    assert [p.name for p in target.iterdir()] == ["new.bin"]


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": \n')
    with pytest.raises(InputError, match=r"d.jsonl:3: malformed JSON: Expecting value \(character 8\)"):
        list(read_jsonl(path))
    path.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(InputError, match=r"d.jsonl:1: invalid UTF-8 \(invalid start byte at byte 7\)"):
        list(read_jsonl(path))
    path.write_text("[1, 2]\n")
    with pytest.raises(InputError, match="d.jsonl:1: expected a JSON object, got list"):
        list(read_jsonl(path))


def test_no_pickle_in_the_code():
    code = {p: p.read_text() for p in [*ROOT.glob("workflow_scripts/**/*.py"), *ROOT.glob("rules/*.smk"),
                                        ROOT / "Snakefile"]}
    for path, text in code.items():
        assert not re.search(r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib)\b", text, re.M), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
        assert ".pkl" not in text and ".pickle" not in text, path
