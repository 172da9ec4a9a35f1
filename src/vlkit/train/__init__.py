"""Training: the accelerate loop every trainer shares, checkpoints, shard streams, the feature cache, the
trainers' configs (`config`, torch-free) and one trainer per model."""
