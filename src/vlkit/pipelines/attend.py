"""`vlkit caption attend`: caption images, draw where the decoder looked for every word, measure grounding.

For each image: the caption, one figure (the image, then one panel per generated token, the end token
included, each titled with its word) and the raw maps as `.npy` (tokens, rows, columns), reduced with the
chosen `Aggregation`. With shapes-world annotations (objects and masks) it also scores the pointing game and
the mass in mask (`vlkit.metrics.pointing`) for every aggregation at once, beside the centre and random
baselines, into grounding.json.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlkit.captioning.attention import Aggregation, TokenMaps, all_aggregations, token_maps, upsample
from vlkit.captioning.generate import CaptionOutput, DecodingConfig, caption_images
from vlkit.data.captions import load_caption_dataset
from vlkit.data.images import read_image
from vlkit.errors import VlkitError
from vlkit.metrics.pointing import BaselineTally, PointingTally, grounded_words, object_mask
from vlkit.models.captioner.model import Captioner
from vlkit.runtime.files import write_bytes_atomic, write_json_atomic
from vlkit.runtime.progress import track
from vlkit.viz.plots import attention_figure

log = logging.getLogger(__name__)

END_LABEL = "<end>"


@dataclass
class AttendRequest:
    """What to caption and draw; one field per option of `vlkit caption attend`."""

    out: Path
    images: list[Path] = field(default_factory=list)
    annotations: Path | None = None  # a shapes-world annotation file: objects and masks -> grounding.json
    image_root: Path | None = None
    aggregation: Aggregation = field(default_factory=Aggregation)
    figures: int = 16  # figures drawn for the first N images (maps and captions are written for all)
    figure_stems: set[str] = field(default_factory=set)  # and for these images (file names without extension)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)


@dataclass
class _Item:
    path: Path
    objects: list[dict[str, Any]] | None = None
    mask_path: Path | None = None


def _items(request: AttendRequest) -> list[_Item]:
    if request.annotations is None:
        if not request.images:
            raise VlkitError("--images or --annotations: nothing to caption")
        return [_Item(path) for path in request.images]
    root = request.image_root or request.annotations.parent / "images"
    dataset = load_caption_dataset(request.annotations, root, require_captions=False)
    items = []
    for image in dataset.images:
        objects, mask_file = image.extra.get("objects"), image.extra.get("mask_file")
        if objects is None or mask_file is None:
            raise VlkitError(
                f"{request.annotations}: image {image.id} has no 'objects' and 'mask_file' (grounding needs "
                "a shapes-world annotation file; pass --images for figures alone)"
            )
        items.append(_Item(image.path, objects, request.annotations.parent / mask_file))
    return items


def token_labels(output: CaptionOutput, index: int, end_id: int) -> list[str]:
    """The panel titles of one caption: each token's text, the end token as END_LABEL."""
    return [
        END_LABEL if token_id == end_id else text.strip() or repr(text)
        for token_id, text in zip(output.token_ids[index], output.tokens[index], strict=True)
    ]


def run_attend(captioner: Captioner, request: AttendRequest) -> dict[str, Any]:
    """Caption every image with its attention; write figures, maps, captions.json and grounding.json."""
    items = _items(request)
    out = request.out
    n_layers = captioner.model.decoder.config.n_layer
    aggregations = all_aggregations(n_layers) if items and items[0].objects is not None else []
    tallies = {a.name: PointingTally() for a in aggregations}
    baseline = BaselineTally()
    captions: dict[str, Any] = {}
    end_id = captioner.tokenizer.eos_token_id
    batch = request.decoding.batch_size
    for start in track(range(0, len(items), batch), "attend", total=-(-len(items) // batch)):
        chunk = items[start : start + batch]
        images = [read_image(item.path) for item in chunk]
        output = caption_images(captioner, images, request.decoding, True, first_index=start)
        assert output.attentions is not None
        for k, (item, image) in enumerate(zip(chunk, images, strict=True)):
            attn = output.attentions[k]
            chosen = token_maps(attn, output.patch_grid, output.prefix_tokens, request.aggregation)
            labels = token_labels(output, k, end_id)
            stem = item.path.stem
            _save_npy(out / "maps" / f"{stem}.npy", chosen.maps.astype(np.float32))
            captions[stem] = {
                "caption": output.captions[k],
                "tokens": labels,
                "prefix_share": [round(float(x), 4) for x in chosen.prefix_share],
            }
            if start + k < request.figures or stem in request.figure_stems:
                _figure(out / "figures" / f"{stem}.png", image, labels, chosen, output.captions[k])
            if item.objects is not None:
                _tally(attn, output, k, item, image.size, aggregations, tallies, baseline)
    write_json_atomic(out / "captions.json", {"aggregation": request.aggregation.name, "images": captions})
    report: dict[str, Any] = {"n_images": len(items), "captions": str(out / "captions.json")}
    if aggregations:
        grounding = {
            "aggregations": [{"name": a.name, **tallies[a.name].result()} for a in aggregations],
            "baselines": baseline.result(),
            "n_images": len(items),
            "annotations": str(request.annotations),
        }
        write_json_atomic(out / "grounding.json", grounding)
        report["grounding"] = grounding
    return report


def grounding_summary(grounding: dict[str, Any]) -> str:
    """One line for the console: the best aggregation's pointing game beside the two baselines."""
    scored = [a for a in grounding["aggregations"] if a["pointing_game"] is not None]
    if not scored:
        return "grounding: no generated word names an object of its image"
    best = max(scored, key=lambda a: a["pointing_game"])
    base = grounding["baselines"]
    return (
        f"pointing game over {best['n_words']} words: best aggregation {best['name']} "
        f"{best['pointing_game']:.1%} (mass in mask {best['mass_in_mask']:.1%}); "
        f"centre baseline {base['center']:.1%}, random {base['random']:.1%}"
    )


def _save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_bytes_atomic(path, buffer.getvalue())


def _figure(path: Path, image, labels: Sequence[str], chosen: TokenMaps, caption: str) -> None:
    size = image.size
    maps = [upsample(m, size) for m in chosen.maps]
    write_bytes_atomic(path, attention_figure(np.asarray(image), labels, maps, caption))


def _tally(
    attn,
    output: CaptionOutput,
    k: int,
    item: _Item,
    size: tuple[int, int],
    aggregations: list[Aggregation],
    tallies: dict[str, PointingTally],
    baseline: BaselineTally,
) -> None:
    words = grounded_words(output.tokens[k], item.objects or [])
    if not words:
        return
    assert item.mask_path is not None
    try:
        labels = np.asarray(read_image(item.mask_path))[..., 0]  # a one-channel label PNG, read as RGB
    except VlkitError as exc:
        raise VlkitError(f"{item.mask_path}: cannot read the object mask ({exc})") from exc
    masks = [object_mask(labels, word.object_indices) for word in words]
    for mask in masks:
        baseline.add(mask)
    for aggregation in aggregations:
        maps = token_maps(attn, output.patch_grid, output.prefix_tokens, aggregation).maps
        for word, mask in zip(words, masks, strict=True):
            word_map = upsample(maps[word.token_indices].mean(axis=0), size)
            tallies[aggregation.name].add(word_map, mask)
