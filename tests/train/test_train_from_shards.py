"""Training from WebDataset shards read as a stream: the same weights as training from the folder when the
images come in the same order, an exact resume inside the stream, and the feature cache built from shards."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.train.test_caption_trainer import _config as caption_config
from tests.train.test_caption_trainer import datasets, parts  # noqa: F401 (fixtures)
from tests.train.test_clip_trainer import _config as clip_config
from vlkit.cli.main import main
from vlkit.data.captions import CaptionDataset
from vlkit.data.shards import ShardSet, ShardSource, write_shards
from vlkit.errors import VlkitError
from vlkit.train import caption_trainer, clip_trainer
from vlkit.train.caption_trainer import train_captioner
from vlkit.train.clip_trainer import train_clip
from vlkit.train.feature_cache import PART_FILE
from vlkit.train.stream import StreamBatches

BATCH = 8


def _in_order(dataset: CaptionDataset, order: np.ndarray) -> CaptionDataset:
    return dataclasses.replace(dataset, images=[dataset.images[i] for i in order])


def _shards(dataset: CaptionDataset, folder, shuffle_buffer: int = 0) -> ShardSource:
    write_shards(dataset, folder, per_shard=25)  # 60 images: shards of 25, 25 and 10
    return ShardSource(ShardSet.open(str(folder / "data-{000000..000002}.tar")), shuffle_buffer)


def _assert_same_weights(a_dir, b_dir, name="model.safetensors"):
    a, b = load_file(a_dir / name), load_file(b_dir / name)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]


def test_caption_training_from_shards_equals_the_folder_in_the_same_order(parts, datasets, tmp_path):  # noqa: F811
    train = datasets[0]
    epoch = len(train) // BATCH  # one epoch: the folder path's order is its epoch-0 permutation
    config = caption_config(parts, "lora", steps=epoch, batch_size=BATCH)
    folder_run = train_captioner(config, train, None, tmp_path / "folder")
    order = caption_trainer.CaptionBatches(None, [None] * len(train), BATCH, config.loop.seed).epoch_order(0)
    source = _shards(_in_order(train, order), tmp_path / "shards")
    shard_run = train_captioner(config, source, None, tmp_path / "from_shards")
    _assert_same_weights(folder_run.out_dir, shard_run.out_dir)
    # the frozen encoder's features came from a cache of one part per shard
    parts_written = sorted(p.name for p in shard_run.feature_cache.iterdir() if p.suffix == ".npy")
    assert parts_written == [PART_FILE % k for k in range(3)]


def test_a_crash_inside_the_stream_resumes_to_the_uninterrupted_weights(
    parts,  # noqa: F811
    datasets,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    # 10 steps of 8 over 60 images shuffled through a buffer: epoch 0 is 7 steps, the crash comes at step 8,
    # the resume starts from the step-6 checkpoint in the middle of epoch 0's stream
    source = _shards(datasets[0], tmp_path / "shards", shuffle_buffer=16)
    config = caption_config(parts, "lora", steps=10, batch_size=BATCH)
    straight = train_captioner(config, source, None, tmp_path / "straight")
    original = StreamBatches.__call__

    def crash_at_step_8(self, step):
        if step == 8:
            raise RuntimeError("killed")
        return original(self, step)

    monkeypatch.setattr(StreamBatches, "__call__", crash_at_step_8)
    with pytest.raises(RuntimeError, match="killed"):
        train_captioner(config, source, None, tmp_path / "crashed")
    monkeypatch.setattr(StreamBatches, "__call__", original)
    resumed = train_captioner(config, source, None, tmp_path / "crashed", resume=True)
    _assert_same_weights(straight.out_dir, resumed.out_dir)


def test_stream_batches_read_each_epoch_in_its_own_seeded_order(datasets, tmp_path):  # noqa: F811
    source = _shards(datasets[0], tmp_path / "shards", shuffle_buffer=16)
    seen: list[list[int]] = []
    batches = StreamBatches(
        source.shards, BATCH, 0, 16, lambda samples, picks: seen.append([s.ordinal for s in samples]) or {}
    )
    for step in range(2 * batches.per_epoch):
        batches(step)
    epoch0 = sum(seen[: batches.per_epoch], [])
    epoch1 = sum(seen[batches.per_epoch :], [])
    assert len(set(epoch0)) == len(epoch0) == 56  # 7 batches of 8 distinct images of the 60
    assert epoch0 != epoch1 and epoch0 != sorted(epoch0)
    again: list[list[int]] = []
    jumped = StreamBatches(
        source.shards, BATCH, 0, 16, lambda s, p: again.append([x.ordinal for x in s]) or {}
    )
    jumped(9)  # a resume at step 9 reopens epoch 1's stream two batches in
    assert again[0] == seen[9]


def test_two_processes_each_collate_their_half_of_the_batch(datasets, tmp_path):  # noqa: F811
    source = _shards(datasets[0], tmp_path / "shards")
    halves: list[list[int]] = []
    for index in range(2):
        StreamBatches(
            source.shards, BATCH, 0, 0, lambda s, p: halves.append([x.ordinal for x in s]) or {}, index, 2
        )(0)
    assert halves == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(VlkitError, match="--batch-size: 7 images do not split evenly over 2 processes"):
        StreamBatches(source.shards, 7, 0, 0, lambda s, p: {}, 0, 2)


def test_clip_training_from_shards_equals_the_folder_in_the_same_order(datasets, tmp_path):  # noqa: F811
    train = datasets[0]
    config = clip_config(steps=len(train) // BATCH)
    train_clip(config, train, None, tmp_path / "folder")
    batches = clip_trainer.CaptionBatches(torch.zeros(len(train)), [], BATCH, config.loop.seed)
    source = _shards(_in_order(train, batches.epoch_order(0)), tmp_path / "shards")
    train_clip(config, source, None, tmp_path / "from_shards")
    _assert_same_weights(tmp_path / "folder", tmp_path / "from_shards")


def test_clip_train_command_reads_shards(shapes_world, tmp_path, capsys):
    main(["--quiet", "data", "shard", "--annotations", str(shapes_world / "train.json"), "--out",
          str(tmp_path / "shards"), "--per-shard", "30"])  # fmt: skip
    pattern = str(tmp_path / "shards" / "data-{000000..000001}.tar")
    main(["--quiet", "clip", "train", "--train-shards", pattern, "--data", str(shapes_world), "--out",
          str(tmp_path / "clip"), "--steps", "2", "--batch-size", "8", "--mixed-precision", "no",
          "--shuffle-buffer", "10"])  # fmt: skip
    assert (tmp_path / "clip" / "model.safetensors").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["clip", "train", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert "give --data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            [
                "clip",
                "train",
                "--train-shards",
                str(tmp_path / "none-{0..1}.tar"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
    assert "shard not found" in capsys.readouterr().err
