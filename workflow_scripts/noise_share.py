"""The share of noisy tokens, estimated from a signed token score alone (partition rule estimated_share).

A signed score (runs.SIGNED_SCORES) has a meaningful zero: for the influence, loss_base - loss_ref,
a token below 0 is one the reference made *less* likely than the base model did. The noisy share
is then the weight of the score distribution's populations that sit below zero, in the manner of
noisy-label learning (DivideMix fits a mixture to per-sample losses; Co-teaching forgets at the
noise rate): not the share of tokens below zero, which counts the clean tokens that scatter below
it and misses the noisy ones that scatter above.

Why a mixture with several components, K chosen by AIC (docs/methods.md says why not BIC): token
scores cluster by position (on the number-words pool the influence of an end-of-turn token averages
4.3, a first digit 3.2, a clean units digit 0.2, a corrupted digit -2 to -3), so a two-component fit
splits clean positions from each other rather than clean from noisy (there it marks 297 of 493
tokens). With K from 1 to MAX_COMPONENTS, each cluster gets a component of its own, and the noise
is the components whose mean is below zero.

Where it fails, and says so in partition.json's `estimate`: when the noise does not lower the score
(no component below zero: the estimate is 0, nothing is forgotten), when clean tokens form a
population below zero of their own (counted as noise), and when a noisy population overlaps a clean
one so that one component holds both. A fit on fewer than MIN_TOKENS tokens or fewer than two
distinct values is refused. Deterministic: a fixed quantile initialisation, no random starts, and
at most MAX_FIT_TOKENS tokens (a seeded sample) in the fit.
"""
from __future__ import annotations

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


def estimate_noise_share(scores: np.ndarray, seed: int = 0) -> dict:
    """{'share', 'components', 'aic_by_k', ...}: the weight of the components whose mean is below
    zero, of the mixture AIC prefers."""
    x = np.asarray(scores, dtype=np.float64)
    if len(x) < MIN_TOKENS:
        raise InputError(f"estimated_share: {len(x)} tokens are too few to fit a mixture (at least {MIN_TOKENS})")
    if not np.isfinite(x).all():
        raise InputError("estimated_share: the scores hold NaN or infinite values")
    distinct = len(np.unique(x[: MAX_FIT_TOKENS * 10]))
    if distinct < 2:
        raise InputError(f"estimated_share: every score is {x[0]:g}: one value has no populations to tell apart")
    if len(x) > MAX_FIT_TOKENS:
        x = np.random.default_rng(seed).choice(x, MAX_FIT_TOKENS, replace=False)
    fits = [fit_mixture(x, k, seed) for k in range(1, min(MAX_COMPONENTS, distinct) + 1)]
    best = min(fits, key=lambda fit: fit["aic"])
    below = best["means"] < -ZERO_MARGIN
    share = float(best["weights"][below].sum())
    return {
        "share": share,
        "method": "1-D Gaussian mixture, K by AIC; noise = the components with a mean below 0",
        "k": best["k"],
        "components": [{"weight": float(w), "mean": float(m), "sd": float(np.sqrt(v)), "noise": bool(b)}
                       for w, m, v, b in zip(best["weights"], best["means"], best["variances"], below)],
        "aic_by_k": {str(fit["k"]): float(fit["aic"]) for fit in fits},
        "bic_by_k": {str(fit["k"]): float(fit["bic"]) for fit in fits},
        "fit_tokens": len(x),
        "warning": None if below.any() else "no component below 0: the score finds no noise here, nothing is negative",
    }
