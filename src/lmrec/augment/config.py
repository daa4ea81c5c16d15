"""The ``augmentation`` section of the run config: which methods, and each one's options.

Augmentation is off by default (``methods = []``); ``methods = "recommended"`` takes the
combination the ablation in docs/benchmarks.md found best for the training data's profile
(:func:`recommended_methods`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmrec.data.profile import DataProfile

Method = Literal["contrastive", "prior", "gan"]
View = Literal["crop", "mask", "reorder", "substitute"]
Share = Annotated[float, Field(gt=0, lt=1)]


class ContrastiveConfig(BaseModel):
    """CL4SRec-style views of each training sequence with an InfoNCE loss between two views of the
    same user (the other users of the batch are the negatives)."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(0.1, ge=0, description="weight of the InfoNCE term beside the next-item loss")
    temperature: float = Field(1.0, gt=0, description="softmax temperature of InfoNCE")
    similarity: Literal["dot", "cosine"] = Field(
        "dot", description="similarity of two views' states: dot product (CL4SRec) or cosine (SimCLR; bounded, so "
        "the term cannot grow by inflating the states; use a temperature below 1 with it)")
    views: list[View] = Field(
        default_factory=lambda: ["crop", "mask", "reorder"],
        description="each view applies one of these, drawn per view and batch; substitute (replace items by their "
        "nearest content neighbour) needs item text (sasrec-text)")
    crop: Share = Field(0.6, description="crop keeps this share of the events (a contiguous run)")
    mask: Share = Field(0.3, description="mask hides this share of the events")
    reorder: Share = Field(0.3, description="reorder shuffles a contiguous run of this share of the events")
    substitute: Share = Field(0.3, description="substitute replaces this share of the events by content neighbours")


class PriorConfig(BaseModel):
    """ASReP: a model trained on reversed training sequences writes k pseudo-prior items before the
    first event of every short history; the forward model trains on the augmented sequences."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(5, ge=1, description="pseudo-prior items added to each short history")
    max_history: int = Field(10, ge=2, description="histories with fewer training events than this are augmented")
    budget_share: Share = Field(0.2, description="share of the fit's time budget spent training the reversed model")
    pretrain_share: float = Field(
        1.0, gt=0, le=1, description="train on the augmented sequences for this share of the fit, then on the real "
        "ones only (ASReP's fine-tuning phase); 1: augmented sequences throughout")


class GanConfig(BaseModel):
    """Virtual users from a generator trained adversarially against a discriminator."""

    model_config = ConfigDict(extra="forbid")

    users: int | None = Field(None, ge=1, description="virtual users to generate (default: a quarter of the real users)")
    weight: float = Field(0.5, gt=0, le=1, description="share of the virtual users mixed into each epoch: their "
                          "expected weight in the loss relative to a real user")
    budget_share: Share = Field(0.2, description="share of the fit's time budget spent training the GAN")
    file: str | None = Field(None, description="read virtual users from this event file (written by `lmrec "
                             "augment`) instead of training a generator")


class AugmentationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    methods: list[Method] | Literal["recommended"] = Field(
        default_factory=list, description="any of contrastive, prior, gan; recommended: what the ablation found best "
        "for the data's profile (docs/augmentation.md); [] (default): no augmentation")
    contrastive: ContrastiveConfig = Field(default_factory=ContrastiveConfig)
    prior: PriorConfig = Field(default_factory=PriorConfig)
    gan: GanConfig = Field(default_factory=GanConfig)

    def resolved_methods(self, profile: DataProfile) -> list[str]:
        return recommended_methods(profile) if self.methods == "recommended" else list(dict.fromkeys(self.methods))


def recommended_methods(profile: DataProfile) -> list[str]:
    """What the ablation (docs/benchmarks.md, augmentation) found best on validation for the profile."""
    return RECOMMENDED[profile.regime]


# From the validation columns of benchmarks/augmentation.py (docs/benchmarks.md, "Augmentation
# ablation", "Augmentation on ML-1M"): no method beat none on validation on Beauty (sparse),
# ML-100K (medium) or ML-1M (dense). So "recommended" is none everywhere until a benchmark says otherwise.
RECOMMENDED: dict[str, list[str]] = {"sparse": [], "medium": [], "dense": []}
