import pytest
import torch

from lmrec.models.layers import Dropout


def test_dropout_rate_scale_and_gradient():
    torch.manual_seed(0)
    drop = Dropout(0.3).train()
    x = torch.ones(200, 500, requires_grad=True)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(0.3, abs=0.01)
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))  # inverted dropout keeps the mean
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)  # no gradient through dropped units


def test_dropout_is_identity_in_eval_and_seeded():
    x = torch.randn(7, 9)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    torch.manual_seed(1)
    a = Dropout(0.5).train()(x)
    torch.manual_seed(1)
    assert torch.equal(Dropout(0.5).train()(x), a)
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)
