"""Benchmark: the language model over item content on Amazon Beauty (sparse users, tail and cold
items), and the check that it costs nothing on ML-1M (titles and genres).

Ablation: text-knn (no training) vs ID-only SASRec vs text-only vs fused, under
(a) the standard leave-one-out protocol and (b) the cold-item protocol: 10% of items held out
of training entirely (all their events removed), kept in the catalogue with their titles;
the cold bucket then holds the users whose test item is one of them. A second, disjoint 10%
is held out until validation, so that validation has its own cold bucket: every choice for
the cold path (the channel weight) is made there; the script prints it beside the test numbers.
Protocol otherwise as everywhere: full ranking, seen items excluded. Frozen configs
(validated 2026-11-28); the SASRec part matches benchmarks/sasrec.py, with the content models'
changes in TEXT[dataset]["content_model"].

    .venv/bin/python benchmarks/text.py              # everything
    .venv/bin/python benchmarks/text.py standard     # or: cold
    .venv/bin/python benchmarks/text.py cold text-knn fused   # only these runs
    .venv/bin/python benchmarks/text.py ml-1m standard "ID only" fused   # another dataset
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, markdown_rows, run_one  # noqa: E402
from sasrec import CONFIGS as SEQ  # noqa: E402

from lmrec.data.splits import LeaveOneOutConfig  # noqa: E402

# Text columns and the recency decay of text-knn per dataset (Beauty: titles; ML-1M: every
# string column, i.e. title and genres). The text-knn channel of sasrec-text uses the same decay
# as the baseline; its weight is picked on the validation users (text_knn_weight: auto, the default).
# "content_model": changes to the SASRec config for the text-only and fused models. On Beauty
# they use d_model 128 (validation 0.0721 vs 0.0711 at 64, docs/benchmarks.md) and a 20-minute
# budget: the content path makes an epoch slower, and validation was still rising at 12 minutes.
# Beauty's channel weight is searched with a second model fitted without each user's last event
# (text_knn_weight: lagged; docs/benchmarks.md, seventh session): twice the fit time. Items with
# few events lean on their content neighbours' IDs (id_shrinkage 3: eighth session).
TEXT = {"beauty": {"text_columns": ["title"], "decay": 0.5,
                   "content_model": {"d_model": 128, "max_train_minutes": 20, "text_knn_weight": "lagged",
                                     "id_shrinkage": 3}},
        "ml-1m": {"text_columns": None, "decay": 0.8, "content_model": {"max_train_minutes": 28}}}


def runs(dataset: str) -> list[tuple[str, str, dict]]:
    id_only, cols, decay = SEQ[(dataset, "sasrec")], TEXT[dataset]["text_columns"], TEXT[dataset]["decay"]
    text = {"text_columns": cols, "text_knn_decay": decay} | TEXT[dataset]["content_model"]
    return [
        ("text-knn", "text-knn", {"recency_decay": decay, "text_columns": cols}),
        ("text-knn (whitened)", "text-knn", {"recency_decay": decay, "text_columns": cols, "whitening": 0.1}),
        ("sasrec (ID only)", "sasrec", id_only),
        ("sasrec-text (text only)", "sasrec-text", id_only | text | {"fusion": "text"}),
        ("sasrec-text (fused)", "sasrec-text", id_only | text | {"fusion": "fused"}),
    ]


PROTOCOLS = {"standard": LeaveOneOutConfig(), "cold": LeaveOneOutConfig(cold_item_fraction=0.1, cold_item_seed=0)}

if __name__ == "__main__":
    # Arguments: a dataset (default beauty), protocols (standard, cold) and optionally model names
    # or label words ("fused").
    dataset = next((a for a in sys.argv[1:] if a in TEXT), "beauty")
    wanted = [a for a in sys.argv[1:] if a in PROTOCOLS] or list(PROTOCOLS)
    models = [a for a in sys.argv[1:] if a not in PROTOCOLS and a not in TEXT]
    for protocol in wanted:
        results = []
        for label, model, config in runs(dataset):
            if models and not any(m == model or m in label for m in models):
                continue
            r = run_one(dataset, model, config, split=PROTOCOLS[protocol])
            r["label"] = label
            s, v = r["summary"], r["valid_summary"]
            print(f"[{protocol}] {label}: NDCG@10 {s['overall']['ndcg@10']:.4f} HR@10 {s['overall']['hr@10']:.4f} "
                  f"cold HR@10 {s['by_popularity']['cold'].get('hr@10')} fit {r['fit_s']:.0f}s; validation (what "
                  f"choices are made on): NDCG@10 {v['overall']['ndcg@10']:.4f}, cold HR@10 "
                  f"{v['by_popularity']['cold'].get('hr@10')} over {v['by_popularity']['cold']['n_users']} users",
                  flush=True)
            for note in r["fitted"].fit_notes():
                print("   ", note, flush=True)
            results.append(r)
        print(f"\n### {dataset}, {protocol} protocol\nmachine: {machine()}\n")
        print(markdown_rows(results), flush=True)
