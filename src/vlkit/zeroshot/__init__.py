"""CLIP zero-shot classification: the prompt templates (plain data) and the classifier that scores every
template alone and their ensemble from one pass over the images."""
