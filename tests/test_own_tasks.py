"""A user's own tasks from a folder (eval.include_path): a folder of lm-eval task YAMLs written here,
one multiple-choice and one generate_until task over small JSONL files, named in eval.tasks beside
the catalogue's, run through the DAG on the tiny model (sft alone). The item scores are checked
against loglikelihoods and greedy continuations computed here with plain forward passes; the
generate_until data are written so that the base model's answer to one item is certainly right
and to the other certainly wrong. An unknown name is refused before any job, listing both lists
of tasks; editing one task's YAML or data replans that task's jobs and what follows, nothing else.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import make_test_workdir, planned_jobs, snakemake, spy_scored_requests
from workflow_scripts import tasks

EXPERIMENT = "results/tiny-pool/tiny"
RUNS = {"base": "resources/models/tiny", "sft/all/seed1": f"{EXPERIMENT}/sft/all/seed1/model"}

MC_YAML = """\
task: own_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: own/mc.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: gold
doc_to_choice: choices
metric_list:
  - metric: acc
  - metric: acc_norm
"""
GEN_YAML = """\
task: own_gen
dataset_path: json
dataset_kwargs:
  data_files: own/gen.jsonl
test_split: train
output_type: generate_until
doc_to_text: "{{question}}\\nA:"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
"""
# Row 0 has one choice: whatever the model, it is the prediction and the answer (acc 1). The
# golds of rows 1 and 2 are set from the base model's loglikelihoods (`mc_rows`). The fourth row
# is past eval.limit (3): the DAG never scores it.
MC_ROWS = [{"question": "Which is it?", "choices": ["the only one"], "gold": 0},
           {"question": "Is 3 more than 1?", "choices": ["yes", "no", "three apples"], "gold": 0},
           {"question": "How many fruits?", "choices": ["4 fruits.", "7", "none at all"], "gold": 0},
           {"question": "Pick a colour", "choices": ["red", "green and blue"], "gold": 1}]
NEVER = "§ an answer no model here writes §"
GEN_QUESTIONS = ["There are 2 apples and 3 pears. How many fruits?", "Is 4 more than 2? Answer yes or no.",
                 "How many fruits are there?", "Is 1 more than 5?"]


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text)  # the tokenizer's own special tokens, as lm-eval's default leaves them


def loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """log p(continuation | context) by one forward pass: the continuation's tokens are those of
    context + continuation after the context's (lm-eval's pair encoding)."""
    import torch

    whole, prefix = encode(tokenizer, context + continuation), encode(tokenizer, context)
    assert whole[: len(prefix)] == prefix
    with torch.no_grad():
        logits = model(torch.tensor([whole[:-1]])).logits[0].log_softmax(-1)
    return sum(logits[i - 1, whole[i]].item() for i in range(len(prefix), len(whole)))


def greedy_line(model, tokenizer, context: str, max_tokens: int) -> tuple[str, float]:
    """The argmax continuation, full forward pass per token, up to the EOS, `max_tokens` or the
    first newline; and the smallest margin between the top two logits on the way."""
    import torch

    ids, new, margin = encode(tokenizer, context), [], float("inf")
    for _ in range(max_tokens):
        with torch.no_grad():
            logits = model(torch.tensor([ids + new])).logits[0, -1]
        top = logits.topk(2).values
        margin = min(margin, (top[0] - top[1]).item())
        token = int(logits.argmax())
        if token == tokenizer.eos_token_id:
            break
        new.append(token)
        if "\n" in tokenizer.decode(new, skip_special_tokens=True):
            break
    return tokenizer.decode(new, skip_special_tokens=True).split("\n")[0], margin


def load(path, tokenizer_dir=None):
    """A model directory or an adapter merged into its base (the pipeline's loader), and the tokenizer."""
    from transformers import AutoTokenizer

    from workflow_scripts.modeling import load_causal_lm

    model = load_causal_lm(str(path), "float32", place=False).eval()
    return model, AutoTokenizer.from_pretrained(tokenizer_dir or path)


def write_folder(workdir: Path, mc_rows: list[dict], gen_rows: list[dict]) -> None:
    (workdir / "own").mkdir(exist_ok=True)
    (workdir / "own/mc.yaml").write_text(MC_YAML)
    (workdir / "own/gen.yaml").write_text(GEN_YAML)
    (workdir / "own/mc.jsonl").write_text("".join(json.dumps(row) + "\n" for row in mc_rows))
    (workdir / "own/gen.jsonl").write_text("".join(json.dumps(row) + "\n" for row in gen_rows))


def choice_loglikelihoods(model, tokenizer, row) -> list[float]:
    """Each choice's loglikelihood after the task's prompt, with lm-eval's target delimiter (a space)."""
    context = f"Question: {row['question']}\nAnswer:"
    return [loglikelihood(model, tokenizer, context, f" {choice}") for choice in row["choices"]]


def clear_argmax(values: list[float]) -> int | None:
    """The index of the largest value, or None where the top two are within float noise."""
    ranked = sorted(values, reverse=True)
    return None if len(values) > 1 and ranked[0] - ranked[1] < 1e-4 else values.index(ranked[0])


def mc_rows(tiny_model_dir) -> list[dict]:
    """MC_ROWS with row 1's gold the base model's choice and row 2's gold another: acc 1, 1, 0."""
    model, tokenizer = load(tiny_model_dir)
    rows = [dict(row) for row in MC_ROWS]
    for i, right in ((1, True), (2, False)):
        lls = choice_loglikelihoods(model, tokenizer, rows[i])
        best = clear_argmax(lls)
        assert best is not None, lls
        rows[i]["gold"] = best if right else (best + 1) % len(lls)
    return rows


def generate_rows(tiny_model_dir) -> list[dict]:
    """Row 0's answer is the base model's own greedy line to a question where it writes one
    without a near-tie on the way; row 1's answer is one it never writes."""
    model, tokenizer = load(tiny_model_dir)
    for question in GEN_QUESTIONS:
        line, margin = greedy_line(model, tokenizer, f"{question}\nA:", 6)
        if line.strip() and margin > 1e-3:
            return [{"question": question, "answer": line}, {"question": GEN_QUESTIONS[-1], "answer": NEVER}]
    raise AssertionError("the tiny model writes no clear line to any question")


def small(config):
    config.update(methods=["sft"], rho=[0.7], seeds=[1])
    config["eval"] = {"tasks": ["own_mc", "own_gen"], "include_path": "own", "limit": {"own_mc": 3},
                      "decodings": 2, "decode_max_new_tokens": 6, "batch_size": 4}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir):
    workdir = make_test_workdir(tmp_path_factory.mktemp("own-tasks"), tiny_model_dir, small)
    rows = {"mc": mc_rows(tiny_model_dir), "gen": generate_rows(tiny_model_dir)}
    write_folder(workdir, rows["mc"], rows["gen"])
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir, rows


