"""Batches of user sequences for next-item training: windows and length buckets."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from lmrec.data.sequences import Sequences


def training_windows(seqs: Sequences, max_len: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """(U, max_len + 1) token windows of the users with >= 2 events, left-padded with 0.

    Position t of ``window[:, :-1]`` is trained to predict ``window[:, t + 1]``. By default the
    window holds each user's last max_len + 1 events; with ``rng`` a user with more events gets a
    window ending at a random point, so over the epochs the older events are trained on too.
    """
    seqs = seqs.take(np.flatnonzero(seqs.lengths() >= 2))
    if rng is not None:
        lengths = seqs.lengths()
        long = lengths > max_len + 1
        ends = lengths.copy()
        ends[long] = rng.integers(max_len + 1, lengths[long] + 1)
        seqs = seqs.prefixes(ends)
    return seqs.to_padded(max_len + 1, pad=-1) + 1


class LengthBucketedBatches:
    """An epoch's windows in batches of similar lengths (little time goes into padding), in random
    batch order. ``positions_per_batch`` is the epoch's mean number of trained positions per batch,
    which ``loss_norm: epoch`` divides by so every position weighs the same.

    ``seqs`` may be a function of (epoch, rng) that returns the epoch's sequences (augmentation
    mixes in a different sample of virtual users each epoch, or switches to the real data).

    With ``labels`` (like / dislike of every event, aligned with ``seqs``) each batch is a pair
    (tokens, labels) of (B, L) tensors; padding has label -1."""

    def __init__(self, seqs: Sequences | Callable[[int, np.random.Generator], Sequences], *, max_len: int,
                 batch_size: int, random_window: bool, seed: int, labels: Sequences | None = None) -> None:
        if labels is not None:
            if callable(seqs):
                raise ValueError("labelled batches need fixed sequences (not an epoch-dependent augmentation)")
            # Windowing moves values around: carry each event's label inside its value, split after.
            seqs = Sequences(seqs.indptr, seqs.values * 3 + (labels.values + 1))
        self.seqs, self.max_len, self.batch_size, self.labelled = seqs, max_len, batch_size, labels is not None
        self.random_window, self.seed = random_window, seed
        self.positions_per_batch = 1.0

    def __call__(self, epoch: int) -> list[torch.Tensor]:
        rng = np.random.default_rng(epoch + 1_000_003 * self.seed)
        seqs = self.seqs(epoch, rng) if callable(self.seqs) else self.seqs
        windows = training_windows(seqs, self.max_len, rng if self.random_window else None)
        lengths = (windows != 0).sum(axis=1)
        order = np.lexsort((rng.random(len(windows)), lengths))
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        self.positions_per_batch = float((lengths - 1).sum()) / max(len(chunks), 1)
        out = []
        for j in rng.permutation(len(chunks)):
            w = windows[chunks[j]]
            w = w[:, -int((w != 0).sum(axis=1).max()) :]  # drop all-padding columns
            if self.labelled:  # w = value + 1 with value = item * 3 + label + 1; padding 0
                out.append((torch.from_numpy(np.where(w > 0, (w - 1) // 3 + 1, 0)),
                            torch.from_numpy(np.where(w > 0, (w - 1) % 3 - 1, -1))))
            else:
                out.append(torch.from_numpy(w))
        return out
