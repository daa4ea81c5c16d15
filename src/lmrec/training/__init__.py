"""Train: the pipeline that turns data into a run directory, and (later) trainers for neural models."""
