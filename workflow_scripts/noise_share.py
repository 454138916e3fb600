"""The share of noisy tokens, estimated from a token score alone (partition rule estimated_share),
forgotten only where the noise is a population separated from the rest, and otherwise nothing.

Every score is oriented HIGH = keep (token_scores.py), so the noise, if the score sees it, is a
population at the low end of the score's distribution, in the manner of noisy-label learning
(DivideMix fits a mixture to per-sample losses; Co-teaching forgets at the noise rate): its weight
is the share forgotten, not the share of tokens below some value, which would count the clean
tokens that scatter into the low end and miss the noisy ones that scatter out of it.

Why a mixture with several components, K chosen by AIC (docs/methods.md says why not BIC): token
scores cluster by position (on the number-words pool the influence of an end-of-turn token averages
4.3, a first digit 3.2, a clean units digit 0.2, a corrupted digit -2 to -3), so a two-component fit
splits clean positions from each other rather than clean from noisy (there it marks 297 of 493
tokens). With K from 1 to MAX_COMPONENTS, each cluster gets a component of its own.

Which components are the noise. The candidates are the lowest j components (by mean, j = 1 ..
K - 1), pooled into one population by their first two moments, whose weight is under MAX_SHARE:
- a signed score (runs.SIGNED_SCORES: influence, relative_influence, oracle) has a meaningful zero,
  below which the reference made the token less likely than the base model did; a candidate's
  components must all have their mean below 0;
- a score without a meaningful zero (reference_loss = -loss_ref, base_loss = -loss_base) has only
  its low end: the population of the highest losses.
MAX_SHARE: the pool is mostly right (the premise of learning from it; a reference trained on a
mostly wrong pool would have learnt the wrong answers, and no score of it could tell them), so
the noise is a minority, and a "population" holding half the tokens or more is not one.

Abstention by separation. A candidate is forgotten only when it is separated from the component
just above it (its nearest neighbour) by Ashman's D (Ashman, Bird & Zepf 1994, AJ 108, 2348):

    D = sqrt(2) |mu_low - mu_next| / sqrt(sd_low^2 + sd_next^2),   forgotten when D >= 2.

The statistic and its threshold are the literature's, fixed before any run: D > 2 is Ashman et
al.'s criterion for a clean separation of two Gaussian populations, and for two of equal weight
and width it is exactly the condition under which their mixture has two modes rather than one
(Delta > 2 sd), i.e. under which the data show two populations at all. It is scale-free, so it
means the same on the influence (nats), the relative influence (a ratio) and a loss. Of the
candidates, the best separated (the largest D; a tie: the fewer components) is the one judged;
when no candidate reaches D = 2, or there is none (one component; a signed score with no component
below 0; every low population a majority), the rule abstains: share 0, nothing is negative, and
partition.json's `estimate` says why.

What it cannot see: a noisy population that overlaps a clean one (both in one component, or
D < 2: abstains), clean tokens that form a separated population of their own at the low end
(forgotten as noise), and a broad component further above the neighbour (only the neighbour is
compared). A fit on fewer than MIN_TOKENS tokens is refused; a single distinct value is a single
population (abstains). Deterministic: a fixed quantile initialisation, seeded starts, and at most
MAX_FIT_TOKENS tokens (a seeded sample) in the fit.
"""
from __future__ import annotations

import math

import numpy as np

from workflow_scripts.files import InputError

MAX_COMPONENTS = 8
MIN_TOKENS = 20
MAX_FIT_TOKENS = 20_000
RANDOM_STARTS = 8
ITERATIONS = 300
TOLERANCE = 1e-8  # change of the mean log-likelihood per token that ends the EM
VARIANCE_FLOOR = 1e-4  # scores tied at one value (an oracle's -1 and 0) get a narrow, finite component
ZERO_MARGIN = 1e-6  # a component whose mean is within this of 0 sits at zero, not below it (float rounding)
SEPARATION = "Ashman's D"
SEPARATION_DEFINITION = "sqrt(2) |mu_low - mu_next| / sqrt(sd_low^2 + sd_next^2)"
SEPARATION_THRESHOLD = 2.0  # Ashman, Bird & Zepf (1994): D > 2 for a clean separation
MAX_SHARE = 0.5  # the noise is a minority of the tokens
FORGET, ABSTAIN = "forget", "abstain"


