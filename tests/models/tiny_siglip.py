"""A tiny SigLIP built from `SiglipConfig`, with a tokenizer trained here, saved in the HF layout.

SigLIP's real tokenizer is a SentencePiece model (Gemma's for SigLIP 2). The one trained here is a
`tokenizers` BPE behind a Metaspace pre-tokenizer (SentencePiece's word boundary `▁`), with SigLIP's
conventions: lower-cased text, no start token, `</s>` appended as the end token and doubling as padding,
and a 16-token context (the real models' is 64). Wrapped as a `PreTrainedTokenizerFast`, it saves and loads
as any hub tokenizer does.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Siglip2Config,
    Siglip2ImageProcessorPil,
    Siglip2Model,
    SiglipConfig,
    SiglipImageProcessorPil,
    SiglipModel,
)

from tests.models.tiny import CORPUS

EOS, UNK = "</s>", "<unk>"
CONTEXT = 16
IMAGE_SIZE = 32
PATCH = 8
PROJECTION = 16
# Trained-looking constants that bf16 cannot hold exactly (bf16 keeps 8 significant bits: -2.703125 and a
# scale of 9.94...), so a test sees whether they were read before the weights were cast.
LOGIT_SCALE, LOGIT_BIAS = 10.0, -2.71


def train_siglip_tokenizer(texts=CORPUS, vocab_size: int = 120) -> PreTrainedTokenizerFast:
    """A lower-casing BPE tokenizer: `text </s>`, padded with `</s>` (SigLIP's pad is its end token)."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[UNK, EOS], show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", special_tokens=[(EOS, tokenizer.token_to_id(EOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS, pad_token=EOS, unk_token=UNK, model_max_length=CONTEXT
    )


def _text_config(tokenizer: PreTrainedTokenizerFast) -> dict:
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=CONTEXT,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        projection_size=PROJECTION,
    )


_VISION = dict(patch_size=PATCH, hidden_size=PROJECTION, intermediate_size=32, num_hidden_layers=1)


def _with_constants(model: SiglipModel | Siglip2Model) -> SiglipModel | Siglip2Model:
    # The random init draws the bias from N(0, 1), which would hardly tell a sigmoid with it from one without.
    with torch.no_grad():
        model.logit_scale.fill_(torch.tensor(LOGIT_SCALE).log())
        model.logit_bias.fill_(LOGIT_BIAS)
    return model


def build_tiny_siglip(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> SiglipModel:
    """A random SigLIP of the tiny sizes, with `LOGIT_SCALE` and `LOGIT_BIAS`."""
    vision = dict(image_size=IMAGE_SIZE, num_attention_heads=2, **_VISION)
    config = SiglipConfig(text_config=_text_config(tokenizer), vision_config=vision)
    torch.manual_seed(seed)
    return _with_constants(SiglipModel(config))


def save_tiny_siglip(folder: Path, seed: int = 0, tokenizer: bool = True) -> Path:
    """The tiny SigLIP, its image processor and (unless `tokenizer=False`) its tokenizer in `folder`."""
    trained = train_siglip_tokenizer()
    build_tiny_siglip(trained, seed).save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(folder)
    if tokenizer:
        trained.save_pretrained(folder)
    return folder


def save_tiny_siglip2(folder: Path, seed: int = 0) -> Path:
    """A random NaFlex SigLIP 2 (`Siglip2Model`): images resized within a budget of 16 patches of 8 px, their
    aspect ratio kept; the tokenizer is the tiny SigLIP's."""
    tokenizer = train_siglip_tokenizer()
    vision = dict(num_patches=16, num_attention_heads=2, **_VISION)
    config = Siglip2Config(text_config=_text_config(tokenizer), vision_config=vision)
    torch.manual_seed(seed)
    _with_constants(Siglip2Model(config)).save_pretrained(folder)
    Siglip2ImageProcessorPil(patch_size=PATCH, max_num_patches=16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


OPEN_CLIP_SIGLIP = "vlkit-tiny-siglip"


def register_tiny_open_clip_siglip(root: Path, tokenizer_repo: str | None = None) -> str:
    """open_clip's SigLIP layout at the tiny sizes (a custom text tower without causal mask pooling its last
    token, and a logit bias), registered by its config file as open_clip's own are (once per process and
    name: the registry is global). Its tokenizer is the tiny SigLIP's, saved under `root`, which open_clip
    loads with AutoTokenizer as it loads timm/ViT-B-16-SigLIP's from the hub; or, given `tokenizer_repo`, a
    hub repository of that name (registered as another architecture)."""
    import open_clip

    name = OPEN_CLIP_SIGLIP if tokenizer_repo is None else f"{OPEN_CLIP_SIGLIP}-hub-tokenizer"
    if open_clip.get_model_config(name) is None:
        tokenizer = train_siglip_tokenizer()
        tokenizer.save_pretrained(root / "tokenizer")
        text = dict(context_length=CONTEXT, vocab_size=len(tokenizer), width=16, heads=2, layers=1)
        text.update(hf_tokenizer_name=tokenizer_repo or str(root / "tokenizer"))
        text.update(tokenizer_kwargs={"clean": "canonicalize"}, no_causal_mask=True, pool_type="last")
        vision = dict(image_size=IMAGE_SIZE, layers=1, width=24, head_width=12, patch_size=PATCH)
        config = dict(embed_dim=PROJECTION, init_logit_bias=LOGIT_BIAS, custom_text=True)
        path = root / f"{name}.json"
        path.write_text(json.dumps({**config, "vision_cfg": vision, "text_cfg": {**text, "proj_bias": True}}))
        open_clip.add_model_config(path)
    return name
