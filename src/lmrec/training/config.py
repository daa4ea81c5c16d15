"""How a model is trained (``TrainingConfig``) and how the run behaves around it (``RuntimeConfig``).

The model's own config (``models.*Config``) describes the network and is saved beside the
weights; these two are the run's business. Fields set to ``"auto"`` are chosen from the data's
profile by the rules in :mod:`lmrec.training.auto` when training starts; whatever a user sets
wins.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]
Positive = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class TrainingConfig(BaseModel):
    """Optimiser, schedule, batching, loss, stopping, budget and seed of iterative models."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    refit: bool = Field(
        True, description="after evaluating on the split, train the served model again on every event, following "
        "the evaluated run's learning-rate path step by step (stretched when the full data has more batches)")
    refit_start: Literal["evaluated", "scratch"] | Auto = Field(
        "auto", description="where the refit starts: evaluated: from the evaluated model's weights, replaying the "
        "last 10% of its epochs' learning-rate path (at least one epoch) on every event, so the evaluated fit gets "
        "most of the time budget; scratch: fresh weights and the whole path up to the best epoch; auto: evaluated, "
        "scratch under privacy.dp")
    time_budget: PositiveFloat | Auto = Field(
        "auto", description="minutes for the whole `train` command (data, fits, refit, evaluation); auto: "
        "24, which keeps ML-1M- or Beauty-sized data (with or without item text) within 25 minutes on a "
        "2-core CPU; small data stops far sooner by early stopping")
    epochs: Positive | Auto = Field(
        "auto", description="most epochs (auto: 200; the time budget usually ends training first)")
    batch_size: Positive | Auto = Field("auto", description="sequences per batch (auto: 64 below 10,000 users, else 128)")
    lr: PositiveFloat | Auto = Field("auto", description="peak learning rate of AdamW (auto: 2e-3)")
    weight_decay: NonNegative | Auto = Field("auto", description="AdamW weight decay (auto: 0.1 when the median user and "
                                         "item both have < 20 events, else 0)")
    lr_schedule: Literal["constant", "cosine"] | Auto = Field(
        "auto", description="cosine: decay to 0 by the end of the plan: the last epoch or, when it comes first, the "
        "end of the fit's share of the time budget; auto: cosine")
    warmup_steps: Annotated[int, Field(ge=0)] | Auto = Field(
        "auto", description="optimizer steps of linear learning-rate warm-up (auto: 200, at most two epochs)")
    max_grad_norm: float | None = Field(5.0, gt=0, description="clip the gradient norm to this (None: no clipping)")
    patience: Positive | None | Auto = Field(
        "auto", description="validation checks without gain before stopping (auto: 10 epochs without gain, and at "
        "least 2 checks, whatever eval_every is; None: never stop early)")
    eval_every: Positive | Auto = Field(
        "auto", description="epochs between validation checks (auto: re-measured at every check so that "
        "validation takes about 15% of the time, 1 to 5 epochs)")
    valid_users: Positive | None | Auto = Field(
        "auto", description="validate on a fixed random subset of this many users (auto: 10,000 above 50,000 users)")
    bf16: bool | Auto = Field("auto", description="bfloat16 autocast for training matmuls; auto: on when the "
                              "device of the steps (runtime.device) computes bf16 natively")
    loss: Literal["ce", "sampled", "bce"] = Field(
        "ce", description="ce: full softmax cross-entropy; sampled: softmax over n_negatives shared uniform "
        "negatives; bce: one negative per position (original SASRec)")
    n_negatives: int = Field(256, ge=1, description="negatives per batch for loss=sampled")
    loss_norm: Literal["batch", "epoch"] = Field(
        "epoch", description="epoch: the batch's summed loss over the epoch's mean positions per batch, so every "
        "training position weighs the same (as in randomly mixed batches; +0.018 test NDCG@10 on ML-1M, "
        "docs/benchmarks.md); batch: each step's loss is the mean over its positions, so in length-bucketed "
        "batches a short history's positions weigh more")
    window: Literal["last", "random"] = Field(
        "last", description="training window of users longer than max_len: their last events, or a window "
        "ending at a random point each epoch (trains on older events too)")


class RuntimeConfig(BaseModel):
    """Where and how the run executes: progress display, checkpoints, the device of the training steps."""

    model_config = ConfigDict(extra="forbid")

    progress: bool = True
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where the training steps run (lmrec.training.device): auto: a CUDA GPU when torch sees "
        "one and everything in the fit can use it, else the CPU; validation, evaluation and serving run on the CPU")
    checkpoint_dir: str | None = Field(
        None, description="save a resumable checkpoint here after every epoch (and resume from it)")
