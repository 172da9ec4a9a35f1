"""The captioner: a pretrained vision encoder read through new cross-attention by a GPT-2 decoder.

`config` (what to build, torch-free), `parts` (the pretrained encoder and decoder), `connector` (optional
layers between them), `model` (build, save, load)."""
