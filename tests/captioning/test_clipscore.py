"""CLIPScore and RefCLIPScore: the formulas of the reference implementation, batching, the prefix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from PIL import Image

from tests.models.tiny import save_tiny_clip
from vlkit.captioning.clipscore import clip_score, ref_clip_score
from vlkit.data.captions import load_caption_dataset
from vlkit.data.images import read_image
from vlkit.errors import VlkitError
from vlkit.metrics.clipscore import CLIP_SCORE_WEIGHT, DEFAULT_PREFIX, add_prefix, harmonic_mean
from vlkit.models.clip import Clip, ClipSpec, load_clip
from vlkit.shapes.grammar import COLOURS


class OffsetClip(Clip):
    """The tiny random CLIP with a constant added to every feature before normalizing.

    A random CLIP's image-text cosines are mostly negative, so CLIP-S (clamped at 0) would be 0 almost
    everywhere and a comparison with a direct computation would prove little; the offset makes them
    positive and varied while keeping the real tokenizer, padding and image processor in the path.
    """

    def __init__(self, inner: Clip, offset: float):
        self.inner, self.offset = inner, offset
        self.name, self.device, self.dtype = f"{inner.name}+{offset}", inner.device, inner.dtype

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.inner.preprocess(images)

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.inner._image_features(pixel_values) + self.offset

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        return self.inner._text_features(texts) + self.offset


class ColourClip(Clip):
    """A CLIP whose encoders are chosen by hand: an image is embedded by its mean colour, a text by the colour
    words it contains, both over the shapes world's colours (plus a small constant so no vector is zero).

    It tests the scoring logic with embeddings whose similarities are known: a caption naming the image's
    colour is close to it, a caption naming another colour is not.
    """

    name, device, dtype = "colour", torch.device("cpu"), torch.float32
    colours = list(COLOURS)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        means = [np.asarray(image, dtype=np.float32).mean(axis=(0, 1)) for image in images]
        return torch.tensor(np.stack(means))[:, :, None, None]  # (B, 3, 1, 1)

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        rgb = pixel_values[:, :, 0, 0]  # (B, 3)
        palette = torch.tensor([COLOURS[name] for name in self.colours], dtype=torch.float32)
        nearest = torch.cdist(rgb, palette).argmin(dim=1)
        return torch.nn.functional.one_hot(nearest, len(self.colours)).float() + 0.1

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        rows = [[float(colour in text.lower().split()) for colour in self.colours] for text in texts]
        return torch.tensor(rows) + 0.1


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Clip:
    return load_clip(
        ClipSpec(str(save_tiny_clip(tmp_path_factory.mktemp("clipscore") / "clip")), device="cpu")
    )


@pytest.fixture(scope="module")
def world_pairs(shapes_world):
    """The val images of the tiny world, their first caption, all their captions."""
    dataset = load_caption_dataset(shapes_world / "val.json", shapes_world / "images")
    images = [read_image(image.path) for image in dataset.images]
    return (
        images,
        [image.captions[0] for image in dataset.images],
        [image.captions for image in dataset.images],
    )


def _direct_clip_s(clip: Clip, image: Image.Image, caption: str) -> float:
    """One pair at a time, the formula written out."""
    image_embedding = clip.encode_images(clip.preprocess([image]))[0]
    text_embedding = clip.encode_texts([caption])[0]
    return CLIP_SCORE_WEIGHT * max(float(image_embedding @ text_embedding), 0.0)


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_scores_equal_a_direct_pair_by_pair_computation(tiny_clip, world_pairs, offset):
    clip = OffsetClip(tiny_clip, offset)
    images, captions, references = world_pairs
    images, captions, references = images[:8], captions[:8], references[:8]
    result = ref_clip_score(clip, images, captions, references)
    expected_clip = [
        _direct_clip_s(clip, i, "A photo depicts " + c) for i, c in zip(images, captions, strict=True)
    ]
    expected_ref = []
    for clip_s, caption, refs in zip(expected_clip, captions, references, strict=True):
        candidate = clip.encode_texts(["A photo depicts " + caption])[0]
        best = max(float(candidate @ clip.encode_texts(["A photo depicts " + r])[0]) for r in refs)
        text_side = max(best, 0.0)  # not multiplied by w: the reference code weights only the image side
        expected_ref.append(0.0 if clip_s + text_side == 0 else 2 * clip_s * text_side / (clip_s + text_side))
    assert result.per_image_clip == pytest.approx(expected_clip, abs=1e-5)
    assert result.per_image_ref == pytest.approx(expected_ref, abs=1e-5)
    assert result.clip_score == pytest.approx(np.mean(expected_clip), abs=1e-6)
    assert result.ref_clip_score == pytest.approx(np.mean(expected_ref), abs=1e-6)
    assert clip_score(clip, images, captions).per_image == pytest.approx(result.per_image_clip, abs=1e-6)
    if offset:  # the shifted model must actually exercise the formula, not only the clamp
        assert min(expected_clip) > 0 and len(set(np.round(expected_clip, 4))) > 4


def test_scores_do_not_depend_on_the_batch_size(tiny_clip, world_pairs):
    clip = OffsetClip(tiny_clip, 0.5)
    images, captions, references = world_pairs
    runs = [ref_clip_score(clip, images, captions, references, batch_size=size) for size in (1, 7, 64)]
    for run in runs[1:]:
        assert run.per_image_clip == pytest.approx(runs[0].per_image_clip, abs=1e-5)
        assert run.per_image_ref == pytest.approx(runs[0].per_image_ref, abs=1e-5)


def test_prefix_is_put_before_candidates_and_references_and_can_be_turned_off(
    tiny_clip, world_pairs, monkeypatch
):
    clip = OffsetClip(tiny_clip, 0.5)
    images, captions, references = world_pairs
    images, captions, references = images[:3], captions[:3], references[:3]
    encoded: list[str] = []
    original = clip.encode_texts

    def spy(texts, batch_size=256, description="encode texts"):
        encoded.extend(texts)
        return original(texts, batch_size, description)

    monkeypatch.setattr(clip, "encode_texts", spy)
    with_prefix = ref_clip_score(clip, images, captions, references)
    flat_references = [r for refs in references for r in refs]
    assert encoded == [DEFAULT_PREFIX + c for c in captions] + [DEFAULT_PREFIX + r for r in flat_references]
    encoded.clear()
    plain = ref_clip_score(clip, images, captions, references, prefix=None)
    assert encoded == captions + flat_references
    assert plain.per_image_clip != pytest.approx(with_prefix.per_image_clip, abs=1e-4)
    encoded.clear()
    clip_score(clip, images, captions, prefix="A photo depicts")  # the reference code adds the missing space
    assert encoded == [DEFAULT_PREFIX + c for c in captions]
    assert add_prefix(["x"], "") == ["x"] and add_prefix(["x"], None) == ["x"]


def _solid(colour: str) -> Image.Image:
    return Image.new("RGB", (16, 16), COLOURS[colour])


def test_an_images_own_caption_scores_above_another_images_caption():
    clip = ColourClip()
    images = [_solid("red"), _solid("blue"), _solid("green")]
    own = ["a red circle", "two blue squares", "a green star"]
    swapped = own[1:] + own[:1]
    references = [["one red circle"], ["a pair of blue squares"], ["a green star in the middle"]]
    own_scores, swapped_scores = (ref_clip_score(clip, images, c, references) for c in (own, swapped))
    for i in range(3):
        assert own_scores.per_image_clip[i] > swapped_scores.per_image_clip[i]
        assert own_scores.per_image_ref[i] > swapped_scores.per_image_ref[i]
    # The embeddings are known: one-hot + 0.1 over 8 colours, so the cosines can be written down.
    matching = 1.0  # image and caption get the same vector
    other = (2 * 1.1 * 0.1 + 6 * 0.01) / (1.1**2 + 7 * 0.01)  # the two ones meet 0.1s; the rest 0.1 * 0.1
    assert own_scores.per_image_clip == pytest.approx([2.5 * matching] * 3, abs=1e-6)
    assert swapped_scores.per_image_clip == pytest.approx([2.5 * other] * 3, abs=1e-6)
    # Candidate and references name the same colour: the text side is a cosine of 1, not 2.5.
    assert own_scores.per_image_ref == pytest.approx(
        [2 * 2.5 * matching / (2.5 * matching + 1)] * 3, abs=1e-6
    )


def test_best_reference_counts_and_the_harmonic_mean_of_zeros_is_zero():
    clip = ColourClip()
    refs_without_match = [["a blue circle"]]
    refs_with_match = [["a blue circle", "a red circle"]]
    images, caption = [_solid("red")], ["a red circle"]
    assert (
        ref_clip_score(clip, images, caption, refs_with_match).per_image_ref[0]
        > ref_clip_score(clip, images, caption, refs_without_match).per_image_ref[0]
    )
    zeros = torch.zeros(2)
    assert harmonic_mean(zeros, torch.tensor([0.0, 1.0])).tolist() == [0.0, 0.0]
    assert harmonic_mean(torch.tensor([1.0]), torch.tensor([3.0])).tolist() == [pytest.approx(1.5)]


def test_mismatched_or_empty_inputs_are_errors():
    clip = ColourClip()
    with pytest.raises(VlkitError, match="2 images but 1 captions"):
        clip_score(clip, [_solid("red"), _solid("blue")], ["a red circle"])
    with pytest.raises(VlkitError, match="no captions"):
        clip_score(clip, [], [])
    with pytest.raises(VlkitError, match=r"references\[0\] must be a non-empty list"):
        ref_clip_score(clip, [_solid("red")], ["a red circle"], [[]])
    with pytest.raises(VlkitError, match="batch_size must be at least 1"):
        clip_score(clip, [_solid("red")], ["a red circle"], batch_size=0)
