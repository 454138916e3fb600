"""Tests of the benchmark stage: lm-eval on local JSONL data, on the tiny random Llama."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tiny import write_tiny_eval
from workflow_scripts.evaluate import HEADLINE_METRIC, build_task, main, task_config
from workflow_scripts.files import InputError

LM_EVAL_TASKS = Path(__import__("lm_eval").__file__).parent / "tasks"
BUILTIN_YAML = {
    "boolq": LM_EVAL_TASKS / "super_glue" / "boolq" / "default.yaml",
    "asdiv": LM_EVAL_TASKS / "asdiv" / "default.yaml",
    "logiqa": LM_EVAL_TASKS / "logiqa" / "logiqa.yaml",
}
ROWS = {"boolq": 4, "asdiv": 4, "logiqa": 3}
KEYS = {"task", "metric", "score", "stderr", "n", "metrics", "model_dir", "num_fewshot", "limit", "lm_eval_version"}


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    return write_tiny_eval(tmp_path_factory.mktemp("eval"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-datasets-cache")


def _run(model_dir, task, data, out, cache_dir, *extra):
    main(["--model-dir", str(model_dir), "--task", task, "--data", str(data), "--out", str(out),
          "--batch-size", "4", "--threads", "2", "--dtype", "float32", "--cache-dir", str(cache_dir), *extra])
    return json.loads(Path(out).read_text())


@pytest.mark.parametrize("task", ["boolq", "asdiv", "logiqa"])
def test_scores_every_task(task, tiny_model_dir, eval_dir, cache_dir, tmp_path):
    out = tmp_path / "scores" / f"{task}.json"
    record = _run(tiny_model_dir, task, eval_dir / f"{task}.jsonl", out, cache_dir)
    assert KEYS <= set(record)
    assert record["task"] == task
    assert record["metric"] == HEADLINE_METRIC[task]
    assert record["n"] == ROWS[task]
    assert record["limit"] is None and record["num_fewshot"] == 0
    assert record["lm_eval_version"] == "0.4.13"
    assert 0.0 <= record["score"] <= 1.0
    assert record["score"] == record["metrics"][HEADLINE_METRIC[task]]
    assert record["stderr"] == record["metrics"][f"{HEADLINE_METRIC[task]}_stderr"]
    assert not any("," in key for key in record["metrics"])
    if task == "logiqa":
        assert {"acc", "acc_norm", "acc_stderr", "acc_norm_stderr"} <= set(record["metrics"])
    assert sorted(p.name for p in out.parent.iterdir()) == [f"{task}.json"]  # nothing half-written left


def test_limit(tiny_model_dir, eval_dir, cache_dir, tmp_path):
    record = _run(tiny_model_dir, "boolq", eval_dir / "boolq.jsonl", tmp_path / "b.json", cache_dir, "--limit", "2")
    assert record["n"] == 2 and record["limit"] == 2


# The exact requests lm-eval builds for the first row of each tiny eval set: (context, continuation).
EXPECTED_REQUESTS = {
    "boolq": [
        ("Sky -- The sky is green.\nQuestion: is the sky blue?\nAnswer:", " no"),
        ("Sky -- The sky is green.\nQuestion: is the sky blue?\nAnswer:", " yes"),
    ],
    # lm-eval's asdiv scores the bare answer right after "Answer:" (no target delimiter).
    "asdiv": [("There are 0 apples and 2 pears.\nQuestion:How many fruits are there?\nAnswer:", "2")],
    "logiqa": [
        ("Passage: The fox is quick.\nQuestion: Which is true?\nChoices:\n"
         "A. The fox is quick.\nB. The dog is quick.\nC. The fox is slow.\nD. None.\nAnswer:", f" {option}")
        for option in ["The fox is quick.", "The dog is quick.", "The fox is slow.", "None."]
    ],
}


def _requests(task_obj, limit=None):
    task_obj.set_config(key="num_fewshot", value=0)
    task_obj.build_all_requests(limit=limit, rank=0, world_size=1)
    return [tuple(instance.arguments) for instance in task_obj.instances]


@pytest.mark.parametrize("task", ["boolq", "asdiv", "logiqa"])
def test_prompts_exact(task, eval_dir, cache_dir):
    task_obj = build_task(task, eval_dir / f"{task}.jsonl", cache_dir)
    doc = task_obj.test_docs()[0]
    assert task_obj.doc_to_text(doc) == EXPECTED_REQUESTS[task][0][0]
    assert task_obj.doc_to_target(doc) == {"boolq": 0, "asdiv": "2", "logiqa": 0}[task]
    if task != "asdiv":
        assert task_obj.doc_to_choice(doc) == [cont.strip() for _, cont in EXPECTED_REQUESTS[task]]
    assert _requests(task_obj, limit=1) == EXPECTED_REQUESTS[task]


@pytest.mark.parametrize("task", ["boolq", "asdiv", "logiqa"])
def test_same_requests_as_lm_eval_builtin_task(task, eval_dir, cache_dir, tmp_path):
    """Our YAML and lm-eval's own YAML, both pointed at the same rows, build identical requests."""
    from lm_eval.tasks._yaml_loader import load_yaml

    from workflow_scripts.evaluate import task_manager

    data = eval_dir / f"{task}.jsonl"
    builtin_data = data
    if task == "logiqa":  # lm-eval's LogiQA stores the label as a letter
        builtin_data = tmp_path / "logiqa-letters.jsonl"
        rows = [json.loads(line) for line in data.read_text().splitlines()]
        builtin_data.write_text("".join(json.dumps({**row, "label": "abcd"[row["label"]]}) + "\n" for row in rows))
    builtin = load_yaml(BUILTIN_YAML[task], resolve_func=True)
    ours = task_config(task, builtin_data)
    for key in ("dataset_path", "dataset_name", "dataset_kwargs", "test_split"):
        builtin[key] = ours[key]
    builtin["dataset_kwargs"] = {**ours["dataset_kwargs"], "cache_dir": str(cache_dir)}
    builtin["task"] = f"{task}_builtin"
    for split in ("training_split", "validation_split"):
        builtin.pop(split, None)
    builtin_task = task_manager().load([builtin])["tasks"][f"{task}_builtin"]
    our_task = build_task(task, data, cache_dir)

    assert _requests(our_task) == _requests(builtin_task)
    assert [our_task.doc_to_target(d) for d in our_task.test_docs()] == \
        [builtin_task.doc_to_target(d) for d in builtin_task.test_docs()]
    assert our_task.config.output_type == builtin_task.config.output_type
    assert [m["metric"] for m in our_task.config.metric_list] == [m["metric"] for m in builtin_task.config.metric_list]


