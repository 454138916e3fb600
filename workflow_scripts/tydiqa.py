"""TyDi QA GoldP, 1-shot, as the paper ran it (open-instruct's `eval/tydiqa/run_eval.py`).

Protocol (open-instruct's defaults, the paper's setting):
- Test set: the official `tydiqa-goldp-v1.1-dev.json`; an example's language is the prefix of its
  id before the first '-'. One random stream seeded with 42: for each language in sorted order,
  `sample(examples of that language in file order, 100)` (all of them, with no draw, when there
  are 100 or fewer); then, for each language in sorted order again, one demonstration drawn from
  that language's examples of `tydiqa-goldp-v1.1-train.json` with `sample(..., 1)`.
  `random.Random(42)` gives the same stream as open-instruct's `random.seed(42)` on the global
  generator, without touching the global state.
- Every context (test and demonstration) longer than 512 tokens of the evaluated model's
  tokenizer is replaced by the decoding of its first 512 tokens.
- Prompt, no chat format, in each language's own wording (open-instruct's table):
  "{instruction}\\n\\n{Passage:} {demo context}\\n{Question:} {demo question}\\n{Answer:} {demo answer}"
  "\\n\\n{Passage:} {context}\\n{Question:} {question}\\n{Answer:}".
- At most 50 new tokens, cut at the first newline, stripped; greedy by default, or sampled (`Decoding`).
- Score: SQuAD v1.1 F1 (max over the gold answers) x 100, averaged per language; the headline is
  the unweighted mean over the languages. Exact match is reported the same way.

Decoding (`Decoding`): greedy by default, so a score is a deterministic function of the
checkpoint; or sampling at a temperature with a torch seed and any number of samples per question,
the score their mean. The authors sampled once at temperature 1 (vLLM): one sample at temperature 1
is their protocol (not their draws: another sampler and seed); more samples measure what one
sample's score owes to chance (`f1_per_sample`, `item_f1_spread`).

Differences from open-instruct, on purpose:
- open-instruct counts the 512 context tokens with `tokenizer.encode(context)`, which for
  tokenizers that add a BOS token keeps 511 text tokens and puts the BOS text at the start of the
  cut context. Here the 512 tokens are text tokens only (no special tokens).
- open-instruct stops at the newline *token*; here the answer ends at the first newline
  character, whatever token carries it.

`--limit` (evaluate.py) keeps the first N (or a fraction, rounded up as lm-eval does) of each
language's sampled examples, after all the draws, so the demonstrations never depend on it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import statistics
import string
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflow_scripts.files import InputError

SEED = 42
PER_LANGUAGE = 100
CONTEXT_TOKENS = 512
MAX_NEW_TOKENS = 50
NUM_FEWSHOT = 1

# open-instruct's `encoding_templates_with_context`: (instruction, passage, question, answer).
TEMPLATES = {
    "english": ("Answer the following question based on the information in the given passage.",
                "Passage:", "Question:", "Answer:"),
    "arabic": ("أجب على السؤال التالي بناءً على المعلومات في المقطع المعطى.", "المقطع:", "السؤال:", "الإجابة:"),
    "bengali": ("প্রদত্ত অধ্যায়ের তথ্যের উপর ভিত্তি করে নিম্নলিখিত প্রশ্নের উত্তর দিন।",
                "অধ্যায়:", "প্রশ্ন:", "উত্তর:"),
    "finnish": ("Vastaa seuraavaan kysymykseen annetun kappaleen tiedon perusteella.",
                "Kappale:", "Kysymys:", "Vastaus:"),
    "indonesian": ("Jawab pertanyaan berikut berdasarkan informasi di bagian yang diberikan.",
                   "Bagian:", "Pertanyaan:", "Jawaban:"),
    "korean": ("주어진 문단의 정보에 기반하여 다음 질문에 답하십시오.", "문단:", "질문:", "답변:"),
    "russian": ("Ответьте на следующий вопрос на основе информации в данном отрывке.", "Отрывок:", "Вопрос:", "Ответ:"),
    "swahili": ("Jibu swali lifuatalo kulingana na habari kwenye kifungu kilichotolewa.",
                "Kifungu:", "Swali:", "Jibu:"),
    "telugu": ("ఇచ్చిన పేరాలోని సమాచారం ఆధారంగా కింది ప్రశ్నకు సమాధానం ఇవ్వండి.", "పేరా:", "ప్రశ్న:", "సమాధానం:"),
}

log = logging.getLogger("tydiqa")


# ----------------------------------------------------------------------------- data

def _need(value, kind, path, where: str, what: str):
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"{path}: {where}: {what} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _read_qa(qa, context: str, path, where: str) -> dict[str, Any]:
    _need(qa, dict, path, where, "a question")
    qid = _need(qa.get("id"), str, path, where, "'id'")
    where = f"question {qid!r}"
    if "-" not in qid:
        raise InputError(f"{path}: {where}: the id must start with its language and '-' (e.g. 'english-...')")
    question = _need(qa.get("question"), str, path, where, "'question'")
    answers = _need(qa.get("answers"), list, path, where, "'answers'")
    if not answers:
        raise InputError(f"{path}: {where}: 'answers' is empty")
    texts = [_need(_need(a, dict, path, where, "an answer").get("text"), str, path, where, "an answer's 'text'")
             for a in answers]
    return {"id": qid, "lang": qid.split("-")[0], "context": context, "question": question, "answers": texts}


def read_squad(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The examples of a SQuAD-format file, in file order: {id, lang, context, question, answers}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: TyDi QA GoldP file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a UTF-8 JSON file ({err})") from None
    articles = _need(doc.get("data") if isinstance(doc, dict) else None, list, path, "top level", "'data'")
    examples, seen = [], set()
    for a, article in enumerate(articles):
        paragraphs = _need(_need(article, dict, path, f"data[{a}]", "an article").get("paragraphs"),
                           list, path, f"data[{a}]", "'paragraphs'")
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            _need(paragraph, dict, path, where, "a paragraph")
            context = _need(paragraph.get("context"), str, path, where, "'context'")
            for qa in _need(paragraph.get("qas"), list, path, where, "'qas'"):
                example = _read_qa(qa, context, path, where)
                if example["id"] in seen:
                    raise InputError(f"{path}: question {example['id']!r}: duplicate id")
                seen.add(example["id"])
                examples.append(example)
    if not examples:
        raise InputError(f"{path}: no questions")
    return examples


def _by_language(examples: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for example in examples:
        groups.setdefault(example["lang"], []).append(example)
    return groups


def sample_protocol(dev: list[dict], train: list[dict], per_language: int = PER_LANGUAGE, seed: int = SEED,
                    dev_name: str = "dev", train_name: str = "train") -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """open-instruct's draws: ({language: sampled test examples}, {language: demonstration}).

    The order of the draws is the protocol: every language's test sample first, then every
    language's demonstration, both in sorted language order, from one stream.
    """
    rng = random.Random(seed)
    dev_groups, train_groups = _by_language(dev), _by_language(train)
    languages = sorted(dev_groups)
    unknown = [lang for lang in languages if lang not in TEMPLATES]
    if unknown:
        raise InputError(f"{dev_name}: language(s) {', '.join(unknown)} have no prompt template "
                         f"(known: {', '.join(sorted(TEMPLATES))})")
    tests = {}
    for lang in languages:
        examples = dev_groups[lang]
        tests[lang] = rng.sample(examples, per_language) if len(examples) > per_language else list(examples)
    demos = {}
    for lang in languages:
        if lang not in train_groups:
            raise InputError(f"{train_name}: no training example in {lang} to serve as its demonstration")
        demos[lang] = rng.sample(train_groups[lang], 1)[0]
    return tests, demos


def apply_limit(tests: dict[str, list[dict]], limit: int | float | None) -> dict[str, list[dict]]:
    """The first `limit` examples of each language (a fraction in (0, 1) rounds up, as in lm-eval)."""
    if not limit:
        return tests
    def keep(n: int) -> int:
        return math.ceil(n * limit) if limit < 1 else int(limit)
    return {lang: examples[: keep(len(examples))] for lang, examples in tests.items()}


# ----------------------------------------------------------------------------- prompts

def truncate_context(text: str, tokenizer, max_tokens: int = CONTEXT_TOKENS) -> str:
    """The text of the first `max_tokens` tokens; a shorter context is kept verbatim (no decode round trip)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.decode(ids[:max_tokens]) if len(ids) > max_tokens else text


