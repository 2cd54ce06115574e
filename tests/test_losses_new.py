"""The losses beyond the paper: Hard-BPR, Softmax(ρ, N), SL, BSL and PSL against hand-computed
values and their gradients (torch.autograd), and the softening of the softmax losses: what it
equals (SL: a temperature), and that it is the positive-dominated mixing of each negative."""

import math

import pytest
import torch
import torch.nn.functional as F

from softbpr.config import LossConfig, load
from softbpr.losses import BPR, BSL, LOSSES, PSL, HardBPR, SampledSoftmax, SoftmaxBPR, build_loss

NEW = ["hard_bpr", "softmax_bpr", "sl", "bsl", "psl"]


def leaves(seed=0, B=5, d=4, M=3):
    g = torch.Generator().manual_seed(seed)
    shapes = [(B, d), (B, d), (B, M, d)]
    return [torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)
            for s in shapes]


def clones(*xs):
    return [x.detach().clone().requires_grad_(True) for x in xs]


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


# Two pairs, d = 2, two negatives each, chosen so the scores are easy to write down:
U = [[1.0, 0.0], [0.0, 2.0]]
P = [[2.0, 1.0], [1.0, 0.5]]  # s_ui: 2.0, 1.0
N = [[[1.0, 3.0], [-1.0, 0.0]], [[0.0, 1.0], [4.0, -1.0]]]  # s_uj: (1, -1), (2, -2)
S_POS, S_NEG = [2.0, 1.0], [[1.0, -1.0], [2.0, -2.0]]


def hand():
    return [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (U, P, N)]


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.hypot(*a) / math.hypot(*b)


# ------------------------------------------------------------------------------- Hard-BPR

def test_hard_bpr_by_hand_and_bpr_as_a_special_case():
    u, p, n = hand()
    a, b, c = 1.0, -1.0, 0.8
    terms = [-math.log((sig(c * (S_POS[r] - S_NEG[r][m]) + b) + a) / (1 + a))
             for r in range(2) for m in range(2)]
    assert HardBPR(a, b, c)(u, p, n).item() == pytest.approx(sum(terms) / 4, rel=1e-12)
    assert HardBPR(0.0, 0.0, 1.0)(u, p, n).item() == pytest.approx(BPR()(u, p, n).item(),
                                                                   rel=1e-12)


@pytest.mark.parametrize("a,b,c", [(1.0, -1.0, 0.8), (0.0, 0.0, 1.0), (0.3, 0.5, 2.0)])
def test_hard_bpr_gradient_saturates_for_overly_hard_negatives(a, b, c):
    """∂L/∂x = −c σ(z)(1−σ(z)) / (σ(z)+a) / N per term (z = c x + b), from autograd; for a > 0
    it vanishes for x → −∞ (BPR's tends to its maximum)."""
    x = torch.tensor([-30.0, -3.0, 0.0, 1.5, 4.0], dtype=torch.float64, requires_grad=True)
    u = torch.ones(5, 1, dtype=torch.float64)
    HardBPR(a, b, c)(u, x.unsqueeze(1), torch.zeros(5, 1, dtype=torch.float64)).backward()
    z = c * x.detach() + b
    s = torch.sigmoid(z)
    torch.testing.assert_close(x.grad, -c * s * (1 - s) / (s + a) / 5)
    if a > 0:
        assert abs(x.grad[0].item()) < 1e-9 < abs(x.grad[2].item())


def test_hard_bpr_is_finite_for_huge_gaps():
    u = torch.full((2, 1), 100.0, requires_grad=True)
    p = torch.tensor([[100.0], [-100.0]])
    n = torch.tensor([[-100.0], [100.0]])
    for a in (0.0, 1.0):
        loss = HardBPR(a, -1.0, 0.8)(u, p, n)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(u.grad).all()


# -------------------------------------------------------------------------- Softmax(ρ, N)

def test_softmax_rho_weights_and_value_by_hand():
    u, p, n = hand()
    rho = 0.7
    expect = 0.0
    for r in range(2):
        z = [-math.log(sig(S_POS[r] - s)) for s in S_NEG[r]]
        mean = sum(z) / 2
        tau = math.sqrt(sum((v - mean) ** 2 for v in z) / (2 - 1) / (2 * rho))
        w = [math.exp(v / tau) for v in z]
        expect += sum(wi / sum(w) * v for wi, v in zip(w, z)) / 2
    assert SoftmaxBPR(rho)(u, p, n).item() == pytest.approx(expect, rel=1e-12)


