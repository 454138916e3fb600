"""Provenance: the commit and dirtiness of the checkout, the config's hash, the job's machine."""
import subprocess

from workflow_scripts import provenance


def git(directory, *args):
    subprocess.run(["git", "-C", str(directory), *args], check=True, capture_output=True)


def test_git_state_says_which_commit_and_whether_the_tree_is_dirty(tmp_path):
    assert provenance.git_state(tmp_path) == (None, None)  # not a checkout
    git(tmp_path, "init", "-q")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert provenance.git_state(tmp_path) == (head.strip(), False)
    (tmp_path / "new.py").write_text("x = 1\n")
    assert provenance.git_state(tmp_path) == (head.strip(), True)


def test_the_config_hash_follows_the_values_not_the_order():
    assert provenance.config_sha({"a": 1, "b": [1, 2]}) == provenance.config_sha({"b": [1, 2], "a": 1})
    assert provenance.config_sha({"a": 1}) != provenance.config_sha({"a": 2})


def test_a_job_records_what_the_snakemake_process_handed_it(monkeypatch):
    monkeypatch.setenv("FORGETTING_COMMIT", "c" * 40)
    monkeypatch.setenv("FORGETTING_DIRTY", "true")
    monkeypatch.setenv("FORGETTING_CONFIG_SHA", "0123456789ab")
    record = provenance.record(seed=3)
    assert (record["commit"], record["dirty"], record["config_sha"], record["seed"]) == ("c" * 40, True,
                                                                                        "0123456789ab", 3)
    assert record["devices"]["kind"] == "cpu" and record["versions"]["torch"].startswith("2.")
