"""Load any CLIP or SigLIP behind one small interface: preprocess, encode images, encode texts, and the
constants that turn cosines into probabilities (logit scale, logit bias, scoring).

transformers does the models (`CLIPModel`, `SiglipModel`, `Siglip2Model`, their tokenizers and image
processors; which one is the folder's config.json `model_type`, looked up in a plain dict) and open_clip,
with the `openclip` extra, does `open_clip:ARCH/PRETRAINED` names (its SigLIP names too); this module only
adapts them to the operations the rest of vlkit uses, picks device and precision, and turns loading
failures into one clear line. SigLIP's own conventions (sigmoid scoring, texts padded to the context) are
`vlkit.models.siglip`'s.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vlkit.errors import VlkitError
from vlkit.metrics.scoring import similarity_probabilities
from vlkit.models.hub import resolve_model_name
from vlkit.runtime.progress import track

log = logging.getLogger(__name__)

OPEN_CLIP_PREFIX = "open_clip:"
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class ClipSpec:
    """What to load and how: a hub id, local folder or `open_clip:ARCH/PRETRAINED`, device, precision, and
    whether a folder's pickled weights (pytorch_model.bin) may load (`vlkit --allow-pickle`)."""

    name: str
    device: str = "auto"
    precision: str = "auto"  # bf16 only where the device runs it natively (vlkit.runtime.precision)
    allow_pickle: bool = False


class Clip:
    """A loaded CLIP. Subclasses adapt one library; every embedding returned is L2-normalized, in fp32.

    `scoring` says how the model turns similarities into probabilities: "softmax" over the candidates (CLIP,
    trained with a contrastive softmax loss) or "sigmoid", one independent probability per pair with the
    model's `logit_bias` (SigLIP, trained with a sigmoid loss); `class_probabilities` applies it. The
    logit scale and bias are read before the weights are cast, so they keep their fp32 values in bf16."""

    name: str
    device: torch.device
    dtype: torch.dtype
    scoring: str = "softmax"

    @property
    def precision(self) -> str:
        """The precision it runs in, by name: fp32, bf16 or fp16 (what `auto` became)."""
        return next(name for name, dtype in PRECISIONS.items() if dtype == self.dtype)

    @property
    def logit_bias(self) -> float | None:
        """The bias added to scaled similarities before the sigmoid (SigLIP); None for softmax models."""
        return None

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB PIL images -> the model's pixel input as one fp32 tensor, made by its own preprocessing:
        (B, 3, H, W) for every fixed-resolution model (NaFlex SigLIP 2 packs its patches, their mask and
        the patch grid into (B, N, 3 P^2 + 3), `vlkit.models.siglip.Siglip2Clip`). Only `encode_images`
        reads it; batches of it concatenate along the first dimension."""
        raise NotImplementedError

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def text_lengths(self, texts: Sequence[str]) -> tuple[list[int], int] | None:
        """Each text's token count (start and end tokens included) and the model's context length, or None
        where the tokenizer cannot say."""
        return None

    @property
    def logit_scale(self) -> float:
        raise NotImplementedError

    @torch.inference_mode()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`preprocess`'s tensor, (B, 3, H, W) -> (B, D) unit vectors."""
        features = self._image_features(pixel_values.to(self.device, self.dtype))
        return torch.nn.functional.normalize(features.float(), dim=-1)

    @torch.inference_mode()
    def encode_texts(
        self, texts: Sequence[str], batch_size: int = 256, description: str = "encode texts"
    ) -> torch.Tensor:
        """N texts -> (N, D) unit vectors, in batches (with a progress bar named `description`). A text over
        the context is truncated as CLIP truncates (its first tokens, the end token kept last), with a
        warning naming it."""
        _warn_if_truncated(self, texts)
        starts = range(0, len(texts), batch_size)
        chunks = [self._text_features(texts[i : i + batch_size]) for i in track(starts, description)]
        return torch.nn.functional.normalize(torch.cat(chunks).float(), dim=-1)


def class_probabilities(similarities: torch.Tensor, clip: Clip) -> torch.Tensor:
    """(..., C) cosines of images (or texts) with C candidates -> probabilities as `clip` was trained to
    give them: softmax(logit_scale * cos) over the candidates for CLIP, sigmoid(logit_scale * cos +
    logit_bias) of each pair for SigLIP (`vlkit.metrics.scoring`). Ranking is the same either way."""
    return similarity_probabilities(similarities, clip.scoring, clip.logit_scale, clip.logit_bias)


