"""Greedy decodings of one checkpoint on the first held-out prompts of one task: what the model writes.

A score is a claim about what a model does: number_words' `acc` says whether the number is the
model's greedy continuation, nothing about what the model writes when it is not. These decodings
show it, so that a sentence like "eight hundred fifty-nine -> 85" comes from the pipeline, beside
the score it explains, and not from a notebook.

The prompts are the evaluator's own (workflow_scripts/evaluate.py), built the way lm-eval 0.4.13
builds what it scores:
- the task is `evaluate.build_task` on the same YAML and JSONL (a folder's task, `--include-path`:
  lm-eval's own build from that folder, on the files its YAML names); the documents are the first n of
  `task.eval_docs` in lm-eval's order (`task.doc_iterator(limit=n)`, what `--limit n` scores);
- the context is the task's own 0-shot `fewshot_context`; with --chat-template, one user message
  rendered as lm-eval's `HFLM.apply_chat_template` renders it (add_generation_prompt=True);
- its tokens are those lm-eval's model scores: `HFLM.tok_encode` of the context (the tokenizer's
  special tokens unless the string already starts with the BOS, or as --add-bos-token says), the
  raw context without its trailing whitespace (lm-eval's `_encode_pair` moves it into the scored
  continuation), the chat context whole (answer_scoring.py's `AnswerOnlyHFLM`); a generate_until
  task's raw context whole too, as `HFLM.generate_until` encodes it.
The model then decodes greedily (plain argmax: the checkpoint's generation_config is not applied)
until its EOS or, for ChatML templates, `<|im_end|>`; a generate_until task's output is cut at the
task's `until` strings, as lm-eval cuts what it scores. TyDi QA has its own protocol and its score
JSON already holds its predictions; this stage refuses it.

    python -m workflow_scripts.decode --model-dir DIR --task number_words \\
        --data results/number-words/data/eval/number_words.jsonl --n 8 --max-new-tokens 16 --chat-template \\
        --threads 1 --dtype float32 --run forget/rho0.7-ascent-linear/seed1 \\
        --out results/number-words/smollm2-135m-instruct/forget/rho0.7-ascent-linear/seed1/decodings/number_words.json

Output, written atomically: {"task", "run", "model_dir", "chat_template", "add_bos_token", "max_new_tokens",
"n", "items": [{"doc_id", "prompt", "target", "output", "exact"}], "exact_share", "device", "dtype",
"provenance"}: `prompt` is the task's doc_to_text (not the template around it), `exact` is whether the
stripped output equals the target, `exact_share` their mean.
"""
from __future__ import annotations

import argparse
import logging
import os
from functools import partial
from pathlib import Path
from typing import Any

from workflow_scripts import evaluate, provenance, tasks
from workflow_scripts.files import InputError, run_main, setup_logging, write_json

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The end-of-turn token of ChatML templates (SmolLM2, Qwen): an instruct model ends its answer there.
CHATML_END = "<|im_end|>"

log = logging.getLogger("decode")


# ----------------------------------------------------------------------------- prompts

def check_task(name: str, include_path=None):
    """The catalogue's task `name`, if it is an lm-eval task the local source can run, or the task
    of that name in the folders `include_path`."""
    if name in tasks.TASKS and tasks.TASKS[name].protocol != "lm_eval":
        raise InputError(f"task {name!r} is scored by its own protocol ({tasks.TASKS[name].protocol}), not by "
                         "lm-eval; its score JSON already records the model's predictions")
    return evaluate.check_task(name, "local", include_path)


def target_text(task, doc) -> str:
    """The answer the evaluator counts as right: the target, or for a multiple-choice task the gold choice."""
    target = task.doc_to_target(doc)
    if isinstance(target, list):  # several gold answers: lm-eval's build_qa_turn takes the first
        target = target[0]
    if isinstance(target, int) and task.config.doc_to_choice is not None:
        target = task.doc_to_choice(doc)[target]
    return str(target)


def render_chat(tokenizer, chat_history: list[dict], add_generation_prompt: bool = True) -> str:
    """lm-eval's HFLM.apply_chat_template (without chat_template_args, which evaluate.py never sets)."""
    return tokenizer.apply_chat_template(chat_history, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         continue_final_message=not add_generation_prompt)


def context(task, doc, tokenizer, chat_template: bool) -> str:
    """The context lm-eval builds for `doc`: the task's own fewshot_context, as simple_evaluate calls it."""
    ctx = task.fewshot_context(doc, num_fewshot=evaluate.NUM_FEWSHOT, system_instruction=None,
                               apply_chat_template=chat_template, fewshot_as_multiturn=True,
                               chat_template=partial(render_chat, tokenizer) if chat_template else None,
                               gen_prefix=task.doc_to_prefix(doc))
    if not isinstance(ctx, str):  # multiple-input tasks (winogrande): one context per choice
        raise InputError(f"task {task.config.task!r} has one context per choice; decoding needs one prompt")
    return ctx


