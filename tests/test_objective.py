"""The Forgetting loss (ascent, unlikelihood, npo) and lambda schedules on cases small enough to check on paper."""
import math

import pytest
import torch

from workflow_scripts.objective import (forgetting_loss, forgetting_loss_at, lambda_at, negative_term,
                                        next_token_positions)

LN2, LN3 = math.log(2), math.log(3)


def one_row_case():
    # V = 3. Position 0 predicts labels[1] = 0 with probs (1/2, 1/4, 1/4): CE = ln 2.
    # Position 1 predicts labels[2] = 1 with uniform probs: CE = ln 3. Position 2 predicts nothing.
    logits = torch.tensor([[[LN2, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, -5.0, 0.0]]], requires_grad=True)
    labels = torch.tensor([[-100, 0, 1]])
    positive = torch.tensor([[True, True, False]])  # t = 0 carries no label: never counted
    negative = torch.tensor([[False, False, True]])
    return logits, labels, positive, negative


def test_ascent_loss_hand_computed():
    logits, labels, positive, negative = one_row_case()
    loss, stats = forgetting_loss(logits, labels, positive, negative, lam=0.5)
    assert loss.item() == pytest.approx(LN2 - 0.5 * LN3, abs=1e-6)  # 0.143841
    assert stats == {"positive_ce": pytest.approx(LN2, abs=1e-6), "negative_ce": pytest.approx(LN3, abs=1e-6),
                     "n_positive": 1, "n_negative": 1, "lambda": 0.5,
                     "negative_term": pytest.approx(-LN3, abs=1e-6)}  # ascent: the term lambda weighs is -CE
    loss.backward()
    assert logits.grad[0, 2].abs().sum() == 0  # the last position predicts nothing


def test_empty_sets_contribute_zero():
    logits, labels, positive, _ = one_row_case()
    none = torch.zeros_like(positive)
    loss, stats = forgetting_loss(logits, labels, positive, none, lam=0.25)
    assert loss.item() == pytest.approx(LN2, abs=1e-6)
    assert stats["n_negative"] == 0 and stats["negative_ce"] == 0.0 and stats["negative_term"] == 0.0
    loss, _ = forgetting_loss(logits, labels, none, none, lam=0.25)
    assert loss.item() == 0.0


def test_means_are_over_tokens_of_the_batch_not_examples():
    # Row 0: one positive token with CE ln 2; row 1: three positive tokens with CE ln 3 each.
    v = 3
    logits = torch.zeros(2, 4, v)
    logits[0, 0] = torch.tensor([LN2, 0.0, 0.0])
    labels = torch.tensor([[-100, 0, -100, -100], [-100, 1, 2, 0]])
    positive = labels != -100
    loss, stats = forgetting_loss(logits, labels, positive, torch.zeros_like(positive), lam=0.1)
    assert loss.item() == pytest.approx((LN2 + 3 * LN3) / 4, abs=1e-6)
    assert stats["n_positive"] == 4


def test_unlikelihood_is_bounded_negative_term():
    logits, labels, positive, negative = one_row_case()
    loss, stats = forgetting_loss(logits, labels, positive, negative, lam=0.5, forget_loss="unlikelihood")
    # p(token) = 1/3 for the negative token: -log(1 - 1/3) = log 1.5
    assert loss.item() == pytest.approx(LN2 + 0.5 * math.log(1.5), abs=1e-6)
    assert stats["negative_term"] == pytest.approx(math.log(1.5), abs=1e-6)
    with pytest.raises(ValueError, match="unknown forget loss 'nope'"):
        forgetting_loss(logits, labels, positive, negative, lam=0.5, forget_loss="nope")


@pytest.mark.parametrize("forget_loss", ["ascent", "npo"])
def test_logits_at_selected_positions_equal_full_logits(forget_loss):
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 11)
    labels = torch.tensor([[-100, -100, 4, 5, -100, -100], [-100, 1, 2, -100, -100, -100], [-100] * 5 + [7]])
    positive = torch.rand(3, 6) > 0.4
    negative = ~positive
    npo = {"beta": 0.7, "base_loss": torch.rand(3, 6) * 4} if forget_loss == "npo" else {}
    positions = next_token_positions(labels)
    assert positions.tolist() == [0, 1, 2, 4]
    full, full_stats = forgetting_loss(logits, labels, positive, negative, lam=0.2, forget_loss=forget_loss, **npo)
    kept, kept_stats = forgetting_loss_at(logits[:, positions], positions, labels, positive, negative, lam=0.2,
                                          forget_loss=forget_loss, **npo)
    assert kept.item() == pytest.approx(full.item(), abs=1e-6)
    assert kept_stats == pytest.approx(full_stats)


# ---------------------------------------------------------------- npo