def test_softmax_rho_gradient_is_the_weighted_bpr_gradient():
    """The weights are constants: ∂L/∂x_j = −w_j (1 − σ(x_j)) / B for the gaps x_j."""
    u, p, n = leaves(4, B=6, M=5)
    loss = SoftmaxBPR(1.0)
    loss(u, p, n).backward()
    with torch.no_grad():
        x = (u * p).sum(-1, keepdim=True) - (u.unsqueeze(1) * n).sum(-1)  # [B, M]
        w = loss.weights(-F.logsigmoid(x))
        g = -w * (1 - torch.sigmoid(x)) / 6  # ∂L/∂x
    torch.testing.assert_close(n.grad, -g.unsqueeze(-1) * u.unsqueeze(1))
    torch.testing.assert_close(p.grad, g.sum(1, keepdim=True) * u)


def test_softmax_rho_interpolates_between_bpr_and_dns():
    u, p, n = leaves(5, B=8, M=6)
    z = -F.logsigmoid((u * p).sum(-1, keepdim=True) - (u.unsqueeze(1) * n).sum(-1))
    assert SoftmaxBPR(1e-14)(u, p, n).item() == pytest.approx(z.mean().item(), rel=1e-5)
    assert SoftmaxBPR(1e8)(u, p, n).item() == pytest.approx(z.max(1).values.mean().item(),
                                                            rel=1e-5)
    # one negative: plain BPR (the variance of one value is undefined: weight 1)
    assert SoftmaxBPR(1.0)(u, p, n[:, 0]).item() == pytest.approx(
        BPR()(u, p, n[:, 0]).item(), rel=1e-12)


# -------------------------------------------------------------------------------- SL, BSL

def test_sl_and_bsl_by_hand_dot_and_cosine():
    u, p, n = hand()
    tau, tau2 = 0.5, 1.3
    sl = bsl = 0.0
    for r in range(2):
        lse = math.log(sum(math.exp((s - S_POS[r]) / tau) for s in S_NEG[r]))
        sl += lse / 2
        bsl += (-S_POS[r] / tau + tau2 * math.log(sum(math.exp(s / tau) for s in S_NEG[r]))) / 2
    assert SampledSoftmax(tau, "dot")(u, p, n).item() == pytest.approx(sl, rel=1e-12)
    assert BSL(tau, tau2, "dot")(u, p, n).item() == pytest.approx(bsl, rel=1e-12)
    assert BSL(tau, 1.0, "dot")(u, p, n).item() == pytest.approx(sl, rel=1e-12)
    cs = 0.0
    for r in range(2):
        sp = cos(U[r], P[r])
        cs += math.log(sum(math.exp((cos(U[r], j) - sp) / tau) for j in N[r])) / 2
    assert SampledSoftmax(tau, "cosine")(u, p, n).item() == pytest.approx(cs, rel=1e-12)


def test_sl_and_bsl_gradients_on_the_scores():
    """Dot scores: ∂SL/∂s_uj = softmax_j(d/τ)/τ/B, ∂SL/∂s_ui = −1/τ/B; BSL: τ₂ × SL's on the
    negatives, the same −1/τ/B on the positive. Checked on the embedding gradients."""
    tau, tau2, B = 0.3, 1.25, 5
    for loss, k in ((SampledSoftmax(tau, "dot"), 1.0), (BSL(tau, tau2, "dot"), tau2)):
        u, p, n = leaves(6, B=B)
        loss(u, p, n).backward()
        with torch.no_grad():
            d = (u.unsqueeze(1) * n).sum(-1) - (u * p).sum(-1, keepdim=True)  # [B, M]
            g_neg = k * torch.softmax(d / tau, 1) / tau / B  # ∂L/∂s_uj
            g_pos = torch.full((B, 1), -1.0 / tau / B, dtype=d.dtype)
        torch.testing.assert_close(n.grad, g_neg.unsqueeze(-1) * u.unsqueeze(1))
        torch.testing.assert_close(p.grad, g_pos * u)
        torch.testing.assert_close(u.grad, g_pos * p + (g_neg.unsqueeze(-1) * n).sum(1))


