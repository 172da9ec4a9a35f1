"""The captioner: a pretrained vision encoder's patch tokens, read through cross-attention by a GPT-2 decoder.

transformers does the model: `VisionEncoderDecoderModel` composes any vision encoder with a causal LM (and
adds `enc_to_dec_proj`, a linear map from encoder width to decoder width, when they differ), and GPT-2 loaded
with `add_cross_attention=True` gets a new cross-attention block and layer norm in every block, randomly
initialized while the rest keeps its pretrained weights. This module only picks the encoder class from the
checkpoint's model type (a whole CLIP checkpoint gives its vision tower), sets the special tokens (GPT-2
style: the end token doubles as start and padding), applies a tuning method (`vlkit.models.tuning`), and
saves or loads the result as one folder:

    config.json, generation_config.json   the encoder-decoder's configs (transformers)
    model.safetensors                    every weight, the tuning method's included (GPT-2's tied output
                                         layer is stored once; safetensors restores the tie on load)
    tokenizer files, preprocessor_config.json
    tuning_config.json                   {"method": ..., "config": {...}}: the method and its settings

An optional **connector** (`connector_layers` > 0 and `connector_kind`, stored in config.json) puts new
layers between the image tokens and the decoder's cross-attention, as BLIP-2's Q-Former or mPLUG-Owl's
abstractor sit between a frozen encoder and a frozen LM: `attention`, torch's own pre-norm
`nn.TransformerEncoderLayer` over all tokens, or `local`, a convolution MLP that mixes each patch token with
its 3x3 neighbours. Cross-attention reads a weighted mean of the tokens' linear projections, which cannot
combine the several tokens an object spans non-linearly; a connector layer can (measured on the shapes
world in the README). transformers' `VisionEncoderDecoderModel` has no such slot (its `enc_to_dec_proj` is a
linear map that exists only when the widths differ), so the connector is a submodule of the captioner
applied by a forward pre-hook on the decoder: `model(...)`, `generate` and every vlkit path see it, and
the encoder's feature cache stays what the frozen encoder computes. A captioner with a connector loads with
`load_captioner` (as one with a peft method does), not with a plain `from_pretrained`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_model, save_model
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoTokenizer,
    CLIPVisionModel,
    GenerationConfig,
    GPT2LMHeadModel,
    PreTrainedModel,
    SiglipVisionModel,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTModel,
)

from vlkit.data.files import read_json, write_json_atomic
from vlkit.errors import VlkitError
from vlkit.models.clip import check_local_model_folder, offline_hint, use_safetensors
from vlkit.models.tuning import ParameterCount, TuningMethod, count_parameters, tuning_method

log = logging.getLogger(__name__)

TUNING_FILE = "tuning_config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class EncoderKind:
    """A transformers vision model class whose `last_hidden_state` is the patch tokens, and its options."""

    model_class: type[PreTrainedModel]
    options: dict[str, Any] = field(default_factory=dict)


# Keyed by the checkpoint config's `model_type`. A whole CLIP or SigLIP checkpoint loads as its vision tower;
# ViT's pooler is left out because the decoder reads the tokens, never the pooled vector.
ENCODER_KINDS: dict[str, EncoderKind] = {
    "clip": EncoderKind(CLIPVisionModel),
    "clip_vision_model": EncoderKind(CLIPVisionModel),
    "siglip": EncoderKind(SiglipVisionModel),
    "siglip_vision_model": EncoderKind(SiglipVisionModel),
    "vit": EncoderKind(ViTModel, {"add_pooling_layer": False}),
}
DECODER_TYPES = ("gpt2",)
# The weights GPT-2 gains with add_cross_attention=True; any other missing decoder weight is an error.
_NEW_DECODER_WEIGHT = re.compile(r"\.(crossattention|ln_cross_attn)\.")


@dataclass
class CaptionerSpec:
    """What to build: the two pretrained parts, the tuning method and its settings."""

    encoder: str = field(metadata={"help": "vision encoder: hub id or local folder (CLIP, SigLIP or ViT)"})
    decoder: str = field(metadata={"help": "GPT-2-family decoder: hub id or local folder"})
    tuning: str = field(default="lora", metadata={"help": "tuning method (see vlkit.models.tuning)"})
    tuning_config: Any = field(default=None, metadata={"help": "the method's config (default: its defaults)"})
    max_caption_tokens: int = field(
        default=32, metadata={"help": "caption tokens, end token included, in training and generation"}
    )
    seed: int = field(default=0, metadata={"help": "seed of every new weight"})
    connector_layers: int = field(
        default=0, metadata={"help": "new layers over the image tokens before the cross-attention (0: none)"}
    )
    connector: str = field(
        default="attention", metadata={"help": "the connector's layers: attention (transformer) or local"}
    )


MAX_CONNECTOR_LAYERS = 8
CONNECTOR_KINDS = ("attention", "local")


class LocalMixer(torch.nn.Module):
    """One pre-norm residual layer that mixes each patch token with its 3x3 neighbours on the patch grid
    (a convolution, GELU, a linear map back): a non-linear reader of the tokens an object spans. An output
    token depends on its own neighbourhood only, so an attention map over them is off by at most one patch
    (the pointing game still falls with it: README). Tokens before the grid (CLS) pass unchanged."""

    def __init__(self, width: int, grid: tuple[int, int]):
        super().__init__()
        self.grid = grid
        self.norm = torch.nn.LayerNorm(width)
        self.mix = torch.nn.Conv2d(width, 2 * width, kernel_size=3, padding=1)
        self.out = torch.nn.Linear(2 * width, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        rows, columns = self.grid
        prefix = tokens.shape[1] - rows * columns
        if prefix < 0:
            count = tokens.shape[1]
            raise VlkitError(f"connector: {count} image tokens, fewer than its {rows}x{columns} grid")
        patches = tokens[:, prefix:]
        grid = self.norm(patches).transpose(1, 2).reshape(tokens.shape[0], -1, rows, columns)
        mixed = torch.nn.functional.gelu(self.mix(grid)).flatten(2).transpose(1, 2)
        return torch.cat([tokens[:, :prefix], patches + self.out(mixed)], dim=1)


class Connector(torch.nn.Module):
    """New layers over the (projected) image tokens, in the decoder's width: transformer layers (`attention`,
    torch's own pre-norm `TransformerEncoderLayer`) or local mixers (`local`)."""

    def __init__(self, width: int, heads: int, layers: int, kind: str, grid: tuple[int, int]):
        super().__init__()
        if kind == "local":
            self.layers = torch.nn.ModuleList(LocalMixer(width, grid) for _ in range(layers))
        else:
            self.layers = torch.nn.ModuleList(
                torch.nn.TransformerEncoderLayer(
                    width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
                )
                for _ in range(layers)
            )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            tokens = layer(tokens)
        return tokens


