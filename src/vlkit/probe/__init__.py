"""Linear probes on frozen image embeddings: a logistic regression fit on a CLIP's image features, its L2
strength chosen on a held-out part of the training split, scored once on the test split.

A folder of its own at the zeroshot tier: it is the other way of reading classes off a frozen CLIP (zero-shot
reads them from text embeddings, a probe learns them from labelled images), and like zeroshot it turns
embeddings into class decisions; it trains a model, so it is not a metric (metrics/ holds pure scores of
predictions). It imports nothing above runtime/: features in, a fitted probe and its scores out.

- `config.py`: `ProbeConfig`, the protocol's settings as plain data (torch-free: the CLI builds its options).
- `logistic.py`: multinomial logistic regression by full-batch L-BFGS in torch, sklearn's objective.
- `protocol.py`: the split (few-shot draw, stratified validation), the search over C, the refit, the scores.
"""