def score(workdir, label, task):
    return json.loads((workdir / EXPERIMENT / label / "scores" / f"{task}.json").read_text())


def test_the_folder_is_read_by_lm_evals_task_manager(run, monkeypatch):
    workdir, _ = run
    monkeypatch.chdir(workdir)
    own = tasks.folder_tasks("own")
    assert sorted(own) == ["own_gen", "own_mc"]
    assert (own["own_mc"].metric, own["own_mc"].metrics, own["own_mc"].output_type) == \
        ("acc", ("acc", "acc_norm"), "multiple_choice")
    assert (own["own_gen"].metric, own["own_gen"].generative) == ("exact_match", True)
    assert own["own_mc"].inputs == ("own/mc.yaml", "own/mc.jsonl")
    assert own["own_gen"].inputs == ("own/gen.yaml", "own/gen.jsonl")


def test_multiple_choice_items_are_the_argmax_of_the_loglikelihoods(run, monkeypatch):
    """Per item, acc is whether the choice of the highest loglikelihood is the gold one, acc_norm
    the same per character of the choice (lm-eval's): from loglikelihoods computed here, for the
    base model (whose items are 1, 1, 0 by construction) and the sft checkpoint."""
    workdir, rows = run
    monkeypatch.chdir(workdir)  # the adapter names its base model relative to the working directory
    for label, path in RUNS.items():
        record = score(workdir, label, "own_mc")
        assert (record["task"], record["metric"], record["n"], record["limit"]) == ("own_mc", "acc", 3, 3)
        assert record["items"]["doc_id"] == [0, 1, 2]  # eval.limit by the task's name
        model, tokenizer = load(workdir / path, workdir / RUNS["base"])
        acc, acc_norm = [], []
        for row, found in zip(rows["mc"][:3], record["items"]["score"]):
            lls = choice_loglikelihoods(model, tokenizer, row)
            best = clear_argmax(lls)
            acc.append(found if best is None else float(best == row["gold"]))  # a near-tie: either
            norm = clear_argmax([ll / len(choice) for ll, choice in zip(lls, row["choices"])])
            acc_norm.append(None if norm is None else float(norm == row["gold"]))
        assert record["items"]["score"] == acc, label
        if label == "base":
            assert acc == [1.0, 1.0, 0.0]
        assert record["score"] == pytest.approx(sum(acc) / 3)
        if None not in acc_norm:
            assert record["metrics"]["acc_norm"] == pytest.approx(sum(acc_norm) / 3)