def attach_connector(model: VisionEncoderDecoderModel, layers: int, kind: str = "attention") -> None:
    """Give `model` a connector of `layers` new layers of `kind` (none for 0); record both in its config."""
    if not isinstance(layers, int) or isinstance(layers, bool) or not 0 <= layers <= MAX_CONNECTOR_LAYERS:
        raise VlkitError(f"--connector-layers must be between 0 and {MAX_CONNECTOR_LAYERS}, got {layers!r}")
    if kind not in CONNECTOR_KINDS:
        raise VlkitError(f"--connector must be one of {', '.join(CONNECTOR_KINDS)}, got {kind!r}")
    model.config.connector_layers, model.config.connector_kind = layers, kind
    if layers == 0:
        return
    decoder, encoder = model.decoder.config, model.config.encoder
    side = int(encoder.image_size) // int(encoder.patch_size)
    model.connector = Connector(int(decoder.n_embd), int(decoder.n_head), layers, kind, (side, side))

    def through_connector(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        tokens = kwargs.get("encoder_hidden_states")
        if tokens is not None:
            kwargs["encoder_hidden_states"] = model.connector(tokens)
        return args, kwargs

    model.decoder.register_forward_pre_hook(through_connector, with_kwargs=True)


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

    def patch_grid(self) -> tuple[int, int]:
        """(rows, columns) of the encoder's patch tokens; tokens before them (CLS) come first."""
        config = self.model.config.encoder
        side = int(config.image_size) // int(config.patch_size)
        return side, side

    def parameter_count(self) -> ParameterCount:
        return count_parameters(self.model)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the captioner folder (see the module docstring); the weights file is replaced atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(folder)
        self.model.generation_config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)
        tmp = folder / f".{WEIGHTS_FILE}.{os.getpid()}.tmp"
        save_model(self.model, str(tmp))
        os.replace(tmp, folder / WEIGHTS_FILE)
        settings = {"method": self.tuning, "config": dataclasses.asdict(self.tuning_config)}
        write_json_atomic(folder / TUNING_FILE, settings)
        return folder


def load_encoder(name: str) -> PreTrainedModel:
    """The vision encoder of a checkpoint (a CLIP or SigLIP checkpoint gives its vision tower)."""
    config = _load_config(name, "--encoder")
    kind = ENCODER_KINDS.get(config.model_type)
    if kind is None:
        raise VlkitError(
            f"--encoder {name}: model type {config.model_type!r} is not a supported vision encoder "
            f"(supported: {', '.join(ENCODER_KINDS)})"
        )
    encoder, missing = _from_pretrained(kind.model_class, name, "--encoder", **kind.options)
    if missing:
        raise VlkitError(f"--encoder {name}: checkpoint lacks {len(missing)} weights, e.g. {missing[0]}")
    return encoder


