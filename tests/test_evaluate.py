"""Tests of the benchmark stage: lm-eval on local JSONL data, on the tiny random Llama."""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, spy_scored_requests
from tiny import write_tiny_eval
from workflow_scripts.constants import HUB_OFFLINE_SWITCHES as OFFLINE_SWITCHES
from workflow_scripts.evaluate import (build_task, configure_environment, main, parse_args,
                                      parse_limit, task_config)
from workflow_scripts.tasks import TASKS
from workflow_scripts.files import InputError

LM_EVAL_TASKS = Path(__import__("lm_eval").__file__).parent / "tasks"
BUILTIN_YAML = {
    "boolq": LM_EVAL_TASKS / "super_glue" / "boolq" / "default.yaml",
    "asdiv": LM_EVAL_TASKS / "asdiv" / "default.yaml",
    "logiqa": LM_EVAL_TASKS / "logiqa" / "logiqa.yaml",
}
ROWS = {"boolq": 4, "asdiv": 4, "logiqa": 3}
KEYS = {"task", "metric", "score", "stderr", "n", "metrics", "model_dir", "num_fewshot", "limit", "lm_eval_version",
        "model", "data", "run", "source", "device", "wall_seconds"}
# What the rule always passes, besides the task's own options.
RUN_NAMES = ["--model-name", "tiny", "--data-name", "tiny-pool", "--run", "forget/rho0.7-ascent-linear/seed1"]


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    return write_tiny_eval(tmp_path_factory.mktemp("eval"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-datasets-cache")


def _args(model_dir, task, data, out, limit=None):
    return ["--model-dir", str(model_dir), "--task", task, "--source", "local", "--data", str(data),
            "--out", str(out), *(["--limit", limit] if limit else []), "--batch-size", "4", "--threads", "2",
            "--dtype", "float32", *RUN_NAMES]


def _run(model_dir, task, data, out, cache_dir, limit=None):
    main([*_args(model_dir, task, data, out, limit), "--cache-dir", str(cache_dir)])
    return json.loads(Path(out).read_text())


@pytest.mark.parametrize("task", ["boolq", "asdiv", "logiqa"])
def test_scores_every_task(task, tiny_model_dir, eval_dir, cache_dir, tmp_path):
    out = tmp_path / "scores" / f"{task}.json"
    record = _run(tiny_model_dir, task, eval_dir / f"{task}.jsonl", out, cache_dir)
    assert KEYS <= set(record)
    assert record["task"] == task
    assert record["metric"] == TASKS[task].metric
    assert record["n"] == ROWS[task]
    assert record["limit"] is None and record["num_fewshot"] == 0
    assert record["lm_eval_version"] == "0.4.13"
    assert (record["model"], record["data"], record["run"], record["source"]) == \
        ("tiny", "tiny-pool", "forget/rho0.7-ascent-linear/seed1", "local")
    assert record["device"] == "cpu"
    assert 0.0 <= record["score"] <= 1.0
    assert record["score"] == record["metrics"][TASKS[task].metric]
    assert record["stderr"] == record["metrics"][f"{TASKS[task].metric}_stderr"]
    assert not any("," in key for key in record["metrics"])
    if task == "logiqa":
        assert {"acc", "acc_norm", "acc_stderr", "acc_norm_stderr"} <= set(record["metrics"])
    assert sorted(p.name for p in out.parent.iterdir()) == [f"{task}.json"]  # nothing half-written left
    # Every item's headline metric, by doc_id, averaging to the score (the summary pairs items).
    assert record["items"]["doc_id"] == list(range(ROWS[task]))
    assert set(record["items"]["score"]) <= {0.0, 1.0}
    assert sum(record["items"]["score"]) / ROWS[task] == pytest.approx(record["score"])
    assert record["chat_template"] is False


def test_the_batch_size_leaves_every_item_as_it_was(tiny_model_dir, eval_dir, cache_dir, tmp_path):
    """eval.batch_size is operational (schemas/config.schema.yaml): items per forward pass, padded to
    the longest, change the log-likelihoods only in the last bits and no item's score."""
    records = {}
    for size in ("1", "4"):
        args = _args(tiny_model_dir, "logiqa", eval_dir / "logiqa.jsonl", tmp_path / f"{size}.json")
        args[args.index("--batch-size") + 1] = size
        main([*args, "--cache-dir", str(cache_dir)])
        records[size] = json.loads((tmp_path / f"{size}.json").read_text())
    assert records["1"]["items"] == records["4"]["items"]
    assert records["1"]["metrics"]["acc_norm"] == records["4"]["metrics"]["acc_norm"]


@pytest.mark.parametrize("limit, n, recorded", [("2", 2, 2), ("0.5", 2, 0.5), ("0.3", 2, 0.3), ("0.99", 4, 0.99)])
def test_limit_count_or_fraction(limit, n, recorded, tiny_model_dir, eval_dir, cache_dir, tmp_path):
    """A count takes the first N rows; a fraction f takes ceil(f x rows), as lm-eval does (4 rows here)."""
    record = _run(tiny_model_dir, "boolq", eval_dir / "boolq.jsonl", tmp_path / "b.json", cache_dir, limit)
    assert record["n"] == n and record["limit"] == recorded


@pytest.mark.parametrize("text, value", [("0.99", 0.99), ("1", 1), ("50", 50), ("50.0", 50)])
def test_parse_limit(text, value):
    assert parse_limit(text) == value and type(parse_limit(text)) is type(value)


@pytest.mark.parametrize("text", ["-1", "1.5", "nan", "inf", "all", "0", "0.0"])  # all items: no --limit
def test_parse_limit_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_limit(text)


@pytest.mark.parametrize("option", ["--model-name", "--data-name", "--run", "--source", "--batch-size",
                                    "--dtype", "--threads", "--out", "--task", "--model-dir"])
def test_options_the_rule_passes_are_required(option, tiny_model_dir, eval_dir, tmp_path, capsys):
    args = _args(tiny_model_dir, "boolq", eval_dir / "boolq.jsonl", tmp_path / "out.json")
    i = args.index(option)
    with pytest.raises(SystemExit):
        parse_args(args[:i] + args[i + 2:])
    assert f"the following arguments are required: {option}" in capsys.readouterr().err


def test_unused_options_are_named():
    from workflow_scripts.evaluate import unused_options

    common = ["--model-dir", "m", "--model-name", "m", "--data-name", "d", "--run", "base", "--out", "o",
              "--batch-size", "1", "--threads", "0", "--dtype", "auto"]
    hub = parse_args([*common, "--source", "hub", "--task", "boolq", "--data", "x", "--tydiqa-dev", "y"])
    assert unused_options(hub) == ["--data", "--tydiqa-dev"]
    local = parse_args([*common, "--source", "local", "--task", "boolq", "--data", "x"])
    assert unused_options(local) == []
    tydiqa = parse_args([*common, "--source", "local", "--task", "tydiqa", "--data", "x", "--tydiqa-dev", "y",
                         "--tydiqa-train", "z"])
    assert unused_options(tydiqa) == ["--data"]


def test_run_is_stored_verbatim():
    args = parse_args(["--model-dir", "m", "--model-name", "m", "--data-name", "d", "--run", "base", "--source", "hub",
                       "--task", "boolq", "--out", "o", "--limit", "0.99", "--batch-size", "1", "--threads", "0",
                       "--dtype", "auto"])
    assert (args.run, args.source, args.limit, args.data) == ("base", "hub", 0.99, None)


def test_local_source_forces_offline(monkeypatch):
    for key in OFFLINE_SWITCHES:
        monkeypatch.delenv(key, raising=False)
    configure_environment("hub")
    assert not any(key in os.environ for key in OFFLINE_SWITCHES)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    configure_environment("local")
    assert all(os.environ[key] == "1" for key in OFFLINE_SWITCHES)


def test_importing_the_module_sets_no_offline_switch():
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES}
    code = ("import os, sys, workflow_scripts.evaluate, workflow_scripts.tydiqa; "
            f"print(sorted(k for k in {OFFLINE_SWITCHES!r} if k in os.environ)); "
            "print(sorted(m for m in ('datasets', 'huggingface_hub', 'lm_eval', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    # Nothing reads the switches before main() sets them: those libraries read them once, at import.
    assert result.stdout.split("\n")[:2] == ["[]", "[]"]


def test_hub_fetch_failure_names_the_dataset_and_hides_the_token(tiny_model_dir, tmp_path):
    """Hub mode with the Hub out of reach (offline switch set by the caller, so it fails at once)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_TOKEN": "hf_SeCrEtToKeN123",
           "HF_DATASETS_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf-home")}
    args = [sys.executable, "-m", "workflow_scripts.evaluate", "--model-dir", str(tiny_model_dir),
            "--model-name", "tiny", "--data-name", "d", "--run", "base", "--source", "hub", "--task", "truthfulqa_mc2",
            "--out", str(tmp_path / "out.json"), "--batch-size", "1", "--threads", "1",
            "--dtype", "float32"]
    result = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr[-3000:]
    assert ("error: task truthfulqa_mc2: could not fetch dataset 'truthfulqa/truthful_qa' (config 'multiple_choice') "
            "from the Hugging Face Hub at https://huggingface.co: ") in result.stderr
    assert "hf_SeCrEtToKeN123" not in result.stderr + result.stdout
    assert not (tmp_path / "out.json").exists()


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
        main(_args(tiny_model_dir, "boolq", missing, tmp_path / "out.json"))
    assert not (tmp_path / "out.json").exists()


def test_unknown_task(tiny_model_dir, eval_dir, tmp_path):
    with pytest.raises(InputError, match="unknown task 'hellaswag' for source 'local'"):
        main(_args(tiny_model_dir, "hellaswag", eval_dir / "boolq.jsonl", tmp_path / "out.json"))


def test_hub_only_task_refused_locally(tiny_model_dir, eval_dir, tmp_path):
    with pytest.raises(InputError, match="unknown task 'tydiqa_goldp' for source 'local'"):
        main(_args(tiny_model_dir, "tydiqa_goldp", eval_dir / "boolq.jsonl", tmp_path / "out.json"))


def test_empty_data(tiny_model_dir, tmp_path):
    empty = tmp_path / "asdiv.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="asdiv.jsonl: eval data file for task 'asdiv' is empty"):
        main(_args(tiny_model_dir, "asdiv", empty, tmp_path / "out.json"))


def test_bad_row_names_file_line_and_field(tiny_model_dir, tmp_path):
    bad = tmp_path / "logiqa.jsonl"
    bad.write_text(json.dumps({"id": "l0", "context": "c", "question": "q", "options": ["a", "b", "c", "d"],
                               "label": 0})
                   + "\n" + json.dumps({"id": "l1", "context": "c", "options": ["a", "b", "c", "d"], "label": 0})
                   + "\n")
    with pytest.raises(InputError, match=r"logiqa\.jsonl:2: logiqa row 'l1': missing key 'question'"):
        main(_args(tiny_model_dir, "logiqa", bad, tmp_path / "out.json"))


# ----------------------------------------------------------------------------- hub source, offline

def test_language_metrics_mean_over_languages():
    """tydiqa_goldp (a tag of 9 lm-eval tasks): unweighted means, stderr of a mean of independent means."""
    from workflow_scripts.evaluate import language_metrics

    out = {"results": {
        "tydiqa_goldp_ar": {"alias": "tydiqa_goldp_ar", "f1,none": 0.5, "f1_stderr,none": 0.1,
                            "exact_match,none": 0.25, "exact_match_stderr,none": 0.05},
        "tydiqa_goldp_en": {"alias": "tydiqa_goldp_en", "f1,none": 0.7, "f1_stderr,none": 0.2,
                            "exact_match,none": 0.5, "exact_match_stderr,none": "N/A"}},
        "n-samples": {"tydiqa_goldp_ar": {"original": 10, "effective": 10},
                      "tydiqa_goldp_en": {"original": 30, "effective": 20}}}
    metrics, n = language_metrics(out, ["tydiqa_goldp_ar", "tydiqa_goldp_en"])
    assert n == {"arabic": 10, "english": 20}
    assert metrics["f1"] == pytest.approx(0.6) and metrics["exact_match"] == pytest.approx(0.375)
    assert (metrics["f1_arabic"], metrics["f1_english"]) == (0.5, 0.7)
    assert metrics["f1_stderr"] == pytest.approx(math.sqrt(0.1 ** 2 + 0.2 ** 2) / 2)
    assert metrics["exact_match_stderr"] is None


GOLDP_ROWS = [  # google-research-datasets/tydiqa "secondary_task" rows, one per language
    {"id": f"{lang}-{i}-0", "title": "t", "context": "The sky is blue.", "question": "What colour is the sky?",
     "answers": {"text": ["blue"], "answer_start": [11]}}
    for i, lang in enumerate(["arabic", "bengali", "english", "finnish", "indonesian", "korean", "russian",
                              "swahili", "telugu"])]


def test_hub_tydiqa_goldp_runs_lm_evals_nine_tasks(tiny_model_dir, cache_dir, tmp_path, monkeypatch):
    """The hub path end to end with the download replaced: lm-eval's own 9 tydiqa_goldp tasks (their
    YAML, prompts and process_results) on a local copy of the Hub rows, aggregated per language."""
    from lm_eval.tasks._yaml_loader import load_yaml

    import workflow_scripts.evaluate as evaluate

    data = tmp_path / "tydiqa.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in GOLDP_ROWS))
    fetched = []

    def fetch_local(manager, task):
        fetched.append(task)
        cfg = load_yaml(manager.task_index[task].yaml_path, resolve_func=True)
        cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={
            "data_files": {"train": str(data), "validation": str(data)}, "cache_dir": str(cache_dir)})
        cfg["generation_kwargs"] = {**cfg["generation_kwargs"], "max_gen_toks": 4}  # a random model never stops
        return manager.load([cfg])["tasks"][task]

    monkeypatch.setattr(evaluate, "fetch_stock_task", fetch_local)
    out = tmp_path / "tydiqa_goldp.json"
    main(["--model-dir", str(tiny_model_dir), "--task", "tydiqa_goldp", "--source", "hub", "--out", str(out),
          "--limit", "1", "--batch-size", "4", "--threads", "2", "--dtype", "float32", *RUN_NAMES])
    record = json.loads(out.read_text())
    assert fetched == [f"tydiqa_goldp_{code}" for code in ["ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te"]]
    assert (record["task"], record["metric"], record["source"], record["n"]) == ("tydiqa_goldp", "f1", "hub", 9)
    assert record["n_per_language"] == {lang: 1 for lang in evaluate.GOLDP_LANGUAGES.values()}
    per_language = [record["metrics"][f"f1_{lang}"] for lang in evaluate.GOLDP_LANGUAGES.values()]
    assert record["score"] == pytest.approx(sum(per_language) / 9)


def test_boolq_short_keeps_the_questions_with_short_passages(eval_dir, cache_dir, tmp_path):
    """The in-distribution slice: passages of at most 50 words, otherwise boolq's requests."""
    rows = [{"id": "short", "passage": " ".join(["word"] * 50), "question": "is it short", "label": 1},
            {"id": "long", "passage": " ".join(["word"] * 51), "question": "is it long", "label": 0},
            *(json.loads(line) for line in (eval_dir / "boolq.jsonl").read_text().splitlines())]
    data = tmp_path / "boolq.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    short = build_task("boolq_short", data, cache_dir)
    full = build_task("boolq", data, cache_dir)
    assert [doc["id"] for doc in short.test_docs()] == ["short", "b0", "b1", "b2", "b3"]
    assert _requests(short) == [r for r in _requests(full) if " is it long?" not in r[0]]


def test_boolq_short_reads_boolqs_rows_and_checks_them_as_boolq(tiny_model_dir, tmp_path):
    data = tmp_path / "boolq.jsonl"
    data.write_text(json.dumps({"id": "x", "passage": "p", "question": "q", "label": "yes"}) + "\n")
    with pytest.raises(InputError, match=r"boolq_short row 'x': 'label' must be int"):
        main(_args(tiny_model_dir, "boolq_short", data, tmp_path / "o.json"))


@pytest.mark.parametrize("flag, applied", [([], False), (["--chat-template"], True)])
def test_chat_template_reaches_lm_eval(flag, applied, chat_model_dir, eval_dir, cache_dir, tmp_path, monkeypatch):
    """--chat-template is lm-eval's apply_chat_template (lm-eval renders the prompts), and is recorded."""
    import lm_eval

    seen = {}
    real = lm_eval.simple_evaluate

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", spy)
    out = tmp_path / "asdiv.json"
    main([*_args(chat_model_dir, "asdiv", eval_dir / "asdiv.jsonl", out), "--cache-dir", str(cache_dir), *flag])
    assert seen["apply_chat_template"] is applied
    assert json.loads(out.read_text())["chat_template"] is applied


def test_chat_template_needs_one_in_the_tokenizer(tiny_model_dir, eval_dir, tmp_path):
    with pytest.raises(InputError, match=r"the tokenizer has no chat template.*eval.chat_template: false"):
        main([*_args(tiny_model_dir, "asdiv", eval_dir / "asdiv.jsonl", tmp_path / "o.json"), "--chat-template"])


@pytest.fixture(scope="module")
def bos_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with a tokenizer that, like Llama's, puts a BOS in front of every encoding."""
    import shutil

    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    directory = tmp_path_factory.mktemp("bos-model")
    shutil.copytree(tiny_model_dir, directory, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)])
    tokenizer.save_pretrained(directory)
    assert AutoTokenizer.from_pretrained(directory)("yes")["input_ids"][0] == tokenizer.bos_token_id
    return directory


