"""A dataset's profile: the numbers the automatic defaults are chosen from.

Computed from the events a model is trained on (never from validation or test), so a choice
made from it cannot leak what is being predicted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lmrec.data.sequences import Interactions


@dataclass(frozen=True)
class DataProfile:
    users: int  # users with at least one event
    items: int  # catalogue size
    events: int
    density: float  # events / (users * items)
    history_p50: float  # history length percentiles over users with events
    history_p90: float
    history_p99: float
    item_events_p50: float  # events of the median item among those with events: how well an item is known
    item_text: bool  # item content (text vectors) is attached

    @classmethod
    def of(cls, data: Interactions, *, item_text: bool = False) -> DataProfile:
        lengths = np.bincount(data.user, minlength=data.n_users)
        lengths = lengths[lengths > 0]
        counts = data.item_counts()
        counts = counts[counts > 0]
        p50, p90, p99 = np.percentile(lengths, [50, 90, 99]) if lengths.size else (0.0, 0.0, 0.0)
        return cls(users=int(lengths.size), items=int(data.n_items), events=len(data),
                   density=len(data) / max(1, lengths.size * data.n_items), history_p50=float(p50),
                   history_p90=float(p90), history_p99=float(p99),
                   item_events_p50=float(np.median(counts)) if counts.size else 0.0, item_text=item_text)

    @property
    def regime(self) -> str:
        """How much evidence there is per user and per item: ``sparse`` when both the median user
        and the median item have fewer than 20 events (Beauty), ``dense`` when the median item has
        100 or more (ML-1M), else ``medium`` (ML-100K; Last.fm and MovieLens latest-small, whose
        items are rare but whose users have long histories)."""
        if self.item_events_p50 < 20 and self.history_p50 < 20:
            return "sparse"
        return "dense" if self.item_events_p50 >= 100 else "medium"

    def describe(self) -> str:
        return (f"{self.users:,} users, {self.items:,} items, {self.events:,} events, density {self.density:.3%}; "
                f"history length p50/p90/p99 {self.history_p50:.0f}/{self.history_p90:.0f}/{self.history_p99:.0f}; "
                f"median item {self.item_events_p50:.0f} events ({self.regime}); "
                f"item text {'yes' if self.item_text else 'no'}")

    def as_dict(self) -> dict:
        return asdict(self) | {"regime": self.regime}
