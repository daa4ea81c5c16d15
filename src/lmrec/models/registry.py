"""One name -> model class registry, used by the CLI, the training pipeline and ``Recommender.load``."""

from __future__ import annotations

from lmrec.errors import ConfigError
from lmrec.models.base import Recommender


def _registry() -> dict[str, type[Recommender]]:
    # Imported here so that heavy models load only when asked for.
    from lmrec.models.baselines import EASE, ItemKNN, Popularity
    from lmrec.models.dnn import DNN
    from lmrec.models.interest import Interest
    from lmrec.models.sasrec import SASRec
    from lmrec.models.sasrec_text import SASRecText
    from lmrec.models.textknn import TextKNN
    from lmrec.models.transitions import Transitions

    return {m.name: m for m in (Popularity, ItemKNN, EASE, Transitions, SASRec, DNN, TextKNN, SASRecText, Interest)}


def model_names() -> list[str]:
    return sorted(_registry())


def get_model_class(name: str) -> type[Recommender]:
    models = _registry()
    name = ALIASES.get(name, name)
    if name not in models:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(models))}")
    return models[name]


ALIASES = {"popularity": "pop"}


def create_model(name: str, config: dict | None = None, *, training: dict | None = None,
                 runtime: dict | None = None) -> Recommender:
    return get_model_class(name)(config, training=training, runtime=runtime)
