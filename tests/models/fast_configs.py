"""Small, quick configs so the contract suite stays fast for every model, and ``build`` for tests
that give one flat dict of options."""

from lmrec.models import Recommender, create_model
from lmrec.training.config import RuntimeConfig, TrainingConfig

_NEURAL = {"epochs": 3, "d_model": 16, "max_len": 10, "batch_size": 16}

FAST: dict[str, dict] = {
    "sasrec": _NEURAL | {"n_heads": 2, "n_layers": 1},
    "dnn": _NEURAL | {"hidden": [32]},
    "text-knn": {},
    "sasrec-text": _NEURAL | {"n_heads": 2, "n_layers": 1, "adapter_hidden": 16},
    "interest": _NEURAL | {"n_heads": 2, "n_layers": 1},
}


def build(name: str, options: dict | None = None) -> Recommender:
    """``create_model`` with the options of all three sections in one dict (no progress bars)."""
    options = dict(options or {})
    training = {k: options.pop(k) for k in list(options) if k in TrainingConfig.model_fields}
    runtime = {"progress": False} | {k: options.pop(k) for k in list(options) if k in RuntimeConfig.model_fields}
    return create_model(name, options, training=training, runtime=runtime)
