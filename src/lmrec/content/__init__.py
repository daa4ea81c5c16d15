"""Item content: text from metadata columns encoded by a pretrained sentence encoder, cached on disk."""

from lmrec.content.encoder import DEFAULT_MODEL, TextEncoder, item_texts

__all__ = ["DEFAULT_MODEL", "TextEncoder", "item_texts"]
