"""The captioner: a pretrained vision encoder read through new cross-attention by a GPT-2 decoder.

`config` (what to build, torch-free), `encoders` (the encoder kinds: class, token layout, config fixes),
`open_clip_tower` (an open_clip vision tower as a transformers model), `preprocessing` (the encoder's own
image processor, saved with the captioner), `parts` (the pretrained encoder and decoder), `connector`
(optional layers between them), `model` (build, save, load)."""