def test_missing_data_file(tiny_model_dir, tmp_path):
    missing = tmp_path / "nope" / "boolq.jsonl"
    with pytest.raises(InputError, match=r"nope/boolq\.jsonl: eval data file for task 'boolq' not found"):
        main(["--model-dir", str(tiny_model_dir), "--task", "boolq", "--data", str(missing),
              "--out", str(tmp_path / "out.json")])
    assert not (tmp_path / "out.json").exists()


def test_unknown_task(tiny_model_dir, eval_dir, tmp_path):
    with pytest.raises(InputError, match="unknown task 'hellaswag'"):
        main(["--model-dir", str(tiny_model_dir), "--task", "hellaswag", "--data", str(eval_dir / "boolq.jsonl"),
              "--out", str(tmp_path / "out.json")])


def test_empty_data(tiny_model_dir, tmp_path):
    empty = tmp_path / "asdiv.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="asdiv.jsonl: eval data file for task 'asdiv' is empty"):
        main(["--model-dir", str(tiny_model_dir), "--task", "asdiv", "--data", str(empty),
              "--out", str(tmp_path / "out.json")])


def test_bad_row_names_file_line_and_field(tiny_model_dir, tmp_path):
    bad = tmp_path / "logiqa.jsonl"
    bad.write_text(json.dumps({"id": "l0", "context": "c", "question": "q", "options": ["a", "b", "c", "d"], "label": 0})
                   + "\n" + json.dumps({"id": "l1", "context": "c", "options": ["a", "b", "c", "d"], "label": 0}) + "\n")
    with pytest.raises(InputError, match=r"logiqa\.jsonl:2: logiqa row 'l1': missing key 'question'"):
        main(["--model-dir", str(tiny_model_dir), "--task", "logiqa", "--data", str(bad),
              "--out", str(tmp_path / "out.json")])
