"""TyDi QA GoldP as open-instruct runs it: the draws, the prompt, SQuAD F1, and whole runs on tiny models.

The fixture files (tests/fixtures/tydiqa/) are shaped like the official GoldP v1.1 SQuAD-format
files: 4 languages in the dev file (14 questions), 5 in the train file (russian is in train only).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from workflow_scripts import tydiqa
from workflow_scripts.evaluate import main
from workflow_scripts.files import InputError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tydiqa"
DEV = FIXTURES / "tydiqa-goldp-dev.json"
TRAIN = FIXTURES / "tydiqa-goldp-train.json"
DEV_LANGUAGES = ["arabic", "english", "finnish", "swahili"]


def open_instruct_draws(k: int):
    """The draws written out step by step as open-instruct's run_eval.py makes them, on the global
    generator: sampled test ids in order and the demonstration id per language."""
    def examples(path):
        out = []
        for article in json.loads(path.read_text())["data"]:
            for paragraph in article["paragraphs"]:
                out += [{"id": qa["id"], "lang": qa["id"].split("-")[0]} for qa in paragraph["qas"]]
        return out

    random.seed(42)
    dev = examples(DEV)
    languages = sorted({e["lang"] for e in dev})
    sampled = []
    for lang in languages:
        of_lang = [e for e in dev if e["lang"] == lang]
        if len(of_lang) > k:
            of_lang = random.sample(of_lang, k)
        sampled += of_lang
    train = {lang: [e for e in examples(TRAIN) if e["lang"] == lang] for lang in languages}
    for lang in languages:
        train[lang] = random.sample(train[lang], 1)
    return [e["id"] for e in sampled], {lang: train[lang][0]["id"] for lang in languages}


# ----------------------------------------------------------------------------- the draws

@pytest.mark.parametrize("k", [100, 3, 1])
def test_draws_follow_open_instruct(k):
    tests, demos = tydiqa.sample_protocol(tydiqa.read_squad(DEV), tydiqa.read_squad(TRAIN), per_language=k)
    expected_ids, expected_demos = open_instruct_draws(k)
    assert list(tests) == DEV_LANGUAGES
    assert [e["id"] for lang in tests for e in tests[lang]] == expected_ids
    assert {lang: demo["id"] for lang, demo in demos.items()} == expected_demos


def test_draws_pinned():
    """The same draws, written down (Python's Mersenne Twister and sample() are stable across versions)."""
    tests, demos = tydiqa.sample_protocol(tydiqa.read_squad(DEV), tydiqa.read_squad(TRAIN), per_language=3)
    assert {lang: [e["id"] for e in examples] for lang, examples in tests.items()} == {
        "arabic": ["arabic-4001-0", "arabic-4002-0"],  # 2 <= 3: kept in file order, no draw
        "english": ["english-1001-0", "english-1005-0", "english-1003-0"],
        "finnish": ["finnish-2001-0", "finnish-2002-0", "finnish-2003-0"],
        "swahili": ["swahili-3003-0", "swahili-3001-0", "swahili-3004-0"],
    }
    assert {lang: demo["id"] for lang, demo in demos.items()} == {
        "arabic": "arabic-9301-0", "english": "english-9003-0", "finnish": "finnish-9101-0",
        "swahili": "swahili-9203-0"}


def test_no_draw_when_every_language_fits():
    """With 100 per language every fixture example is kept in file order; only the demos are drawn."""
    tests, demos = tydiqa.sample_protocol(tydiqa.read_squad(DEV), tydiqa.read_squad(TRAIN))
    assert [e["id"] for e in tests["english"]] == ["english-1001-0", "english-1002-0", "english-1003-0",
                                                   "english--1004-1", "english-1005-0"]
    rng = random.Random(42)
    train = tydiqa.read_squad(TRAIN)
    assert demos["arabic"]["id"] == rng.sample([e for e in train if e["lang"] == "arabic"], 1)[0]["id"]
    assert demos["english"]["id"] == rng.sample([e for e in train if e["lang"] == "english"], 1)[0]["id"]


@pytest.mark.parametrize("limit, counts", [(None, [2, 5, 3, 4]), (2, [2, 2, 2, 2]), (0.5, [1, 3, 2, 2]),
                                           (0.99, [2, 5, 3, 4])])
def test_limit_per_language(limit, counts):
    tests, _ = tydiqa.sample_protocol(tydiqa.read_squad(DEV), tydiqa.read_squad(TRAIN))
    limited = tydiqa.apply_limit(tests, limit)
    assert [len(limited[lang]) for lang in DEV_LANGUAGES] == counts
    assert all(limited[lang] == tests[lang][: len(limited[lang])] for lang in DEV_LANGUAGES)


# ----------------------------------------------------------------------------- the prompt

def test_prompt_exact(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tests, demos = tydiqa.sample_protocol(tydiqa.read_squad(DEV), tydiqa.read_squad(TRAIN))
    example = tydiqa.with_truncated_context(tests["swahili"][2], tokenizer)
    demo = tydiqa.with_truncated_context(demos["swahili"], tokenizer)
    assert demo["id"] == "swahili-9201-0"
    assert tydiqa.build_prompt(example, demo) == (
        "Jibu swali lifuatalo kulingana na habari kwenye kifungu kilichotolewa.\n\n"
        "Kifungu: Mbwa mvivu analala.\nSwali: Mbwa analala?\nJibu: analala\n\n"
        "Kifungu: Anga ni la buluu. Ndiyo, ni la buluu.\nSwali: Je, anga ni la kijani?\nJibu:")


def test_english_prompt_is_the_papers_wording():
    example = {"lang": "english", "context": "C.", "question": "Q?", "answers": ["x"]}
    demo = {"lang": "english", "context": "DC.", "question": "DQ?", "answers": ["DA", "other"]}
    assert tydiqa.build_prompt(example, demo) == (
        "Answer the following question based on the information in the given passage.\n\n"
        "Passage: DC.\nQuestion: DQ?\nAnswer: DA\n\nPassage: C.\nQuestion: Q?\nAnswer:")


def test_every_language_has_open_instructs_four_labels():
    assert sorted(tydiqa.TEMPLATES) == ["arabic", "bengali", "english", "finnish", "indonesian", "korean",
                                        "russian", "swahili", "telugu"]
    assert tydiqa.TEMPLATES["russian"] == ("Ответьте на следующий вопрос на основе информации в данном отрывке.",
                                           "Отрывок:", "Вопрос:", "Ответ:")
    assert tydiqa.TEMPLATES["korean"][1:] == ("문단:", "질문:", "답변:")


def test_context_cut_to_512_tokens(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    # "yes" and " yes" are one token each in the tiny vocabulary: 600 tokens in, 512 out.
    (yes,), (space_yes,) = (tokenizer.encode(s, add_special_tokens=False) for s in ("yes", " yes"))
    assert tokenizer.encode("yes" + " yes" * 3, add_special_tokens=False) == [yes, space_yes, space_yes, space_yes]
    assert tydiqa.truncate_context("yes" + " yes" * 599, tokenizer) == "yes" + " yes" * 511
    assert tydiqa.truncate_context("yes" + " yes" * 511, tokenizer) == "yes" + " yes" * 511  # exactly 512
    assert tydiqa.truncate_context(" Anga  ni\tla buluu. ", tokenizer) == " Anga  ni\tla buluu. "  # verbatim


# ----------------------------------------------------------------------------- SQuAD v1.1 F1

@pytest.mark.parametrize("prediction, golds, f1", [
    ("yes", ["yes"], 1.0),
    ("The Eiffel Tower!", ["eiffel tower"], 1.0),          # article, case and punctuation dropped
    ("a cat sat", ["the cat sat down"], 0.8),              # P = 2/2, R = 2/3 -> 2 x 1 x 2/3 / (5/3)
    ("yes", ["Yes, indeed."], 2 / 3),                      # P = 1, R = 1/2
    ("yes", ["yes yes no"], 0.5),                          # one shared "yes": P = 1, R = 1/3
    ("yes yes", ["yes"], 2 / 3),                           # P = 1/2, R = 1
    ("Paris", ["London", "paris.", "Paris, France"], 1.0),  # the best gold answer counts
    ("Paris France", ["London", "Paris, the capital"], 0.5),  # P = 1/2, R = 1/2 against the second
    ("", ["yes"], 0.0),                                    # empty prediction
    ("the", ["an"], 0.0),                                  # both normalise to nothing
    ("theatre", ["the atre"], 0.0),                        # "the" only as a whole word
    ("«oui»", ["oui"], 0.0),                               # only ASCII punctuation is dropped (SQuAD v1.1)
])
def test_squad_f1(prediction, golds, f1):
    assert tydiqa.f1_score(prediction, golds) == pytest.approx(f1, abs=1e-12)


def test_exact_match_and_normalization():
    assert tydiqa.normalize_answer("  The  Quick,  brown FOX. ") == "quick brown fox"
    assert tydiqa.exact_match("An apple", ["apple!", "pear"]) == 1.0
    assert tydiqa.exact_match("apples", ["apple"]) == 0.0


def test_score_means_per_language_then_over_languages():
    examples = [{"lang": "english", "answers": ["yes"]}, {"lang": "english", "answers": ["no"]},
                {"lang": "finnish", "answers": ["kyllä"]}]
    metrics, stderr = tydiqa.score(examples, ["yes", "yes", "kyllä"])
    assert metrics["f1_english"] == 50.0 and metrics["f1_finnish"] == 100.0
    assert metrics["f1"] == 75.0                      # not the pooled 66.7
    assert metrics["exact_match"] == 75.0
    assert stderr is None                             # finnish has a single example


# ----------------------------------------------------------------------------- whole runs

@pytest.fixture(scope="module")
def yes_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny Llama rewired so that greedy decoding after any prompt gives " yes", "\\n", " no", ...

    Its blocks add nothing to the residual stream (o_proj and down_proj are zero), so the next
    token depends only on the current one: every token embeds to e0 except " yes" (e1) and "\\n"
    (e2), and the output rows map e0 -> " yes", e1 -> "\\n", e2 -> " no".
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    (yes,), (newline,), (no,) = (tokenizer.encode(s, add_special_tokens=False) for s in (" yes", "\n", " no"))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed, head = model.model.embed_tokens.weight, model.lm_head.weight
        embed.zero_()
        embed[:, 0] = 1.0
        embed[yes], embed[newline] = torch.eye(embed.shape[1])[1], torch.eye(embed.shape[1])[2]
        head.zero_()
        head[yes, 0] = head[newline, 1] = head[no, 2] = 10.0
    out = tmp_path_factory.mktemp("yes-model")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _run(model_dir, out, limit, batch_size="3", *decoding):
    main(["--model-dir", str(model_dir), "--model-name", "tiny", "--data-name", "tiny-pool", "--run", "base",
          "--source", "local", "--task", "tydiqa", "--tydiqa-dev", str(DEV), "--tydiqa-train", str(TRAIN),
          "--out", str(out), *(["--limit", limit] if limit else []), "--batch-size", batch_size, "--threads", "2",
          "--dtype", "float32",
          *decoding])
    return json.loads(Path(out).read_text())


def test_generation_stops_at_the_newline(yes_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(yes_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(yes_model_dir)
    tokenizer.padding_side = "left"
    prompts = ["Answer:", "Passage: a much longer prompt\nQuestion: what?\nAnswer:"]
    assert tydiqa.generate(model, tokenizer, prompts, batch_size=2) == [["yes"], ["yes"]]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    output = model.generate(**encoded, generation_config=tydiqa.generation_config(model, tokenizer),
                            tokenizer=tokenizer)
    # " yes", "\n", then stop: nothing past the newline, not 50 tokens
    assert tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:]) == [" yes\n", " yes\n"]


# The yes-model answers "yes" to every question; F1 of "yes" against each fixture question's golds:
YES_F1 = {
    "english-1001-0": 1, "english-1002-0": 2 / 3, "english-1003-0": 0, "english--1004-1": 1, "english-1005-0": 0.5,
    "finnish-2001-0": 0, "finnish-2002-0": 2 / 3, "finnish-2003-0": 1,
    "swahili-3001-0": 0, "swahili-3002-0": 0, "swahili-3003-0": 1, "swahili-3004-0": 1,
    "arabic-4001-0": 0, "arabic-4002-0": 2 / 3,
}


@pytest.mark.parametrize("limit, f1, per_language", [
    (None, 100 * (19 / 30 + 5 / 9 + 1 / 2 + 1 / 3) / 4,
     {"arabic": 100 / 3, "english": 100 * 19 / 30, "finnish": 100 * 5 / 9, "swahili": 50.0}),
    ("2", 37.5, {"arabic": 100 / 3, "english": 100 * 5 / 6, "finnish": 100 / 3, "swahili": 0.0}),
])
def test_run_scores_hand_computed(limit, f1, per_language, yes_model_dir, tmp_path):
    record = _run(yes_model_dir, tmp_path / "scores" / "tydiqa.json", limit)
    assert {p["prediction"] for p in record["predictions"]} == {"yes"}
    assert record["score"] == pytest.approx(f1, abs=1e-9)
    assert record["metrics"]["f1"] == record["score"]
    for lang, value in per_language.items():
        assert record["metrics"][f"f1_{lang}"] == pytest.approx(value, abs=1e-9)
    expected_ids = [i for lang in DEV_LANGUAGES for i in [k for k in YES_F1 if k.startswith(f"{lang}-")][
        : int(limit or 0) or None]]
    assert [p["id"] for p in record["predictions"]] == expected_ids
    if limit is None:
        assert record["metrics"]["exact_match_english"] == pytest.approx(40.0)
        assert record["metrics"]["exact_match_swahili"] == pytest.approx(50.0)
        assert record["n_per_language"] == {"arabic": 2, "english": 5, "finnish": 3, "swahili": 4}


def test_run_on_tiny_model_writes_the_record(tiny_model_dir, tmp_path):
    out = tmp_path / "scores" / "tydiqa.json"
    record = _run(tiny_model_dir, out, "0.5", batch_size="4")
    assert sorted(p.name for p in out.parent.iterdir()) == ["tydiqa.json"]
    assert {"task", "metric", "score", "stderr", "n", "metrics", "model_dir", "num_fewshot", "limit", "model",
            "data", "run", "source", "lm_eval_version", "device", "wall_seconds"} <= set(record)
    assert (record["task"], record["metric"], record["num_fewshot"], record["limit"]) == ("tydiqa", "f1", 1, 0.5)
    assert (record["model"], record["data"], record["run"], record["source"]) == ("tiny", "tiny-pool", "base", "local")
    assert record["n_per_language"] == {"arabic": 1, "english": 3, "finnish": 2, "swahili": 2}
    assert record["n"] == 8 == len(record["predictions"])
    _, demos = open_instruct_draws(100)
    assert record["demonstrations"] == demos
    golds = {e["id"]: e["answers"] for e in tydiqa.read_squad(DEV)}
    for lang in DEV_LANGUAGES:
        preds = [p for p in record["predictions"] if p["id"].startswith(f"{lang}-")]
        expected = 100 * sum(tydiqa.f1_score(p["prediction"], golds[p["id"]]) for p in preds) / len(preds)
        assert record["metrics"][f"f1_{lang}"] == pytest.approx(expected, abs=1e-9)
    assert record["score"] == pytest.approx(sum(record["metrics"][f"f1_{lang}"] for lang in DEV_LANGUAGES) / 4)
    assert all("\n" not in p["prediction"] and p["prediction"] == p["prediction"].strip()
               for p in record["predictions"])


def test_batch_size_does_not_change_the_answers(tiny_model_dir, tmp_path):
    one = _run(tiny_model_dir, tmp_path / "one.json", "2", batch_size="1")
    many = _run(tiny_model_dir, tmp_path / "many.json", "2", batch_size="8")
    assert [p["id"] for p in one["predictions"]] == [p["id"] for p in many["predictions"]]
    assert many["score"] == pytest.approx(one["score"], abs=1e-6)


def test_sampling_is_reproducible_with_its_seed_and_differs_from_greedy(tiny_model_dir, tmp_path):
    """The authors' protocol samples at temperature 1: the same seed draws the same answers, another
    seed others; several samples per question are averaged and their spread reported."""
    sample = ("--tydiqa-temperature", "1", "--tydiqa-samples", "3", "--tydiqa-seed")
    greedy = _run(tiny_model_dir, tmp_path / "greedy.json", "1", "4")
    first = _run(tiny_model_dir, tmp_path / "a.json", "1", "4", *sample, "7")
    again = _run(tiny_model_dir, tmp_path / "b.json", "1", "4", *sample, "7")
    other = _run(tiny_model_dir, tmp_path / "c.json", "1", "4", *sample, "8")
    assert greedy["decoding"] == {"greedy": True, "temperature": 0.0, "samples": 1, "seed": None}
    assert first["decoding"] == {"greedy": False, "temperature": 1.0, "samples": 3, "seed": 7}
    assert first["predictions"] == again["predictions"] and first["score"] == again["score"]
    assert first["predictions"] != other["predictions"]
    assert all(len(p["prediction"]) == 3 for p in first["predictions"])
    assert [[p["prediction"]] for p in greedy["predictions"]] != [p["prediction"][:1] for p in first["predictions"]]
    assert first["score"] == pytest.approx(sum(first["f1_per_sample"]) / 3, abs=1e-9)
    assert first["metrics"]["item_f1_spread"] >= 0 and len(greedy["f1_per_sample"]) == 1


def test_greedy_has_one_answer_per_question():
    with pytest.raises(InputError, match="greedy decoding .temperature 0. has one answer per question"):
        tydiqa.Decoding(temperature=0, samples=2)


# ----------------------------------------------------------------------------- refusals

def test_needs_both_files(tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="task 'tydiqa' needs --tydiqa-dev and --tydiqa-train"):
        main(["--model-dir", str(tiny_model_dir), "--model-name", "t", "--data-name", "d", "--run", "base",
              "--source", "hub", "--task", "tydiqa", "--tydiqa-dev", str(DEV), "--out", str(tmp_path / "o.json"),
              "--batch-size", "1", "--threads", "1", "--dtype", "float32"])


def _squad(path, qas, context="c"):
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}))
    return path