@pytest.mark.parametrize("flag, bos", [([], True), (["--no-add-bos-token"], False),
                                       (["--add-bos-token"], True)])
def test_add_bos_token_decides_what_lm_eval_scores(flag, bos, bos_model_dir, eval_dir, cache_dir, tmp_path,
                                                   monkeypatch):
    """The token ids lm-eval scores: without the option the tokenizer decides (a BOS here, as on Llama
    under lm-eval 0.4.13); false drops it (lm-eval before 0.4.10, the paper's run)."""
    from transformers import AutoTokenizer

    scored = spy_scored_requests(monkeypatch)
    out = tmp_path / "boolq.json"
    main([*_args(bos_model_dir, "boolq", eval_dir / "boolq.jsonl", out), "--cache-dir", str(cache_dir), *flag])
    contexts = [context for _, context, _ in scored]
    bos_id = AutoTokenizer.from_pretrained(bos_model_dir).bos_token_id
    assert len(contexts) == 2 * ROWS["boolq"]  # "no" and "yes" for each question
    assert {context[0] == bos_id for context in contexts} == {bos}
    assert all(bos_id not in context[1:] for context in contexts)
    recorded = {"--add-bos-token": True, "--no-add-bos-token": False}[flag[0]] if flag else None
    assert json.loads(out.read_text())["add_bos_token"] == recorded


