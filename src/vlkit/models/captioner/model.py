"""The captioner: a pretrained vision encoder's patch tokens, read through cross-attention by a GPT-2 decoder.

transformers does the model: `VisionEncoderDecoderModel` composes any vision encoder with a causal LM (and
adds `enc_to_dec_proj`, a linear map from encoder width to decoder width, when they differ), and GPT-2 loaded
with `add_cross_attention=True` gets a new cross-attention block and layer norm in every block, randomly
initialized while the rest keeps its pretrained weights. This module only picks the encoder's kind from the
checkpoint's model type (`encoders.py`: a whole CLIP checkpoint gives its vision tower, a timm ViT or an
open_clip tower comes wrapped as a transformers model), sets the special tokens (GPT-2 style: the end token
doubles as start and padding), applies a tuning method (`vlkit.models.tuning`), and saves or loads the
result as one folder:

    config.json, generation_config.json   the encoder-decoder's configs (transformers)
    model.safetensors                    every weight, the tuning method's included (GPT-2's tied output
                                         layer is stored once; safetensors restores the tie on load)
    tokenizer files                      the decoder's tokenizer
    preprocessor_config.json             the encoder's own preprocessing (`preprocessing.py`)
    tuning_config.json                   {"method": ..., "config": {...}}: the method and its settings

An optional connector (`connector_layers` > 0 and `connector_kind`, stored in config.json) puts new layers
between the image tokens and the cross-attention (`connector.py`). A captioner with a connector, a peft
method, a timm or an open_clip encoder loads with `load_captioner`, not with a plain `from_pretrained` (an
open_clip encoder's config type is known to `AutoConfig` once `register_open_clip_config` has run).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_model, save_model
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    GPT2LMHeadModel,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
)

from vlkit.errors import ConfigError, VlkitError
from vlkit.models.captioner.config import CaptionerSpec
from vlkit.models.captioner.connector import attach_connector
from vlkit.models.captioner.encoders import EncoderKind, TokenLayout, encoder_kind
from vlkit.models.captioner.open_clip_tower import register_open_clip_config
from vlkit.models.captioner.parts import load_decoder, load_encoder, load_image_processor, load_tokenizer
from vlkit.models.captioner.preprocessing import load_saved_image_processor, save_image_processor
from vlkit.models.captioner.temporal import VideoSettings, attach_temporal, encode_frame_pixels
from vlkit.models.clip import resolve_device
from vlkit.models.tuning import ParameterCount, TuningMethod, tuning_method
from vlkit.models.tuning.weights import count_parameters
from vlkit.runtime.files import read_json, write_json_atomic

log = logging.getLogger(__name__)

TUNING_FILE = "tuning_config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class Captioner:
    """A vision-encoder / GPT-2 captioner with its tokenizer, image processor and tuning method."""

    model: VisionEncoderDecoderModel
    tokenizer: Any
    image_processor: Any
    tuning: str
    tuning_config: Any

    @property
    def method(self) -> TuningMethod:
        return tuning_method(self.tuning)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_caption_tokens(self) -> int:
        return int(self.model.generation_config.max_new_tokens)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB images -> (B, 3, H, W) fp32 pixels, as the encoder's own image processor makes them."""
        return self.image_processor(images=list(images), return_tensors="pt")["pixel_values"].float()

    @torch.no_grad()  # not inference_mode: the features may feed a training step of the decoder
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> the encoder's tokens (B, N, encoder width), before the projection, in eval mode."""
        encoder = self.model.encoder
        was_training = encoder.training
        encoder.eval()
        try:
            dtype = next(encoder.parameters()).dtype
            return encoder(pixel_values=pixel_values.to(self.device, dtype)).last_hidden_state
        finally:
            encoder.train(was_training)

    @property
    def encoder_kind(self) -> EncoderKind:
        return encoder_kind(self.model.config.encoder.model_type, "captioner encoder")

    def token_layout(self) -> TokenLayout:
        """How the encoder lays out its image tokens: prefix tokens, then the patch grid row by row."""
        return self.encoder_kind.layout(self.model.encoder)

    def prefix_tokens(self) -> int:
        """Image tokens before the patch grid: CLS (CLIP, ViT, open_clip), CLS and registers (timm), none
        (SigLIP)."""
        return self.token_layout().prefix_tokens

    def patch_grid(self) -> tuple[int, int]:
        """(rows, columns) of the encoder's patch tokens, which follow its `prefix_tokens()`."""
        return self.token_layout().grid

    @property
    def video(self) -> VideoSettings | None:
        """How a video captioner reads frames (`temporal.py`); None for an image captioner."""
        return VideoSettings.of(self.model)

    def video_settings(self) -> VideoSettings:
        """The video settings, or a one-line error for an image captioner."""
        settings = self.video
        if settings is None:
            raise VlkitError("this captioner reads images, not videos (it was trained without --temporal)")
        return settings

    @torch.no_grad()
    def encode_videos(
        self, clips: Sequence[Sequence[Image.Image]], frame_pool: int | None = None
    ) -> torch.Tensor:
        """Clips of RGB frames (the same count each) -> (B, frames * frame tokens, encoder width): every frame
        through the encoder's own preprocessing and the encoder (eval mode), its tokens pooled (to
        `frame_pool`, default the captioner's own)."""
        counts = {len(frames) for frames in clips}
        if len(counts) != 1:
            raise VlkitError(
                f"encode_videos: clips of {sorted(counts)} frames in one batch (sample them alike)"
            )
        pixels = self.preprocess([frame for frames in clips for frame in frames])  # (B * F, 3, H, W)
        pixels = pixels.reshape(len(clips), counts.pop(), *pixels.shape[1:]).to(self.device)
        encoder = self.model.encoder
        was_training = encoder.training
        encoder.eval()
        try:
            pool = self.video_settings().frame_pool if frame_pool is None else frame_pool
            return encode_frame_pixels(self.model, pixels, self.token_layout(), pool)
        finally:
            encoder.train(was_training)

    def parameter_count(self) -> ParameterCount:
        return count_parameters(self.model)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the captioner folder (see the module docstring); the weights file is replaced atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(folder)
        self.model.generation_config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        save_image_processor(self.image_processor, folder)
        tmp = folder / f".{WEIGHTS_FILE}.{os.getpid()}.tmp"
        save_model(self.model, str(tmp))
        os.replace(tmp, folder / WEIGHTS_FILE)
        settings = {"method": self.tuning, "config": dataclasses.asdict(self.tuning_config)}
        write_json_atomic(folder / TUNING_FILE, settings)
        return folder