@pytest.mark.parametrize("qas, message", [
    ([{"id": "english-1", "question": "q"}], r"question 'english-1': 'answers' must be list, got NoneType"),
    ([{"id": "english-1", "question": "q", "answers": []}], r"question 'english-1': 'answers' is empty"),
    ([{"id": "english-1", "answers": [{"text": "a"}]}], r"question 'english-1': 'question' must be str"),
    ([{"id": "nolanguage", "question": "q", "answers": [{"text": "a"}]}],
     r"question 'nolanguage': the id must start with its language"),
    ([{"id": "english-1", "question": "q", "answers": [{"text": "a"}]}] * 2, r"question 'english-1': duplicate id"),
])
def test_bad_file_names_file_question_and_problem(qas, message, tmp_path):
    path = _squad(tmp_path / "dev.json", qas)
    with pytest.raises(InputError, match=f"dev.json: {message}"):
        tydiqa.read_squad(path)


def test_language_without_template_or_demonstration(tmp_path):
    qa = {"question": "q", "answers": [{"text": "a"}]}
    dev = tydiqa.read_squad(_squad(tmp_path / "dev.json", [{**qa, "id": "japanese-1"}]))
    with pytest.raises(InputError, match="language\\(s\\) japanese have no prompt template"):
        tydiqa.sample_protocol(dev, dev)
    dev = tydiqa.read_squad(_squad(tmp_path / "dev.json", [{**qa, "id": "korean-1"}]))
    train = tydiqa.read_squad(_squad(tmp_path / "train.json", [{**qa, "id": "english-1"}]))
    with pytest.raises(InputError, match="train.json: no training example in korean"):
        tydiqa.sample_protocol(dev, train, train_name=str(tmp_path / "train.json"))
