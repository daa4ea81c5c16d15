"""Small, quick configs so the contract suite stays fast for every model."""

_NEURAL = {"epochs": 3, "d_model": 16, "max_len": 10, "batch_size": 16, "progress": False}

FAST: dict[str, dict] = {
    "sasrec": _NEURAL | {"n_heads": 2, "n_layers": 1},
    "dnn": _NEURAL | {"hidden": [32]},
    "text-knn": {"progress": False},
    "sasrec-text": _NEURAL | {"n_heads": 2, "n_layers": 1, "adapter_hidden": 16},
}
