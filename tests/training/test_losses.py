import math

import pytest
import torch

from lmrec.training import losses


def test_full_softmax_ce_by_hand():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    expected = (-math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3))) + math.log(3)) / 2
    assert losses.full_softmax_ce(logits, torch.tensor([2, 0])).item() == pytest.approx(expected)


def test_sampled_softmax_masks_accidental_hits():
    pos, neg = torch.tensor([2.0]), torch.tensor([[1.0, 0.0]])
    both = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + math.exp(0)))
    assert losses.sampled_softmax_ce(pos, neg).item() == pytest.approx(both)
    masked = -math.log(math.exp(2) / (math.exp(2) + math.exp(1)))
    assert losses.sampled_softmax_ce(pos, neg, torch.tensor([[False, True]])).item() == pytest.approx(masked)


def test_bce_one_negative_by_hand():
    assert losses.bce_one_negative(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(2 * math.log(2))
    sig = 1 / (1 + math.exp(-2.0))
    expected = -math.log(sig) - math.log(1 - 1 / (1 + math.exp(1.0)))
    assert losses.bce_one_negative(torch.tensor([2.0]), torch.tensor([-1.0])).item() == pytest.approx(expected)


def test_gradients_flow():
    logits = torch.randn(4, 5, requires_grad=True)
    losses.full_softmax_ce(logits, torch.tensor([0, 1, 2, 3])).backward()
    # d CE / d logits = softmax - onehot: each row sums to zero.
    assert torch.allclose(logits.grad.sum(dim=1), torch.zeros(4), atol=1e-6)


@pytest.mark.parametrize("bf16", [False, True])
def test_chunked_ce_matches_full_ce_value_and_gradients(bf16):
    torch.manual_seed(0)
    hidden, weights = torch.randn(37, 8), torch.randn(11, 8)
    targets = torch.randint(0, 11, (37,))
    grads = []
    for fn in (lambda h, w: losses.full_softmax_ce(h @ w.T, targets),
               lambda h, w: losses.chunked_softmax_ce(h, w, targets, chunk=5)):  # 5 does not divide 37
        h, w = hidden.clone().requires_grad_(), weights.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = fn(h, w)
        loss.backward()
        grads.append((loss.detach(), h.grad, w.grad))
    tol = 2e-2 if bf16 else 1e-5
    for a, b in zip(*grads, strict=True):
        assert a.dtype == b.dtype
        assert torch.allclose(a, b, atol=tol, rtol=tol)


def test_chunked_ce_by_hand():
    hidden, weights = torch.tensor([[1.0], [0.0]]), torch.tensor([[1.0], [2.0], [3.0]])  # logits as in the test above
    expected = (-math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3))) + math.log(3)) / 2
    assert losses.chunked_softmax_ce(hidden, weights, torch.tensor([2, 0]), chunk=1).item() == pytest.approx(expected)