def load_decoder(name: str) -> GPT2LMHeadModel:
    """A GPT-2-family LM with a new, randomly initialized cross-attention block in every layer."""
    config = _load_config(name, "--decoder")
    if config.model_type not in DECODER_TYPES:
        raise VlkitError(
            f"--decoder {name}: model type {config.model_type!r} is not GPT-2-family "
            f"(supported: {', '.join(DECODER_TYPES)})"
        )
    decoder, missing = _from_pretrained(GPT2LMHeadModel, name, "--decoder", add_cross_attention=True)
    pretrained = [key for key in missing if not _NEW_DECODER_WEIGHT.search(key)]
    if pretrained:
        raise VlkitError(f"--decoder {name}: lacks {len(pretrained)} weights, e.g. {pretrained[0]}")
    log.info("--decoder %s: %d new cross-attention weight tensors", name, len(missing))
    return decoder


def build_captioner(spec: CaptionerSpec) -> Captioner:
    """Pretrained encoder + pretrained decoder + new cross-attention and projection, then the tuning method.

    The same spec (seed included) gives the same weights; the model comes in eval mode.
    """
    method = tuning_method(spec.tuning)
    tuning_config = spec.tuning_config if spec.tuning_config is not None else method.default_config()
    encoder = load_encoder(spec.encoder)
    torch.manual_seed(spec.seed)  # the decoder's new cross-attention weights are drawn while it loads
    decoder = load_decoder(spec.decoder)
    tokenizer = _load_tokenizer(spec.decoder)
    image_processor = _load_image_processor(spec.encoder)
    torch.manual_seed(spec.seed + 1)
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    attach_connector(model, spec.connector_layers, spec.connector)
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
    """Load a folder written by `Captioner.save`, in eval mode on `device`, its weights in `dtype` (bf16
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
    config = VisionEncoderDecoderConfig.from_pretrained(folder)
    kind = ENCODER_KINDS.get(config.encoder.model_type)
    if kind is None:
        raise VlkitError(f"{folder / 'config.json'}: unsupported encoder type {config.encoder.model_type!r}")
    encoder = kind.model_class(config.encoder, **kind.options)
    decoder = GPT2LMHeadModel(config.decoder)
    model = VisionEncoderDecoderModel(config=config, encoder=encoder, decoder=decoder)
    try:
        attach_connector(
            model, getattr(config, "connector_layers", 0), getattr(config, "connector_kind", "attention")
        )
    except VlkitError as exc:
        raise VlkitError(f"{folder / 'config.json'}: connector: {exc}") from None
    model.generation_config = GenerationConfig.from_pretrained(folder)
    method.apply(model, tuning_config)
    try:
        load_model(model, str(folder / WEIGHTS_FILE), strict=True)
    except RuntimeError as exc:
        message = f"{folder / WEIGHTS_FILE}: weights do not match the config ({exc})"
        raise VlkitError(message.splitlines()[0]) from exc
    model.to(device, dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    image_processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
    return Captioner(model, tokenizer, image_processor, method.name, tuning_config)


def _load_config(name: str, option: str) -> Any:
    check_local_model_folder(name)
    try:
        return AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        if Path(name).is_dir():
            raise VlkitError(f"{option} {name}: cannot read its config ({exc})".splitlines()[0]) from exc
        raise offline_hint(name, exc) from exc


def _from_pretrained(
    model_class: type[PreTrainedModel], name: str, option: str, **options: Any
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
            name, use_safetensors=use_safetensors(), output_loading_info=True, **options
        )
    except (OSError, ValueError, pickle.UnpicklingError) as exc:
        if Path(name).is_dir():
            raise VlkitError(f"{option} {name}: cannot load it ({exc})".splitlines()[0]) from exc
        raise offline_hint(name, exc) from exc
    finally:
        loading_logger.removeFilter(_errors_only)
    return model, sorted(info.get("missing_keys", []))


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def _load_tokenizer(name: str) -> Any:
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise VlkitError(f"--decoder {name}: cannot load its tokenizer ({exc})".splitlines()[0]) from exc
    if tokenizer.eos_token_id is None:
        raise VlkitError(f"--decoder {name}: its tokenizer has no end-of-text token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 style: the end token doubles as padding
    return tokenizer


def _load_image_processor(name: str) -> Any:
    try:
        return AutoImageProcessor.from_pretrained(name, backend="pil")
    except (OSError, ValueError) as exc:
        message = f"--encoder {name}: cannot load its image processor ({exc})"
        raise VlkitError(message.splitlines()[0]) from exc


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
        raise VlkitError(
            f"--max-caption-tokens: {tokens} caption tokens + {reserved} positions reserved by "
            f"{method.name!r} "
            f"must be between 1 and the decoder's n_positions ({available})"
        )
