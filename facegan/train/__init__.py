"""Training: the loop, checkpoints, EMA, losses, sample grids, metrics and trackers."""