def context_ids(tokenizer, text: str, chat_template: bool, add_bos_token: bool | None = None,
                generative: bool = False) -> list[int]:
    """The token ids lm-eval scores after `text`: HFLM.tok_encode of the context as _encode_pair passes it,
    or for a generate_until task the whole context, as HFLM.generate_until encodes it."""
    if not chat_template and not generative:
        # HFLM._encode_pair moves the context's trailing whitespace into the continuation it scores;
        # AnswerOnlyHFLM (chat template) keeps the template's newline in the context.
        text = text.rstrip()
    special = {} if add_bos_token is None else {"add_special_tokens": add_bos_token}
    # tok_encode adds no special tokens to a string that already starts with the BOS (a chat
    # template that writes it); lm-eval's prefix token is the BOS, or the EOS without one.
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prefix is not None and text.startswith(tokenizer.decode(prefix)):
        special = {"add_special_tokens": False}
    return tokenizer.encode(text, **special)


def generative(task) -> bool:
    return task.config.output_type == "generate_until"


def prompts(task, tokenizer, n: int, chat_template: bool, add_bos_token: bool | None = None) -> list[dict]:
    """The first `n` documents lm-eval scores: doc_id, prompt (doc_to_text), target and the context's token ids."""
    return [{"doc_id": doc_id, "prompt": task.doc_to_text(doc), "target": target_text(task, doc),
             "ids": context_ids(tokenizer, context(task, doc, tokenizer, chat_template), chat_template, add_bos_token,
                                generative(task))}
            for doc_id, doc in task.doc_iterator(rank=0, limit=n, world_size=1)]


def until_strings(task) -> list[str]:
    """Where lm-eval cuts what a generate_until task generates before it scores it (the task's
    generation_kwargs `until`); none for the other tasks."""
    if not generative(task):
        return []
    until = (task.config.generation_kwargs or {}).get("until") or []
    return [until] if isinstance(until, str) else [term for term in until if term]


def cut(text: str, until: list[str]) -> str:
    """The text before the first of each stop string, as lm-eval's postprocess_generated_text cuts it."""
    for term in until:
        text = text.split(term)[0]
    return text


# ----------------------------------------------------------------------------- decoding

def load_tokenizer(model_dir: str | os.PathLike, add_bos_token: bool | None = None):
    """The tokenizer as lm-eval's HFLM loads it: add_bos_token, when given, also goes to from_pretrained."""
    from transformers import AutoTokenizer

    extra = {} if add_bos_token is None else {"add_bos_token": add_bos_token}
    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True, **extra)


def stop_ids(tokenizer) -> list[int]:
    """Where an answer ends: the EOS, and the ChatML end of turn if the tokenizer has that token."""
    ids = [tokenizer.eos_token_id]
    if CHATML_END in tokenizer.get_vocab():
        ids.append(tokenizer.convert_tokens_to_ids(CHATML_END))
    return list(dict.fromkeys(i for i in ids if i is not None))


def until_stop(tokens: list[int], stops: list[int]) -> list[int]:
    """The continuation before its first stop token (generate pads a finished row after it)."""
    for i, token in enumerate(tokens):
        if token in stops:
            return tokens[:i]
    return tokens


def greedy(model, contexts: list[list[int]], max_new_tokens: int, pad_id: int, stops: list[int],
           batch_size: int = 8) -> list[list[int]]:
    """Each context's greedy continuation (its new tokens, without the stop token), decoded in
    left-padded batches: the attention mask hides the padding and generate derives positions from it."""
    import torch

    out = []
    for start in range(0, len(contexts), batch_size):
        batch = contexts[start:start + batch_size]
        width = max(map(len, batch))
        ids = torch.tensor([[pad_id] * (width - len(c)) + c for c in batch], device=model.device)
        mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in batch], device=model.device)
        with torch.no_grad():
            generated = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                       max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=stops or None)
        out += [until_stop(row, stops) for row in generated[:, width:].tolist()]
    return out


def load_model(model_dir: Path, dtype: str):
    """The checkpoint, offline, on CUDA if there is one, set to plain greedy decoding."""
    from transformers import GenerationConfig

    from workflow_scripts.modeling import load_causal_lm

    model = load_causal_lm(str(model_dir), dtype)  # a local directory: nothing is looked up on the Hub
    model.eval()
    # A checkpoint's generation_config.json may ask for a repetition penalty, suppressed tokens or a
    # minimum length; lm-eval's acc judges the plain argmax, so generate starts from the defaults.
    model.generation_config = GenerationConfig()
    return model


