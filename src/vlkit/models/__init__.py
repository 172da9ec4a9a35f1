"""The models: any pretrained CLIP (`clip`), the small ones trained from scratch (`clip_scratch`, `lm`,
their sizes in `architectures`), the captioner (`captioner/`) and its tuning methods (`tuning/`)."""