def test_generate_until_items_are_exact_matches_of_the_greedy_line(run, monkeypatch):
    workdir, rows = run
    gen_rows = rows["gen"]
    monkeypatch.chdir(workdir)
    base = score(workdir, "base", "own_gen")
    assert (base["metric"], base["n"], base["items"]["score"]) == ("exact_match", 2, [1.0, 0.0])
    assert base["score"] == 0.5
    sft = score(workdir, "sft/all/seed1", "own_gen")
    model, tokenizer = load(workdir / RUNS["sft/all/seed1"], workdir / RUNS["base"])
    lines = [greedy_line(model, tokenizer, f"{row['question']}\nA:", 6) for row in gen_rows]
    expected = [float(line == row["answer"]) if margin > 1e-3 else found  # a near-tie: either
                for (line, margin), row, found in zip(lines, gen_rows, sft["items"]["score"])]
    assert sft["items"]["score"] == expected


def test_decodings_summary_and_figure_show_the_folders_tasks(run):
    from workflow_scripts.plots import scores_figure

    workdir, rows = run
    gen_rows = rows["gen"]
    decoded = json.loads((workdir / EXPERIMENT / "base/decodings/own_gen.json").read_text())
    assert [item["prompt"] for item in decoded["items"]] == [f"{row['question']}\nA:" for row in gen_rows]
    assert decoded["items"][0]["output"] == gen_rows[0]["answer"].strip() and decoded["items"][0]["exact"]
    mc = json.loads((workdir / EXPERIMENT / "sft/all/seed1/decodings/own_mc.json").read_text())
    assert [item["target"] for item in mc["items"]] == \
        [row["choices"][row["gold"]] for row in rows["mc"][:2]]  # the gold choice
    summary = pd.read_csv(workdir / EXPERIMENT / "summary.csv")
    assert list(summary.columns[4:]) == ["own_gen_exact_match", "own_mc_acc", "mean"]
    base = summary[summary["method"] == "base"].iloc[0]
    assert base["own_gen_exact_match"] == 0.5
    assert base["own_mc_acc"] == pytest.approx(score(workdir, "base", "own_mc")["score"])
    markdown = (workdir / EXPERIMENT / "summary.md").read_text()
    assert "### own_gen" in markdown and "### own_mc" in markdown
    figure = scores_figure(pd.read_csv(workdir / EXPERIMENT / "summary_by_method.csv"))
    assert [ax.get_title() for ax in figure.axes] == ["own_gen_exact_match", "own_mc_acc", "mean"]


