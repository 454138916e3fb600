"""TruthfulQA mc1/mc2 through lm-eval's OWN task code (stock YAML and utils.process_results_mc2),
with only the dataset pointed at a local fixture shaped like the Hub's truthful_qa
"multiple_choice" validation rows, scored on the tiny model and checked against log-likelihoods
computed here with a plain forward pass."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from workflow_scripts.evaluate import LM_EVAL_TASKS_DIR, build_task, check_data, main, task_config
from workflow_scripts.files import InputError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "truthfulqa" / "truthful_qa-multiple_choice-validation.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-datasets-cache")


def test_process_results_mc2_on_given_loglikelihoods():
    """lm-eval's own mc2: the probability mass of the true answers, renormalised over all choices."""
    cfg = task_config("truthfulqa_mc2", FIXTURE)
    doc = {"mc2_targets": {"choices": ["a", "b", "c", "d"], "labels": [1, 0, 1, 0]}}
    # p = 0.1, 0.2, 0.3, 0.2 (sum 0.8): true mass (0.1 + 0.3) / 0.8 = 0.5
    results = [(math.log(p), False) for p in (0.1, 0.2, 0.3, 0.2)]
    assert cfg["process_results"](doc, results)["acc"] == pytest.approx(0.5, abs=1e-12)
    doc = {"mc2_targets": {"choices": ["a", "b", "c"], "labels": [1, 0, 0]}}
    results = [(math.log(p), False) for p in (0.1, 0.1, 0.2)]
    assert cfg["process_results"](doc, results)["acc"] == pytest.approx(0.25, abs=1e-12)


def test_config_is_lm_evals_stock_task():
    cfg = task_config("truthfulqa_mc2", FIXTURE)
    assert Path(cfg["process_results"].__code__.co_filename) == LM_EVAL_TASKS_DIR / "truthfulqa" / "utils.py"
    assert cfg["process_results"].__name__ == "process_results_mc2"
    assert cfg["doc_to_choice"] == "{{mc2_targets.choices}}" and cfg["doc_to_target"] == 0
    assert cfg["validation_split"] == "validation" and "test_split" not in cfg
    assert cfg["dataset_path"] == "json" and cfg["dataset_kwargs"]["data_files"] == {"validation": str(FIXTURE)}


def _loglikelihoods(model, tokenizer, context: str, choices: list[str]) -> list[float]:
    """log p(" " + choice | context), summed over the choice's tokens, as lm-eval splits them."""
    import torch

    context_ids = tokenizer.encode(context, add_special_tokens=False)
    out = []
    for choice in choices:
        whole = tokenizer.encode(context + " " + choice, add_special_tokens=False)
        assert whole[: len(context_ids)] == context_ids
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([whole])).logits[0].double(), dim=-1)
        out.append(sum(logprobs[t - 1, whole[t]].item() for t in range(len(context_ids), len(whole))))
    return out


def _hand_scores(model_dir, cache_dir):
    """Per row: (mc1 = is the first mc1 choice the most likely, mc2 = true mass), from our own forward."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    task = build_task("truthfulqa_mc2", FIXTURE, cache_dir)
    mc1, mc2 = [], []
    for doc, row in zip(task.validation_docs(), ROWS):
        context = task.doc_to_text(doc)
        assert context.endswith(f"\n\nQ: {row['question']}\nA:")
        lls = _loglikelihoods(model, tokenizer, context, row["mc1_targets"]["choices"])
        mc1.append(float(max(range(len(lls)), key=lls.__getitem__) == 0))
        probs = [math.exp(ll) for ll in _loglikelihoods(model, tokenizer, context, row["mc2_targets"]["choices"])]
        mc2.append(sum(p for p, label in zip(probs, row["mc2_targets"]["labels"]) if label) / sum(probs))
    return sum(mc1) / len(mc1), sum(mc2) / len(mc2)


def _run(model_dir, task, out, cache_dir):
    main(["--model-dir", str(model_dir), "--model-name", "tiny", "--data-name", "d", "--run", "base",
          "--source", "local", "--task", task, "--data", str(FIXTURE), "--out", str(out),
          "--batch-size", "4", "--threads", "2", "--dtype", "float32", "--cache-dir", str(cache_dir)])
    return json.loads(Path(out).read_text())


def test_scores_equal_hand_loglikelihoods(tiny_model_dir, cache_dir, tmp_path):
    mc1, mc2 = _hand_scores(tiny_model_dir, cache_dir)
    record = _run(tiny_model_dir, "truthfulqa_mc2", tmp_path / "truthfulqa_mc2.json", cache_dir)
    assert (record["task"], record["metric"], record["n"], record["num_fewshot"]) == ("truthfulqa_mc2", "acc", 3, 0)
    assert 0 < record["score"] < 1
    assert record["score"] == pytest.approx(mc2, abs=1e-5)  # lm-eval batches differently: float32 noise
    record = _run(tiny_model_dir, "truthfulqa_mc1", tmp_path / "truthfulqa_mc1.json", cache_dir)
    assert (record["task"], record["n"]) == ("truthfulqa_mc1", 3)
    assert record["score"] == pytest.approx(mc1, abs=1e-9)


@pytest.mark.parametrize("row, message", [
    ({"mc1_targets": {"choices": ["a"], "labels": [1]}}, "'question' must be a string"),
    ({"question": "q"}, "missing 'mc2_targets'"),
    ({"question": "q", "mc2_targets": {"choices": ["a", "b"], "labels": [1]}}, "'mc2_targets.labels' must be one 0/1"),
    ({"question": "q", "mc2_targets": {"choices": [], "labels": []}}, "'mc2_targets.choices' must be a non-empty"),
    ({"question": "q", "mc2_targets": {"choices": ["a", "b"], "labels": [0, 1]}},
     "'mc2_targets': the first choice must be a true one"),
])
def test_bad_row(row, message, tmp_path):
    path = tmp_path / "tqa.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InputError, match=rf"tqa\.jsonl:2: truthfulqa_mc2 row '\?': {message}"):
        check_data("truthfulqa_mc2", path)
