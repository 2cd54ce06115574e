"""Losses: soft BPR equals BPR on the positive-dominated mixed negative (eq. 5 / eq. 7)."""

import pytest
import torch
import torch.nn.functional as F

from softbpr.losses import BPR, MixedBPR, SoftBPR, build_loss, gradient_weight, l2_penalty


def leaves(seed=0, B=7, d=5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, d, generator=g, dtype=torch.float64, requires_grad=True)
            for _ in range(3)]


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 0.9, 0.95])
def test_soft_bpr_equals_mixing_in_value_and_gradient(alpha):
    u1, p1, n1 = leaves()
    u2, p2, n2 = [x.detach().clone().requires_grad_(True) for x in (u1, p1, n1)]
    a = SoftBPR(alpha)(u1, p1, n1)
    b = MixedBPR(alpha)(u2, p2, n2)
    assert a.item() == pytest.approx(b.item(), rel=1e-12, abs=1e-12)
    a.backward()
    b.backward()
    for x, y in ((u1, u2), (p1, p2), (n1, n2)):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-10, atol=1e-12)


def test_soft_bpr_closed_form_and_alpha_zero_is_bpr():
    u, p, n = leaves(1)
    diff = (u * p).sum(-1) - (u * n).sum(-1)
    expect = -torch.log(torch.sigmoid(0.2 * diff)).mean()
    assert SoftBPR(0.8)(u, p, n).item() == pytest.approx(expect.item(), rel=1e-10)
    assert SoftBPR(0.0)(u, p, n).item() == pytest.approx(BPR()(u, p, n).item(), rel=1e-12)
    # gradient weight of eq. 8/9
    torch.testing.assert_close(gradient_weight(diff, 0.8), 1 - torch.sigmoid(0.2 * diff))


def test_stable_for_huge_gaps():
    u = torch.full((2, 1), 100.0)
    p = torch.tensor([[100.0], [-100.0]])
    n = torch.tensor([[-100.0], [100.0]])  # gaps of +2e4 and -2e4
    for loss in (BPR(), SoftBPR(0.5), MixedBPR(0.5)):
        v = loss(u, p, n)
        assert torch.isfinite(v)
    assert BPR()(u, p, n).item() == pytest.approx(2e4 / 2, rel=1e-6)  # mean of 0 and 2e4


def test_gradient_scaling_matches_eq9():
    """d L_soft / d diff = -(1-α) (1 - σ((1-α) diff)) / B  (eq. 9)."""
    alpha, B = 0.7, 7
    u, p, n = leaves(2, B=B)
    diff = ((u * p).sum(-1) - (u * n).sum(-1)).detach().requires_grad_(True)
    loss = -F.logsigmoid((1 - alpha) * diff).mean()
    loss.backward()
    torch.testing.assert_close(diff.grad, -(1 - alpha) * gradient_weight(diff.detach(), alpha) / B)


def test_alpha_validation_and_l2():
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            SoftBPR(bad)
    with pytest.raises(ValueError, match="no alpha"):
        build_loss("bpr", 0.5)
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("hinge", 0.0)
    a = torch.ones(4, 3)
    assert l2_penalty(a, 2 * a).item() == pytest.approx((12 + 48) / 2 / 4)
