"""ViLBERT: two streams (words, image regions) joined by co-attention, after the reference implementation
(facebookresearch/vilbert-multi-task).

`config` (`ViLBertConfig`, torch-free), `embeddings` (words: transformers' BERT; regions: feature + box, the
whole-image token first), `coattention` (the hand-written co-attention layer), `encoder` (the layer schedule
of both streams, or one stream), `inputs` (the batch checks), `heads` (the task heads and the masked-region
loss), `model` (`ViLBertModel`: forward, heads, save and load), `variants` (the study's ablations as config
edits, parameter counts), `tokenizer` (a WordPiece trained with `tokenizers`), `convert` (reference
checkpoints and hub BERTs in)."""