def video_settings(spec: CaptionerSpec) -> VideoSettings | None:
    """The video settings a spec asks for (None: an image captioner)."""
    if not spec.temporal:
        return None
    return VideoSettings(
        spec.temporal, spec.frames, spec.frame_pool, spec.temporal_layers, spec.frame_sampling
    )


def build_captioner(spec: CaptionerSpec, allow_pickle: bool = False) -> Captioner:
    """Pretrained encoder + pretrained decoder + new cross-attention and projection, then the tuning method.

    The same spec (seed included) gives the same weights; the model comes in eval mode. `allow_pickle`
    (`vlkit --allow-pickle`) also loads a part folder's pickled weights (torch.load, weights_only=True).
    """
    method = tuning_method(spec.tuning)
    tuning_config = spec.method_config()
    register_open_clip_config()
    encoder = load_encoder(spec.encoder, allow_pickle)
    torch.manual_seed(spec.seed)  # the decoder's new cross-attention weights are drawn while it loads
    decoder = load_decoder(spec.decoder, allow_pickle)
    tokenizer = load_tokenizer(spec.decoder)
    image_processor = load_image_processor(spec.encoder, encoder)
    torch.manual_seed(spec.seed + 1)
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    layout = encoder_kind(encoder.config.model_type, f"--encoder {spec.encoder}").layout(encoder)
    attach_temporal(model, video_settings(spec))
    attach_connector(model, spec.connector_layers, spec.connector, layout)
    _set_special_tokens(model, tokenizer, spec.max_caption_tokens)
    _check_positions(model, method, tuning_config, spec.max_caption_tokens)
    torch.manual_seed(spec.seed + 2)
    method.apply(model, tuning_config)
    model.eval()  # as from_pretrained leaves a model; trainers switch to train mode themselves
    log.info(
        "captioner %s + %s, tuning %s: %s",
        spec.encoder,
        spec.decoder,
        method.name,
        count_parameters(model).describe(),
    )
    return Captioner(model, tokenizer, image_processor, method.name, tuning_config)