def npo_case():
    # V = 2, one row. Positives: t = 1 predicted with p 3/4 (CE ln 4/3), t = 2 with p 1/2 (CE ln 2).
    # Negatives: t = 3 with p 1/4 (CE ln 4) where the base model had p 1/2 (base CE ln 2): forgotten
    # by half; t = 4 with p 1/2 (CE ln 2) where the base had p 1/4 (base CE ln 4): twice as likely.
    logits = torch.tensor([[[LN3, 0.0], [0.0, 0.0], [0.0, LN3], [0.0, 0.0], [0.0, 0.0]]], requires_grad=True)
    labels = torch.tensor([[-100, 0, 1, 0, 1]])
    positive = torch.tensor([[False, True, True, False, False]])
    negative = torch.tensor([[False, False, False, True, True]])
    # Base CE of the positives (and of t = 0, which predicts nothing) must not matter: absurd values.
    base_loss = torch.tensor([[-7.0, 100.0, 100.0, LN2, math.log(4)]])
    return logits, labels, positive, negative, base_loss


def test_npo_loss_hand_computed():
    logits, labels, positive, negative, base_loss = npo_case()
    beta, lam = 0.5, 0.25
    loss, stats = forgetting_loss(logits, labels, positive, negative, lam, "npo", beta=beta, base_loss=base_loss)
    # npo_t = (2 / beta) * log(1 + (p / p_base)^beta): ratios 1/2 and 2.
    npo_3 = 2 / beta * math.log(1 + 0.5 ** beta)  # 2.1392
    npo_4 = 2 / beta * math.log(1 + 2 ** beta)  # 3.5255
    positive_mean = (math.log(4 / 3) + LN2) / 2
    assert stats["negative_term"] == pytest.approx((npo_3 + npo_4) / 2, abs=1e-5)
    assert loss.item() == pytest.approx(positive_mean + lam * (npo_3 + npo_4) / 2, abs=1e-5)  # 1.1985
    assert stats["positive_ce"] == pytest.approx(positive_mean, abs=1e-6)
    assert stats["negative_ce"] == pytest.approx((math.log(4) + LN2) / 2, abs=1e-6)
    assert (stats["n_positive"], stats["n_negative"], stats["lambda"]) == (2, 2, lam)

    # d loss / d z_target of a negative token = lam / n_neg * d npo / d CE * d CE / d z
    # = lam / 2 * (-2 * sigmoid(beta * (CE_base - CE))) * (p - 1): positive, so a descent step lowers p.
    loss.backward()
    sigmoid = 1 / (1 + math.exp(-beta * (LN2 - math.log(4))))  # t = 3: 1 / (1 + sqrt 2)
    assert logits.grad[0, 2, 0].item() == pytest.approx(lam * sigmoid * (1 - 1 / 4), abs=1e-6)
    sigmoid = 1 / (1 + math.exp(-beta * (math.log(4) - LN2)))  # t = 4: sqrt 2 / (1 + sqrt 2)
    assert logits.grad[0, 3, 1].item() == pytest.approx(lam * sigmoid * (1 - 1 / 2), abs=1e-6)
    assert logits.grad[0, 2, 0] > 0 and logits.grad[0, 3, 1] > 0
    assert logits.grad[0, 4].abs().sum() == 0  # the last position predicts nothing


@pytest.mark.parametrize("beta", [0.1, 1.0, 4.0])
def test_npo_equals_2_log2_over_beta_where_the_model_is_the_base(beta):
    logits, labels, positive, negative, _ = npo_case()
    base_loss = torch.tensor([[0.0, 0.0, 0.0, math.log(4), LN2]])  # the model's own CE of the negatives
    loss, stats = forgetting_loss(logits, labels, positive, negative, 0.3, "npo", beta=beta, base_loss=base_loss)
    assert stats["negative_term"] == pytest.approx(2 / beta * LN2, rel=1e-6)
    assert loss.item() == pytest.approx((math.log(4 / 3) + LN2) / 2 + 0.3 * 2 / beta * LN2, rel=1e-6)


