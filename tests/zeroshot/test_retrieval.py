"""`vlkit retrieval` on the tiny shapes world: R.json's layout, the ranks against the plain re-implementation
on the very embeddings ranked, shards against the folder, two processes against one, and bad input."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

import vlkit.zeroshot.retrieval as retrieval_module
from tests.metrics.retrieval_reference import reference_retrieval
from tests.models.tiny import save_tiny_clip
from vlkit.cli.main import main
from vlkit.data.images import read_images
from vlkit.models.clip import ClipSpec, load_clip
from vlkit.pipelines.retrieval import RETRIEVAL_COLUMNS, RetrievalSource, retrieval_summary, run_retrieval

DIRECTION_KEYS = ["R@1", "R@5", "R@10", "median_rank", "mean_rank"]


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("retrieval") / "clip")


def _retrieve(clip_dir, out, *source: str, check: bool = True) -> dict:
    main(["--quiet", "retrieval", "--model", str(clip_dir), *source, "--batch-size", "7", "--out", str(out)])
    return json.loads(out.read_text())


def _folder(world) -> list[str]:
    return ["--annotations", str(world / "val.json"), "--images", str(world / "images")]


def test_retrieval_command_writes_the_layout_and_the_reference_ranks(
    tiny_clip_dir, shapes_world, tmp_path, monkeypatch
):
    seen = {}
    ranks = retrieval_module.retrieval_ranks

    def spy(images, texts, index, *args, **kwargs):
        seen.update(images=images, texts=texts, index=list(index))
        return ranks(images, texts, index, *args, **kwargs)

    monkeypatch.setattr(retrieval_module, "retrieval_ranks", spy)
    document = _retrieve(tiny_clip_dir, tmp_path / "R.json", *_folder(shapes_world))
    assert list(document) == ["model", "data", "precision", "scoring", "image_to_text", "text_to_image",
                              "n_images", "n_texts", "per_image", "per_text", "skipped"]  # fmt: skip
    assert (document["precision"], document["scoring"]) == ("fp32", "softmax")
    val = json.loads((shapes_world / "val.json").read_text())
    assert document["n_images"] == len(val["images"]) == 20
    assert document["n_texts"] == len(val["annotations"]) == len(document["per_text"])
    assert [image["image_id"] for image in document["per_image"]] == [image["id"] for image in val["images"]]
    assert sorted(t["text"] for t in document["per_text"]) == sorted(a["caption"] for a in val["annotations"])
    # the embeddings ranked are the images' and captions' own, in file order
    clip = load_clip(str(tiny_clip_dir))
    paths = [shapes_world / "images" / image["file_name"] for image in val["images"]]
    own = clip.encode_images(clip.preprocess(read_images(paths).images))
    assert torch.allclose(seen["images"], own, atol=1e-5)
    texts = [t["text"] for t in document["per_text"]]
    assert torch.allclose(seen["texts"], clip.encode_texts(texts), atol=1e-5)
    expected = reference_retrieval((seen["images"] @ seen["texts"].T).tolist(), seen["index"])
    assert [image["rank"] for image in document["per_image"]] == expected["image_ranks"]
    assert [text["rank"] for text in document["per_text"]] == expected["text_ranks"]
    assert [image["top_texts"] for image in document["per_image"]] == expected["top_texts"]
    for direction in ("image_to_text", "text_to_image"):
        assert list(document[direction]) == DIRECTION_KEYS
        assert document[direction] == pytest.approx(expected[direction], rel=1e-12)
    assert 0 < document["text_to_image"]["R@10"] < 1  # neither trivial nor empty on 20 images
    summary = retrieval_summary(document)
    assert list(summary) == RETRIEVAL_COLUMNS
    assert summary["text_to_image_R@5"] == document["text_to_image"]["R@5"]
    assert summary["image_to_text_median_rank"] == document["image_to_text"]["median_rank"]
    assert (summary["n_images"], summary["n_texts"]) == (20, document["n_texts"])


def test_shards_give_the_folder_figures(tiny_clip_dir, shapes_world, tmp_path):
    main(["--quiet", "data", "shard", "--annotations", str(shapes_world / "val.json"), "--out",
          str(tmp_path / "shards"), "--per-shard", "8"])  # fmt: skip
    folder = _retrieve(tiny_clip_dir, tmp_path / "folder.json", *_folder(shapes_world))
    pattern = str(tmp_path / "shards" / "data-{000000..000002}.tar")  # 20 images: 8, 8 and 4
    shards = _retrieve(tiny_clip_dir, tmp_path / "shards.json", "--shards", pattern)
    assert shards["data"] == pattern
    for key in ("image_to_text", "text_to_image", "n_images", "n_texts", "per_image", "per_text"):
        assert shards[key] == folder[key], key


def test_two_processes_write_what_one_process_writes(tiny_clip_dir, shapes_world, tmp_path):
    from tests.train.test_distributed import _launched, _single

    for name, run in (("one", _single), ("two", _launched)):
        # 20 images and 100 captions over 2 processes: shares of 10 images and of 50 captions
        run(["--quiet", "retrieval", "--model", str(tiny_clip_dir), *_folder(shapes_world), "--batch-size",
             "3", "--out", str(tmp_path / f"{name}.json")])  # fmt: skip
    one, two = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two"))
    assert one == two and one["n_texts"] == 100


def _subset(world, tmp_path, n_images: int, broken: bool = False):
    """The first `n_images` of the world's val set copied to their own folder, the last one corrupted."""
    val = json.loads((world / "val.json").read_text())
    images = val["images"][:n_images]
    folder = tmp_path / "images"
    folder.mkdir()
    for image in images:
        shutil.copy(world / "images" / image["file_name"], folder / image["file_name"])
    if broken:
        (folder / images[-1]["file_name"]).write_bytes(b"not a png")
    ids = {image["id"] for image in images}
    annotations = [a for a in val["annotations"] if a["image_id"] in ids]
    (tmp_path / "small.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return tmp_path / "small.json", folder, images


def test_a_gallery_smaller_than_k_recalls_everything_and_says_so(
    tiny_clip_dir, shapes_world, tmp_path, caplog
):
    annotations, folder, _ = _subset(shapes_world, tmp_path, 3)
    with caplog.at_level(logging.WARNING):
        document = run_retrieval(
            ClipSpec(str(tiny_clip_dir)), RetrievalSource(annotations, folder), tmp_path / "R.json"
        )
    assert document["text_to_image"]["R@5"] == document["text_to_image"]["R@10"] == 1.0
    assert document["text_to_image"]["R@1"] < 1.0
    assert "text-to-image: the gallery has 3 images, so R@5/R@10 is 1.0" in caplog.text


def test_an_unreadable_image_is_skipped_with_its_captions_or_named(
    tiny_clip_dir, shapes_world, tmp_path, capsys
):
    annotations, folder, images = _subset(shapes_world, tmp_path, 4, broken=True)
    source = ["--annotations", str(annotations), "--images", str(folder)]
    document = _retrieve(tiny_clip_dir, tmp_path / "R.json", *source, "--on-bad-image", "skip")
    assert document["n_images"] == 3 and [s["file"] for s in document["skipped"]] == [
        str(folder / images[-1]["file_name"])
    ]
    assert {t["image_id"] for t in document["per_text"]} == {image["id"] for image in images[:3]}
    with pytest.raises(SystemExit) as exit_info:
        _retrieve(tiny_clip_dir, tmp_path / "R2.json", *source)
    assert exit_info.value.code == 2 and images[-1]["file_name"] in capsys.readouterr().err


def _edited(edit):
    """--annotations/--images of two val images whose annotation file `edit` changed."""

    def args(world, tmp_path) -> list[str]:
        annotations, folder, _ = _subset(world, tmp_path, 2)
        data = json.loads(annotations.read_text())
        edit(data, folder)
        (tmp_path / "bad.json").write_text(json.dumps(data))
        return ["--annotations", str(tmp_path / "bad.json"), "--images", str(folder)]

    return args


def _caption_without_image(data, folder) -> None:
    data["annotations"].append({"image_id": 999, "caption": "a lost caption", "id": 999})


def _image_without_caption(data, folder) -> None:
    shutil.copy(folder / data["images"][0]["file_name"], folder / "extra.png")
    data["images"].append({"id": 999, "file_name": "extra.png"})


def _empty_split(data, folder) -> None:
    data["images"], data["annotations"] = [], []


def _classification_shards(world, tmp_path) -> list[str]:
    from vlkit.data.classification import load_classification_dataset
    from vlkit.data.shards import write_classification_shards

    classes = load_classification_dataset(world / "classification" / "val")
    write_classification_shards(classes, tmp_path / "classes", per_shard=100)
    return ["--shards", str(tmp_path / "classes" / "data-000000.tar")]


BAD_INPUT = {
    "caption without image": (
        _edited(_caption_without_image),
        "bad.json: annotations[10]: image_id 999 has no image",
    ),
    "image without caption": (
        _edited(_image_without_caption),
        "bad.json: images[2]: image 'extra.png' (id 999) has no caption, and retrieval needs every image's",
    ),
    "empty split": (_edited(_empty_split), "bad.json: 'images' is empty"),
    "classification shards": (
        _classification_shards,
        "data-000000.tar: sample 000000000: image '0_0.png' has no caption",
    ),
    "no images folder": (
        lambda w, t: ["--annotations", str(w / "val.json")],
        "--images: needed with --annotations",
    ),
    "no source": (lambda w, t: [], "give --annotations with --images"),
    # A folder and shards are two caption sets of one table: the missing shard is named after the first ran.
    "missing shard beside a folder": (
        lambda w, t: [*_folder(w), "--shards", "x.tar"],
        "x.tar: shard not found (pattern x.tar)",
    ),
    "batch size": (
        lambda w, t: [*_folder(w), "--batch-size", "0"],
        "--batch-size: must be at least 1, got 0",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_naming_the_file_or_option(case, tiny_clip_dir, shapes_world, tmp_path, capsys):
    make_args, message = BAD_INPUT[case]
    with pytest.raises(SystemExit) as exit_info:
        main(["retrieval", "--model", str(tiny_clip_dir), *make_args(shapes_world, tmp_path), "--out",
              str(tmp_path / "R.json")])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err and err.count("error:") == 1
    assert not (tmp_path / "R.json").exists()


class _CountingClip:
    """Encodes a text as (its length, 1), normalized; remembers what it was asked to encode."""

    def __init__(self):
        self.asked = []

    def encode_texts(self, texts, batch_size=64):
        self.asked.append(list(texts))
        return torch.nn.functional.normalize(torch.tensor([[float(len(t)), 1.0] for t in texts]), dim=-1)


def test_each_process_encodes_only_its_share_of_the_captions_and_gets_all_back(monkeypatch):
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    # process 1 of 2 (captions 3-4), its gather stubbed to capture what it contributes
    contributed = []
    second = _CountingClip()
    monkeypatch.setattr(retrieval_module, "process_range", lambda n: range(3, 5))
    monkeypatch.setattr(retrieval_module, "gather_in_order", lambda local: contributed.extend(local) or local)
    retrieval_module.encode_texts_in_shares(second, texts)
    # process 0 (captions 0-2): its gather returns its share followed by process 1's
    first = _CountingClip()
    monkeypatch.setattr(retrieval_module, "process_range", lambda n: range(0, 3))
    monkeypatch.setattr(retrieval_module, "gather_in_order", lambda local: [*local, *contributed])
    everything = retrieval_module.encode_texts_in_shares(first, texts)
    assert second.asked == [texts[3:]] and first.asked == [texts[:3]]
    assert torch.equal(everything, _CountingClip().encode_texts(texts))


def test_a_run_that_fails_half_way_leaves_the_earlier_r_json_intact(
    tiny_clip_dir, shapes_world, tmp_path, monkeypatch
):
    out = tmp_path / "R.json"
    out.write_text('{"earlier": true}')

    def fail(*args, **kwargs):
        raise KeyboardInterrupt  # stopped while the captions encode, after the images

    monkeypatch.setattr(retrieval_module, "encode_texts_in_shares", fail)
    with pytest.raises(SystemExit):
        main(
            ["--quiet", "retrieval", "--model", str(tiny_clip_dir), *_folder(shapes_world), "--out", str(out)]
        )
    assert json.loads(out.read_text()) == {"earlier": True}
    assert [p.name for p in tmp_path.iterdir()] == ["R.json"]
