"""Launch layer helpers: run directories, logging, checkpoints, device sharding, statistics."""
