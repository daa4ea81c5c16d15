"""Each view by hand on tiny left-padded sequences, and InfoNCE against a hand-computed value."""

import math

import pytest
import torch

from lmrec.augment import views
from lmrec.training.losses import info_nce

ROW = torch.tensor([[0, 0, 1, 2, 3, 4, 5]])  # five events, left-padded
EMPTY = torch.zeros(1, 7, dtype=torch.long)


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_crop_keeps_a_contiguous_run_right_aligned():
    for seed in range(20):
        out = views.crop(ROW, 0.6, g(seed))[0].tolist()
        assert out[:4] == [0, 0, 0, 0]  # floor(0.6 * 5) = 3 events kept
        kept = out[4:]
        assert kept in ([1, 2, 3], [2, 3, 4], [3, 4, 5])
    assert views.crop(EMPTY, 0.6, g()).tolist() == EMPTY.tolist()
    assert views.crop(torch.tensor([[0, 0, 9]]), 0.1, g()).tolist() == [[0, 0, 9]]  # at least one event


def test_mask_hides_events_as_padding_and_never_touches_padding():
    out = views.mask(ROW, 0.999, g())
    assert out.tolist() == [[0] * 7]
    assert views.mask(ROW, 1e-9, g()).tolist() == ROW.tolist()
    outs = torch.cat([views.mask(ROW, 0.4, g(s)) for s in range(200)])
    assert ((outs[:, :2]) == 0).all()
    assert 0.3 < (outs[:, 2:] == 0).float().mean() < 0.5  # about the ratio


def test_reorder_permutes_one_contiguous_run_only():
    long = torch.arange(1, 11)[None]  # ten events, no padding
    seen_changed = False
    for seed in range(30):
        out = views.reorder(long, 0.3, g(seed))[0]  # 3 events shuffled
        assert sorted(out.tolist()) == list(range(1, 11))
        moved = (out != long[0]).nonzero().flatten().tolist()
        if moved:
            seen_changed = True
            assert max(moved) - min(moved) <= 2
    assert seen_changed
    assert views.reorder(ROW, 0.5, g())[0, :2].tolist() == [0, 0]


def test_substitute_uses_the_neighbour_map():
    neighbour = torch.tensor([0, 11, 12, 13, 14, 15])  # token i -> 10 + i
    assert views.substitute(ROW, 0.999, neighbour, g()).tolist() == [[0, 0, 11, 12, 13, 14, 15]]
    assert views.substitute(ROW, 1e-9, neighbour, g()).tolist() == ROW.tolist()


def test_views_are_deterministic_under_a_seed():
    batch = torch.randint(1, 50, (8, 12))
    for fn in (views.crop, views.mask, views.reorder):
        assert torch.equal(fn(batch, 0.5, g(3)), fn(batch, 0.5, g(3)))


def test_info_nce_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # z = [e1, e2, e1, e2]; row 0's candidates (self excluded): e2 (0), e1 (1, its partner), e2 (0)
    assert info_nce(a, a.clone()).item() == pytest.approx(-math.log(math.e / (math.e + 2)), rel=1e-6)
    # temperature 0.5 doubles every similarity
    assert info_nce(a, a.clone(), 0.5).item() == pytest.approx(-math.log(math.e**2 / (math.e**2 + 2)), rel=1e-6)
    # swapped partners are worse than matched ones
    assert info_nce(a, a.flip(0)).item() > info_nce(a, a.clone()).item()


def test_info_nce_cosine_ignores_the_scale_of_the_states():
    a = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    # unit rows: the same as e1, e2 above at temperature 0.5; a dot product would see 9 and 0.25
    assert info_nce(a, a.clone(), 0.5, cosine=True).item() == pytest.approx(
        -math.log(math.e**2 / (math.e**2 + 2)), rel=1e-6)
    assert info_nce(a, 2 * a, 0.5, cosine=True).item() == pytest.approx(info_nce(a, a, 0.5, cosine=True).item())
