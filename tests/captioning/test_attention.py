"""Attention maps per generated word, the pointing game, and `vlkit caption attend`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.captioning.attention import Aggregation, all_aggregations, token_maps, upsample
from vlkit.cli.main import main
from vlkit.errors import VlkitError
from vlkit.metrics.pointing import BaselineTally, PointingTally, grounded_words, object_mask, words_of
from vlkit.models.captioner.model import CaptionerSpec, build_captioner

GRID = (2, 3)


def _attention(focus: list[int], layers: int = 2, heads: int = 2, prefix: int = 1, cls: float = 0.2):
    """(tokens, layers, heads, prefix + 6): token t puts 1 - cls on patch focus[t], cls on the CLS token."""
    attn = torch.zeros(len(focus), layers, heads, prefix + GRID[0] * GRID[1])
    for t, patch in enumerate(focus):
        attn[t, :, :, prefix + patch] = 1 - cls
        if prefix:
            attn[t, :, :, 0] = cls
    return attn


@pytest.mark.parametrize("aggregation", all_aggregations(2))
def test_every_aggregation_puts_the_peak_where_all_heads_and_layers_look(aggregation):
    result = token_maps(_attention([0, 5, 3]), GRID, 1, aggregation)
    assert result.maps.shape == (3, 2, 3)
    np.testing.assert_allclose(result.maps.sum(axis=(1, 2)), 1.0, rtol=1e-6)
    peaks = [np.unravel_index(m.argmax(), GRID) for m in result.maps]
    assert peaks == [(0, 0), (1, 2), (1, 0)]
    np.testing.assert_allclose(result.prefix_share, 0.2, rtol=1e-6)


def test_layer_and_head_reductions_differ_as_defined():
    attn = torch.zeros(1, 2, 2, 6)
    attn[0, 0, 0] = torch.tensor([0.5, 0.5, 0, 0, 0, 0])  # layer 0, head 0
    attn[0, 0, 1] = torch.tensor([0.9, 0.1, 0, 0, 0, 0])  # layer 0, head 1
    attn[0, 1, :] = torch.tensor([0.2, 0.8, 0, 0, 0, 0])  # layer 1, both heads
    maps = lambda heads, layers: token_maps(attn, GRID, 0, Aggregation(heads, layers)).maps[0].ravel()[:2]  # noqa: E731
    np.testing.assert_allclose(maps("mean", 0), [0.7, 0.3])
    np.testing.assert_allclose(maps("max", 0), np.array([0.9, 0.5]) / 1.4)
    np.testing.assert_allclose(maps("mean", "last"), [0.2, 0.8])
    np.testing.assert_allclose(maps("mean", "mean"), [0.45, 0.55])
    np.testing.assert_allclose(maps("mean", "rollout"), np.array([0.14, 0.24]) / 0.38, rtol=1e-5)


def test_bad_aggregations_and_shapes_are_named():
    with pytest.raises(VlkitError, match="--heads"):
        Aggregation.parse("median", "mean")
    with pytest.raises(VlkitError, match="--layers"):
        Aggregation.parse("mean", "middle")
    with pytest.raises(VlkitError, match="layer 7 does not exist"):
        token_maps(_attention([0]), GRID, 1, Aggregation("mean", 7))
    with pytest.raises(VlkitError, match="grid 2x3"):
        token_maps(_attention([0]), GRID, 0, Aggregation())


def test_upsampling_keeps_a_distribution_and_its_peak():
    grid_map = np.zeros((2, 2))
    grid_map[1, 0] = 1.0
    big = upsample(grid_map, (40, 20))  # (width, height)
    assert big.shape == (20, 40) and big.sum() == pytest.approx(1.0)
    row, column = np.unravel_index(big.argmax(), big.shape)
    assert row >= 10 and column < 20  # the bottom-left quarter


OBJECTS = [
    {"shape": "circle", "colour": "red"},
    {"shape": "square", "colour": "blue"},
    {"shape": "square", "colour": "red"},
]


def test_words_group_bpe_pieces_and_colour_words_name_their_phrase():
    tokens = [
        " a",
        " red",
        " circ",
        "le",
        " and",
        " two",
        " squares",
        " in",
        " blue",
        " and",
        " a",
        " green",
        " star",
    ]
    assert [w.text for w in words_of(tokens)][:3] == ["a", "red", "circle"]
    grounded = grounded_words(tokens, OBJECTS)
    assert [(g.text, g.object_indices) for g in grounded] == [
        ("red", [0]),
        ("circle", [0]),
        ("squares", [1]),
        ("blue", [1]),
    ]  # the green star names nothing in the image: not scored
    assert grounded[1].token_indices == [2, 3]
    bare = grounded_words([" a", " square", " and", " a", " red", " circle"], OBJECTS)
    assert [(g.text, g.object_indices) for g in bare] == [("square", [1, 2]), ("red", [0]), ("circle", [0])]


def test_pointing_game_and_baselines_count_as_specified():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[0:4, 0:4] = 1  # object 0, top left
    labels[4:7, 4:7] = 2  # object 1, covering the centre (5, 5)
    tally, base = PointingTally(), BaselineTally()
    inside = np.zeros((10, 10))
    inside[1, 1] = 0.6
    inside[9, 9] = 0.4
    outside = np.full((10, 10), 0.01)
    outside[9, 0] = 0.02
    outside /= outside.sum()
    tally.add(inside, object_mask(labels, [0]))
    tally.add(outside, object_mask(labels, [0]))
    result = tally.result()
    assert result["pointing_game"] == 0.5 and result["n_words"] == 2
    assert result["mass_in_mask"] == pytest.approx((0.6 + 16 * outside[0, 0]) / 2)
    base.add(object_mask(labels, [0]))
    base.add(object_mask(labels, [1]))
    assert base.result() == {"center": 0.5, "random": pytest.approx((16 + 9) / 100 / 2)}
    assert PointingTally().result()["pointing_game"] is None


@pytest.fixture(scope="module")
def captioner_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("attend")
    clip, _, gpt2 = save_tiny_parts(root)
    captioner = build_captioner(CaptionerSpec(str(clip), str(gpt2), "cross-attn", max_caption_tokens=8))
    return captioner.save(root / "captioner")


def test_attend_writes_a_figure_maps_and_grounding_for_the_shapes_world(
    captioner_dir, shapes_world, tmp_path
):
    out = tmp_path / "attend"
    main(["--quiet", "caption", "attend", "--model", str(captioner_dir), "--annotations",
          str(shapes_world / "val.json"), "--out", str(out), "--figures", "3"])  # fmt: skip
    captions = json.loads((out / "captions.json").read_text())["images"]
    assert len(captions) == 20
    for stem, entry in captions.items():
        maps = np.load(out / "maps" / f"{stem}.npy")
        assert maps.shape[0] == len(entry["tokens"]) and maps.shape[1:] == (4, 4)  # 32 px / 8 px patches
        np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert len(list((out / "figures").glob("*.png"))) == 3
    grounding = json.loads((out / "grounding.json").read_text())
    names = [a["name"] for a in grounding["aggregations"]]
    assert "heads=mean,layers=mean" in names and "heads=max,layers=rollout" in names
    assert set(grounding["baselines"]) == {"center", "random"}
    assert all(
        set(a) == {"name", "pointing_game", "mass_in_mask", "n_words"} for a in grounding["aggregations"]
    )


def test_attend_needs_exactly_one_source(captioner_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["caption", "attend", "--model", str(captioner_dir), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "exactly one of --images" in capsys.readouterr().err
