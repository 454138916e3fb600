"""Token scores: how a token of the training data is ranked for the partition and judged by the audit.

Each score is computed from the influence table's two loss columns and is oriented the same way:
HIGH = keep (positive, learnt), LOW = suspected uninformative or wrong (negative, forgotten), so
the partition keeps the top rho of any score and the audit's AUROC asks the same question of
each: is a corrupted token's score lower than a clean one's?

- influence           loss_base - loss_ref: the paper's (arXiv 2508.04329). What the reference
                      learnt beyond the base model.
- reference_loss      -loss_ref: RHO-LOSS's irreducible loss (arXiv 2206.07137) turned into a
                      filter: a token the reference, trained on similar data, still finds
                      surprising is likely noise, whatever the base model thought of it.
- relative_influence  (loss_base - loss_ref) / max(loss_base, 1e-2): the share of the base model's
                      surprise that the reference removes. A difference of losses grows with the
                      base loss (fine-tuning takes the most nats off the most surprising tokens,
                      which a wrong answer often is); dividing by it asks instead whether the
                      reference made the token *relatively* more likely: near 1 for a token it
                      learnt, below 0 for one it made less likely. The floor keeps tokens the
                      base model already predicts (loss near 0) from dividing by nothing.
- base_loss           -loss_base: perplexity filtering with the base model alone, the no-reference
                      baseline of the other three.
- oracle              -1 for a token the pool marks as noise (`corrupted`), 0 for the others: not a
                      method but its bound. No label-free score can find the noise better, so an
                      oracle partition tells "the score is wrong" from "forgetting is wrong".
                      Refused for a pool without noise marks (user data has none).

Names are runs.SCORES (the path grammar); the formulas are here, in float32 like the losses.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from workflow_scripts.files import InputError
from workflow_scripts.runs import SCORES

BASE_LOSS_FLOOR = np.float32(1e-2)  # nats: relative_influence's smallest denominator

DEFINITIONS = {
    "influence": "loss_base - loss_ref (the paper)",
    "reference_loss": "-loss_ref (RHO-LOSS's irreducible loss)",
    "relative_influence": "(loss_base - loss_ref) / max(loss_base, 0.01)",
    "base_loss": "-loss_base (the base model's perplexity alone)",
    "oracle": "-1 for a token the pool marks as noise, 0 otherwise (the bound, not a method)",
}


def _influence(base, ref):
    return base - ref


def _reference_loss(base, ref):
    return -ref


def _relative_influence(base, ref):
    return (base - ref) / np.maximum(base, BASE_LOSS_FLOOR)


def _base_loss(base, ref):
    return -base


FORMULAS = {"influence": _influence, "reference_loss": _reference_loss,
            "relative_influence": _relative_influence, "base_loss": _base_loss, "oracle": None}
assert tuple(FORMULAS) == SCORES == tuple(DEFINITIONS), "token_scores and runs.SCORES must name the same scores"


def token_score(table: pa.Table, score: str) -> np.ndarray:
    """The score of every token of an influence table (float32), in its order. The paper's
    influence is the table's own column, bit for bit."""
    if score not in FORMULAS:
        raise InputError(f"unknown token score {score!r}; scores are {', '.join(SCORES)}")
    if score == "influence":
        return table["influence"].to_numpy(zero_copy_only=False)
    if score == "oracle":
        if "corrupted" not in table.column_names:
            raise InputError("score 'oracle' reads the pool's own noise marks, and this pool has none (the influence "
                             "table has no `corrupted` column: a pool of your own, or one without injected noise "
                             "marks); use a label-free score: influence, reference_loss, relative_influence, base_loss")
        marked = table["corrupted"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        return -marked.astype(np.float32)
    missing = [c for c in ("loss_base", "loss_ref") if c not in table.column_names]
    if missing:
        raise InputError(f"score {score!r} needs the influence table's {' and '.join(missing)} column(s)")
    base = table["loss_base"].to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    ref = table["loss_ref"].to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return FORMULAS[score](base, ref).astype(np.float32, copy=False)
