"""ViLBERT's batches, model-ready: the three pre-training objectives on captions, and VQA, referring
expressions and retrieval, as the training loop's step-indexed dicts of tensors and as evaluation passes.

Batch k is a pure function of k (`run_training`'s contract): epoch e is a seeded permutation of the images
(or of the task's items), and every mask, mismatch and negative of step k is drawn from a generator seeded
by (seed, k, objective). Each dict's rows are the batch (dim 0), so `process_share` splits it; a retrieval
batch holds its candidates on dim 1 and `model_inputs` flattens them for `ViLBertModel.forward`.

    every batch      input_ids (B, T), attention_mask (B, T), region_features (B, R, F), region_boxes
                     (B, R, 5), region_mask (B, R): `model_inputs(batch)` are forward's arguments
    pre-training     masked_word_labels (B, T) (-100: no target), masked_regions (B, R) bool,
                     region_targets (B, R, K) (absent when the regions have no labels: detector boxes),
                     aligned (B,) 1 for the image's own caption, 0 for another image's
    VQA              answer (B,) index into ANSWERS, question_type (B,) into QUESTION_TYPES, heldout (B,)
    referring        referring_target (B,) the region standing for the object (its true box; on the grid the
                     cell overlapping it most), referring_iou (B, R) each region's IoU with the true box
                     (the reference's soft target), referring_hit (B, R) the picks that count as right (IoU
                     >= 0.5, the reference's rule, or the target itself), heldout (B,)
    retrieval        inputs (B, C, ...) with candidate 0 the true pair, retrieval_target (B,) = 0
    evaluation       item (B,) the item's index (VQA, referring), or text_index and image_index (retrieval)

A mismatched caption comes from an image whose objects differ (in the shapes world two images with the same
objects have captions true of both); training batches never hold a held-out item, evaluation reports them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vlkit.data.regions import overlaps
from vlkit.errors import VlkitError
from vlkit.shapes.questions import ANSWER_INDEX, QUESTION_TYPES, ReferringItem, Scene, SceneTasks, VqaItem
from vlkit.train.region_features import RegionFeatures
from vlkit.train.stream import batch_picks
from vlkit.train.vilbert_data_config import ViLBertDataConfig
from vlkit.train.vilbert_masking import mask_regions, mask_words

MODEL_INPUTS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "region_features",
    "region_boxes",
    "region_mask",
)
STREAMS = {"pretraining": 0, "vqa": 1, "referring": 2, "retrieval": 3}
MISMATCH_TRIES = 20
REFERRING_HIT_IOU = 0.5  # a pick this close to the true box is right (the reference's RefCOCO+ rule)


def model_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`ViLBertModel.forward`'s arguments from a batch; a retrieval batch's (B, C, ...) are (B * C, ...)."""
    inputs = {key: batch[key] for key in MODEL_INPUTS if key in batch}
    if inputs["input_ids"].dim() == 3:
        inputs = {key: value.flatten(0, 1) for key, value in inputs.items()}
    return inputs


@dataclass
class RetrievalSet:
    """Every caption of the images as a retrieval query set (the metric's `text_image_index` layout)."""

    texts: list[str]
    text_image_index: torch.Tensor  # (N_txt,) the row of each text's image
    text_heldout: torch.Tensor  # (N_txt,) bool: its image holds a held-out combination