def test_in_batch_negatives_are_the_other_positives():
    u, p, n = leaves(7, B=4)
    tau = 0.2
    s = F.normalize(u, dim=-1) @ F.normalize(p, dim=-1).T  # [B, B]
    expect = torch.stack([torch.logsumexp(torch.cat([s[b, :b], s[b, b + 1:]]) / tau - s[b, b]
                                          / tau, 0) for b in range(4)]).mean()
    got = SampledSoftmax(tau, "cosine", "in_batch")(u, p, n)
    torch.testing.assert_close(got, expect)
    # both = the sampled and the in-batch negatives in one set
    sn = (F.normalize(u, dim=-1).unsqueeze(1) * F.normalize(n, dim=-1)).sum(-1)  # [B, M]
    both = torch.stack([torch.logsumexp(torch.cat([sn[b], s[b, :b], s[b, b + 1:]]) / tau
                                        - s[b, b] / tau, 0) for b in range(4)]).mean()
    torch.testing.assert_close(SampledSoftmax(tau, "cosine", "both")(u, p, n), both)
    # a batch of one pair has no in-batch negative: loss 0, gradients finite
    one = [x[:1] for x in (u, p, n)]
    for cls in (SampledSoftmax, BSL, PSL):
        loss = build_loss(LossConfig(name=cls.__name__.lower().replace("sampledsoftmax", "sl"),
                                     negatives="in_batch"))(*one)
        assert loss.item() == 0.0 and loss.requires_grad


@pytest.mark.parametrize("name", ["sl", "bsl", "psl"])
def test_in_batch_duplicates_of_the_positive_can_be_dropped(name):
    """Rows 0 and 2 hold the same item (identical vectors): with in_batch_duplicates = drop,
    row 0 is not scored against row 2 nor row 2 against row 0 — as computing each row's loss on
    the other rows only. A batch of one item drops everything: loss 0, finite gradients."""
    u, p, n = leaves(12, B=4)
    p = torch.cat([p[:2], p[:1], p[3:]]).detach().requires_grad_(True)  # row 2 = row 0's item
    cfg = {"name": name, "negatives": "in_batch", "tau": 0.3}
    drop = build_loss(LossConfig(**cfg, in_batch_duplicates="drop"))
    keep = build_loss(LossConfig(**cfg))
    sub = build_loss(LossConfig(**{**cfg, "negatives": "sampled"}))
    expect = []
    for b in range(4):  # row b against its kept in-batch negatives, as sampled negatives
        others = [j for j in range(4) if j != b and not (b in (0, 2) and j in (0, 2))]
        expect.append(sub(u[b:b + 1], p[b:b + 1], p[others].unsqueeze(0)))
    torch.testing.assert_close(drop(u, p, n), torch.stack(expect).mean())
    assert abs(drop(u, p, n).item() - keep(u, p, n).item()) > 1e-6
    same = p[:1].expand(4, -1).detach().clone().requires_grad_(True)
    loss = drop(u, same, n)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(same.grad).all() and torch.isfinite(u.grad).all()


@pytest.mark.parametrize("name", ["sl", "bsl", "psl"])
def test_logq_correction_by_hand(name):
    """correction = logq: each in-batch negative's logit gets − ln q_j, q_j = n_j / N of the
    item of that other row. Checked as the same loss whose logits are shifted by hand, and
    against SL written out for one row."""
    negatives = "in_batch"
    u, p, n = leaves(21, B=4)
    items = torch.tensor([0, 2, 0, 1])  # item of each row (rows 0 and 2 the same item)
    counts = torch.tensor([6, 3, 1, 0])  # N = 10
    cfg = {"name": name, "negatives": negatives, "tau": 0.3}
    plain = build_loss(LossConfig(**cfg))
    corr = build_loss(LossConfig(**cfg, correction="logq"))
    corr.setup(counts)
    lq = torch.log(torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64))[items]  # [B]
    s_pos, d, keep, shift = plain.score_diffs(u, p, n)
    assert shift is None
    hand_shift = -lq.unsqueeze(0).expand(4, -1)
    hand_shift = torch.stack([torch.cat([hand_shift[b, :b], hand_shift[b, b + 1:]])
                              for b in range(4)])  # [B, B-1]: the other rows' items
    got = corr(u, p, n, pos_items=items)
    torch.testing.assert_close(got, plain.from_diffs(s_pos, d, keep, hand_shift),
                               rtol=1e-6, atol=1e-6)  # (ln q is kept in float32)
    assert abs(got.item() - plain(u, p, n).item()) > 1e-3
    if name == "sl":  # row 0 written out: negatives rows 1, 2, 3
        s = F.normalize(u, dim=-1) @ F.normalize(p, dim=-1).T
        row0 = torch.logsumexp(torch.stack([(s[0, j] - s[0, 0]) / 0.3 - math.log(q) for j, q
                                            in ((1, 0.1), (2, 0.6), (3, 0.3))]), 0)
        rows = [torch.logsumexp(torch.stack(
            [(s[b, j] - s[b, b]) / 0.3 - lq[j] for j in range(4) if j != b]), 0)
            for b in range(4)]
        torch.testing.assert_close(rows[0], row0)
        torch.testing.assert_close(got, torch.stack(rows).mean(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="needs setup"):
        corr(u, p, n)


def short_road_equals(loss, leaves1, items, b, leaves2, monkeypatch, short=True):
    """loss(*leaves1, pos_items=items) — on the short road (score_diffs never called) when
    `short` — equals `b`, computed from clones `leaves2`, in value and in gradient."""
    with monkeypatch.context() as m:  # the short road must not go through the differences
        if short:
            m.setattr(loss, "score_diffs", lambda *a, **k: pytest.fail("took the long road"))
        a = loss(*leaves1, pos_items=items)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    a.backward()
    b.backward()
    for x, y in zip(leaves1, leaves2):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["sl", "bsl"])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("soften,correction", [(0.0, "none"), (0.4, "none"), (0.0, "logq"),
                                               (0.4, "logq")])
