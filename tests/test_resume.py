"""A training job killed mid-way resumes from its last checkpoint and ends at the same step."""
import json

import pyarrow as pa
import pytest

from tiny import train_args
from workflow_scripts import training, train_final


def tokens_table(n=24):
    return pa.table({"example_id": [f"e{i}" for i in range(n)],
                     "input_ids": [[1, 5 + i % 7, 6, 7, 8] for i in range(n)], "labels": [[-100, -100, 6, 7, 8]] * n})


def run(tmp_path, tiny_model_dir, out):
    import pyarrow.parquet as pq

    pq.write_table(tokens_table(), tmp_path / "tokens.parquet")
    train_final.main(["--method", "sft", "--model-dir", str(tiny_model_dir),
                      "--tokens", str(tmp_path / "tokens.parquet"),
                      "--out", str(out), "--out-log", str(out.parent / "training_log.json"),
                      "--work-dir", str(tmp_path / "work"), *train_args(save_steps=2)])


def test_killed_training_resumes_from_its_checkpoint(tmp_path, tiny_model_dir, monkeypatch, caplog):
    original_step = training.ForgettingTrainer.training_step

    def killed_at_step_3(self, *args, **kwargs):
        if self.state.global_step == 3:
            raise KeyboardInterrupt("killed")
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(training.ForgettingTrainer, "training_step", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, tiny_model_dir, tmp_path / "model")
    assert not (tmp_path / "model").exists()  # nothing that looks finished
    assert (tmp_path / "work" / "checkpoint-2").is_dir()

    steps_run = []

    def counted(self, *args, **kwargs):
        steps_run.append(self.state.global_step + 1)
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(training.ForgettingTrainer, "training_step", counted)
    caplog.set_level("INFO")
    run(tmp_path, tiny_model_dir, tmp_path / "model")
    assert f"resuming from {tmp_path / 'work' / 'checkpoint-2'}" in caplog.text
    log = json.loads((tmp_path / "training_log.json").read_text())
    assert log["steps"] == 6  # 24 examples / batch 4, as an uninterrupted run
    assert steps_run == [3, 4, 5, 6]  # the rerun went on after the checkpoint at step 2
    assert [entry["step"] for entry in log["log_history"] if "loss" in entry] == [1, 2, 3, 4, 5, 6]
    assert not (tmp_path / "work").exists()


def test_checkpoints_of_other_settings_are_not_resumed(tmp_path):
    stamp = {"config": {"learning_rate": 0.1}}
    assert training.resumable_checkpoint(str(tmp_path / "work"), stamp) is None
    (tmp_path / "work" / "checkpoint-4").mkdir()
    (tmp_path / "work" / "checkpoint-4" / "trainer_state.json").write_text("{}")
    assert training.resumable_checkpoint(str(tmp_path / "work"), stamp) == str(tmp_path / "work" / "checkpoint-4")
    assert training.resumable_checkpoint(str(tmp_path / "work"), {"config": {"learning_rate": 0.2}}) is None
    assert not (tmp_path / "work" / "checkpoint-4").exists()


def test_a_signal_saves_the_state_and_the_rerun_resumes_to_the_same_log(tmp_path, tiny_model_dir, monkeypatch,
                                                                        caplog):
    """SLURM's warning before the time limit (SIGUSR1) in the middle of step 3: the job saves its
    state at the end of that step and exits 75; the rerun goes on from step 4 and ends with the
    per-step log of a run never interrupted (equal to float32 rounding: the same computation)."""
    import os
    import signal

    (tmp_path / "whole").mkdir()
    run(tmp_path / "whole", tiny_model_dir, tmp_path / "whole" / "model")
    whole = json.loads((tmp_path / "whole" / "training_log.json").read_text())["log_history"]

    original_step = training.ForgettingTrainer.training_step
    signalled = []

    def signal_at_step_3(self, *args, **kwargs):
        if self.state.global_step == 2 and not signalled:
            signalled.append(True)
            os.kill(os.getpid(), signal.SIGUSR1)
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(training.ForgettingTrainer, "training_step", signal_at_step_3)
    (tmp_path / "cut").mkdir()
    with pytest.raises(SystemExit) as stopped:
        run(tmp_path / "cut", tiny_model_dir, tmp_path / "cut" / "model")
    assert stopped.value.code == training.RESUMABLE_EXIT == 75
    assert (tmp_path / "cut" / "work" / "checkpoint-3").is_dir() and not (tmp_path / "cut" / "model").exists()
    caplog.set_level("INFO")
    run(tmp_path / "cut", tiny_model_dir, tmp_path / "cut" / "model")
    assert f"resuming from {tmp_path / 'cut' / 'work' / 'checkpoint-3'}" in caplog.text
    resumed = json.loads((tmp_path / "cut" / "training_log.json").read_text())["log_history"]
    losses = [(entry["step"], entry["loss"]) for entry in whole if "loss" in entry]
    assert [(entry["step"], pytest.approx(entry["loss"], rel=1e-6)) for entry in resumed if "loss" in entry] == losses
    assert len(losses) == 6


def test_the_tracker_writes_tensorboard_events_and_none_writes_nothing(tmp_path, tiny_model_dir):
    pytest.importorskip("tensorboardX", reason="the tracker extra (envs/trackers.txt); make test installs it")
    import pyarrow.parquet as pq

    pq.write_table(tokens_table(8), tmp_path / "tokens.parquet")
    for tracker in ("tensorboard", "none"):
        out = tmp_path / tracker
        train_final.main(["--method", "sft", "--model-dir", str(tiny_model_dir), "--tokens",
                          str(tmp_path / "tokens.parquet"), "--out", str(out / "model"), "--out-log",
                          str(out / "log.json"), "--work-dir", str(out / "work"),
                          *train_args(report_to=tracker), "--run-name", "sft/all/seed1",
                          "--experiment-name", "tiny-pool/tiny", "--tracker-dir", str(out / "tracker")])
    events = list((tmp_path / "tensorboard" / "tracker").rglob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    assert not (tmp_path / "none" / "tracker").exists()
