"""Data augmentation for sparse users (run config section ``augmentation``):

- ``contrastive``: InfoNCE between random views of each training sequence (:mod:`.contrastive`, :mod:`.views`);
- ``prior``: pseudo-prior items written before short histories by a reversed model (:mod:`.prior`);
- ``gan``: virtual users from an adversarially trained generator (:mod:`.gan`; also ``lmrec augment``).

:class:`.plan.Augmenter` is what a sequence model's fit runs; it only reads the training events
it is given.
"""

from lmrec.augment.config import AugmentationConfig, recommended_methods

__all__ = ["AugmentationConfig", "recommended_methods"]
