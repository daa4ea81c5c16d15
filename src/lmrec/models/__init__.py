"""Models: the shared contract (``Recommender``) and the registry of implementations."""

from lmrec.models.base import ModelConfig, Recommender
from lmrec.models.registry import create_model, get_model_class, model_names

__all__ = ["ModelConfig", "Recommender", "create_model", "get_model_class", "model_names"]