class HFClip(Clip):
    """A transformers `CLIPModel` with its tokenizer and image processor. The model is moved to `device`
    and cast to `dtype` here, after its logit scale is read in the precision it came in."""

    def __init__(
        self, name: str, model, tokenizer, image_processor, device: torch.device, dtype: torch.dtype
    ):
        self.name, self.model, self.tokenizer, self.image_processor = name, model, tokenizer, image_processor
        self.device, self.dtype = device, dtype
        self.max_length = int(model.config.text_config.max_position_embeddings)
        self._logit_scale = float(model.logit_scale.detach().float().exp())
        model.to(device=device, dtype=dtype).eval()

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.image_processor(images=list(images), return_tensors="pt")["pixel_values"].float()

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values=pixel_values).pooler_output  # (B, D)

    def tokenize(self, texts: Sequence[str]) -> Any:
        """The model's input: each text cut to the context, start token first and end token last (the
        tokenizer's truncation leaves room for both), padded to the longest."""
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def text_lengths(self, texts: Sequence[str]) -> tuple[list[int], int]:
        ids = self.tokenizer(list(texts), verbose=False)["input_ids"]  # verbose: no too-long warning
        return [len(row) for row in ids], self.max_length

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenize(texts).to(self.device)
        out = self.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )
        return out.pooler_output  # (N, D)

    @property
    def logit_scale(self) -> float:
        return self._logit_scale


def _warn_if_truncated(clip: Clip, texts: Sequence[str], shown: int = 3) -> None:
    counted = clip.text_lengths(texts)
    if counted is None:
        return
    lengths, context = counted
    over = [(text, n) for text, n in zip(texts, lengths, strict=True) if n > context]
    if not over:
        return
    names = "; ".join(f"{_shorten(text)!r} ({n} tokens)" for text, n in over[:shown])
    more = f"; and {len(over) - shown} more" if len(over) > shown else ""
    log.warning(
        "%s: %d text(s) longer than its %d-token context, truncated as CLIP truncates (the first %d tokens, "
        "the end token last): %s%s",
        clip.name,
        len(over),
        context,
        context - 1,
        names,
        more,
    )


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve_device(device: str) -> torch.device:
    """'auto': this process's device under `accelerate launch` (cuda:LOCAL_RANK), else cuda when present."""
    if device == "auto":
        from vlkit.runtime.distributed import launched, process_state  # accelerate, imported only when asked

        if launched():
            return process_state().device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise VlkitError(f"--device: unknown device {device!r}") from exc


def resolve_precision(precision: str, device: torch.device | None = None) -> torch.dtype:
    """fp32 / bf16 / fp16, or `auto`: bf16 only where `device` (default: the CPU) runs it natively."""
    from vlkit.runtime.precision import resolve_precision_name

    return PRECISIONS[resolve_precision_name(precision, device or torch.device("cpu"))]


def load_clip(spec: ClipSpec | str) -> Clip:
    """Load a CLIP or a SigLIP by hub id, local folder (its config.json `model_type`: `hf_clip_kinds`), or
    `open_clip:ARCH/PRETRAINED`, ready for inference on the spec's device, in its precision (`auto`: bf16
    only where the device runs it natively)."""
    spec = ClipSpec(spec) if isinstance(spec, str) else spec
    device = resolve_device(spec.device)
    dtype = resolve_precision(spec.precision, device)
    if spec.name.startswith(OPEN_CLIP_PREFIX):
        from vlkit.models.open_clip_models import load_open_clip

        return load_open_clip(spec.name, device, dtype)
    return _load_hf_clip(spec.name, device, dtype, spec.allow_pickle)


PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def use_safetensors(allow_pickle: bool) -> bool | None:
    """The `use_safetensors` argument of every from_pretrained call: True (safetensors only) unless pickles
    are allowed (`vlkit --allow-pickle`), then None (transformers' choice: safetensors first, else
    pytorch_model.bin, which transformers unpickles with torch.load(weights_only=True): tensors and plain
    containers only, never code)."""
    return None if allow_pickle else True


