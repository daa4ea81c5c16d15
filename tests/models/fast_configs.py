"""Small, quick configs so the contract suite stays fast for every model."""

FAST: dict[str, dict] = {}