def test_npo_gradient_is_bounded_and_fades_as_the_token_is_forgotten():
    beta, base = 2.0, 1.5
    ce = torch.tensor([0.01, 0.5, 1.5, 3.0, 6.0, 12.0, 40.0], requires_grad=True)
    negative = torch.ones_like(ce, dtype=torch.bool)
    term = negative_term(ce, negative, "npo", beta, torch.full_like(ce, base))
    (term * len(ce)).backward()  # the sum: each token's own d npo_t / d CE
    expected = [-2 / (1 + math.exp(-beta * (base - c))) for c in ce.tolist()]
    assert ce.grad.tolist() == pytest.approx(expected, abs=1e-6)
    assert ce.grad.abs().max() <= 2
    assert (ce.grad.abs().diff() < 0).all()  # the more forgotten, the weaker the pull ...
    assert abs(ce.grad[-1].item()) < 1e-30  # ... down to nothing, where ascent pulls at -1 forever
    ascent = torch.tensor([40.0], requires_grad=True)
    negative_term(ascent, torch.tensor([True]), "ascent").backward()
    assert ascent.grad.item() == -1.0
    # Far more likely than under the base model (r = 50, beta r = 500): no overflow, gradient -2.
    ce = torch.tensor([1.0], requires_grad=True)
    term = negative_term(ce, torch.tensor([True]), "npo", 10.0, torch.tensor([51.0]))
    term.backward()
    assert term.item() == pytest.approx(2 / 10 * 500, rel=1e-6) and ce.grad.item() == pytest.approx(-2.0)


def test_npo_needs_beta_and_base_loss():
    logits, labels, positive, negative, base_loss = npo_case()
    with pytest.raises(ValueError, match="'npo' needs beta$"):
        forgetting_loss(logits, labels, positive, negative, 0.1, "npo", base_loss=base_loss)
    with pytest.raises(ValueError, match="'npo' needs base_loss$"):
        forgetting_loss(logits, labels, positive, negative, 0.1, "npo", beta=1.0)
    with pytest.raises(ValueError, match="'npo' needs beta and base_loss"):
        forgetting_loss(logits, labels, positive, negative, 0.1, "npo")
    with pytest.raises(ValueError, match="beta > 0, got 0"):
        forgetting_loss(logits, labels, positive, negative, 0.1, "npo", beta=0.0, base_loss=base_loss)


def test_npo_without_negatives_is_the_positive_mean():
    logits, labels, positive, _, base_loss = npo_case()
    none = torch.zeros_like(positive)
    loss, stats = forgetting_loss(logits, labels, positive, none, 0.5, "npo", beta=0.5, base_loss=base_loss)
    assert loss.item() == pytest.approx((math.log(4 / 3) + LN2) / 2, abs=1e-6)
    positive_only, _ = forgetting_loss(logits, labels, positive, none, 0.5, None)
    assert loss.item() == positive_only.item()  # exactly: the empty term adds 0
    assert stats["negative_term"] == 0.0 and stats["n_negative"] == 0


@pytest.mark.parametrize("step,expected", [(0, 1e-5), (10, 0.25), (5, 1e-5 + (0.25 - 1e-5) / 2)])
def test_lambda_linear(step, expected):
    assert lambda_at(step, 11, 1e-5, 0.25, "linear") == pytest.approx(expected)


def test_lambda_constant_and_cosine():
    assert lambda_at(3, 10, 0.0, 0.25, schedule="constant") == 0.25
    assert lambda_at(0, 10, 0.0, 0.2, schedule="cosine") == pytest.approx(0.0)
    assert lambda_at(5, 10, 0.0, 0.2, schedule="cosine") == pytest.approx(0.1)
    assert lambda_at(10, 10, 0.0, 0.2, schedule="cosine") == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown lambda schedule"):
        lambda_at(0, 10, 0, 1, schedule="step")


def test_rho1_selective_loss_keeps_top_excess_tokens():
    from workflow_scripts.objective import selective_loss_at

    # V = 2. CE of the four response tokens: ln(4/3), ln 2, ln 4, ln 4.
    logits = torch.zeros(1, 5, 2)
    logits[0, 0] = torch.tensor([LN3, 0.0])   # predicts 0 with p 3/4
    logits[0, 2] = torch.tensor([0.0, LN3])   # predicts 0 with p 1/4
    logits[0, 3] = torch.tensor([LN3, 0.0])   # predicts 1 with p 1/4
    labels = torch.tensor([[-100, 0, 0, 0, 1]])
    response = labels != -100
    reference = torch.tensor([[0.0, 0.0, 0.0, math.log(4), 0.0]])
    # Excess = CE - reference CE: ln(4/3), ln 2, 0, ln 4 -> keep 50%: the 4th and the 2nd token.
    positions = torch.arange(4)
    loss, stats = selective_loss_at(logits[:, :4], positions, labels, response, reference, keep=0.5)
    assert loss.item() == pytest.approx((math.log(4) + LN2) / 2, abs=1e-6)
    assert stats["n_positive"] == 2 and stats["n_negative"] == 2
    assert stats["negative_ce"] == pytest.approx((math.log(4 / 3) + math.log(4)) / 2, abs=1e-6)
    loss, stats = selective_loss_at(logits[:, :4], positions, labels, response, reference, keep=0.1)
    assert stats["n_positive"] == 1 and loss.item() == pytest.approx(math.log(4), abs=1e-6)