def check_local_model_folder(
    name: str,
    weights=("model.safetensors", "model.safetensors.index.json"),
    allow_pickle: bool = False,
) -> None:
    """A name that is an existing folder must hold a config and safetensors weights (pickled weights only
    with `allow_pickle`, i.e. `vlkit --allow-pickle`)."""
    path = Path(name)
    if not path.is_dir():
        if path.exists():
            raise VlkitError(f"{name}: is a file, expected a model folder or a hub id")
        return
    if not (path / "config.json").is_file():
        raise VlkitError(f"{name}: model folder has no config.json")
    if not any((path / w).is_file() for w in weights):
        if allow_pickle and any((path / w).is_file() for w in PICKLED_WEIGHTS):
            log.warning("%s: loading pickled weights (--allow-pickle: torch.load, weights_only=True)", name)
            return
        pickles = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        hint = (
            f" (found {', '.join(pickles)}: "
            "pickled weights load only with `vlkit --allow-pickle COMMAND ...`)"
            if pickles
            else ""
        )
        raise VlkitError(f"{name}: model folder has no model.safetensors{hint}")


def offline_hint(name: str, exc: Exception, download: str | None = None) -> VlkitError:
    """The one-line error for a model that is neither local nor cached while the hub cannot be reached;
    `download` is the command that fetches it on a connected machine (default `hf download NAME`)."""
    return VlkitError(
        f"cannot load model {name!r}: it is not a local folder, not in the Hugging Face cache, and the hub "
        f"could not be reached ({type(exc).__name__}). On a connected machine run "
        f"`{download or f'hf download {name}'}` (or pass a local folder with config.json and "
        "model.safetensors)"
    )


def hf_clip_kinds() -> dict[str, tuple[type, type[HFClip]]]:
    """config.json `model_type` -> (the transformers model class, the vlkit adapter). Fixed-resolution
    SigLIP 2 checkpoints (google/siglip2-base-patch16-224, ...) say "siglip"; NaFlex ones "siglip2"."""
    from transformers import CLIPModel, Siglip2Model, SiglipModel

    from vlkit.models.siglip import HFSiglip, Siglip2Clip

    return {
        "clip": (CLIPModel, HFClip),
        "siglip": (SiglipModel, HFSiglip),
        "siglip2": (Siglip2Model, Siglip2Clip),
    }


TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer.model", "vocab.json")


def _load_hf_clip(name: str, device: torch.device, dtype: torch.dtype, allow_pickle: bool = False) -> HFClip:
    from transformers import AutoImageProcessor, AutoTokenizer, PretrainedConfig

    path = resolve_model_name(name)  # `vlkit:shapes-clip` -> the shipped folder; the name stays for display
    check_local_model_folder(path, allow_pickle=allow_pickle)
    try:
        model_type = PretrainedConfig.get_config_dict(path)[0].get("model_type")
    except (OSError, ValueError) as exc:
        raise _load_error(name, path, exc) from exc
    kinds = hf_clip_kinds()
    if model_type not in kinds:
        raise VlkitError(
            f"{name}: config.json model_type {model_type!r} is not a CLIP vlkit loads ({', '.join(kinds)})"
        )
    if Path(path).is_dir() and not any((Path(path) / file).is_file() for file in TOKENIZER_FILES):
        raise VlkitError(
            f"{name}: {model_type} model folder has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "copy the tokenizer files of the checkpoint it came from beside its config.json"
        )
    model_class, adapter = kinds[model_type]
    try:  # fp32 first: the adapter reads the logit scale and bias before it casts to `dtype`
        safetensors_only = use_safetensors(allow_pickle)
        model = model_class.from_pretrained(path, dtype=torch.float32, use_safetensors=safetensors_only)
        tokenizer = AutoTokenizer.from_pretrained(path)
        image_processor = AutoImageProcessor.from_pretrained(path, backend="pil")
    except (OSError, ValueError, pickle.UnpicklingError) as exc:
        raise _load_error(name, path, exc) from exc
    return adapter(name, model, tokenizer, image_processor, device, dtype)


def _load_error(name: str, path: str, exc: Exception) -> VlkitError:
    if Path(path).is_dir():
        return VlkitError(f"{name}: cannot load a CLIP from this folder ({exc})".splitlines()[0])
    return offline_hint(name, exc)