def test_in_batch_short_road_equals_the_differences(name, similarity, soften, correction,
                                                    monkeypatch):
    """SL and BSL with in-batch negatives compute log Σ exp(c·s_uj + shift) − c·s_ui from one
    [B, B] product (`scaled_log_sum_exp`); the same value and gradients as from the [B, B−1]
    differences (`score_diffs` -> `from_diffs`)."""
    u1, p1, n1 = leaves(17, B=6)
    u2, p2, n2 = clones(u1, p1, n1)
    items = torch.tensor([0, 1, 1, 2, 0, 3])
    loss = build_loss(LossConfig(name=name, negatives="in_batch", similarity=similarity,
                                 soften=soften, correction=correction, tau=0.3))
    loss.setup(torch.tensor([5, 2, 2, 1]))
    b = loss.from_diffs(*loss.score_diffs(u2, p2, n2, pos_items=items))
    short_road_equals(loss, (u1, p1, n1), items, b, (u2, p2), monkeypatch)
    assert torch.autograd.gradcheck(lambda x, y: loss(x, y, None, pos_items=items),
                                    (u1, p1))


def test_logq_needs_in_batch_negatives_and_a_softmax_loss():
    """Refused: a loss that has no in-batch negatives, and sampled columns beside in-batch ones
    (both: a shift of 0 would weigh them ~(B−1)·I/M times too light)."""
    with pytest.raises(ValueError, match="corrects in-batch negatives"):
        load(overrides={"preset": "sl", "correction": "logq"})
    with pytest.raises(ValueError, match="needs loss.negatives = in_batch .got 'both'"):
        load(overrides={"preset": "sl", "negatives": "both", "correction": "logq"})
    with pytest.raises(ValueError, match="not loss 'bpr'"):
        load(overrides={"preset": "dns", "correction": "logq"})
    with pytest.raises(ValueError, match="negatives must be in_batch"):
        SampledSoftmax(0.2, "cosine", "both", correction="logq")
    assert load(overrides={"preset": "bsl-batch-logq"}).method == "bsl-batch-logq"
    e = load(overrides={"preset": "sl-batch-logq"})
    assert (e.loss.negatives, e.loss.correction, e.method) == ("in_batch", "logq",
                                                               "sl-batch-logq")
    assert load(overrides={"preset": "sl-batch", "correction": "logq"}).method == "sl-batch-logq"
    assert load(overrides={"preset": "sl-batch-logq", "correction": "none"}).method == "sl-batch"


