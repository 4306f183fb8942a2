"""Objectives: closed-form gradients against autograd, loss values against hand computation
and against torch's own cross-entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from w2v_nce.objectives import (
    LOSSES,
    Candidates,
    HierarchicalSoftmax,
    ImportanceSampling,
    LocalNCE,
    NegativeSampling,
    RankingNCE,
    Softmax,
    make_objective,
)
from w2v_nce.sampler import AliasSampler
from w2v_nce.vocab import HuffmanTree

V = 6
WEIGHTS = torch.tensor([5.0, 1.0, 3.0, 2.0, 0.5, 4.0])


TREE = HuffmanTree.from_counts(np.array([5, 1, 3, 2, 1, 4]))  # hs: a tree over the same V words


def _sampler() -> AliasSampler:
    return AliasSampler(WEIGHTS)


def _batch(name: str, obj, seed: int = 0, batch: int = 64):
    """Targets, candidates and float64 scores; a small vocabulary makes accidental hits common."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, V, (batch,), generator=gen)
    cand = obj.candidates(targets, gen)
    width = V if cand.ids is None else cand.ids.shape[1]
    scores = torch.randn(batch, width, generator=gen, dtype=torch.float64) * 2.0
    return cand, scores


def _loss_grad_with_autograd(obj, scores, cand):
    """loss_grad on a leaf that requires grad; saved tensors are cloned so that loss_grad's
    in-place ops (e.g. Softmax's exp_) cannot corrupt the graph."""
    leaf = scores.clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t.clone(), lambda t: t):
        loss, grad = obj.loss_grad(leaf.clone(), cand)
    loss.sum().backward()
    return loss.detach(), grad.detach(), leaf.grad


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_equals_autograd_of_own_loss(name):
    obj = make_objective(name, _sampler(), k=4, log_z=0.7, tree=TREE)
    for seed in range(3):
        cand, scores = _batch(name, obj, seed)
        if name == "rnce":
            assert (cand.ids[:, 1:] == cand.targets[:, None]).any(), "want accidental hits in the batch"
        loss, grad, auto = _loss_grad_with_autograd(obj, scores, cand)
        assert loss.shape == (len(scores),) and grad.shape == scores.shape
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
        torch.testing.assert_close(grad, auto, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_equals_central_finite_differences(name):
    """Independent of autograd: d(sum loss)/d(score) by central differences in float64."""
    obj = make_objective(name, _sampler(), k=3, log_z=-0.4, tree=TREE)
    cand, scores = _batch(name, obj, seed=11, batch=5)
    _, grad = obj.loss_grad(scores.clone(), cand)
    eps = 1e-6
    numeric = torch.zeros_like(scores)
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            up, down = scores.clone(), scores.clone()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (obj.loss_grad(up, cand)[0].sum() - obj.loss_grad(down, cand)[0].sum()) / (2 * eps)
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_grad_does_not_modify_scores(name):
    obj = make_objective(name, _sampler(), k=4, tree=TREE)
    cand, scores = _batch(name, obj, seed=5)
    before = scores.clone()
    obj.loss_grad(scores, cand)
    assert torch.equal(scores, before)


def test_softmax_equals_cross_entropy():
    obj = Softmax()
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 37, generator=gen, dtype=torch.float64) * 3
    targets = torch.randint(0, 37, (50,), generator=gen)
    cand = obj.candidates(targets)
    assert cand.ids is None and torch.equal(cand.targets, targets)
    loss, grad = obj.loss_grad(scores.clone(), cand)
    torch.testing.assert_close(loss, F.cross_entropy(scores, targets, reduction="none"))
    expected_grad = torch.softmax(scores, 1) - F.one_hot(targets, 37).double()
    torch.testing.assert_close(grad, expected_grad)


def _cand(obj, ids):
    """Given candidates (target first), labelled and masked by the objective."""
    ids = torch.tensor(ids)
    return obj.complete(ids[:, 0].clone(), ids)


def _log1pexp(x: float) -> float:  # -log σ(-x)
    return math.log(1.0 + math.exp(x))