def build_prompt(example: dict, demo: dict) -> str:
    instruction, passage, question, answer = TEMPLATES[example["lang"]]
    return (f"{instruction}\n\n"
            f"{passage} {demo['context']}\n{question} {demo['question']}\n{answer} {demo['answers'][0]}\n\n"
            f"{passage} {example['context']}\n{question} {example['question']}\n{answer}")


def with_truncated_context(example: dict, tokenizer) -> dict:
    return {**example, "context": truncate_context(example["context"], tokenizer)}


# ----------------------------------------------------------------------------- SQuAD v1.1 metric

_PUNCTUATION = set(string.punctuation)  # the official script drops ASCII punctuation only


def normalize_answer(text: str) -> str:
    """SQuAD v1.1: lowercase, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: list[str]) -> float:
    """SQuAD v1.1 F1 in [0, 1]: the best over the gold answers."""
    return max(_f1(prediction, gold) for gold in golds)


def exact_match(prediction: str, golds: list[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(gold) for gold in golds))


def _stderr_x100(values: list[float]) -> float | None:
    return 100 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None


def score(examples: list[dict], predictions: list[str]) -> tuple[dict[str, float], float | None]:
    """Per-language F1 and exact match x 100 and their unweighted means; and the stderr of the mean F1.

    The stderr treats the languages as independent samples: sqrt(sum of squared per-language
    stderrs) / number of languages; None when a language has a single example.
    """
    f1s: dict[str, list[float]] = {}
    ems: dict[str, list[float]] = {}
    for example, prediction in zip(examples, predictions, strict=True):
        f1s.setdefault(example["lang"], []).append(f1_score(prediction, example["answers"]))
        ems.setdefault(example["lang"], []).append(exact_match(prediction, example["answers"]))
    languages = sorted(f1s)
    metrics = {}
    for lang in languages:
        metrics[f"f1_{lang}"] = 100 * statistics.fmean(f1s[lang])
        metrics[f"exact_match_{lang}"] = 100 * statistics.fmean(ems[lang])
    metrics["f1"] = statistics.fmean(metrics[f"f1_{lang}"] for lang in languages)
    metrics["exact_match"] = statistics.fmean(metrics[f"exact_match_{lang}"] for lang in languages)
    stderrs = [_stderr_x100(f1s[lang]) for lang in languages]
    stderr = None if None in stderrs else math.sqrt(sum(s * s for s in stderrs)) / len(languages)
    metrics["f1_stderr"] = stderr
    return metrics, stderr


# ----------------------------------------------------------------------------- generation

def first_line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


def load_model(model_dir: str | os.PathLike, dtype: str, device: str):
    """Model and tokenizer from the local checkpoint (or adapter); the tokenizer pads on the left for generation."""
    from transformers import AutoTokenizer

    from workflow_scripts.modeling import load_causal_lm

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_causal_lm(str(model_dir), dtype, place=False)  # an adapter: merged into its base
    return model.to(device).eval(), tokenizer


@dataclass(frozen=True)
class Decoding:
    """temperature 0: greedy (one answer); above 0: `samples` answers per question drawn at that
    temperature, torch seeded with `seed` before the first batch."""
    temperature: float = 0.0
    samples: int = 1
    seed: int = SEED

    def __post_init__(self):
        if self.temperature < 0 or self.samples < 1:
            raise InputError(f"TyDi QA decoding: temperature must be >= 0 and samples >= 1, got {self}")
        if self.temperature == 0 and self.samples != 1:
            raise InputError("TyDi QA decoding: greedy decoding (temperature 0) has one answer per question")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def generation_config(model, tokenizer, decoding: Decoding = Decoding()):
    """50 new tokens, stop at a newline, greedy or sampled at the temperature (no top-k, no top-p):
    stated in full so the checkpoint's own sampling defaults cannot leak in."""
    from transformers import GenerationConfig

    eos = model.generation_config.eos_token_id
    sampling = {} if decoding.greedy else {"temperature": decoding.temperature, "top_k": 0, "top_p": 1.0,
                                           "num_return_sequences": decoding.samples}
    return GenerationConfig(max_new_tokens=MAX_NEW_TOKENS, do_sample=not decoding.greedy, num_beams=1,
                            stop_strings=["\n"], pad_token_id=tokenizer.pad_token_id,
                            eos_token_id=eos if eos is not None else tokenizer.eos_token_id, **sampling)


