"""The Forgetting objective and its lambda schedule (arXiv 2508.04329).

Conventions shared with tokenization, scoring and the partition: `labels[b, t]` is the token
predicted from positions < t (-100 where nothing is predicted: prompt, padding); a mask [B, T]
is aligned with `labels`. The model's logits at position t - 1 predict token t.

Training never materialises logits for the whole sequence: `next_token_positions` picks the
source positions where some row of the batch has a label, the model is asked for logits there
only (`logits_to_keep`), and `forgetting_loss_at` takes those. `forgetting_loss` is the same
objective on the full, unshifted logits the model returns by default.

The loss is `mean CE(positive) + lambda * negative term`, the term a mean over the negative tokens:
- ascent: -CE (gradient ascent on the negatives, the paper's; unbounded below, its pull never fades);
- unlikelihood: -log(1 - p(token)), bounded below by 0;
- npo: (2 / beta) * softplus(beta * (CE_base - CE)) = (2 / beta) * log(1 + (p / p_base)^beta), NPO
  (arXiv 2404.05868) per token, the base model's own CE of the token (losses/base.parquet) as its
  reference. It is (2 / beta) * log 2 while the model matches the base and falls towards 0 as the
  token is forgotten; d/dCE = -2 * sigmoid(beta * (CE_base - CE)), at most 2 in size and vanishing
  once the token is far less likely than under the base model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workflow_scripts.constants import IGNORE_INDEX
from workflow_scripts.runs import FORGET_FAMILY, FORGET_LOSSES, LAMBDA_SCHEDULES, NPO, SELECTIVE


@dataclass(frozen=True)
class Objective:
    """What a training run learns and forgets. The forget family (runs.FORGET_FAMILY) has a
    negative term (`forget_loss`) weighted by lambda(step) from t_min to t_max on
    `lambda_schedule` (npo: with inverse temperature `beta`); a selective method (Rho-1) learns the
    `keep` fraction of each batch's tokens; the others learn their positive tokens."""
    method: str
    t_min: float | None = None
    t_max: float | None = None
    lambda_schedule: str | None = None
    forget_loss: str | None = None
    keep: float | None = None
    beta: float | None = None

    @property
    def selective(self) -> bool:
        return self.method in SELECTIVE

    def lam(self, step: int, total_steps: int) -> float:
        if self.method not in FORGET_FAMILY:
            return 0.0
        return lambda_at(step, total_steps, self.t_min, self.t_max, self.lambda_schedule)


def next_token_positions(labels: torch.Tensor) -> torch.Tensor:
    """Source positions (t - 1) whose next token t carries a label in at least one row."""
    return torch.nonzero((labels[:, 1:] != IGNORE_INDEX).any(dim=0)).squeeze(-1)


def token_ce_at(logits: torch.Tensor, positions: torch.Tensor, labels: torch.Tensor):
    """CE (float32) of every labelled token whose source position is in `positions`.

    `logits` is [B, K, V], logits[:, k] taken at source position positions[k].
    Returns (ce [N], selector) where selector picks the same N tokens from any [B, T] mask.
    """
    targets = labels[:, positions + 1]
    valid = targets != IGNORE_INDEX
    ce = F.cross_entropy(logits[valid].float(), targets[valid], reduction="none")

    def select(mask: torch.Tensor) -> torch.Tensor:
        return mask[:, positions + 1][valid]

    return ce, select


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # Empty set -> exactly 0 while keeping the graph (no data-dependent branch, no device sync).
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def negative_term(ce, negative, forget_loss, beta=None, base_ce=None) -> torch.Tensor:
    """The mean over the `negative` tokens of the term lambda weighs (see the module docstring);
    `ce` [N] and `base_ce` [N] (npo: the base model's CE of the same tokens), `negative` [N] bool."""
    if forget_loss == "ascent":
        return -_masked_mean(ce, negative)
    if forget_loss == "unlikelihood":
        # -log(1 - p(token)) = -log(-expm1(-ce)): expm1 keeps it exact for a near-certain token's small CE.
        return _masked_mean(-torch.log(-torch.expm1(-ce.clamp(min=1e-6))), negative)
    # npo: r = CE_base - CE = log p - log p_base; softplus is log(1 + e^x) without overflow for large x.
    log_ratio = base_ce.float() - ce
    return _masked_mean((2.0 / beta) * F.softplus(beta * log_ratio), negative)


