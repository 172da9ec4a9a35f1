"""The study's look inside ViLBERT's co-attention: where each question word looks among the regions.

For every validation question, the text-to-vision weights of the co-attention (`ViLBertOutput.coattention`,
each word's distribution over the whole-image token and the regions) averaged over the heads of the last
co-attention layer (`layer="last"`, the one the heads read) or over every layer's heads (`"mean"`). Words
that name an object (the colour and shape words of a noun phrase, `metrics.pointing.grounded_words`, among
the objects the question is about, `VqaItem.mentions`) are scored by the pointing game on regions
(`metrics.region_pointing`) against the random-region baseline; a few questions are drawn as figures
(`viz.coattention`). A model without co-attention layers (single stream, the peers) has no such maps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkit.data.images import read_image
from vlkit.metrics.pointing import GroundedWord, grounded_words
from vlkit.metrics.region_pointing import RegionPointingTally, pointing_regions
from vlkit.runtime.files import write_bytes_atomic
from vlkit.shapes.questions import ANSWERS, Scene, VqaItem
from vlkit.train.vilbert_batches import ViLBertBatches, model_inputs

log = logging.getLogger(__name__)
LAYERS = ("last", "mean")
FIGURE_TYPES = ("colour", "exists", "relation", "count")  # one figure per type, in this order


@dataclass
class PointingReport:
    """The pointing game of one model on one split, for each way of reading the layers."""

    layers: dict[str, dict[str, Any]] = field(default_factory=dict)  # "last"/"mean" -> RegionPointingTally
    n_questions: int = 0  # questions with at least one scored word
    figures: list[str] = field(default_factory=list)  # file names written, in figure order

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "n_questions": self.n_questions, "figures": self.figures}


def word_pieces(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """A WordPiece text as `grounded_words` reads tokens: a piece starting a word with a leading space, a
    continuation ("##ing") without; one entry per id, so indices are positions."""
    pieces = tokenizer.convert_ids_to_tokens(list(ids))
    return [piece[2:] if piece.startswith("##") else " " + piece for piece in pieces]


def question_words(item: VqaItem, scene: Scene, pieces: Sequence[str]) -> list[GroundedWord]:
    """The question's words naming objects it is about, their `object_indices` into `scene.objects`."""
    mentioned = [scene.objects[i] for i in item.mentions]
    named = grounded_words(pieces, [{"colour": o.colour, "shape": o.shape} for o in mentioned])
    return [
        GroundedWord(w.text, w.token_indices, [item.mentions[k] for k in w.object_indices]) for w in named
    ]


def text_to_vision(model: torch.nn.Module, batch: Mapping[str, torch.Tensor], layer: str) -> torch.Tensor:
    """(B, T, 1+R) each word's co-attention weights over the whole-image token and the regions."""
    with torch.no_grad():
        output = model(**model_inputs(batch), output_coattention=True)
    return _read_layers(output.coattention, layer)


def _read_layers(coattention: Sequence[Any], layer: str) -> torch.Tensor:
    probs = [p.text_to_vision.float() for p in coattention]  # each (B, H, T, 1+R)
    if layer == "last":
        return probs[-1].mean(1)
    return torch.stack(probs).mean((0, 2))


def has_coattention(model: torch.nn.Module, batches: ViLBertBatches) -> bool:
    """Whether the model returns co-attention weights (a ViLBERT with co-attention layers)."""
    batch = next(batches.vqa_eval(1))
    with torch.no_grad():
        output = model(**model_inputs(batch), output_coattention=True)
    return bool(output.coattention)


def pointing_study(
    model: torch.nn.Module,
    batches: ViLBertBatches,
    scenes: Mapping[Any, Scene],
    image_paths: Mapping[Any, Path] | None = None,
    figures_dir: Path | None = None,
    batch_size: int = 64,
    title: str = "",
) -> PointingReport:
    """The pointing game over every VQA item of `batches` (for each of `LAYERS`), and figures of the first
    question of each of `FIGURE_TYPES` with a scored word into `figures_dir` (when given with
    `image_paths`, image id -> file)."""
    model.eval()
    tallies = {name: RegionPointingTally() for name in LAYERS}
    regions = batches.regions.regions
    report, drawn = PointingReport(), set()
    for batch in batches.vqa_eval(batch_size):
        with torch.no_grad():
            output = model(**model_inputs(batch), output_coattention=True)
        maps = {name: _read_layers(output.coattention, name).numpy() for name in LAYERS}  # (B, T, 1+R)
        answers = model.answer_logits(output).argmax(-1).tolist()
        for b, index in enumerate(batch["item"].tolist()):
            item = batches.vqa_items[index]
            row = batches.row_of[item.image_id]
            length = int(batch["attention_mask"][b].sum())
            pieces = word_pieces(batches.tokenizer, batch["input_ids"][b, :length].tolist())
            words = question_words(item, scenes[item.image_id], pieces)
            if not words:
                continue
            report.n_questions += 1
            for word in words:
                named = list(word.object_indices)
                targets = pointing_regions(
                    regions.boxes[row], regions.mask[row], regions.object_boxes[row, named],
                    regions.object_regions[row, named],
                )  # fmt: skip
                for name in LAYERS:
                    attention = maps[name][b, word.token_indices, 1:].mean(0)  # (R,)
                    tallies[name].add(attention, targets, regions.mask[row])
            if figures_dir is not None and image_paths is not None and item.type not in drawn:
                drawn.add(item.type)
                figure = _draw(item, row, pieces, maps["last"][b], words, regions, image_paths, answers[b],
                               title)  # fmt: skip
                name = f"question_{item.type}.png"
                write_bytes_atomic(figures_dir / name, figure)
                report.figures.append(name)
    report.layers = {name: tally.result() for name, tally in tallies.items()}
    order = {kind: i for i, kind in enumerate(FIGURE_TYPES)}
    report.figures.sort(key=lambda n: order.get(n.removeprefix("question_").removesuffix(".png"), len(order)))
    return report


def _draw(
    item: VqaItem, row: int, pieces: Sequence[str], maps: np.ndarray, words: Sequence[GroundedWord],
    regions: Any, image_paths: Mapping[Any, Path], predicted: int, title: str,
) -> bytes:  # fmt: skip
    """One question's figure: a panel per real word piece ([CLS] and [SEP] left out)."""
    from vlkit.viz.coattention import coattention_figure

    shown = [i for i, piece in enumerate(pieces) if piece.strip() not in ("[CLS]", "[SEP]", "[PAD]")]
    named = sorted({k for word in words for k in word.object_indices})
    image = np.asarray(read_image(image_paths[item.image_id]))
    heading = (
        f"{title}: " if title else ""
    ) + f"{item.question}  answer {item.answer}, predicted {ANSWERS[predicted]}"
    return coattention_figure(
        image,
        regions.boxes[row],
        regions.mask[row],
        [pieces[i].strip() for i in shown],
        maps[shown, 1:],
        title=heading,
        image_token=maps[shown, 0].tolist(),
        object_boxes=regions.object_boxes[row, named],
    )
