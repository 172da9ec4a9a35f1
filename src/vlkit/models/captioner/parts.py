"""The captioner's pretrained parts: the vision encoder by the checkpoint's model type, the GPT-2 decoder
with new cross-attention, their tokenizer and image processor, each with a one-line error naming the option.

transformers loads them (timm checkpoints through its `TimmWrapperModel`; open_clip towers come from
`open_clip_tower`); this module picks the encoder's kind from a plain dict keyed by `model_type` (never by a
substring of the name: `encoders.ENCODER_KINDS`) and checks what the checkpoints lacked.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, GPT2LMHeadModel, PreTrainedModel

from vlkit.errors import VlkitError
from vlkit.models.captioner.encoders import encoder_kind
from vlkit.models.captioner.open_clip_tower import is_open_clip_name, load_open_clip_tower
from vlkit.models.clip import check_local_model_folder, offline_hint, use_safetensors
from vlkit.models.hub import resolve_model_name

log = logging.getLogger(__name__)

DECODER_TYPES = ("gpt2",)
# The weights GPT-2 gains with add_cross_attention=True; any other missing decoder weight is an error.
_NEW_DECODER_WEIGHT = re.compile(r"\.(crossattention|ln_cross_attn)\.")


def load_encoder(name: str, allow_pickle: bool = False) -> PreTrainedModel:
    """The vision encoder of a checkpoint (a CLIP or SigLIP checkpoint gives its vision tower, a timm folder
    or hub id its ViT) or of `open_clip:ARCH/PRETRAINED` (its vision tower); a folder's pickled weights load
    only with `allow_pickle` (`vlkit --allow-pickle`)."""
    if is_open_clip_name(name):
        return load_open_clip_tower(name)
    source = f"--encoder {name}"
    config = _load_config(name, "--encoder", allow_pickle)
    kind = encoder_kind(config.model_type, source)
    options = dict(kind.options)
    if kind.prepare is not None:
        options["config"] = kind.prepare(config, source)
    encoder, missing = _from_pretrained(kind.model_class, name, "--encoder", allow_pickle, **options)
    if missing:
        raise VlkitError(f"{source}: checkpoint lacks {len(missing)} weights, e.g. {missing[0]}")
    if kind.finish is not None:
        kind.finish(encoder, source)
    return encoder


def load_decoder(name: str, allow_pickle: bool = False) -> GPT2LMHeadModel:
    """A GPT-2-family LM with a new, randomly initialized cross-attention block in every layer; a folder's
    pickled weights load only with `allow_pickle` (`vlkit --allow-pickle`)."""
    config = _load_config(name, "--decoder", allow_pickle)
    if config.model_type not in DECODER_TYPES:
        raise VlkitError(
            f"--decoder {name}: model type {config.model_type!r} is not GPT-2-family "
            f"(supported: {', '.join(DECODER_TYPES)})"
        )
    decoder, missing = _from_pretrained(
        GPT2LMHeadModel, name, "--decoder", allow_pickle, add_cross_attention=True
    )
    pretrained = [key for key in missing if not _NEW_DECODER_WEIGHT.search(key)]
    if pretrained:
        raise VlkitError(f"--decoder {name}: lacks {len(pretrained)} weights, e.g. {pretrained[0]}")
    log.info("--decoder %s: %d new cross-attention weight tensors", name, len(missing))
    return decoder


def _load_config(name: str, option: str, allow_pickle: bool = False) -> Any:
    path = resolve_model_name(name)
    check_local_model_folder(path, allow_pickle=allow_pickle)
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        if Path(resolve_model_name(name)).is_dir():
            raise VlkitError(f"{option} {name}: cannot read its config ({exc})".splitlines()[0]) from exc
        raise offline_hint(name, exc) from exc


def _from_pretrained(
    model_class: type[PreTrainedModel], name: str, option: str, allow_pickle: bool = False, **options: Any
) -> tuple[Any, list[str]]:
    """The model and the names of the weights its checkpoint lacked (randomly initialized).

    transformers logs a table of every missing and unexpected weight; for the captioner both are expected (a
    CLIP checkpoint's text tower is unused, the cross-attention is new), so the table is silenced and the
    missing names are returned for the caller to check.
    """
    # A filter, not setLevel: transformers 5 runs a tensor-parallel check that logs warnings of its own
    # whenever this logger's level is WARNING or above.
    loading_logger = logging.getLogger("transformers.modeling_utils")
    loading_logger.addFilter(_errors_only)
    try:
        model, info = model_class.from_pretrained(
            resolve_model_name(name),
            # fp32 whatever the checkpoint's storage (the stand-ins are fp16, many hub models bf16): the
            # captioner trains fp32 master weights and autocasts where asked (`mixed_precision`).
            dtype=torch.float32,
            use_safetensors=use_safetensors(allow_pickle),
            output_loading_info=True,
            **options,
        )
    except (OSError, ValueError, pickle.UnpicklingError) as exc:
        if Path(resolve_model_name(name)).is_dir():
            raise VlkitError(f"{option} {name}: cannot load it ({exc})".splitlines()[0]) from exc
        raise offline_hint(name, exc) from exc
    except ImportError as exc:  # transformers' word for a timm architecture the installed timm lacks
        raise VlkitError(f"{option} {name}: {exc}".splitlines()[0]) from exc
    finally:
        loading_logger.removeFilter(_errors_only)
    return model, sorted(info.get("missing_keys", []))


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def load_tokenizer(name: str) -> Any:
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(name))
    except (OSError, ValueError) as exc:
        raise VlkitError(f"--decoder {name}: cannot load its tokenizer ({exc})".splitlines()[0]) from exc
    if tokenizer.eos_token_id is None:
        raise VlkitError(f"--decoder {name}: its tokenizer has no end-of-text token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 style: the end token doubles as padding
    return tokenizer


def load_image_processor(name: str, encoder: PreTrainedModel | None = None) -> Any:
    """The encoder's own image processor: the checkpoint's (a timm checkpoint's from its config.json), or the
    one its kind makes from the built `encoder` (an open_clip tower's, from its preprocess config)."""
    kind = encoder_kind(encoder.config.model_type, f"--encoder {name}") if encoder is not None else None
    if kind is not None and kind.image_processor is not None:
        return kind.image_processor(encoder, f"--encoder {name}")
    try:
        return AutoImageProcessor.from_pretrained(resolve_model_name(name), backend="pil")
    except (OSError, ValueError) as exc:
        message = f"--encoder {name}: cannot load its image processor ({exc})"
        raise VlkitError(message.splitlines()[0]) from exc