def forgetting_loss_at(logits, positions, labels, positive_mask, negative_mask, lam, forget_loss="ascent",
                       beta=None, base_loss=None):
    """The Forgetting loss on logits taken at `positions` (see `token_ce_at`); `forget_loss=None`
    is the objective of the methods without a forget term (mean CE of the positives).

    npo needs `beta` (> 0) and `base_loss` [B, T], each token's CE under the base model aligned with
    `labels` (like the masks). The stats hold both means, the counts, lambda and, with a forget
    loss, `negative_term`: the term lambda weighs (ascent: -mean CE of the negatives).
    """
    if forget_loss is not None and forget_loss not in FORGET_LOSSES:
        raise ValueError(f"unknown forget loss {forget_loss!r}; expected one of {FORGET_LOSSES}")
    if forget_loss == NPO:
        missing = [name for name, value in (("beta", beta), ("base_loss", base_loss)) if value is None]
        if missing:
            raise ValueError(f"forget loss {NPO!r} needs {' and '.join(missing)}")
        if not beta > 0:
            raise ValueError(f"forget loss {NPO!r} needs beta > 0, got {beta}")
    ce, select = token_ce_at(logits, positions, labels)
    positive, negative = select(positive_mask), select(negative_mask)
    positive_ce = _masked_mean(ce, positive)
    negative_ce = _masked_mean(ce, negative)
    stats = {
        "positive_ce": positive_ce.item(),
        "negative_ce": negative_ce.item(),
        "n_positive": int(positive.sum()),
        "n_negative": int(negative.sum()),
        "lambda": float(lam),
    }
    if forget_loss is None:
        return positive_ce, stats
    term = negative_term(ce, negative, forget_loss, beta, select(base_loss) if forget_loss == NPO else None)
    stats["negative_term"] = term.item()
    return positive_ce + lam * term, stats


def forgetting_loss(logits, labels, positive_mask, negative_mask, lam, forget_loss="ascent", beta=None,
                    base_loss=None):
    """`mean CE(positive) + lam * negative term` from the model's full, unshifted logits [B, T, V]
    (ascent: `mean CE(positive) - lam * mean CE(negative)`).

    Means are over the tokens of each set in the batch; an empty set contributes 0; -100 positions
    never count, whatever the masks say. Returns (loss, stats) with the two means and the counts.
    """
    positions = torch.arange(labels.shape[1] - 1, device=labels.device)
    return forgetting_loss_at(logits[:, :-1], positions, labels, positive_mask, negative_mask, lam, forget_loss,
                              beta=beta, base_loss=base_loss)


def selective_loss_at(logits, positions, labels, response_mask, reference_loss, keep: float):
    """Rho-1 selective language modelling: CE on the top `keep` fraction of the batch's response
    tokens ranked by excess loss (current CE - reference CE), the rest ignored.

    `reference_loss` [B, T] holds each token's CE under the reference model (aligned with labels).
    Exactly round(keep * n) tokens are kept (at least one when n > 0); ties go to the earlier token.
    """
    ce, select = token_ce_at(logits, positions, labels)
    response = select(response_mask)
    excess = ce.detach() - select(reference_loss).float()
    excess = torch.where(response, excess, torch.full_like(excess, -torch.inf))
    n = int(response.sum())
    k = max(1, int(round(keep * n))) if n else 0
    chosen = torch.zeros_like(response)
    chosen[torch.argsort(-excess, stable=True)[:k]] = True
    loss = _masked_mean(ce, chosen)
    stats = {"positive_ce": loss.item(), "negative_ce": _masked_mean(ce, response & ~chosen).item(),
             "n_positive": k, "n_negative": n - k, "lambda": 0.0}
    return loss, stats


def lambda_at(step: int, total_steps: int, t_min: float, t_max: float, schedule: str) -> float:
    """Weight of the negative term at `step` (0-based) of `total_steps`.

    linear: t_min at step 0 rising to t_max at the last step (the paper: 1e-5 -> 0.25);
    constant: t_max throughout; cosine: t_min + (t_max - t_min) * (1 - cos(pi * step / total)) / 2.
    """
    if schedule == "constant":
        return float(t_max)
    if schedule == "linear":
        frac = step / (total_steps - 1) if total_steps > 1 else 1.0
        return float(t_min + (t_max - t_min) * frac)
    if schedule == "cosine":
        return float(t_min + (t_max - t_min) * (1 - math.cos(math.pi * step / total_steps)) / 2)
    raise ValueError(f"unknown lambda schedule {schedule!r}; expected one of {LAMBDA_SCHEDULES}")