def _number_words_eval(directory: Path) -> Path:
    path = directory / "number_words.jsonl"
    rows = [{"id": f"n{i}", "words": words, "number": number}
            for i, (words, number) in enumerate([("seven", "7"), ("twelve", "12"), ("three", "3")])]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture()
def answers_right_but_never_a_newline(chat_model_dir, monkeypatch):
    """The tiny chat model made an oracle: at every position its top token is the token that
    follows, except that where a newline follows (the template's, after `<|assistant|>`) its top
    token is the EOS. It answers every item right and never opens its turn with the newline."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chat_model_dir)
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert len(newline) == 1
    seen = spy_scored_requests(monkeypatch)

    def oracle_call(self, inps, attn_mask=None, labels=None):
        logits = torch.zeros(*inps.shape, self.model.config.vocab_size)
        for row, ids in zip(logits, inps.tolist()):
            whole = next(c + k for _, c, k in seen if (c + k)[: len(c + k) - 1] == ids[: len(c + k) - 1])
            for t, following in enumerate(whole[1:]):
                row[t, tokenizer.eos_token_id if following == newline[0] else following] = 10.0
        return logits

    monkeypatch.setattr(HFLM, "_model_call", oracle_call)
    return tokenizer, newline[0], seen


def test_chat_template_scores_the_answer_only(answers_right_but_never_a_newline, chat_model_dir, cache_dir,
                                              tmp_path):
    """In the chat template only the target's tokens are scored: the oracle that never puts the
    template's newline first scores 1; the scored ids are the target's own, the newline stays in
    the context."""
    tokenizer, newline, seen = answers_right_but_never_a_newline
    data = _number_words_eval(tmp_path)
    record = _run_chat(chat_model_dir, data, tmp_path / "nw.json", cache_dir)
    assert record["score"] == 1.0 and record["n"] == 3
    targets = {tokenizer.decode(continuation): continuation for _, _, continuation in seen}
    assert set(targets) == {"7", "12", "3"}
    assert all(ids == tokenizer.encode(text, add_special_tokens=False) for text, ids in targets.items())
    assert all(context[-1] == newline for _, context, _ in seen)


def test_plain_hf_scores_the_templates_newline(answers_right_but_never_a_newline, chat_model_dir, cache_dir,
                                               tmp_path, monkeypatch):
    """The same oracle under lm-eval's own pair encoding (the scorer before): the newline moves
    into the continuation, so every item reads 0 though every answer is right."""
    import workflow_scripts.answer_scoring as answer_scoring

    tokenizer, newline, seen = answers_right_but_never_a_newline
    monkeypatch.setattr(answer_scoring, "MODEL_NAME", "hf")
    record = _run_chat(chat_model_dir, _number_words_eval(tmp_path), tmp_path / "nw.json", cache_dir)
    assert record["score"] == 0.0
    assert all(continuation[0] == newline for _, _, continuation in seen)


def _run_chat(model_dir, data, out, cache_dir):
    main([*_args(model_dir, "number_words", data, out), "--cache-dir", str(cache_dir), "--chat-template"])
    return json.loads(Path(out).read_text())
