"""Losses: soft BPR equals BPR on the positive-dominated mixed negative (eq. 5 / eq. 7), its
gradient is scaled by Δ (eq. 9), M negatives per pair, AdvIR's adversarial BPR, the registry."""

import pytest
import torch

from softbpr.config import PRESETS, LossConfig, load
from softbpr.losses import (
    BPR,
    LOSSES,
    AdvBPR,
    Loss,
    MixedBPR,
    SoftBPR,
    build_loss,
    gradient_weight,
    l2_penalty,
)


def leaves(seed=0, B=7, d=5, M=None):
    g = torch.Generator().manual_seed(seed)
    shapes = [(B, d), (B, d), (B, d) if M is None else (B, M, d)]
    return [torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)
            for s in shapes]


@pytest.mark.parametrize("M", [None, 3])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 0.9, 0.95])
def test_soft_bpr_equals_mixing_in_value_and_gradient(alpha, M):
    u1, p1, n1 = leaves(M=M)
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
    torch.testing.assert_close(gradient_weight(diff, 0.8), 1 - torch.sigmoid(0.2 * diff))


@pytest.mark.parametrize("M", [None, 4])
def test_soft_bpr_gradient_is_scaled_by_delta_eq9(M):
    """The real SoftBPR's gradients, against eq. 9 with Δ from `gradient_weight` (the function
    the trainer logs): for L = mean over the N = B·M terms of −ln σ((1−α)(ŷ_ui − ŷ_uj)),
        ∂L/∂e_j = (1−α) Δ e_u / N,  ∂L/∂e_i = −(1−α) Σ_j Δ e_u / N,
        ∂L/∂e_u = −(1−α) Σ_j Δ (e_i − e_j) / N."""
    alpha, B = 0.7, 7
    u, p, n = leaves(2, B=B, M=M)
    SoftBPR(alpha)(u, p, n).backward()
    with torch.no_grad():
        nn = n if M is not None else n.unsqueeze(1)  # [B, M, d]
        diff = (u * p).sum(-1, keepdim=True) - (u.unsqueeze(1) * nn).sum(-1)  # [B, M]
        w = (1 - alpha) * gradient_weight(diff, alpha) / diff.numel()  # [B, M]
        grad_n = w.unsqueeze(-1) * u.unsqueeze(1)
        grad_p = -w.sum(1, keepdim=True) * u
        grad_u = -(w.unsqueeze(-1) * (p.unsqueeze(1) - nn)).sum(1)
    torch.testing.assert_close(n.grad, grad_n if M is not None else grad_n.squeeze(1))
    torch.testing.assert_close(p.grad, grad_p)
    torch.testing.assert_close(u.grad, grad_u)


# The BPR family averages M negatives; the softmax family scores them as one set.
AVERAGING = {"bpr", "soft_bpr", "mixed_bpr", "adv_bpr", "hard_bpr"}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_m_negatives_average_the_one_negative_losses(name):
    u, p, n = leaves(3, M=4)
    loss = build_loss(LossConfig(name=name))
    each = [loss(u, p, n[:, m]) for m in range(4)]
    mean = torch.stack(each).mean().item()
    if name in AVERAGING - {"adv_bpr"}:  # (adv_bpr's δ_u depends on all M negatives)
        assert loss(u, p, n).item() == pytest.approx(mean, rel=1e-12)
    elif name not in AVERAGING:  # a set of M negatives is not the mean of M singletons
        assert loss(u, p, n).item() != pytest.approx(mean, rel=1e-6)
    # one negative as [B, d] or [B, 1, d]: the same loss
    assert loss(u, p, n[:, :1]).item() == pytest.approx(each[0].item(), rel=1e-12)


def test_stable_for_huge_gaps():
    u = torch.full((2, 1), 100.0)
    p = torch.tensor([[100.0], [-100.0]])
    n = torch.tensor([[-100.0], [100.0]])  # gaps of +2e4 and -2e4
    for loss in (BPR(), SoftBPR(0.5), MixedBPR(0.5), AdvBPR(0.01, 1.0)):
        assert torch.isfinite(loss(u, p, n))
    assert BPR()(u, p, n).item() == pytest.approx(2e4 / 2, rel=1e-6)  # mean of 0 and 2e4


def test_l2_penalty():
    a = torch.ones(4, 3)
    assert l2_penalty(a, 2 * a).item() == pytest.approx((12 + 48) / 2 / 4)


# ------------------------------------------------------------------------ registry and config

@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_builds_from_its_config_section(name):
    cfg = LossConfig(name=name)
    loss = build_loss(cfg)
    assert type(loss) is LOSSES[name] and isinstance(loss, Loss)
    assert loss.alpha == cfg.alpha  # α's default lives in LossConfig only


def test_every_preset_builds_its_loss_with_the_configured_options():
    for preset in PRESETS:
        e = load(overrides={"preset": preset})
        assert type(build_loss(e.loss)) is LOSSES[e.loss.name]
    assert build_loss(load(overrides={"preset": "sdns", "alpha": 0.6}).loss).alpha == 0.6
    adv = build_loss(load(overrides={"preset": "advir", "eps": 0.2, "adv_weight": 2}).loss)
    assert (adv.eps, adv.weight, adv.alpha) == (0.2, 2.0, 0.0)


def test_unknown_loss_lists_the_choices():
    class Cfg:
        name = "hinge"
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*soft_bpr"):
        build_loss(Cfg())


# ------------------------------------------------------------------------- adversarial BPR

@pytest.mark.parametrize("eps", [0.05, 0.5, 3.0])
def test_advir_perturbation_is_bounded_by_eps_and_raises_the_loss(eps):
    gg = torch.Generator().manual_seed(0)
    u, p, n = [torch.randn(16, 6, generator=gg, dtype=torch.float64, requires_grad=True)
               for _ in range(3)]
    loss = AdvBPR(eps=eps, weight=1.0)
    total = loss(u, p, n)
    clean = BPR()(u, p, n)
    for d in loss.last_delta:
        norms = d.norm(dim=1)
        assert (norms <= eps * (1 + 1e-9)).all()
        torch.testing.assert_close(norms, torch.full_like(norms, eps))  # on the ε-sphere
    adv = total - clean
    assert adv.item() > clean.item()  # the ascent direction increases the BPR loss
    total.backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()
    # ε = 0: the adversarial term is the clean loss again
    assert AdvBPR(eps=0.0, weight=0.5)(u, p, n).item() == pytest.approx(1.5 * clean.item())
    with torch.no_grad():  # also defined without an autograd graph
        assert torch.isfinite(loss(u, p, n))
