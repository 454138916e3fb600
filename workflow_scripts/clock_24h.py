"""A second generated task family: 12-hour clock times, to 24-hour time.

"Write 7:05 PM in 24-hour time. Answer with the time only." -> "19:05", for the 1,440 minutes of a
day. Another skill than number_words (a rule on the hour, after noon add 12 and 12 AM is 00, and a
copy of the minutes), the same recipe (docs/study.md, the second task family): the minutes of the
day are split once by seed, the first `pool_size` of a seeded permutation the pool (a share of its
answers corrupted, recorded per row: the hour off by 1 to 3 around the clock, the minutes kept, the
span covering only the characters that changed), the rest, in the same order, the held-out eval set.
"""
from __future__ import annotations

import numpy as np

from workflow_scripts.number_words import corrupt_answers

MINUTES = 24 * 60
SOURCE = "clock_24h"
STREAMS = {"split": 21, "noise": 22}
OFFSETS = np.array([-3, -2, -1, 1, 2, 3])  # how far a wrong hour is from the right one


def rng(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, STREAMS[purpose]])


def twelve_hour(minutes: np.ndarray) -> list[str]:
    """Minutes since midnight as 12-hour times: 0 -> '12:00 AM', 725 -> '12:05 PM', 1145 -> '7:05 PM'."""
    hours, mins = np.divmod(np.asarray(minutes), 60)
    return [f"{(h + 11) % 12 + 1}:{m:02d} {'AM' if h < 12 else 'PM'}" for h, m in zip(hours.tolist(), mins.tolist())]


def twenty_four_hour(minutes: np.ndarray) -> list[str]:
    """Minutes since midnight as 24-hour times: 0 -> '00:00', 1145 -> '19:05'."""
    hours, mins = np.divmod(np.asarray(minutes), 60)
    return [f"{h:02d}:{m:02d}" for h, m in zip(hours.tolist(), mins.tolist())]


def prompt(time: str) -> str:
    return f"Write {time} in 24-hour time. Answer with the time only."


def split_minutes(pool_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the pool's minutes of the day, the held-out ones), each in the seeded order."""
    if not 0 < pool_size < MINUTES:
        raise ValueError(f"clock_24h pool size must be in 1..{MINUTES - 1}, got {pool_size}")
    order = rng(seed, "split").permutation(MINUTES)
    return order[:pool_size], order[pool_size:]


def wrong_times(answers: list[str], generator: np.random.Generator) -> list[str]:
    """The answers with the hour off by 1 to 3 either way, around the clock; the minutes kept."""
    minutes = np.array([int(a[:2]) * 60 + int(a[3:]) for a in answers], dtype=int)
    return twenty_four_hour((minutes + 60 * generator.choice(OFFSETS, size=len(answers))) % MINUTES)


def pool(pool_size: int, noise_rate: float, seed: int) -> list[dict]:
    """The pool's records (the pipeline's chat format), a `noise_rate` share of them corrupted."""
    minutes, _ = split_minutes(pool_size, seed)
    records = [{"id": f"{SOURCE}-{answer.replace(':', '')}",
                "messages": [{"role": "user", "content": prompt(time)}, {"role": "assistant", "content": answer}],
                "source": SOURCE, "corrupted": False, "corrupted_span": None}
               for time, answer in zip(twelve_hour(minutes), twenty_four_hour(minutes))]
    corrupt_answers(records, noise_rate, rng(seed, "noise"), wrong_times)
    return records


def eval_set(pool_size: int, seed: int) -> list[dict]:
    """The held-out times, in the eval-set format `clock_24h` (workflow_scripts/eval_sets.py)."""
    _, held_out = split_minutes(pool_size, seed)
    return [{"id": f"{SOURCE}-{answer.replace(':', '')}", "time": time, "answer": answer}
            for time, answer in zip(twelve_hour(held_out), twenty_four_hour(held_out))]
