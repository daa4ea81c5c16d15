"""Beauty item attributes (brand and category ids from the S3-Rec release) as per-item vectors.

The S3-Rec copy of Amazon Beauty ships ``Beauty_item2attributes.json`` (S3-Rec item id -> attribute
ids; 637 attributes, about 3.7 per item, names not given). ``derived/s3rec_items_asin_title.tsv``
maps S3-Rec ids to ASINs, and the title-filtered catalogue lmrec loads as ``beauty`` has the ASIN
of each item, so every one of its 12,086 items gets a multi-hot attribute vector. Written as
``.npy`` + ``.ids.txt`` for ``--item-vectors`` / ``item_vectors`` (content models L2-normalise it).

    .venv/bin/python benchmarks/beauty_attributes.py   # prints the path, builds it if missing
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from lmrec.data.datasets import cache_dir, data_dir


def attribute_vectors(root: Path | None = None, out_dir: Path | None = None) -> Path:
    """Path of the (12,086, 637) multi-hot attribute array, built from the shared data if missing."""
    out = (out_dir or cache_dir() / "derived") / "beauty-attributes.npy"
    if out.exists() and out.with_suffix(".ids.txt").exists():
        return out
    base = (root or data_dir()) / "amazon-beauty"
    items = pl.read_csv(base / "derived" / "seqrecbench" / "items.tsv.gz", separator="\t", quote_char=None)
    s3rec = pl.read_csv(base / "derived" / "s3rec_items_asin_title.tsv", separator="\t", quote_char=None)
    attrs = json.loads((base / "s3rec" / "Beauty_item2attributes.json").read_text())
    s3rec_id = dict(zip(s3rec["asin"], s3rec["s3rec_item_id"], strict=True))
    lists = [attrs.get(str(s3rec_id.get(asin)), []) for asin in items["asin"]]
    vocab = {a: j for j, a in enumerate(sorted({a for row in lists for a in row}))}
    vectors = np.zeros((len(items), len(vocab)), dtype=np.float32)
    for i, row in enumerate(lists):
        vectors[i, [vocab[a] for a in row]] = 1.0
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, vectors)
    out.with_suffix(".ids.txt").write_text("\n".join(map(str, items["item_id"])) + "\n")
    return out


if __name__ == "__main__":
    path = attribute_vectors()
    v = np.load(path)
    print(f"{path}: {v.shape[0]} items x {v.shape[1]} attributes, {int((v.sum(1) > 0).sum())} items with any, "
          f"{v.sum(1).mean():.2f} per item")
