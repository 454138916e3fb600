"""Atomic outputs (a killed stage leaves nothing that looks finished) and no pickle anywhere."""
import re

import pytest

from conftest import ROOT
from workflow_scripts.files import InputError, atomic_path, read_jsonl, write_json



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


def pickle_uses(text: str) -> list[str]:
    """What in `text` would read or write a pickle: an import of a pickling module, torch.load
    without weights_only=True (its default unpickles), a .pkl/.pickle file name."""
    found = re.findall(r"^\s*(?:import|from)\s+(?:pickle|cPickle|dill|joblib)\b.*$", text, re.M)
    found += [call for call in re.findall(r"torch\.load\([^)]*\)", text) if "weights_only=True" not in call]
    return found + re.findall(r"\S*\.(?:pkl|pickle)\b", text)


@pytest.mark.parametrize("planted", ["import pickle", "from joblib import dump", "state = torch.load(path)",
                                     "torch.load(path, weights_only=False)", 'open("cache.pkl", "wb")'])
def test_the_pickle_check_finds_a_planted_use(planted):
    assert pickle_uses(f"x = 1\n{planted}\ny = 2\n")
    assert not pickle_uses("x = torch.load(path, weights_only=True)\nimport json\n")


def test_no_pickle_in_the_code():
    code = {p: p.read_text() for p in [*ROOT.glob("workflow_scripts/**/*.py"), *ROOT.glob("rules/*.smk"),
                                        ROOT / "Snakefile", *ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*")]
            if p.is_file()}
    assert len(code) > 30
    assert {path.name: uses for path, text in code.items() if (uses := pickle_uses(text))} == {}