def test_logq_correction_in_training(monkeypatch):
    """The trainer hands the loss the training pairs' item counts once (setup) and each batch's
    positive ids (the items of its pairs, in the batch's order)."""
    import numpy as np

    from softbpr import trainer
    from softbpr.trainer import fit
    seen = {"setup": [], "batches": 0}
    real_setup, real_batch = SampledSoftmax.setup, SampledSoftmax.batch_loss
    real_epoch = trainer.train_one_epoch

    def setup(self, counts):
        seen["setup"].append(counts.clone())
        return real_setup(self, counts)

    def batch_loss(self, u, pos, neg, table, pos_items=None):
        seen["batches"] += 1
        torch.testing.assert_close(pos, seen["emb"].item_rows(pos_items))  # the pairs' items
        return real_batch(self, u, pos, neg, table, pos_items)

    def epoch(p, *a, **k):  # keep the epoch's pooled table to look the ids up in
        net = p.net

        def keep(graph):
            seen["emb"] = net(graph)
            return seen["emb"]
        p.net = keep
        try:
            return real_epoch(p, *a, **k)
        finally:
            p.net = net
            seen["train_items"] = p.train_i.cpu().numpy()

    monkeypatch.setattr(SampledSoftmax, "setup", setup)
    monkeypatch.setattr(SampledSoftmax, "batch_loss", batch_loss)
    monkeypatch.setattr(trainer, "train_one_epoch", epoch)
    small = {"data": "synthetic-small", "dim": 8, "layers": 1, "epochs": 1, "batch_size": 256,
             "max_batches": 2, "device": "cpu", "topk": "10", "metric": "ndcg@10"}
    run = fit(load(overrides={**small, "preset": "sl-batch-logq"}), log=lambda m: None,
              progress=False)
    assert math.isfinite(run.history[-1]["loss"]) and seen["batches"] == 2
    (counts,) = seen["setup"]
    assert counts.tolist() == np.bincount(seen["train_items"], minlength=len(counts)).tolist()


@pytest.mark.parametrize("name", ["sl", "bsl", "psl"])
@pytest.mark.parametrize("correction", ["none", "logq"])
def test_dropped_duplicates_by_ids_equal_by_vectors(name, correction, monkeypatch):
    """With the positives' ids (the trainer's call) duplicates are found by id and SL/BSL take
    the short road; the same value and gradients as without ids (identical pooled vectors, the
    differences). A batch of one item: loss 0, finite gradients, on both roads."""
    u1, p1, n1 = leaves(19, B=5)
    base = torch.cat([p1[:2], p1[:1], p1[3:4], p1[1:2]]).detach()  # rows 0,2 and 1,4 the same
    p1 = base.clone().requires_grad_(True)
    u2, p2, n2 = clones(u1, p1, n1)
    items = torch.tensor([0, 1, 0, 2, 1])
    loss = build_loss(LossConfig(name=name, negatives="in_batch", tau=0.3,
                                 in_batch_duplicates="drop", correction=correction))
    loss.setup(torch.tensor([4, 3, 1]))
    if correction == "logq":  # the vectors' road needs ids for ln q: the differences instead
        b = loss.from_diffs(*loss.score_diffs(u2, p2, n2, pos_items=items))
    else:
        b = loss(u2, p2, n2)
    short_road_equals(loss, (u1, p1, n1), items, b, (u2, p2), monkeypatch, name != "psl")
    same = p1[:1].detach().expand(5, -1).clone().requires_grad_(True)
    uu = u1.detach().clone().requires_grad_(True)
    zero = loss(uu, same, n1, pos_items=torch.zeros(5, dtype=torch.long))
    zero.backward()
    assert zero.item() == 0.0 and torch.isfinite(same.grad).all() and torch.isfinite(uu.grad).all()


# --------------------------------------------------------------------------------------- PSL

@pytest.mark.parametrize("act,f", [("tanh", lambda x: math.log(math.tanh(x) + 1)),
                                   ("atan", lambda x: math.log(math.atan(x) + 1)),
                                   ("relu", lambda x: math.log(max(x + 1, 0.0)))])
def test_psl_by_hand(act, f):
    u, p, n = hand()
    tau, ts = 0.1, 2.0
    expect = 0.0
    for r in range(2):
        sp = cos(U[r], P[r])
        expect += math.log(sum(math.exp(f((cos(U[r], j) - sp) / ts) / tau) for j in N[r])) / 2
    assert PSL(tau, ts, act)(u, p, n).item() == pytest.approx(expect, rel=1e-10)


def test_psl_tanh_is_finite_where_tanh_plus_one_underflows():
    u = torch.tensor([[1.0]], dtype=torch.float64)
    p = torch.tensor([[100.0]], dtype=torch.float64, requires_grad=True)
    n = torch.tensor([[[-100.0], [0.5]]], dtype=torch.float64, requires_grad=True)
    loss = PSL(0.1, 1.0, "tanh", "dot")(u, p, n)  # d = -200: tanh(d) + 1 == 0 in float64
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(p.grad).all() and torch.isfinite(n.grad).all()


