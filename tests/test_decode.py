"""Tests of the decodings stage: greedy answers to the evaluator's own prompts, on the tiny random Llama."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, spy_scored_requests
from tiny import write_tiny_eval
from workflow_scripts import decode, evaluate
from workflow_scripts.files import InputError
from workflow_scripts.tokenize_data import TULU_TEMPLATE

# Written in this order on purpose (not sorted by id or number): lm-eval keeps the file's order.
NUMBERS = [("three hundred eighteen", "318"), ("seven", "7"), ("forty two", "42"), ("twelve", "12")]
MAX_NEW_TOKENS = 6


def _model_copy(tiny_model_dir, directory: Path, chat: bool = False, bos: bool = False) -> Path:
    """The tiny model with a chat template (the pipeline's Tulu fallback, which writes the BOS
    itself) and/or a tokenizer that, like Llama's, puts a BOS in front of every encoding."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    shutil.copytree(tiny_model_dir, directory, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if chat:
        tokenizer.chat_template = TULU_TEMPLATE
    if bos:
        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)])
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def models(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("decode-models")
    return {"plain": tiny_model_dir,
            "chat": _model_copy(tiny_model_dir, root / "chat", chat=True),
            "bos": _model_copy(tiny_model_dir, root / "bos", bos=True),
            "bos_chat": _model_copy(tiny_model_dir, root / "bos-chat", chat=True, bos=True)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("decode-eval") / "number_words.jsonl"
    path.write_text("".join(json.dumps({"id": f"n{number}", "words": words, "number": number}) + "\n"
                            for words, number in NUMBERS))
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-datasets-cache")


@pytest.fixture()
def fed(monkeypatch):
    """The token ids each generate call is given, one list per prompt with its left padding removed."""
    from transformers import GenerationMixin

    seen = []
    real = GenerationMixin.generate

    def spy(self, *args, **kwargs):
        for ids, mask in zip(kwargs["input_ids"].tolist(), kwargs["attention_mask"].tolist()):
            assert mask == sorted(mask)  # left padding: zeros, then ones
            seen.append(ids[mask.count(0):])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", spy)
    return seen


def _decode(model_dir, data, out, cache_dir, *flags, n=3, task="number_words"):
    record = decode.main(["--model-dir", str(model_dir), "--task", task, "--data", str(data), "--n", str(n),
                          "--max-new-tokens", str(MAX_NEW_TOKENS), "--threads", "1", "--dtype", "float32",
                          "--run", "forget/rho0.7-ascent-linear/seed1", "--out", str(out),
                          "--cache-dir", str(cache_dir), *flags])
    assert json.loads(Path(out).read_text()) == json.loads(json.dumps(record))  # what was written
    return record


def _greedy_by_hand(model_dir, ids: list[int], stops: list[int]) -> list[int]:
    """A second computation of the greedy continuation: one prompt, no padding, no cache, no
    generate: append the argmax of the full forward pass until a stop token or the token budget."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for _ in range(MAX_NEW_TOKENS):
            token = int(model(torch.tensor([ids + out])).logits[0, -1].argmax())
            if token in stops:
                break
            out.append(token)
    return out


def test_the_prompts_are_the_first_docs_lm_eval_scores(models, data, cache_dir, tmp_path):
    record = _decode(models["plain"], data, tmp_path / "nw.json", cache_dir)
    task = evaluate.build_task("number_words", data, cache_dir)
    docs = list(task.eval_docs)[:3]
    assert [item["doc_id"] for item in record["items"]] == [0, 1, 2]
    assert [item["prompt"] for item in record["items"]] == [task.doc_to_text(doc) for doc in docs]
    assert record["items"][0]["prompt"] == "Write three hundred eighteen in digits. Answer with the number only."
    assert [item["target"] for item in record["items"]] == ["318", "7", "42"]
    assert (record["task"], record["run"], record["n"], record["max_new_tokens"], record["chat_template"]) == \
        ("number_words", "forget/rho0.7-ascent-linear/seed1", 3, MAX_NEW_TOKENS, False)
    assert record["model_dir"] == str(models["plain"])
    assert set(record["items"][0]) == {"doc_id", "prompt", "target", "output", "exact"}


def test_with_the_chat_template_the_ids_end_with_the_assistant_header(models, data, cache_dir, tmp_path, fed):
    from transformers import AutoTokenizer

    record = _decode(models["chat"], data, tmp_path / "nw.json", cache_dir, "--chat-template")
    tokenizer = AutoTokenizer.from_pretrained(models["chat"])
    assert len(fed) == 3
    for ids, item in zip(fed, record["items"]):
        templated = tokenizer.apply_chat_template([{"role": "user", "content": item["prompt"]}],
                                                  add_generation_prompt=True)["input_ids"]
        assert ids == templated
        assert tokenizer.decode(ids).endswith(f"<|user|>\n{item['prompt']}\n<|assistant|>\n")
        assert ids.count(tokenizer.bos_token_id) == 1  # the template's own BOS, none added
    assert record["chat_template"] is True


@pytest.mark.parametrize("model, flags", [("plain", []), ("chat", ["--chat-template"]), ("bos", []),
                                          ("plain", ["--add-bos-token"]), ("bos", ["--no-add-bos-token"]),
                                          ("bos_chat", ["--chat-template"])])
def test_the_ids_are_the_contexts_lm_eval_scores(model, flags, models, data, cache_dir, tmp_path, fed, monkeypatch):
    """The evaluator itself, run on the same model and data: the contexts lm-eval scores are the
    ids decoded from (a BOS where lm-eval puts one, once, and the chat template's newline kept)."""
    scored = spy_scored_requests(monkeypatch)
    evaluate.main(["--model-dir", str(models[model]), "--task", "number_words", "--source", "local", "--data",
                   str(data), "--out", str(tmp_path / "score.json"), "--limit", "3", "--batch-size", "4",
                   "--threads", "1", "--dtype", "float32", "--model-name", "tiny", "--data-name", "d", "--run", "base",
                   "--cache-dir", str(cache_dir), *flags])
    _decode(models[model], data, tmp_path / "nw.json", cache_dir, *flags)
    contexts = [context for _, context, _ in scored]
    assert len(contexts) == 3
    assert sorted(fed) == sorted(contexts)


def test_the_output_is_the_greedy_continuation(models, data, cache_dir, tmp_path, fed):
    """Prompts of different lengths, decoded in one left-padded batch, against one-by-one argmax."""
    from transformers import AutoTokenizer

    record = _decode(models["chat"], data, tmp_path / "nw.json", cache_dir, "--chat-template")
    tokenizer = AutoTokenizer.from_pretrained(models["chat"])
    assert len({len(ids) for ids in fed}) > 1  # the batch needed padding
    stops = decode.stop_ids(tokenizer)
    for ids, item in zip(fed, record["items"]):
        expected = tokenizer.decode(_greedy_by_hand(models["chat"], ids, stops), skip_special_tokens=True).strip()
        assert item["output"] == expected
        assert item["exact"] is (expected == item["target"])
    assert record["exact_share"] == sum(item["exact"] for item in record["items"]) / 3


def test_decoding_stops_at_the_end_of_turn(models, data, cache_dir, tmp_path, fed, monkeypatch):
    """Make the third token the model writes for the first prompt a stop token: the output ends before it."""
    from transformers import AutoTokenizer

    _decode(models["plain"], data, tmp_path / "first.json", cache_dir, n=1)
    tokenizer = AutoTokenizer.from_pretrained(models["plain"])
    written = _greedy_by_hand(models["plain"], fed[0], decode.stop_ids(tokenizer))
    stop = written[2]
    monkeypatch.setattr(decode, "stop_ids", lambda tok: [tok.eos_token_id, stop])
    record = _decode(models["plain"], data, tmp_path / "stopped.json", cache_dir, n=1)
    assert record["items"][0]["output"] == tokenizer.decode(written[:written.index(stop)],
                                                            skip_special_tokens=True).strip()


def test_the_checkpoints_generation_config_is_not_applied(models, data, cache_dir, tmp_path, fed):
    """A generation_config.json that suppresses every token the model writes changes nothing: the
    answer is the plain argmax, as lm-eval's acc judges it."""
    from transformers import AutoTokenizer, GenerationConfig

    plain = _decode(models["plain"], data, tmp_path / "plain.json", cache_dir, n=1)["items"][0]["output"]
    written = _greedy_by_hand(models["plain"], fed[0], decode.stop_ids(AutoTokenizer.from_pretrained(models["plain"])))
    suppressing = shutil.copytree(models["plain"], tmp_path / "suppressing")
    GenerationConfig(suppress_tokens=written).save_pretrained(suppressing)
    assert _decode(suppressing, data, tmp_path / "nw.json", cache_dir, n=1)["items"][0]["output"] == plain != ""


def test_an_output_equal_to_the_target_is_exact(models, data, cache_dir, tmp_path):
    """Give the first row the number the model writes: that item is exact, the other is not."""
    first = _decode(models["plain"], data, tmp_path / "first.json", cache_dir, n=2)["items"][0]
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[0]["number"] = first["output"]
    rigged = tmp_path / "number_words.jsonl"
    rigged.write_text("".join(json.dumps(row) + "\n" for row in rows))
    record = _decode(models["plain"], rigged, tmp_path / "nw.json", cache_dir, n=2)
    assert record["items"][0]["output"] == record["items"][0]["target"] == first["output"]
    assert [item["exact"] for item in record["items"]] == [True, False]
    assert record["exact_share"] == 0.5


def test_each_item_is_logged(models, data, cache_dir, tmp_path, capsys):
    record = _decode(models["plain"], data, tmp_path / "nw.json", cache_dir, n=2)
    err = capsys.readouterr().err
    for item in record["items"]:
        assert f"INFO decode: doc {item['doc_id']}: {item['prompt']!r} -> {item['output']!r}" in err


def test_n_beyond_the_data_decodes_every_row(models, data, cache_dir, tmp_path):
    record = _decode(models["plain"], data, tmp_path / "nw.json", cache_dir, n=50)
    assert record["n"] == len(NUMBERS)
    assert [item["target"] for item in record["items"]] == [number for _, number in NUMBERS]


def test_a_multiple_choice_target_is_the_gold_choice(models, cache_dir, tmp_path):
    eval_dir = write_tiny_eval(tmp_path / "eval")  # boolq labels 0, 1, 0, 1
    record = _decode(models["plain"], eval_dir / "boolq.jsonl", tmp_path / "boolq.json", cache_dir, n=4, task="boolq")
    assert [item["target"] for item in record["items"]] == ["no", "yes", "no", "yes"]
    assert record["items"][0]["prompt"] == "Sky -- The sky is green.\nQuestion: is the sky blue?\nAnswer:"


def test_the_raw_context_loses_its_trailing_whitespace_as_in_lm_eval(models):
    """lm-eval's _encode_pair moves it into the scored continuation; the chat context stays whole."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models["plain"])
    assert decode.context_ids(tokenizer, "Answer: ", chat_template=False) == tokenizer.encode("Answer:")
    assert decode.context_ids(tokenizer, "Answer:\n", chat_template=True) == tokenizer.encode("Answer:\n")


def test_the_chatml_end_of_turn_stops_decoding(models):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models["plain"])
    assert decode.stop_ids(tokenizer) == [tokenizer.eos_token_id]
    tokenizer.add_tokens(["<|im_end|>"], special_tokens=True)
    assert decode.stop_ids(tokenizer) == [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]


@pytest.mark.parametrize("task, data_name, n, message", [
    ("number_words", "missing.jsonl", "3", r"missing\.jsonl: eval data file for task 'number_words' not found"),
    ("number_words", None, "0", r"--n must be >= 1 \(prompts to decode\), got 0"),
    ("tydiqa", None, "3", r"task 'tydiqa' is scored by its own protocol \(tydiqa\), not by lm-eval"),
    ("tydiqa_goldp", None, "3", r"unknown task 'tydiqa_goldp' for source 'local'"),
])
def test_refusals(task, data_name, n, message, models, data, cache_dir, tmp_path):
    path = tmp_path / data_name if data_name else data
    with pytest.raises(InputError, match=message):
        _decode(models["plain"], path, tmp_path / "out.json", cache_dir, n=int(n), task=task)
    assert not (tmp_path / "out.json").exists()


def test_chat_template_needs_one_in_the_tokenizer(models, data, cache_dir, tmp_path):
    with pytest.raises(InputError, match="the tokenizer has no chat template"):
        _decode(models["plain"], data, tmp_path / "out.json", cache_dir, "--chat-template")


def test_the_command_line_refuses_with_a_message_not_a_traceback(models, data, tmp_path):
    command = ["--model-dir", str(models["plain"]), "--task", "tydiqa", "--data", str(data), "--run", "base",
               "--out", str(tmp_path / "o.json")]
    result = subprocess.run([sys.executable, "-m", "workflow_scripts.decode", *command], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "error: task 'tydiqa' is scored by its own protocol" in result.stderr
    assert "Traceback" not in result.stderr
