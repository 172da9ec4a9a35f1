"""The frozen-feature cache: parts that hold exactly the encoder's features, a killed build that keeps its
finished parts, shards as parts, and a key that changes with what the features depend on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.data.captions import load_caption_dataset
from vlkit.data.images import read_image
from vlkit.data.shards import ShardSet, write_shards
from vlkit.models.captioner.model import CaptionerSpec, build_captioner
from vlkit.train import feature_cache
from vlkit.train.feature_cache import META_FILE, PART_FILE, ImageParts, build_feature_cache


@pytest.fixture(scope="module")
def captioner(tmp_path_factory):
    clip, _, gpt2 = save_tiny_parts(tmp_path_factory.mktemp("parts"))
    return build_captioner(CaptionerSpec(str(clip), str(gpt2), "cross-attn", None, 8))


@pytest.fixture(scope="module")
def paths(shapes_world):
    return load_caption_dataset(shapes_world / "val.json", shapes_world / "images").image_paths()


def _encoded(captioner, paths) -> torch.Tensor:
    return captioner.encode_images(captioner.preprocess([read_image(p) for p in paths])).float()


def test_the_parts_hold_the_encoder_features_row_for_row(captioner, paths, tmp_path):
    cache = build_feature_cache(captioner, ImageParts.from_paths(paths, part_size=7), tmp_path, batch_size=3)
    assert len(cache) == len(paths) == 20 and [len(p) for p in cache.parts] == [7, 7, 6]
    expected = _encoded(captioner, paths)
    torch.testing.assert_close(cache.rows(np.arange(20)), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cache.rows([19, 0, 8]), expected[[19, 0, 8]], rtol=1e-5, atol=1e-5)
    again = build_feature_cache(captioner, ImageParts.from_paths(paths, part_size=7), tmp_path, batch_size=3)
    assert again.reused and again.folder == cache.folder


def test_a_killed_build_keeps_its_finished_parts(captioner, paths, tmp_path, monkeypatch):
    computed = []
    original = feature_cache._compute_part

    def killed_at_part_2(captioner, images, k, *args):
        if k == 2:
            raise KeyboardInterrupt
        computed.append(k)
        return original(captioner, images, k, *args)

    monkeypatch.setattr(feature_cache, "_compute_part", killed_at_part_2)
    images = ImageParts.from_paths(paths, part_size=7)
    with pytest.raises(KeyboardInterrupt):
        build_feature_cache(captioner, images, tmp_path)
    folder = next(tmp_path.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == [PART_FILE % 0, PART_FILE % 1]  # no meta, no temp
    (folder / f".{PART_FILE % 2}.999999.tmp").write_bytes(b"half a part, from a run killed with SIGKILL")
    monkeypatch.setattr(feature_cache, "_compute_part", lambda *a: computed.append(a[2]) or original(*a))
    cache = build_feature_cache(captioner, images, tmp_path)
    assert computed == [0, 1, 2] and not cache.reused  # only the missing part was computed
    assert sorted(p.name for p in folder.iterdir()) == [META_FILE, *(PART_FILE % k for k in range(3))]
    torch.testing.assert_close(cache.rows(np.arange(20)), _encoded(captioner, paths), rtol=1e-5, atol=1e-5)


def test_shards_are_the_parts_and_ordinals_the_rows(captioner, shapes_world, paths, tmp_path):
    dataset = load_caption_dataset(shapes_world / "val.json", shapes_world / "images")
    write_shards(dataset, tmp_path / "shards", per_shard=8)
    shards = ShardSet.open(str(tmp_path / "shards" / "data-{000000..000002}.tar"))
    assert shards.counts == [8, 8, 4] and shards.offsets() == [0, 8, 16]
    cache = build_feature_cache(captioner, ImageParts.from_shards(shards), tmp_path / "cache")
    assert [len(p) for p in cache.parts] == [8, 8, 4]
    ordinals = [sample.ordinal for sample in shards.stream(shuffle_buffer=5, seed=1)]
    assert sorted(ordinals) == list(range(20)) and ordinals != list(range(20))
    torch.testing.assert_close(
        cache.rows(ordinals), _encoded(captioner, paths)[ordinals], rtol=1e-5, atol=1e-5
    )


def test_the_key_changes_with_the_images_the_dtype_and_the_part_layout(captioner, paths, tmp_path):
    folders = {
        build_feature_cache(captioner, ImageParts.from_paths(p, part_size=s), tmp_path, dtype=d).folder
        for p, s, d in [
            (paths, 7, "float32"),
            (paths[:-1], 7, "float32"),
            (paths, 7, "float16"),
            (paths, 5, "float32"),
        ]
    }
    assert len(folders) == 4
