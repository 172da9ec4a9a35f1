"""open_clip's models (`open_clip:ARCH/PRETRAINED`, its SigLIP names too) behind vlkit's `Clip` interface.

open_clip, with the `openclip` extra, does the models, their transforms and tokenizers; this module adapts
them (`OpenClip`), names the weights to fetch when the hub cannot be reached, and detects the SigLIP ones by
what they are (a model with a `logit_bias`), never by a substring of their name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from vlkit.errors import VlkitError
from vlkit.models.clip import OPEN_CLIP_PREFIX, Clip, offline_hint


class OpenClip(Clip):
    """An open_clip model (needs the `openclip` extra). A model with a `logit_bias` (open_clip's SigLIP
    architectures) scores with sigmoids; its tokenizer already pads to the context, as SigLIP needs. The
    model is moved and cast here, after its constants are read."""

    def __init__(self, name: str, model, transform, tokenizer, device: torch.device, dtype: torch.dtype):
        self.name, self.model, self.transform, self.tokenizer = name, model, transform, tokenizer
        self.device, self.dtype = device, dtype
        self._logit_scale = float(model.logit_scale.detach().float().exp())
        bias = getattr(model, "logit_bias", None)
        self._logit_bias = None if bias is None else float(bias.detach().float())
        self.scoring = "softmax" if bias is None else "sigmoid"
        model.to(device=device, dtype=dtype).eval()

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(image) for image in images]).float()

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixel_values)

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))

    def text_lengths(self, texts: Sequence[str]) -> tuple[list[int], int] | None:
        from open_clip.tokenizer import SimpleTokenizer

        if not isinstance(self.tokenizer, SimpleTokenizer) or self.tokenizer.reduction_fn is not None:
            return None  # a Hugging Face tokenizer inside open_clip, or a reduction instead of truncation
        lengths = [len(self.tokenizer.encode(text)) + 2 for text in texts]  # + start and end tokens
        return lengths, int(self.tokenizer.context_length)

    @property
    def logit_scale(self) -> float:
        return self._logit_scale

    @property
    def logit_bias(self) -> float | None:
        return self._logit_bias


def load_open_clip(name: str, device: torch.device, dtype: torch.dtype) -> OpenClip:
    """The open_clip model of `name` with its transform and tokenizer, on `device` in `dtype`."""
    model, transform = create_open_clip(name)  # first: it names the extra when open_clip is not installed
    import open_clip

    arch, _ = parse_open_clip_name(name)
    try:
        tokenizer = open_clip.get_tokenizer(arch)
    except (OSError, ValueError) as exc:  # a SigLIP's tokenizer comes from the hub (`hf_tokenizer_name`)
        repo = (open_clip.get_model_config(arch) or {}).get("text_cfg", {}).get("hf_tokenizer_name", arch)
        raise VlkitError(
            f"{name}: cannot load its tokenizer {repo!r} ({type(exc).__name__}): it is not in the Hugging "
            f"Face cache and the hub could not be reached; on a connected machine run `hf download {repo}`"
        ) from exc
    return OpenClip(name, model, transform, tokenizer, device, dtype)


def parse_open_clip_name(name: str) -> tuple[str, str | None]:
    """`open_clip:ARCH/PRETRAINED` -> (ARCH, PRETRAINED or None: random weights)."""
    arch, _, pretrained = name[len(OPEN_CLIP_PREFIX) :].partition("/")
    if not arch:
        raise VlkitError(
            f"{name}: expected open_clip:ARCH/PRETRAINED, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k"
        )
    return arch, pretrained or None


def create_open_clip(name: str) -> tuple[torch.nn.Module, Any]:
    """The open_clip model of `open_clip:ARCH/PRETRAINED` and its evaluation transform, on the CPU in fp32.

    open_clip downloads a tag's weights from the hub on first use; offline and uncached, that fails inside a
    RuntimeError of its own, which is turned into the same one-line `offline_hint` the hub loaders give."""
    try:
        import open_clip
    except ImportError as exc:
        raise VlkitError(f"{name}: open_clip models need the extra: pip install 'vlkit[openclip]'") from exc
    arch, pretrained = parse_open_clip_name(name)
    try:
        model, _, transform = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
    except (RuntimeError, OSError) as exc:
        if isinstance(exc, OSError) or _caused_by(exc, OSError):
            repo = (open_clip.get_pretrained_cfg(arch, pretrained or "") or {}).get("hf_hub", "").strip("/")
            create = f"open_clip.create_model('{arch}', pretrained='{pretrained}')"
            fetch = f'python -c "import open_clip; {create}"'
            download = f"hf download {repo}" if repo else fetch
            raise offline_hint(name, exc, download) from exc
        raise VlkitError(f"{name}: open_clip cannot create it ({exc})".splitlines()[0]) from exc
    return model, transform


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is in the chain of exceptions that led to `exc` (raised from one, or while handling)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