def decode(model_dir: str | os.PathLike, task_name: str, data: str | os.PathLike | None, n: int = 8,
           max_new_tokens: int = 16, chat_template: bool = False, add_bos_token: bool | None = None,
           dtype: str = "float32", batch_size: int = 8, cache_dir: str | os.PathLike | None = None,
           include_path=None) -> dict[str, Any]:
    """Decode the first `n` prompts of the task; return the record without the run's name (not written).
    `data`: a catalogue task's eval JSONL; a folder's task (`include_path`) reads its YAML's files."""
    from workflow_scripts.modeling import device

    if n < 1:
        raise InputError(f"--n must be >= 1 (prompts to decode), got {n}")
    if max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    from workflow_scripts.modeling import check_model_dir

    found = check_task(task_name, include_path)
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    if not found.folder:
        evaluate.check_data(task_name, data)  # a missing or malformed file is refused here, by name
    if chat_template:
        evaluate.check_chat_template(model_dir)
    tokenizer = load_tokenizer(model_dir, add_bos_token)
    task = evaluate.build_task(task_name, data, cache_dir, include_path)
    rows = len(task.eval_docs)
    data = ", ".join(found.data_files) if found.folder else data
    items = prompts(task, tokenizer, n, chat_template, add_bos_token)
    log.info("task %s: %d of %d rows in %s%s; model %s on %s (%s)", task_name, len(items), rows, data,
             ", in the model's chat template" if chat_template else "", model_dir, device(), dtype)

    model = load_model(model_dir, dtype)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops, until = stop_ids(tokenizer), until_strings(task)
    continuations = greedy(model, [item.pop("ids") for item in items], max_new_tokens, pad_id, stops, batch_size)
    for item, tokens in zip(items, continuations):
        item["output"] = cut(tokenizer.decode(tokens, skip_special_tokens=True), until).strip()
        item["exact"] = item["output"] == item["target"].strip()
        log.info("doc %s: %r -> %r (target %r%s)", item["doc_id"], item["prompt"], item["output"], item["target"],
                 ", exact" if item["exact"] else "")
    exact_share = sum(item["exact"] for item in items) / len(items)
    log.info("task %s: %d of %d outputs exact (%.2f)", task_name, sum(item["exact"] for item in items), len(items),
             exact_share)
    return {"task": task_name, "model_dir": str(model_dir), "chat_template": chat_template,
            "add_bos_token": add_bos_token, "max_new_tokens": max_new_tokens, "n": len(items), "items": items,
            "exact_share": exact_share, "device": str(device()), "dtype": dtype}


# ----------------------------------------------------------------------------- command line

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.decode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="local transformers checkpoint directory")
    parser.add_argument("--task", required=True, help="an lm-eval task of the catalogue with a local eval set "
                                                      "(number_words, boolq, boolq_short, asdiv, logiqa, ...), "
                                                      "or of --include-path")
    parser.add_argument("--data", default=None, help="a catalogue task's eval JSONL (the evaluator's --data)")
    parser.add_argument("--include-path", default=None,
                        help="a folder of lm-eval task YAMLs that holds --task (the evaluator's --include-path)")
    parser.add_argument("--run", required=True, help="'base' or METHOD/VARIANT/seedN (recorded verbatim as 'run')")
    parser.add_argument("--out", required=True, help="decodings JSON to write")
    parser.add_argument("--n", type=int, default=8, help="prompts to decode: the first n that lm-eval scores")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=False,
                        help="put each prompt in the model's chat template, as the evaluator's --chat-template")
    parser.add_argument("--add-bos-token", action=argparse.BooleanOptionalAction, default=None,
                        help="as the evaluator's: prepend the BOS (true) or not (false); default: the tokenizer's")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch-size", type=evaluate.positive_int, default=8, help="prompts decoded together")
    parser.add_argument("--cache-dir", default=None, help="datasets cache directory (default: HF_DATASETS_CACHE)")
    return parser.parse_args(argv)


def main(argv=None) -> dict[str, Any]:
    setup_logging("decode")
    args = parse_args(argv)
    evaluate.configure_environment("local")  # offline: before datasets or lm_eval is imported
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    record = decode(args.model_dir, args.task, args.data, n=args.n, max_new_tokens=args.max_new_tokens,
                    chat_template=args.chat_template,
                    add_bos_token=args.add_bos_token,
                    dtype=args.dtype, batch_size=args.batch_size, cache_dir=args.cache_dir,
                    include_path=args.include_path)
    record = {**record, "run": args.run, "provenance": provenance.record()}
    write_json(args.out, record)
    log.info("wrote %s", args.out)
    return record


if __name__ == "__main__":
    run_main(main)
