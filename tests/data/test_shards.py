"""WebDataset shards: `vlkit data shard` writes the img2dataset layout, the reader gives back the dataset
(pixels, ids, captions, extra fields) in order, by brace pattern, with a seeded shuffle resumable by
position."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from vlkit.cli.main import main
from vlkit.data.captions import load_caption_dataset
from vlkit.data.images import read_image
from vlkit.data.shards import read_shards, write_shards
from vlkit.errors import VlkitError


@pytest.fixture(scope="module")
def train(shapes_world):
    return load_caption_dataset(shapes_world / "train.json", shapes_world / "images")


@pytest.fixture(scope="module")
def shards(train, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "train"
    paths = write_shards(train, out, per_shard=25)  # 60 images: 25 + 25 + 10
    return out, paths


def test_shards_hold_the_img2dataset_layout(shards):
    out, paths = shards
    assert [p.name for p in paths] == ["data-000000.tar", "data-000001.tar", "data-000002.tar"]
    with tarfile.open(paths[0]) as tar:
        names = tar.getnames()
    assert sorted(names[:3]) == ["000000000.json", "000000000.png", "000000000.txt"] and len(names) == 75


def test_reading_the_shards_gives_back_the_dataset_in_order(train, shards):
    out, _ = shards
    samples = list(read_shards(str(out / "data-{000000..000002}.tar")))
    assert [s.id for s in samples] == [image.id for image in train.images]
    for sample, image in zip(samples, train.images, strict=True):
        assert sample.file_name == image.file_name and sample.captions == image.captions
        assert sample.extra == image.extra  # the shapes world's objects and mask file travel along
        assert np.array_equal(np.asarray(sample.image), np.asarray(read_image(image.path)))


def test_a_seeded_shuffle_repeats_and_resumes_at_a_position(shards):
    pattern = str(shards[0] / "data-{000000..000002}.tar")
    first = [s.key for s in read_shards(pattern, shuffle_buffer=16, seed=3)]
    assert first == [s.key for s in read_shards(pattern, shuffle_buffer=16, seed=3)]
    assert sorted(first) == [f"{i:09d}" for i in range(60)] and first != sorted(first)
    assert [s.key for s in read_shards(pattern, shuffle_buffer=16, seed=3, skip=37)] == first[37:]
    assert first != [s.key for s in read_shards(pattern, shuffle_buffer=16, seed=4)]
    # a shuffled stream's ordinals still name each sample's place in the set (keys are written in order)
    assert all(s.ordinal == int(s.key) for s in read_shards(pattern, shuffle_buffer=16, seed=3))


def test_a_failed_write_leaves_the_earlier_shards_and_no_partial_set(train, tmp_path, monkeypatch):
    out = tmp_path / "shards"
    write_shards(train, out, per_shard=100)
    before = (out / "data-000000.tar").read_bytes()
    broken, real = train.images[25].path, type(train.images[25].path).read_bytes

    def read_bytes(self):  # the 26th image fails to read: two shards of 10 are already written by then
        if self == broken:
            raise OSError("disk")
        return real(self)

    with monkeypatch.context() as patch:
        patch.setattr(type(broken), "read_bytes", read_bytes)
        with pytest.raises(OSError, match="disk"):
            write_shards(train, out, per_shard=10)
    assert (out / "data-000000.tar").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]


def test_a_missing_shard_is_one_clear_error(shards):
    with pytest.raises(VlkitError, match=r"data-000003.tar: shard not found"):
        list(read_shards(str(shards[0] / "data-{000000..000009}.tar")))


def test_data_shard_command(shapes_world, tmp_path, capsys):
    main(["data", "shard", "--annotations", str(shapes_world / "val.json"), "--out", str(tmp_path / "val"),
          "--per-shard", "8"])  # fmt: skip
    assert "data-{000000..000002}.tar" in capsys.readouterr().out
    keys = [s.key for s in read_shards(str(tmp_path / "val" / "data-{000000..000002}.tar"))]
    assert len(keys) == len(json.loads((shapes_world / "val.json").read_text())["images"])


def test_caption_predict_reads_shards_as_it_reads_the_folder(shapes_world, tmp_path):
    from tests.models.tiny_captioner import save_tiny_parts
    from vlkit.models.captioner.model import CaptionerSpec, build_captioner

    clip, _, gpt2 = save_tiny_parts(tmp_path / "parts")
    model = build_captioner(CaptionerSpec(str(clip), str(gpt2), "cross-attn", None, 6)).save(tmp_path / "cap")
    main(["--quiet", "data", "shard", "--annotations", str(shapes_world / "val.json"), "--out",
          str(tmp_path / "val"), "--per-shard", "8"])  # fmt: skip
    val_images = tmp_path / "val_images"  # the folder holding exactly the sharded images
    val_images.mkdir()
    for image in json.loads((shapes_world / "val.json").read_text())["images"]:
        (val_images / image["file_name"]).write_bytes(
            (shapes_world / "images" / image["file_name"]).read_bytes()
        )
    predict = ["--quiet", "caption", "predict", "--model", str(model), "--batch-size", "3"]
    main(
        [
            *predict,
            "--shards",
            str(tmp_path / "val" / "data-{000000..000002}.tar"),
            "--out",
            str(tmp_path / "a.json"),
        ]
    )
    main([*predict, "--images", str(val_images), "--out", str(tmp_path / "b.json")])
    from_shards = json.loads((tmp_path / "a.json").read_text())
    assert from_shards == json.loads((tmp_path / "b.json").read_text()) and len(from_shards) == 20


def test_caption_predict_takes_images_or_shards_not_both(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["caption", "predict", "--model", str(tmp_path), "--out", str(tmp_path / "p.json")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "give one of --images, --videos and --shards" in error


def test_shards_stream_from_a_url_pattern_as_from_local_files(shards):
    # webdataset opens http(s) URLs through curl, as it would a remote bucket; here a local web server
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from vlkit.data.shards import ShardSet

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no request lines on the test's stderr
            pass

    out, _ = shards
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/data-{{000000..000002}}.tar"
        remote, local = ShardSet.open(url), ShardSet.open(str(out / "data-{000000..000002}.tar"))
        assert remote.counts == local.counts == [25, 25, 10]
        got = [(s.key, s.ordinal, s.captions, s.image_bytes) for s in remote.stream(shuffle_buffer=8, seed=2)]
        expected = [
            (s.key, s.ordinal, s.captions, s.image_bytes) for s in local.stream(shuffle_buffer=8, seed=2)
        ]
        assert got == expected and len(got) == 60
    finally:
        server.shutdown()


def test_data_inspect_streams_shards_and_reports_unreadable_images(shards, tmp_path, capsys):
    out, paths = shards
    broken = tmp_path / "broken.tar"
    with tarfile.open(paths[2]) as source, tarfile.open(broken, "w") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name.endswith(".png") and member.name.startswith("000000050"):
                data = b"not a png"
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))

    def table() -> str:
        return " ".join(capsys.readouterr().out.replace("│", " ").split())

    main(["--quiet", "data", "inspect", str(out / "data-{000000..000002}.tar")])
    printed = table()
    assert "samples 60" in printed and "readable images 60 of 60" in printed
    main(["--quiet", "data", "inspect", str(broken), "--on-bad-image", "skip"])
    printed = table()
    assert "readable images 9 of 10" in printed and "sample 000000050: not an image file" in printed
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "inspect", str(broken)])
    assert exit_info.value.code == 2