def test_negative_sampling_by_hand():
    obj = NegativeSampling(_sampler(), k=2)
    scores = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64)
    loss, grad = obj.loss_grad(scores.clone(), _cand(obj, [[0, 3, 1]]))
    # -log σ(2) - log σ(1) - log σ(-0.5)
    expected = _log1pexp(-2.0) + _log1pexp(-1.0) + _log1pexp(0.5)
    assert float(loss[0]) == pytest.approx(expected, rel=1e-12)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert grad[0].tolist() == pytest.approx([sig(2.0) - 1, sig(-1.0), sig(0.5)], rel=1e-12)


@pytest.mark.parametrize("log_z", [0.0, 0.3])
def test_local_nce_by_hand(log_z):
    sampler = AliasSampler(torch.tensor([1.0, 1.0, 2.0]))  # q = 1/4, 1/4, 1/2
    obj = LocalNCE(sampler, k=2, log_z=log_z)
    scores = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64)
    loss, grad = obj.loss_grad(scores.clone(), _cand(obj, [[0, 2, 1]]))
    # logits y = s - log Z - log(k q): k q = 0.5 (word 0), 1.0 (word 2), 0.5 (word 1)
    y0 = 2.0 - log_z - math.log(0.5)
    y1 = -1.0 - log_z - math.log(1.0)
    y2 = 0.5 - log_z - math.log(0.5)
    expected = _log1pexp(-y0) + _log1pexp(y1) + _log1pexp(y2)
    assert float(loss[0]) == pytest.approx(expected, rel=1e-6)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert grad[0].tolist() == pytest.approx([sig(y0) - 1, sig(y1), sig(y2)], rel=1e-6)


def test_ranking_nce_is_cross_entropy_without_accidental_hits():
    sampler = _sampler()
    log_q = torch.log(WEIGHTS.double() / WEIGHTS.sum())
    obj = RankingNCE(sampler, k=4)
    ids = [
        [1, 1, 2, 1, 5],  # two accidental hits (column 1 and 3)
        [0, 2, 3, 4, 5],  # none
        [3, 3, 3, 3, 3],  # all noise words are hits: loss 0
        [2, 2, 2, 0, 4],
    ]
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(len(ids), 5, generator=gen, dtype=torch.float64)
    loss, grad = obj.loss_grad(scores.clone(), _cand(obj, ids))
    for row, row_ids in enumerate(ids):
        keep = [0] + [j for j in range(1, 5) if row_ids[j] != row_ids[0]]
        logits = scores[row, keep] - log_q[torch.tensor(row_ids)[keep]]
        expected = F.cross_entropy(logits[None], torch.tensor([0]), reduction="none")
        assert float(loss[row]) == pytest.approx(float(expected), rel=1e-6, abs=1e-7)
        removed = [j for j in range(1, 5) if j not in keep]
        assert (grad[row, removed] == 0).all()  # hits get no gradient
        auto = torch.softmax(logits, 0)
        auto[0] -= 1
        torch.testing.assert_close(grad[row, keep], auto, rtol=1e-6, atol=1e-7)
    assert float(loss[2]) == 0.0


def test_ranking_nce_hit_changes_the_loss():
    """Removing the hit matters: the unmasked softmax gives a different (larger) loss."""
    obj = RankingNCE(_sampler(), k=2)
    scores = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    loss, _ = obj.loss_grad(scores.clone(), _cand(obj, [[2, 2, 4]]))
    log_q = torch.log(WEIGHTS.double() / WEIGHTS.sum())
    y = scores[0] - log_q[[2, 2, 4]]
    unmasked = float(torch.logsumexp(y, 0) - y[0])
    masked = float(torch.logsumexp(y[[0, 2]], 0) - y[0])
    assert float(loss[0]) == pytest.approx(masked, rel=1e-6)
    assert unmasked - masked > 0.1


def test_importance_sampling_formula():
    sampler = _sampler()
    q = (WEIGHTS.double() / WEIGHTS.sum()).tolist()
    k = 3
    obj = ImportanceSampling(sampler, k=k)
    ids = [[0, 1, 2, 0], [4, 4, 5, 3]]
    scores = torch.tensor([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0]], dtype=torch.float64)
    loss, _ = obj.loss_grad(scores.clone(), _cand(obj, ids))
    for row in range(2):
        z_hat = sum(math.exp(float(scores[row, j])) / q[ids[row][j]] for j in range(1, k + 1)) / k
        expected = math.log(z_hat) - float(scores[row, 0])
        assert float(loss[row]) == pytest.approx(expected, rel=1e-6)


