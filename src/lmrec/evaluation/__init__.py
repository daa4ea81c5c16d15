"""Evaluate: full-ranking metrics, breakdowns by sparsity, reports."""

from lmrec.evaluation.evaluator import EvalConfig, EvalResult, Validator, evaluate

__all__ = ["EvalConfig", "EvalResult", "Validator", "evaluate"]