def ashman_d(mean_low: float, sd_low: float, mean_next: float, sd_next: float) -> float:
    """Ashman's D of two Gaussian populations: their means' distance in units of their pooled width."""
    return math.sqrt(2.0) * abs(mean_next - mean_low) / math.sqrt(sd_low ** 2 + sd_next ** 2)


def pooled(weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> tuple[float, float, float]:
    """(weight, mean, sd) of several components taken as one population (its first two moments)."""
    weight = float(weights.sum())
    mean = float((weights * means).sum() / weight)
    second = float((weights * (variances + means ** 2)).sum() / weight)
    return weight, mean, math.sqrt(max(second - mean ** 2, 0.0))


def fit_mixture(x: np.ndarray, k: int, seed: int = 0) -> dict:
    """A k-component 1-D Gaussian mixture by EM, the best of several deterministic starts (means at
    the data's quantiles; spread evenly over its range, which ties at one value cannot collapse;
    RANDOM_STARTS draws of k distinct values with a fixed seed): weights, means, variances, the
    log-likelihood and the AIC and BIC."""
    distinct = np.unique(x)
    rng = np.random.default_rng(seed)
    starts = [np.quantile(x, (np.arange(k) + 0.5) / k),
              np.linspace(x.min(), x.max(), k + 2)[1:-1] if k > 1 else np.array([x.mean()])]
    starts += [np.sort(rng.choice(distinct, k, replace=False)) for _ in range(RANDOM_STARTS if k > 1 else 0)]
    return max((_em(x, means) for means in starts), key=lambda fit: fit["log_likelihood"])


def _em(x: np.ndarray, means: np.ndarray) -> dict:
    k = len(means)
    variances = np.full(k, max(float(x.var()) / k, VARIANCE_FLOOR))
    weights = np.full(k, 1.0 / k)
    previous = -np.inf
    for _ in range(ITERATIONS):
        log_density = (np.log(weights) - 0.5 * np.log(2 * np.pi * variances)
                       - 0.5 * (x[:, None] - means) ** 2 / variances)
        top = log_density.max(axis=1, keepdims=True)
        log_total = top[:, 0] + np.log(np.exp(log_density - top).sum(axis=1))
        resp = np.exp(log_density - log_total[:, None])
        mean_ll = float(log_total.mean())
        mass = resp.sum(axis=0) + 1e-12
        weights = mass / len(x)
        means = (resp * x[:, None]).sum(axis=0) / mass
        variances = np.maximum((resp * (x[:, None] - means) ** 2).sum(axis=0) / mass, VARIANCE_FLOOR)
        if mean_ll - previous < TOLERANCE:
            break
        previous = mean_ll
    log_likelihood = mean_ll * len(x)
    order = np.argsort(means)
    parameters = 3 * k - 1
    return {"k": k, "weights": weights[order], "means": means[order], "variances": variances[order],
            "log_likelihood": log_likelihood, "aic": 2 * parameters - 2 * log_likelihood,
            "bic": parameters * np.log(len(x)) - 2 * log_likelihood}


def candidates(fit: dict, signed: bool) -> tuple[list[dict], str | None]:
    """The low populations the rule may forget (the lowest j components, j = 1 .. K - 1, each with
    its separation from component j), and why there is none (None: there are some)."""
    weights, means, variances = fit["weights"], fit["means"], fit["variances"]
    k = fit["k"]
    if k == 1:
        return [], "the mixture AIC prefers has one component: a single population, none separated from the rest"
    below = int(np.count_nonzero(means < -ZERO_MARGIN))
    if signed and below == 0:
        return [], (f"no component's mean is below 0 (the lowest: {means[0]:.4g}): no population lies below the "
                    "score's zero")
    out = []
    for j in range(1, (min(below, k - 1) if signed else k - 1) + 1):
        weight, mean, sd = pooled(weights[:j], means[:j], variances[:j])
        if weight >= MAX_SHARE:
            break
        next_sd = math.sqrt(variances[j])
        out.append({"components": j, "weight": weight, "mean": mean, "sd": sd, "neighbour_mean": float(means[j]),
                    "neighbour_sd": next_sd,
                    "d": ashman_d(mean, sd, float(means[j]), next_sd)})
    if not out:
        return [], (f"the lowest component holds {weights[0]:.3f} of the tokens, not a minority "
                    f"(a population of noise holds less than {MAX_SHARE:g})")
    return out, None


def judge(fit: dict, signed: bool, n_tokens: int) -> dict:
    """The decision on a fitted mixture: the best separated low population forgotten where its
    Ashman's D reaches SEPARATION_THRESHOLD (share: its weight), else abstain (share 0); why, and
    every candidate with its D."""
    found, reason = candidates(fit, signed)
    chosen = max(found, key=lambda c: (c["d"], -c["components"])) if found else None
    separated = chosen is not None and chosen["d"] >= SEPARATION_THRESHOLD
    if chosen is not None:
        population = (f"the lowest {chosen['components']} component(s), weight {chosen['weight']:.4f}, mean "
                      f"{chosen['mean']:.4g}, sd {chosen['sd']:.4g}, against the next (mean "
                      f"{chosen['neighbour_mean']:.4g}, sd {chosen['neighbour_sd']:.4g})")
        reason = (f"separated: {SEPARATION} {chosen['d']:.3f} >= {SEPARATION_THRESHOLD:g} ({population})" if separated
                  else f"not separated: {SEPARATION} {chosen['d']:.3f} < {SEPARATION_THRESHOLD:g} ({population})")
    if separated and round(chosen["weight"] * n_tokens) == 0:
        separated = False
        reason = f"the separated population holds {chosen['weight'] * n_tokens:.2f} of {n_tokens} tokens: no token"
    return {
        "share": float(chosen["weight"]) if separated else 0.0,
        "decision": FORGET if separated else ABSTAIN,
        "reason": reason,
        "separation": {"statistic": SEPARATION, "definition": SEPARATION_DEFINITION,
                       "value": None if chosen is None else float(chosen["d"]), "threshold": SEPARATION_THRESHOLD,
                       "components": None if chosen is None else chosen["components"]},
        "candidates": found,
        "noise_components": chosen["components"] if separated else 0,
    }


def estimate_noise_share(scores: np.ndarray, signed: bool = True, seed: int = 0) -> dict:
    """{'share', 'decision', 'reason', 'separation', 'components', ...}: the weight of the low
    population of the mixture AIC prefers, where it is separated from the rest (decision
    'forget'), else 0 (decision 'abstain'). `signed`: the score's zero means something (the low
    population lies below it)."""
    x = np.asarray(scores, dtype=np.float64)
    n = len(x)
    if n < MIN_TOKENS:
        raise InputError(f"estimated_share: {n} tokens are too few to fit a mixture (at least {MIN_TOKENS})")
    if not np.isfinite(x).all():
        raise InputError("estimated_share: the scores hold NaN or infinite values")
    distinct = len(np.unique(x[: MAX_FIT_TOKENS * 10]))
    if n > MAX_FIT_TOKENS:
        x = np.random.default_rng(seed).choice(x, MAX_FIT_TOKENS, replace=False)
    fits = [fit_mixture(x, k, seed) for k in range(1, min(MAX_COMPONENTS, distinct) + 1)]
    best = min(fits, key=lambda fit: fit["aic"])
    decision = judge(best, signed, n)
    noise = np.arange(best["k"]) < decision.pop("noise_components")
    return {
        **decision,
        "method": ("1-D Gaussian mixture, K by AIC; noise = the lowest components"
                   + (" (means below 0)" if signed else "") + f", pooled, a minority (< {MAX_SHARE:g}), "
                   f"forgotten only when {SEPARATION} to the next component is >= {SEPARATION_THRESHOLD:g}"),
        "signed": signed,
        "k": best["k"],
        "components": [{"weight": float(w), "mean": float(m), "sd": float(np.sqrt(v)), "noise": bool(b)}
                       for w, m, v, b in zip(best["weights"], best["means"], best["variances"], noise)],
        "aic_by_k": {str(fit["k"]): float(fit["aic"]) for fit in fits},
        "bic_by_k": {str(fit["k"]): float(fit["bic"]) for fit in fits},
        "fit_tokens": len(x),
    }
