"""Datasets in and out, no models: the one image reader, caption and classification datasets, predictions
files, WebDataset shards, and the training set of a folder or a shard stream."""
