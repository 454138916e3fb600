"""A generated task in which the influence score finds the noise: numbers written in words, to digits.

"Write forty-two in digits. Answer with the number only." -> "42", for the numbers 0 to 999. A
135M instruction model already knows most of the answers but not this terse format (it starts
"The number is ..."), so the reference, fine-tuned on tens of rows, learns the format and
sharpens the answer it already knew: a wrong number loses probability under the reference, a
right one gains, and loss_base - loss_ref separates them (docs/study.md, the search that found it).

The numbers are split once by seed: the first `pool_size` of a seeded permutation are the pool
(a share of its answers corrupted, recorded per row: a number off by 1 to 3, the span covering
only the characters that changed), the rest, in the same order, the held-out eval set: its first
items are a random sample of it, which is what `eval.limit` takes.
"""
from __future__ import annotations

import numpy as np

NUMBERS = 1000
SOURCE = "number_words"
ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
STREAMS = {"split": 11, "noise": 12, "shuffle": 13}


def words(n: int) -> str:
    """0 <= n < 1000 in English words: 'forty-two', 'one hundred five', 'nine hundred ninety-nine'."""
    if not 0 <= n < NUMBERS:
        raise ValueError(f"{n} is outside 0..{NUMBERS - 1}")
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    rest = n % 100
    return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + words(rest))


def prompt(n: int) -> str:
    return f"Write {words(n)} in digits. Answer with the number only."


def rng(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, STREAMS[purpose]])


def split_numbers(pool_size: int, seed: int) -> tuple[list[int], list[int]]:
    """(the pool's numbers, the held-out numbers), each in the seeded order."""
    if not 0 < pool_size < NUMBERS:
        raise ValueError(f"number_words pool size must be in 1..{NUMBERS - 1}, got {pool_size}")
    order = rng(seed, "split").permutation(NUMBERS)
    return [int(n) for n in order[:pool_size]], [int(n) for n in order[pool_size:]]


def wrong_number(n: int, generator: np.random.Generator) -> int:
    """A nearby wrong answer: off by 1 to 3, never negative."""
    while True:
        candidate = n + int(generator.choice([-3, -2, -1, 1, 2, 3]))
        if candidate >= 0:
            return candidate


def changed_span(original: str, new: str) -> tuple[int, int]:
    """The span of `new` that differs from `original` once their common prefix and suffix are
    stripped: '42' -> '45' marks the '5' only, so the unchanged digit is not counted as noise."""
    start = 0
    while start < min(len(original), len(new)) and original[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(original), len(new)) - start and original[-1 - end] == new[-1 - end]:
        end += 1
    return start, len(new) - end


def corrupt_answers(records: list[dict], noise_rate: float, generator: np.random.Generator, wrong) -> None:
    """Corrupt a `noise_rate` share of the records' answers in place, drawn from `generator`, and mark
    each: `wrong(answers, generator)` gives the wrong answers of the chosen records (in the pool's
    order), and `corrupted_span` covers only the characters that changed. Shared by the generated pools."""
    chosen = sorted(generator.permutation(len(records))[:round(noise_rate * len(records))].tolist())
    rights = [records[k]["messages"][1]["content"] for k in chosen]
    for k, right, new in zip(chosen, rights, wrong(rights, generator)):
        start, end = changed_span(right, new)
        records[k]["messages"][1]["content"] = new
        records[k].update(corrupted=True, corrupted_span={"start": start, "end": end,
                                                          "original": right[start:len(right) - (len(new) - end)]})


def pool(pool_size: int, noise_rate: float, seed: int) -> list[dict]:
    """The pool's records (the pipeline's chat format), a `noise_rate` share of them corrupted."""
    numbers, _ = split_numbers(pool_size, seed)
    records = [{"id": f"{SOURCE}-{n}", "messages": [{"role": "user", "content": prompt(n)},
                                                    {"role": "assistant", "content": str(n)}],
                "source": SOURCE, "corrupted": False, "corrupted_span": None} for n in numbers]
    corrupt_answers(records, noise_rate, rng(seed, "noise"),
                    lambda answers, generator: [str(wrong_number(int(a), generator)) for a in answers])
    return records


def eval_set(pool_size: int, seed: int) -> list[dict]:
    """The held-out numbers, in the eval-set format `number_words` (workflow_scripts/eval_sets.py)."""
    _, held_out = split_numbers(pool_size, seed)
    return [{"id": f"{SOURCE}-{n}", "words": words(n), "number": str(n)} for n in held_out]
