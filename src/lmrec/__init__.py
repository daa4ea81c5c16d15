"""lmrec: recommendations from sparse behaviour data with large models.

The public surface is small; the pipeline stages live in subpackages:
``lmrec.data`` (collect and process), ``lmrec.models`` (the model contract and
the models), ``lmrec.evaluation`` (full-ranking metrics and reports) and
``lmrec.cli`` (the ``lmrec`` command).
"""

from lmrec.errors import ConfigError, DataValidationError, LmrecError, NotFittedError, RunError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataValidationError",
    "LmrecError",
    "NotFittedError",
    "RunError",
    "__version__",
]