def test_importance_sampling_estimates_log_partition_function():
    """With many noise words, log Ẑ converges to the exact log Z = logsumexp over the vocabulary."""
    sampler = _sampler()
    k = 20000
    obj = ImportanceSampling(sampler, k=k)
    gen = torch.Generator().manual_seed(0)
    row_scores = torch.randn(V, generator=gen, dtype=torch.float64)
    cand = obj.candidates(torch.tensor([0]), gen)
    scores = row_scores[cand.ids]
    loss, _ = obj.loss_grad(scores, cand)
    exact = float(torch.logsumexp(row_scores, 0) - row_scores[0])
    assert float(loss[0]) == pytest.approx(exact, abs=0.02)


@pytest.mark.parametrize("name", ["neg", "nce", "rnce", "is"])
def test_sampled_candidates_layout_and_noise_distribution(name):
    from scipy import stats

    obj = make_objective(name, _sampler(), k=7, tree=TREE)
    targets = torch.randint(0, V, (3000,), generator=torch.Generator().manual_seed(1))
    cand = obj.candidates(targets, torch.Generator().manual_seed(2))
    assert cand.ids.shape == (3000, 8) and cand.ids.dtype == torch.int64
    assert torch.equal(cand.ids[:, 0], targets) and torch.equal(cand.targets, targets)
    counts = np.bincount(cand.ids[:, 1:].flatten().numpy(), minlength=V)
    w = WEIGHTS.double().numpy()
    expected = w / w.sum() * counts.sum()
    assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_local_nce_learn_log_z_moves_downhill():
    sampler = _sampler()
    obj = LocalNCE(sampler, k=4, log_z=0.2, learn_log_z=True)
    cand, scores = _batch("nce", obj, seed=3, batch=32)

    def total(log_z: float) -> float:
        probe = LocalNCE(sampler, k=4, log_z=log_z)
        return float(probe.loss_grad(scores.clone(), cand)[0].sum())

    eps = 1e-5
    dl_dlogz = (total(0.2 + eps) - total(0.2 - eps)) / (2 * eps)
    assert abs(dl_dlogz) > 1e-3
    _, grad = obj.loss_grad(scores.clone(), cand)
    lr = 1e-3
    obj.update(grad, lr)
    assert obj.log_z - 0.2 == pytest.approx(-lr * dl_dlogz / len(scores), rel=1e-4)  # SGD on the mean loss
    assert total(obj.log_z) < total(0.2)
    assert obj.state_dict() == {"log_z": obj.log_z}
    other = LocalNCE(sampler, k=4)
    other.load_state_dict(obj.state_dict())
    assert other.log_z == obj.log_z


def test_local_nce_fixed_log_z_does_not_move():
    obj = LocalNCE(_sampler(), k=4, log_z=0.5, learn_log_z=False)
    cand, scores = _batch("nce", obj, seed=3)
    obj.update(obj.loss_grad(scores.clone(), cand)[1], 0.1)
    assert obj.log_z == 0.5


def test_make_objective_builds_each_loss():
    kinds = {"softmax": Softmax, "hs": HierarchicalSoftmax, "neg": NegativeSampling, "nce": LocalNCE,
             "rnce": RankingNCE, "is": ImportanceSampling}
    assert set(kinds) == set(LOSSES)
    for name, cls in kinds.items():
        obj = make_objective(name, _sampler(), 5, tree=TREE)
        assert type(obj) is cls and obj.name == name
    nce = make_objective("nce", _sampler(), 5, log_z=1.5, learn_log_z=True)
    assert nce.log_z == 1.5 and nce.learn_log_z


@pytest.mark.parametrize("bad", ["foo", "", "NEG", "softmax "])
def test_make_objective_unknown_name_raises(bad):
    with pytest.raises(ValueError, match="unknown loss"):
        make_objective(bad, _sampler(), 5)


@pytest.mark.parametrize("name", ["neg", "nce", "rnce", "is"])
def test_sampled_objectives_need_a_noise_word(name):
    with pytest.raises(ValueError):
        make_objective(name, _sampler(), 0, tree=TREE)