# ------------------------------------------------------------------------------- softening

def mixed_negatives(u, p, n, alpha, similarity):
    """The literal positive-dominated mixing: each negative -> α e_i + (1−α) e_j (for cosine
    scores, of the normalised vectors, which the scores are linear in)."""
    if similarity == "cosine":
        u, p, n = (F.normalize(x, dim=-1) for x in (u, p, n))
    return u, p, alpha * p.unsqueeze(1) + (1 - alpha) * n


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("name", ["sl", "bsl", "psl"])
@pytest.mark.parametrize("alpha", [0.3, 0.9])
def test_soften_is_the_mixing_of_each_negative_with_the_positive(name, alpha, similarity):
    """loss(soften = α) on (u, i, j) == loss(soften = 0, dot scores) on the mixed negatives,
    in value and in gradient w.r.t. every embedding."""
    u1, p1, n1 = leaves(8)
    u2, p2, n2 = clones(u1, p1, n1)
    soft = build_loss(LossConfig(name=name, soften=alpha, similarity=similarity, tau=0.3))
    plain = build_loss(LossConfig(name=name, soften=0.0, similarity="dot", tau=0.3))
    a = soft(u1, p1, n1)
    b = plain(*mixed_negatives(u2, p2, n2, alpha, similarity))
    torch.testing.assert_close(a, b)
    a.backward()
    b.backward()
    for x, y in ((u1, u2), (p1, p2), (n1, n2)):
        torch.testing.assert_close(x.grad, y.grad)


@pytest.mark.parametrize("negatives", ["sampled", "in_batch", "both"])
@pytest.mark.parametrize("alpha", [0.3, 0.8])
def test_softened_sl_is_sl_at_temperature_tau_over_one_minus_alpha(alpha, negatives):
    """For SL, softening adds nothing: SL(τ, soften α) == SL(τ/(1−α)), value and gradient
    (equally "all logits scaled by 1−α")."""
    u1, p1, n1 = leaves(9)
    u2, p2, n2 = clones(u1, p1, n1)
    a = SampledSoftmax(0.2, "cosine", negatives, soften=alpha)(u1, p1, n1)
    b = SampledSoftmax(0.2 / (1 - alpha), "cosine", negatives)(u2, p2, n2)
    torch.testing.assert_close(a, b)
    a.backward()
    b.backward()
    for x, y in ((u1, u2), (p1, p2), (n1, n2)):
        torch.testing.assert_close(x.grad, y.grad)


@pytest.mark.parametrize("act", ["tanh", "atan", "relu"])
@pytest.mark.parametrize("alpha", [0.3, 0.8])
def test_softened_psl_is_psl_at_score_temperature_over_one_minus_alpha(alpha, act):
    """For PSL, softening scales d inside the activation: σ((1−α)d/τ_s) = σ(d/(τ_s/(1−α))),
    so PSL(τ, τ_s, soften α) == PSL(τ, τ_s/(1−α)), value and gradient (σ not being linear does
    not matter: the scaling is of its argument)."""
    u1, p1, n1 = leaves(13)
    u2, p2, n2 = clones(u1, p1, n1)
    a = PSL(0.1, 2.0, act, soften=alpha)(u1, p1, n1)
    b = PSL(0.1, 2.0 / (1 - alpha), act)(u2, p2, n2)
    torch.testing.assert_close(a, b)
    a.backward()
    b.backward()
    for x, y in ((u1, u2), (p1, p2), (n1, n2)):
        torch.testing.assert_close(x.grad, y.grad)
    assert abs(a.item() - PSL(0.1, 2.0, act)(u1, p1, n1).item()) > 1e-3


def test_softened_bsl_is_not_a_temperature_change():
    """BSL(τ, τ₂, soften α) = BSL(τ/(1−α), τ₂) + α(τ₂ − 1)·mean s_ui/τ: equal only for τ₂ = 1."""
    u, p, n = leaves(10)
    p = (u + 0.3 * p).detach()  # positives near their users: s_ui ~ 0.9, a visible extra term
    tau, tau2, alpha = 0.2, 1.2, 0.5
    s_pos = (F.normalize(u, dim=-1) * F.normalize(p, dim=-1)).sum(-1)
    soft = BSL(tau, tau2, soften=alpha)(u, p, n)
    hot = BSL(tau / (1 - alpha), tau2)(u, p, n)
    torch.testing.assert_close(soft, hot + alpha * (tau2 - 1) * s_pos.mean() / tau)
    assert abs((soft - hot).item()) > 0.1