def load_captioner(
    folder: str | os.PathLike[str], device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Captioner:
    """Load a folder written by `Captioner.save`, in eval mode on `device` ("auto": a GPU where there is
    one), its weights in `dtype` (bf16
    halves the memory and, on hardware with bf16 matmuls, speeds up generation)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VlkitError(f"{folder}: captioner folder not found")
    for name in ("config.json", WEIGHTS_FILE, TUNING_FILE):
        if not (folder / name).is_file():
            raise VlkitError(f"{folder}: not a captioner folder (no {name})")
    settings = read_json(folder / TUNING_FILE)
    if not isinstance(settings, dict) or "method" not in settings or "config" not in settings:
        raise VlkitError(f"{folder / TUNING_FILE}: expected an object with 'method' and 'config'")
    method = tuning_method(settings["method"])
    tuning_config = method.config_from_dict(settings["config"], str(folder / TUNING_FILE))
    register_open_clip_config()
    config = VisionEncoderDecoderConfig.from_pretrained(folder)
    source = str(folder / "config.json")
    kind = encoder_kind(config.encoder.model_type, source)
    encoder = kind.build(config.encoder, source)
    decoder = GPT2LMHeadModel(config.decoder)
    model = VisionEncoderDecoderModel(config=config, encoder=encoder, decoder=decoder)
    try:
        attach_temporal(model, VideoSettings.of(model))
    except VlkitError as exc:
        raise VlkitError(f"{folder / 'config.json'}: {exc}") from None
    try:
        connector_layers = getattr(config, "connector_layers", 0)
        connector_kind = getattr(config, "connector_kind", "attention")
        attach_connector(model, connector_layers, connector_kind, kind.layout(encoder))
    except VlkitError as exc:
        raise VlkitError(f"{folder / 'config.json'}: connector: {exc}") from None
    model.generation_config = GenerationConfig.from_pretrained(folder)
    method.apply(model, tuning_config)
    try:
        load_model(model, str(folder / WEIGHTS_FILE), strict=True)
    except RuntimeError as exc:
        message = f"{folder / WEIGHTS_FILE}: weights do not match the config ({exc})"
        raise VlkitError(message.splitlines()[0]) from exc
    model.to(resolve_device(device) if isinstance(device, str) else device, dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    image_processor = load_saved_image_processor(folder)
    return Captioner(model, tokenizer, image_processor, method.name, tuning_config)


def _set_special_tokens(model: VisionEncoderDecoderModel, tokenizer: Any, max_caption_tokens: int) -> None:
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = start
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = start
    model.generation_config.max_new_tokens = max_caption_tokens


def _check_positions(
    model: VisionEncoderDecoderModel, method: TuningMethod, config: Any, tokens: int
) -> None:
    """The decoder reads the start token and all caption tokens but the last (the end token), after the
    method's reserved positions: together they must fit GPT-2's position table."""
    available = int(model.decoder.config.n_positions)
    reserved = method.reserved_positions(config)
    if tokens < 1 or tokens + reserved > available:
        raise ConfigError(
            CaptionerSpec,
            "max_caption_tokens",
            f"{tokens} caption tokens + {reserved} positions reserved by {method.name!r} "
            f"must be between 1 and the decoder's n_positions ({available})",
        )