def generate(model, tokenizer, prompts: list[str], batch_size: int, decoding: Decoding = Decoding()) -> list[list[str]]:
    """For each prompt, its answers (first line, stripped; one when greedy, `samples` when sampled),
    batched, longest prompts first.

    Longest first so that batches pad little and an out-of-memory batch fails at once. The seed is
    set once, before the first batch, so a rerun with the same batches draws the same answers.
    """
    import torch
    from tqdm.auto import tqdm

    config = generation_config(model, tokenizer, decoding)
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    answers: list[list[str]] = [[] for _ in prompts]
    if not decoding.greedy:
        torch.manual_seed(decoding.seed)
    with tqdm(total=len(prompts), desc="tydiqa", unit="prompt") as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True).to(model.device)
            with torch.inference_mode():
                output = model.generate(**encoded, generation_config=config, tokenizer=tokenizer)
            texts = tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
            per_prompt = len(texts) // len(batch)  # generate returns each prompt's sequences together
            for k, i in enumerate(batch):
                answers[i] = [first_line(text) for text in texts[k * per_prompt:(k + 1) * per_prompt]]
            bar.update(len(batch))
    return answers


# ----------------------------------------------------------------------------- the task

def evaluate_tydiqa(model_dir: str | os.PathLike, dev_path: str | os.PathLike, train_path: str | os.PathLike,
                    limit: int | float | None, batch_size: int, dtype: str, device: str,
                    decoding: Decoding | None = None) -> dict[str, Any]:
    """Run the protocol; return the score record's task part (evaluate.py adds the run's fields).
    With several samples per question each metric is the mean over the samples of the metric of
    one sample's answers; `f1_per_sample` lists those, `item_f1_spread` is the mean over questions
    of the standard deviation of a question's F1 over its samples (x 100)."""
    decoding = decoding or Decoding()
    tests, demos = sample_protocol(read_squad(dev_path), read_squad(train_path),
                                   dev_name=str(dev_path), train_name=str(train_path))
    tests = apply_limit(tests, limit)
    log.info("%s; demonstrations %s", ", ".join(f"{lang} {len(ex)}" for lang, ex in tests.items()),
             ", ".join(demo["id"] for demo in demos.values()))
    model, tokenizer = load_model(model_dir, dtype, device)
    demos = {lang: with_truncated_context(demo, tokenizer) for lang, demo in demos.items()}
    examples = [with_truncated_context(example, tokenizer) for lang in tests for example in tests[lang]]
    prompts = [build_prompt(example, demos[example["lang"]]) for example in examples]

    start = time.perf_counter()
    answers = generate(model, tokenizer, prompts, batch_size, decoding)
    wall = time.perf_counter() - start
    per_sample = [score(examples, [a[k] for a in answers]) for k in range(decoding.samples)]
    metrics = {key: statistics.fmean(m[key] for m, _ in per_sample) if per_sample[0][0][key] is not None else None
               for key in per_sample[0][0]}
    stderr = per_sample[0][1] if decoding.samples == 1 else metrics["f1_stderr"]
    if decoding.samples > 1:
        spread = [statistics.pstdev(f1_score(a, ex["answers"]) for a in sample_answers)
                  for ex, sample_answers in zip(examples, answers)]
        metrics["item_f1_spread"] = 100 * statistics.fmean(spread)
    log.info("f1 = %.2f (%s) over %d questions, %s, in %.1f s", metrics["f1"],
             ", ".join(f"{lang} {metrics[f'f1_{lang}']:.1f}" for lang in tests), len(examples),
             "greedy" if decoding.greedy else f"{decoding.samples} sample(s) at temperature {decoding.temperature:g}, "
             f"seed {decoding.seed}", wall)
    return {
        "task": "tydiqa",
        "metric": "f1",
        "score": metrics["f1"],
        "scale": 100,  # F1 x 100 as the paper reports it; the summary divides to 0-1 like every other task
        "stderr": stderr,
        "n": len(examples),
        "n_per_language": {lang: len(examples) for lang, examples in tests.items()},
        "metrics": metrics,
        "num_fewshot": NUM_FEWSHOT,
        "demonstrations": {lang: demo["id"] for lang, demo in demos.items()},
        "decoding": {"greedy": decoding.greedy, "temperature": decoding.temperature, "samples": decoding.samples,
                     "seed": None if decoding.greedy else decoding.seed},
        "f1_per_sample": [m["f1"] for m, _ in per_sample],
        "predictions": [{"id": ex["id"], "prediction": a[0] if decoding.samples == 1 else a}
                        for ex, a in zip(examples, answers)],
        "wall_seconds": round(wall, 3),
    }