# ------------------------------------------------------------------ gradients, config, presets

@pytest.mark.parametrize("name", sorted(set(NEW) - {"softmax_bpr"}))  # (its w is detached:
@pytest.mark.parametrize("negatives", ["sampled", "both"])  # test_softmax_rho_gradient_is_...)
def test_gradients_match_finite_differences(name, negatives):
    u, p, n = leaves(11, B=4, d=3, M=3)
    loss = build_loss(LossConfig(name=name, negatives=negatives, soften=0.4 if name in
                                 ("sl", "bsl", "psl") else 0.0))
    assert torch.autograd.gradcheck(lambda a, b, c: loss(a, b, c), (u, p, n))


@pytest.mark.parametrize("name", NEW)
def test_new_losses_read_their_config_section(name):
    cfg = LossConfig(name=name, hard_a=0.5, hard_b=0.2, hard_c=1.5, rho=3.0, tau=0.4,
                     bsl_tau2=1.3, psl_tau_score=1.5, psl_activation="atan", similarity="dot",
                     negatives="both", soften=0.25)
    loss = build_loss(cfg)
    assert type(loss) is LOSSES[name] and loss.alpha == 0.0
    want = {"hard_bpr": {"a": 0.5, "b": 0.2, "c": 1.5}, "softmax_bpr": {"rho": 3.0},
            "sl": {"tau": 0.4, "similarity": "dot", "negatives": "both", "soften": 0.25},
            "bsl": {"tau": 0.4, "tau2": 1.3, "soften": 0.25},
            "psl": {"tau": 0.4, "tau_score": 1.5, "activation": "atan", "soften": 0.25}}[name]
    assert {k: getattr(loss, k) for k in want} == want


def test_presets_of_the_softmax_losses():
    e = load(overrides={"preset": "sl-batch"})
    assert (e.sampler.name, e.loss.name, e.loss.negatives, e.method) == (
        "uniform", "sl", "in_batch", "sl-batch")
    e = load(overrides={"preset": "sl"})
    assert (e.sampler.n_negatives, e.loss.negatives, e.method) == (256, "sampled", "sl")
    # a preset's numbers are hyper-parameters: changing them keeps the method
    assert load(overrides={"preset": "sl", "n_negatives": 32, "tau": 0.3}).method == "sl"
    assert load(overrides={"preset": "psl"}).loss.tau == 0.05
    assert load(overrides={"preset": "bsl", "negatives": "in_batch"}).method == "bsl-batch"
    assert load(overrides={"sampler": "uniform", "loss": "bsl", "negatives": "both"}
                ).method == "uniform+bsl"
    with pytest.raises(ValueError, match="has no effect with loss 'sl'; use loss.soften"):
        load(overrides={"preset": "sl", "alpha": 0.5})


@pytest.mark.parametrize("preset, reg_negatives, with_negatives", [
    ("sl-batch", "used", False), ("bsl-batch", "used", False), ("sl", "used", True),
    ("bsl-batch", "always", True), ("sl", "always", True)])
def test_l2_penalty_covers_the_negatives_only_when_the_loss_reads_them(monkeypatch, preset,
                                                                       reg_negatives,
                                                                       with_negatives):
    """BSL's in-batch mode penalises the batch's users and positives: the sampler's negatives,
    which an in-batch loss ignores, stay out of the L2 term (they entered it before), unless
    train.reg_negatives = always asks for them (the uniform item decay)."""
    from softbpr import trainer
    from softbpr.trainer import fit
    calls = []
    real = trainer.l2_penalty

    def penalty(*rows):
        calls.append(len(rows))
        return real(*rows)

    monkeypatch.setattr(trainer, "l2_penalty", penalty)
    small = {"data": "synthetic-small", "dim": 8, "layers": 1, "epochs": 1, "batch_size": 256,
             "max_batches": 2, "device": "cpu", "topk": "10", "metric": "ndcg@10"}
    run = fit(load(overrides={**small, "preset": preset, "reg_negatives": reg_negatives}),
              log=lambda m: None, progress=False)
    assert math.isfinite(run.history[-1]["reg"])
    assert calls == [3 if with_negatives else 2] * 2
