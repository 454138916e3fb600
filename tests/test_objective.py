"""The Forgetting loss and lambda schedules on cases small enough to check on paper."""
import math

import pytest
import torch

from workflow_scripts.objective import forgetting_loss, forgetting_loss_at, lambda_at, next_token_positions

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
                     "n_positive": 1, "n_negative": 1, "lambda": 0.5}
    loss.backward()
    assert logits.grad[0, 2].abs().sum() == 0  # the last position predicts nothing


def test_empty_sets_contribute_zero():
    logits, labels, positive, _ = one_row_case()
    none = torch.zeros_like(positive)
    loss, stats = forgetting_loss(logits, labels, positive, none, lam=0.25)
    assert loss.item() == pytest.approx(LN2, abs=1e-6)
    assert stats["n_negative"] == 0 and stats["negative_ce"] == 0.0
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
    loss, _ = forgetting_loss(logits, labels, positive, negative, lam=0.5, forget_loss="unlikelihood")
    # p(token) = 1/3 for the negative token: -log(1 - 1/3) = log 1.5
    assert loss.item() == pytest.approx(LN2 + 0.5 * math.log(1.5), abs=1e-6)
    with pytest.raises(ValueError, match="unknown forget loss 'nope'"):
        forgetting_loss(logits, labels, positive, negative, lam=0.5, forget_loss="nope")


def test_logits_at_selected_positions_equal_full_logits():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 11)
    labels = torch.tensor([[-100, -100, 4, 5, -100, -100], [-100, 1, 2, -100, -100, -100], [-100] * 5 + [7]])
    positive = torch.rand(3, 6) > 0.4
    negative = ~positive
    positions = next_token_positions(labels)
    assert positions.tolist() == [0, 1, 2, 4]
    full, full_stats = forgetting_loss(logits, labels, positive, negative, lam=0.2)
    kept, kept_stats = forgetting_loss_at(logits[:, positions], positions, labels, positive, negative, lam=0.2)
    assert kept.item() == pytest.approx(full.item(), abs=1e-6)
    assert kept_stats == pytest.approx(full_stats)


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