class ViLBertBatches:
    """Model-ready batches over N images' regions (`RegionFeatures`, row i = image i) and their captions."""

    def __init__(
        self,
        regions: RegionFeatures,
        captions: Sequence[Sequence[str]],
        tokenizer: Any,
        config: ViLBertDataConfig,
        scenes: Sequence[Scene] | None = None,
        tasks: SceneTasks | None = None,
        heldout: Sequence[tuple[str, str]] = (),
    ):
        """`captions[i]` are image i's; `scenes[i]` its objects (for true mismatches and hard negatives, and
        `heldout` for the retrieval report); `tasks` the VQA and referring items of these images."""
        if len(captions) != len(regions):
            raise VlkitError(
                f"ViLBertBatches: captions for {len(captions)} images, regions for {len(regions)}"
            )
        if scenes is not None and [s.image_id for s in scenes] != regions.regions.image_ids:
            raise VlkitError("ViLBertBatches: the scenes are not the regions' images in the same order")
        self.regions, self.config, self.tokenizer = regions, config, tokenizer
        self.row_of = {image_id: row for row, image_id in enumerate(regions.regions.image_ids)}
        encoded = iter(self._encode([text for texts in captions for text in texts]))
        self.captions = [[next(encoded) for _ in texts] for texts in captions]
        self.caption_texts = [list(texts) for texts in captions]
        self.signatures: list[Hashable] = (
            [tuple(sorted((o.colour, o.shape) for o in s.objects)) for s in scenes]
            if scenes is not None
            else list(range(len(captions)))
        )
        held = {tuple(pair) for pair in heldout}
        self.heldout_rows = {
            row for row, s in enumerate(scenes or []) if any((o.colour, o.shape) in held for o in s.objects)
        }
        specials = set(tokenizer.all_special_ids)
        self.specials = np.array(sorted(specials))
        self.random_ids = np.array([i for i in range(len(tokenizer)) if i not in specials])
        self.mask_id = int(tokenizer.mask_token_id)
        tasks = tasks or SceneTasks([], [])
        self.vqa_items = list(tasks.vqa)
        self.referring_items = list(tasks.referring)
        for kind, items in (("vqa", self.vqa_items), ("referring", self.referring_items)):
            for i, item in enumerate(items):
                if item.image_id not in self.row_of:
                    raise VlkitError(
                        f"{kind}[{i}]: image_id {item.image_id!r} is not an image of the regions"
                    )
        self._vqa_text = self._encode([item.question for item in self.vqa_items])
        self._referring_text = self._encode([item.text for item in self.referring_items])
        self._vqa_train = [i for i, item in enumerate(self.vqa_items) if not item.heldout]
        self._referring_train = [i for i, item in enumerate(self.referring_items) if not item.heldout]

    # ------------------------------------------------------------------------------------ step-indexed

    def pretraining(self, step: int) -> dict[str, torch.Tensor]:
        """Batch `step` of masked words, masked regions and alignment (the training loop's batch_for_step)."""
        rows, epoch, index = self._order(len(self.captions), step, "pretraining")
        rng = self._rng(step, "pretraining")
        picks = batch_picks(self.config.seed, epoch, index, len(rows))
        aligned = rng.random(len(rows)) >= self.config.mismatch_probability
        texts = []
        for row, pick, own in zip(rows, picks, aligned, strict=True):
            source = row if own else self._mismatched_row(row, rng)
            texts.append(self.captions[source][pick % len(self.captions[source])])
        batch = {**self._text(texts), **self._images(rows)}
        maskable_pairs = torch.from_numpy(aligned | self.config.mask_mismatched)
        special = torch.from_numpy(np.isin(batch["input_ids"].numpy(), self.specials))
        words = mask_words(
            batch["input_ids"],
            ~special & batch["attention_mask"].bool() & maskable_pairs[:, None],
            rng,
            self.config,
            self.mask_id,
            self.random_ids,
        )
        batch.update(input_ids=words.input_ids, masked_word_labels=words.labels)
        batch["aligned"] = torch.from_numpy(aligned.astype(np.int64))
        if "region_targets" in batch:
            maskable = batch["region_mask"].bool() & maskable_pairs[:, None]
            regions = mask_regions(batch["region_features"], maskable, rng, self.config)
            batch.update(region_features=regions.features, masked_regions=regions.masked)
        return batch

    def vqa(self, step: int) -> dict[str, torch.Tensor]:
        """Batch `step` of VQA training questions (none held out)."""
        chosen, _, _ = self._order(len(self._vqa_train), step, "vqa")
        return self._vqa_batch([self._vqa_train[i] for i in chosen])

    def referring(self, step: int) -> dict[str, torch.Tensor]:
        """Batch `step` of referring expressions for training (none held out)."""
        chosen, _, _ = self._order(len(self._referring_train), step, "referring")
        return self._referring_batch([self._referring_train[i] for i in chosen])

    def retrieval(self, step: int) -> dict[str, torch.Tensor]:
        """Batch `step` of retrieval groups: each image's caption with its image first, then negatives in
        turn: the caption with another image, with an image sharing an object kind (a hard negative, when one
        exists), and the image with another image's caption."""
        rows, epoch, index = self._order(len(self.captions), step, "retrieval")
        rng = self._rng(step, "retrieval")
        picks = batch_picks(self.config.seed, epoch, index, len(rows))
        texts, images = [], []
        for row, pick in zip(rows, picks, strict=True):
            caption = self.captions[row][pick % len(self.captions[row])]
            group = [(caption, row)]
            for k in range(self.config.retrieval_candidates - 1):
                kind = k % 3
                other = self._hard_row(row, rng) if kind == 1 else self._mismatched_row(row, rng)
                if kind == 2:
                    group.append((self.captions[other][int(rng.integers(len(self.captions[other])))], row))
                else:
                    group.append((caption, other))
            texts += [text for text, _ in group]
            images += [image for _, image in group]
        batch = {**self._text(texts), **self._images(np.asarray(images))}
        batch.pop("region_targets", None)
        size, count = len(rows), self.config.retrieval_candidates
        batch = {key: value.reshape(size, count, *value.shape[1:]) for key, value in batch.items()}
        batch["retrieval_target"] = torch.zeros(size, dtype=torch.long)
        return batch

    # ------------------------------------------------------------------------------------- evaluation

    def vqa_eval(self, batch_size: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """Every VQA item in order (held-out ones too, flagged), `batch_size` at a time."""
        size = batch_size or self.config.batch_size
        for start in range(0, len(self.vqa_items), size):
            yield self._vqa_batch(list(range(start, min(start + size, len(self.vqa_items)))))

    def referring_eval(self, batch_size: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """Every referring item in order (held-out ones too, flagged), `batch_size` at a time."""
        size = batch_size or self.config.batch_size
        for start in range(0, len(self.referring_items), size):
            yield self._referring_batch(list(range(start, min(start + size, len(self.referring_items)))))

    def retrieval_set(self) -> RetrievalSet:
        """Every caption of every image, image by image, with the row of its image."""
        texts = [text for captions in self.caption_texts for text in captions]
        index = [row for row, captions in enumerate(self.caption_texts) for _ in captions]
        heldout = [row in self.heldout_rows for row in index]
        return RetrievalSet(
            texts, torch.tensor(index, dtype=torch.long), torch.tensor(heldout, dtype=torch.bool)
        )

    def retrieval_candidates(self, k: int, seed: int = 0) -> torch.Tensor:
        """(N_txt, k) images to re-rank per caption: its own first, then k - 1 others drawn without
        replacement (seeded); k at or above the image count gives every image."""
        index = self.retrieval_set().text_image_index
        n = len(self.captions)
        if k >= n:
            return torch.arange(n).expand(len(index), n).clone()
        rng = np.random.default_rng([seed, 7])
        rows = []
        for own in index.tolist():
            others = rng.choice(n - 1, size=k - 1, replace=False)
            rows.append([own, *(int(o) + (o >= own) for o in others)])
        return torch.tensor(rows, dtype=torch.long)

    def retrieval_pairs(
        self,
        candidates: torch.Tensor,
        batch_size: int | None = None,
        texts: Sequence[int] | torch.Tensor | None = None,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """The (caption, image) pairs of `candidates` (N, K) image rows, caption by caption: each batch
        with `text_index` and `image_index`, to fill a similarity matrix for `metrics.retrieval`. Row j is
        caption `texts[j]` of `retrieval_set()` (default: caption j, every caption)."""
        size = batch_size or self.config.batch_size
        flat = self._flat_captions()
        queries = list(range(len(candidates))) if texts is None else [int(t) for t in texts]
        if len(queries) != len(candidates):
            raise VlkitError(f"retrieval_pairs: {len(queries)} captions for {len(candidates)} candidate rows")
        pairs = [(queries[j], int(i)) for j, row in enumerate(candidates.tolist()) for i in row]
        for start in range(0, len(pairs), size):
            chunk = pairs[start : start + size]
            batch = {
                **self._text([flat[t] for t, _ in chunk]),
                **self._images(np.array([i for _, i in chunk])),
            }
            batch.pop("region_targets", None)
            batch["text_index"] = torch.tensor([t for t, _ in chunk], dtype=torch.long)
            batch["image_index"] = torch.tensor([i for _, i in chunk], dtype=torch.long)
            yield batch

    # -------------------------------------------------------------------------------------- the parts

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids of each text, [CLS] and [SEP] included, cut to `max_text_tokens` (one call)."""
        if not texts:
            return []
        encoded = self.tokenizer(texts, truncation=True, max_length=self.config.max_text_tokens)
        return [list(ids) for ids in encoded["input_ids"]]

    def _flat_captions(self) -> list[list[int]]:
        return [ids for captions in self.captions for ids in captions]

    def _text(self, encoded: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        """Word-piece id lists -> input_ids and attention_mask, padded with [PAD] to the longest."""
        length = max(len(ids) for ids in encoded)
        pad = int(self.tokenizer.pad_token_id)
        input_ids = torch.full((len(encoded), length), pad, dtype=torch.long)
        attention = torch.zeros((len(encoded), length), dtype=torch.long)
        for i, ids in enumerate(encoded):
            input_ids[i, : len(ids)], attention[i, : len(ids)] = torch.tensor(ids), 1
        return {"input_ids": input_ids, "attention_mask": attention}

    def _images(self, rows: np.ndarray | Sequence[int]) -> dict[str, torch.Tensor]:
        got = self.regions.rows(rows)
        batch = {"region_features": got.features, "region_boxes": got.boxes, "region_mask": got.mask}
        if got.labels is not None:
            batch["region_targets"] = got.labels
        return batch

    def _order(self, n: int, step: int, stream: str) -> tuple[np.ndarray, int, int]:
        """The items of batch `step`: epoch e is a seeded permutation of `n` items in whole batches."""
        if n == 0:
            raise VlkitError(f"ViLBertBatches: no {stream} items to train on")
        size = min(self.config.batch_size, n)
        epoch, index = divmod(step, max(1, n // size))
        order = np.random.default_rng([self.config.seed, STREAMS[stream], epoch]).permutation(n)
        return order[index * size : (index + 1) * size], epoch, index

    def _rng(self, step: int, stream: str) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, STREAMS[stream], step, 1])

    def _mismatched_row(self, row: int, rng: np.random.Generator) -> int:
        """Another image whose objects differ from `row`'s (any other image after MISMATCH_TRIES draws)."""
        n = len(self.captions)
        if n < 2:
            raise VlkitError("ViLBertBatches: a mismatched caption needs at least two images")
        other = row
        for _ in range(MISMATCH_TRIES):
            other = (row + 1 + int(rng.integers(n - 1))) % n
            if self.signatures[other] != self.signatures[row]:
                break
        return other

    def _hard_row(self, row: int, rng: np.random.Generator) -> int:
        """An image sharing an object kind with `row`'s but not all of them (a random other when none is)."""
        mine = set(self.signatures[row]) if isinstance(self.signatures[row], tuple) else set()
        for _ in range(MISMATCH_TRIES):
            other = self._mismatched_row(row, rng)
            theirs = self.signatures[other]
            if isinstance(theirs, tuple) and mine & set(theirs):
                return other
        return self._mismatched_row(row, rng)

    def _vqa_batch(self, items: list[int]) -> dict[str, torch.Tensor]:
        chosen = [self.vqa_items[i] for i in items]
        batch = {**self._text([self._vqa_text[i] for i in items]), **self._images(self._rows_of(chosen))}
        batch.pop("region_targets", None)
        batch["answer"] = torch.tensor([ANSWER_INDEX[item.answer] for item in chosen], dtype=torch.long)
        batch["question_type"] = torch.tensor([QUESTION_TYPES.index(item.type) for item in chosen])
        batch["heldout"] = torch.tensor([item.heldout for item in chosen], dtype=torch.bool)
        batch["item"] = torch.tensor(items, dtype=torch.long)
        return batch

    def _referring_batch(self, items: list[int]) -> dict[str, torch.Tensor]:
        chosen = [self.referring_items[i] for i in items]
        rows = self._rows_of(chosen)
        batch = {**self._text([self._referring_text[i] for i in items]), **self._images(rows)}
        batch.pop("region_targets", None)
        regions = self.regions.regions
        targets, ious = [], []
        for item, row in zip(chosen, rows, strict=True):
            region = (
                int(regions.object_regions[row, item.target])
                if item.target < regions.object_regions.shape[1]
                else -1
            )
            if region < 0:
                raise VlkitError(f"referring: image {item.image_id!r} has no region for object {item.target}")
            targets.append(region)
            truth = regions.object_boxes[row, item.target][None]
            ious.append(overlaps(regions.boxes[row], truth, "iou")[:, 0] * regions.mask[row])
        batch["referring_target"] = torch.tensor(targets, dtype=torch.long)
        batch["referring_iou"] = torch.from_numpy(np.stack(ious).astype(np.float32))
        hit = batch["referring_iou"] >= REFERRING_HIT_IOU
        hit[torch.arange(len(targets)), batch["referring_target"]] = True
        batch["referring_hit"] = hit
        batch["heldout"] = torch.tensor([item.heldout for item in chosen], dtype=torch.bool)
        batch["item"] = torch.tensor(items, dtype=torch.long)
        return batch

    def _rows_of(self, items: Sequence[VqaItem | ReferringItem]) -> np.ndarray:
        return np.array([self.row_of[item.image_id] for item in items], dtype=np.int64)