def planned(result) -> dict[str, set[str]]:
    """rule -> the {task} of each planned job that has one (or its output, for the others)."""
    jobs: dict[str, set[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule and rule.group(1) != "all":
            task = re.search(r"^\s+wildcards: .*\btask=([^,\s]+)", block, re.M)
            jobs.setdefault(rule.group(1), set()).add(task.group(1) if task else "")
    return jobs


def touch_later(path: Path, text: str) -> None:
    path.write_text(text)
    later = time.time() + 5  # newer than every output, whatever the clock's resolution
    os.utime(path, (later, later))


@pytest.mark.parametrize("edited, task", [("own/gen.yaml", "own_gen"), ("own/mc.jsonl", "own_mc")])
def test_editing_a_tasks_yaml_or_data_replans_that_task_alone(run, edited, task):
    workdir, _ = run
    path = workdir / edited
    before, stat = path.read_text(), path.stat()
    again = snakemake(workdir, "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
    try:
        if edited.endswith(".yaml"):
            touch_later(path, before.replace("max_gen_toks: 6", "max_gen_toks: 5"))
        else:
            touch_later(path, before + json.dumps({**MC_ROWS[1], "question": "Is 5 more than 2?"}) + "\n")
        result = snakemake(workdir, "--dry-run")
    finally:
        path.write_text(before)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as old as it was: nothing left stale
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned(result) == {"evaluate": {task}, "decode": {task}, "summary": {""}, "plots": {""}}
    assert planned_jobs(result)["evaluate"] == planned_jobs(result)["decode"] == 2  # base and sft


def test_an_unknown_name_is_refused_before_any_job_listing_both(run):
    workdir, _ = run
    (workdir / "unknown.yaml").write_text("eval: {tasks: [own_mc, own_mcq]}\n")
    result = snakemake(workdir, "--dry-run", "--configfile", workdir / "config.yaml", workdir / "unknown.yaml")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert ("eval.tasks: unknown task 'own_mcq'; known tasks are " + ", ".join(tasks.TASKS)
            + "; eval.include_path (own) has own_gen, own_mc") in output
    assert "Job stats" not in output


@pytest.mark.parametrize("change, message", [
    ({"tasks": ["own_mc"], "include_path": "elsewhere"}, "eval.include_path: 'elsewhere' is not a folder"),
    ({"tasks": ["own_mc"], "limit": {"own_mcq": 2}}, "eval.limit: 'own_mcq' is not a task; known tasks are"),
    ({"tasks": ["own_mc"], "metric": {"own_mc": "f1"}}, "eval.metric: task own_mc (own/mc.yaml) reports acc, "
                                                        "acc_norm, not 'f1'"),
    ({"tasks": ["own_mc"], "metric": {"own_gen": "exact_match"}},
     "eval.metric: 'own_gen' is not a task of eval.tasks or eval.report_only"),
    ({"tasks": ["own_lost"]}, "eval task own_lost (own/lost.yaml): no data file own/lost.jsonl"),
    ({"tasks": ["own_hub"]}, "eval task own_hub (own/hub.yaml): its data must be files its YAML names"),
    ({"tasks": ["boolq"]}, "eval task boolq is the catalogue's and also own/boolq.yaml's"),
])
def test_what_a_folders_task_needs_is_checked(run, monkeypatch, change, message):
    workdir, _ = run
    monkeypatch.chdir(workdir)
    extra = {"lost": "task: own_lost\ndataset_path: json\ndataset_kwargs: {data_files: own/lost.jsonl}\n"
                     "output_type: multiple_choice\n",
             "hub": "task: own_hub\ndataset_path: super_glue\ndataset_name: boolq\noutput_type: multiple_choice\n",
             "boolq": "task: boolq\ndataset_path: json\ndataset_kwargs: {data_files: own/mc.jsonl}\n"}
    for name, text in extra.items():
        (workdir / "own" / f"{name}.yaml").write_text(text)
    try:
        errors = tasks.config_errors({"source": "local", "include_path": "own", "limit": {}, **change})
    finally:
        for name in extra:
            (workdir / "own" / f"{name}.yaml").unlink()
    assert any(message in error for error in errors), errors


def test_in_the_chat_template_a_folders_task_scores_the_answer_only(run, tmp_path, monkeypatch):
    """eval.chat_template: the folder's task goes through the same answer-only scorer as the
    catalogue's (workflow_scripts/answer_scoring.py): the template's newline stays in the context
    and each scored continuation is a choice's own tokens."""
    import shutil

    import lm_eval
    from transformers import AutoTokenizer

    from workflow_scripts import evaluate
    from workflow_scripts.tokenize_data import TULU_TEMPLATE

    workdir, _ = run
    model_dir = tmp_path / "chat-model"
    shutil.copytree(workdir / RUNS["base"], model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = TULU_TEMPLATE
    tokenizer.save_pretrained(model_dir)
    seen, models = spy_scored_requests(monkeypatch), []
    real = lm_eval.simple_evaluate
    monkeypatch.setattr(lm_eval, "simple_evaluate", lambda **kwargs: models.append(kwargs["model"]) or real(**kwargs))
    monkeypatch.chdir(workdir)
    record = evaluate.main(["--model-dir", str(model_dir), "--task", "own_mc", "--include-path", "own",
                            "--source", "local", "--chat-template", "--out", str(tmp_path / "o.json"),
                            "--batch-size", "4", "--threads", "1", "--dtype", "float32", "--model-name", "tiny",
                            "--data-name", "tiny-pool", "--run", "base"])
    assert models == ["hf-answer-only"] and record["chat_template"] is True and record["n"] == 4
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert all(context[-len(newline):] == newline for _, context, _ in seen)
    choices = {choice for row in MC_ROWS for choice in row["choices"]}
    assert {tokenizer.decode(continuation).strip() for _, _, continuation in seen} == choices


def test_the_schema_takes_lm_evals_task_names():
    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "schemas/config.schema.yaml").read_text())
    evaluation = schema["properties"]["eval"]["properties"]
    for option in ("tasks", "report_only"):
        assert evaluation[option]["items"]["pattern"] == f"^{tasks.NAME_PATTERN}$"
    assert re.fullmatch(tasks.NAME_PATTERN, "mmlu_pro-math.v2") and not re.fullmatch(tasks.NAME_PATTERN, "a/b")


def test_a_task_with_several_filters_is_scored_per_filter(run, tmp_path, monkeypatch):
    """lm-eval reports each metric per filter: a task with two names its metrics "metric,filter",
    the headline is the first filter's first metric, and its items are that filter's."""
    from workflow_scripts import evaluate

    workdir, rows = run
    folder = tmp_path / "filtered"
    folder.mkdir()
    (folder / "gen.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows["gen"]))
    # "everything" keeps the line (the base model's answer to row 0 is its line: 1, 0); "nothing"
    # keeps no character of it, so no answer matches (0, 0).
    filters = ('filter_list:\n  - name: everything\n    filter: [{function: take_first}]\n'
               '  - name: nothing\n    filter: [{function: regex, regex_pattern: "(§§§)"}, {function: take_first}]\n')
    (folder / "gen.yaml").write_text(GEN_YAML.replace("own/gen.jsonl", str(folder / "gen.jsonl"))
                                     .replace("task: own_gen", "task: own_filtered") + filters)
    own = tasks.folder_tasks(str(folder))["own_filtered"]
    assert own.metrics == ("exact_match,everything", "exact_match,nothing")
    common = ["--model-dir", str(workdir / RUNS["base"]), "--task", "own_filtered", "--include-path", str(folder),
              "--source", "local", "--batch-size", "4", "--threads", "1", "--dtype", "float32",
              "--model-name", "tiny", "--data-name", "tiny-pool", "--run", "base"]
    record = evaluate.main([*common, "--out", str(tmp_path / "a.json")])
    assert (record["metric"], record["items"]["score"]) == ("exact_match,everything", [1.0, 0.0])
    assert record["metrics"]["exact_match,nothing"] == 0.0
    other = evaluate.main([*common, "--metric", "exact_match,nothing", "--out", str(tmp_path / "b.json")])
    assert (other["score"], other["items"]["score"]) == (0.0, [0.0, 0.0])
