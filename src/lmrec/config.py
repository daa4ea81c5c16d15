"""The run configuration: one typed, validated document saved beside the weights.

Files may be JSON, TOML or YAML. Unknown keys anywhere are errors (with their path), so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lmrec.augment.config import AugmentationConfig
from lmrec.data.labels import LabelRule
from lmrec.data.processing import ProcessingConfig
from lmrec.data.readers import ColumnMapping
from lmrec.data.splits import LeaveOneOutConfig, SplitConfig
from lmrec.errors import ConfigError
from lmrec.evaluation.evaluator import EvalConfig
from lmrec.explain.interests import InterestCodesConfig
from lmrec.privacy import PrivacyConfig
from lmrec.training.config import RuntimeConfig, TrainingConfig
from lmrec.training.multitask import MultiTaskConfig


class DataConfig(LabelRule):
    """Inputs; ``like_threshold`` / ``event_labels`` give events a like / dislike label (default for
    ml-100k and ml-latest-small: rating >= 4)."""

    model_config = ConfigDict(extra="forbid")

    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    item_id_column: str | None = Field(None, description="id column of the items file (default: detected)")
    processing: ProcessingConfig | None = Field(
        None, description="filters and de-duplication (default: the named dataset's, else none)")
    item_vectors: list[str] = Field(
        default_factory=list, description="content models: extra per-item vectors (image, audio, attributes) from "
        ".parquet or .npy files keyed by item id, used with the text (read at training time and stored in the "
        "model's weights)")


class RunConfig(BaseModel):
    """Sections: ``data`` (inputs), ``split``, ``model`` (the network, saved with its weights),
    ``training`` (optimiser, schedule, budget, seed, refit), ``augmentation`` (sequence models:
    contrastive views, pseudo-prior items, virtual users), ``multitask`` (sequence models:
    auxiliary like / category heads), ``interests`` (vector models: sparse interest codes),
    ``privacy`` (pseudonymous user ids, coarser timestamps), ``runtime`` (progress, checkpoints), ``evaluation``."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=LeaveOneOutConfig)
    model: dict[str, Any] = Field(default_factory=dict, description="options of the chosen model")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    multitask: MultiTaskConfig = Field(default_factory=MultiTaskConfig)
    interests: InterestCodesConfig = Field(default_factory=InterestCodesConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    evaluation: EvalConfig = Field(default_factory=EvalConfig)


def _format_errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors())


def parse_config(values: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_format_errors(exc)}") from None


def load_config(path: str | Path | None) -> RunConfig:
    """Read and validate a config file; ``None`` gives the defaults."""
    if path is None:
        return RunConfig()
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            values = json.loads(text)
        elif path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            values = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: unsupported config format; use .json, .toml, .yaml or .yml")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return parse_config(values, str(path))
