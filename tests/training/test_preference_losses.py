"""The BiPO and RePS losses against hand-computed values."""

import math

import pytest
import torch

from steerkit.training.preference import bipo_loss, reps_loss


def _softplus(x: float) -> float:
    """``−log σ(−x) = log(1 + e^x)``, computed independently of torch."""
    return math.log1p(math.exp(x))


def test_bipo_loss_both_directions_by_hand():
    # margin = (−10 − (−11)) − (−12 − (−11)) = 2; β·margin = 0.2
    args = [torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]), torch.tensor([-11.0])]
    assert bipo_loss(*args, 1.0).item() == pytest.approx(_softplus(-0.2))
    assert bipo_loss(*args, -1.0).item() == pytest.approx(_softplus(0.2))
    assert bipo_loss(*args, 1.0, beta=0.5).item() == pytest.approx(_softplus(-1.0))


def test_bipo_loss_takes_one_direction_per_row_and_leaves_the_reference_without_gradient():
    steered_target = torch.tensor([-10.0, -10.0], requires_grad=True)
    unsteered_target = torch.tensor([-11.0, -11.0], requires_grad=True)
    losses = bipo_loss(steered_target, torch.tensor([-12.0, -12.0]), unsteered_target, torch.tensor([-11.0, -11.0]),
                       torch.tensor([1.0, -1.0]))
    assert losses.tolist() == pytest.approx([_softplus(-0.2), _softplus(0.2)])
    losses.sum().backward()
    assert unsteered_target.grad is None
    # d/ds of −log σ(d·β·(s − c)) = −d·β·σ(−d·β·(s − c))
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert steered_target.grad.tolist() == pytest.approx([-0.1 * sigmoid(-0.2), 0.1 * sigmoid(0.2)])


def test_reps_loss_by_hand_with_and_without_the_weight_clamp():
    losses = reps_loss(
        steered_preferred=torch.tensor([-6.0, -6.0]), steered_other=torch.tensor([-4.0, -4.0]),
        preferred_tokens=torch.tensor([3, 3]), other_tokens=torch.tensor([4, 4]),
        unsteered_preferred=torch.tensor([-9.0, -5.0]), unsteered_other=torch.tensor([-5.0, -9.0]),
    )
    # row 0: w = max(−5 + 9, 1) = 4, logit = 4·(−6/3) − (−4/4) = −7
    # row 1: w = max(−9 + 5, 1) = 1, logit = −6/3 + 1 = −1
    assert losses.tolist() == pytest.approx([_softplus(7.0), _softplus(1.0)])


def test_reps_loss_is_length_normalised_and_reference_free():
    def loss(preferred, tokens):
        return reps_loss(torch.tensor([preferred]), torch.tensor([-8.0]), torch.tensor([tokens]), torch.tensor([4]),
                         torch.tensor([-3.0]), torch.tensor([-3.0])).item()

    # the same per-token log-likelihood over twice the tokens gives the same loss
    assert loss(-6.0, 3) == pytest.approx(loss(-12.0, 6))
    # the unsteered log-probs only set the weight (clamped at 1 here): shifting them both changes nothing
    shifted = reps_loss(torch.tensor([-6.0]), torch.tensor([-8.0]), torch.tensor([3]), torch.tensor([4]),
                        torch.tensor([-40.0]), torch.tensor([-40.0])).item()
    assert shifted == pytest.approx(loss(-6.0, 3)) == pytest.approx(_softplus(-(-2.0 + 2.0)))


def test_reps_weight_gets_no_gradient():
    unsteered_preferred = torch.tensor([-9.0], requires_grad=True)
    steered = torch.tensor([-6.0], requires_grad=True)
    reps_loss(steered, torch.tensor([-4.0]), torch.tensor([3]), torch.tensor([4]), unsteered_preferred,
              torch.tensor([-5.0])).sum().backward()
    assert unsteered_preferred.grad is None
    # d/ds of −log σ(w·s/3 − c) with w = 4, logit = −7: −(4/3)·σ(7)
    assert steered.grad.item() == pytest.approx(-(4 / 3) / (1 + math.exp(-7.0)))
