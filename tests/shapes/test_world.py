from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vlkit.cli.main import as_option_error, main
from vlkit.errors import VlkitError
from vlkit.shapes.grammar import (
    RELATION_PHRASES,
    Mention,
    SceneObject,
    parse_mentions,
    write_captions,
)
from vlkit.shapes.meta import load_world_meta
from vlkit.shapes.scenes import CLASS_NAMES, SIZE_FRACTIONS, SIZE_JITTER, choose_heldout
from vlkit.shapes.world import (
    ALT_TEXT_DIR,
    COLOURS,
    GENERATOR_VERSION,
    SHAPES,
    SIZES,
    ShapesConfig,
    generate_world,
)

TINY_CONFIG = ShapesConfig(n_train=1, n_val=1, n_alt_text=1, n_alt_text_val=1, workers=1)


def _hashes(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _split(world: Path, split: str) -> dict[str, Any]:
    return json.loads((world / f"{split}.json").read_text())


def _captions_by_image(split: dict[str, Any]) -> dict[int, list[str]]:
    captions: dict[int, list[str]] = {}
    for annotation in split["annotations"]:
        captions.setdefault(annotation["image_id"], []).append(annotation["caption"])
    return captions


def _mentioned_counts(caption: str) -> Counter[tuple[str | None, str]]:
    counts: Counter[tuple[str | None, str]] = Counter()
    for mention in parse_mentions(caption):
        counts[(mention.colour, mention.shape)] += mention.count
    return counts


# ------------------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_bytes_for_any_number_of_workers(tmp_path: Path) -> None:
    config = dict(seed=5, n_train=150, n_val=30, image_size=48, per_class_train=1, per_class_val=1,
                  n_alt_text=20, n_alt_text_val=5)
    one = generate_world(ShapesConfig(**config, workers=1), tmp_path / "one")
    two = generate_world(ShapesConfig(**config, workers=2), tmp_path / "two")
    hashes = _hashes(one.out_dir)
    assert hashes == _hashes(two.out_dir)
    assert len([name for name in hashes if name.startswith("images/")]) == 180
    assert len([name for name in hashes if name.startswith("masks/")]) == 180


def test_different_seed_gives_different_images_and_captions(tmp_path: Path, shapes_world: Path) -> None:
    other = generate_world(ShapesConfig(seed=1, n_train=60, n_val=20, per_class_train=2, per_class_val=2,
                                        n_alt_text=40, n_alt_text_val=8, workers=1), tmp_path / "other")
    ours, theirs = _hashes(shapes_world), _hashes(other.out_dir)
    assert ours["images/train_00000.png"] != theirs["images/train_00000.png"]
    assert ours["train.json"] != theirs["train.json"]
    assert ours["classification/val/0_0.png"] != theirs["classification/val/0_0.png"]


def test_choose_heldout_takes_one_pair_per_colour_and_covers_every_shape() -> None:
    for seed in range(20):
        pairs = choose_heldout(seed, 8)
        assert sorted(colour for colour, _ in pairs) == sorted(COLOURS)
        assert {shape for _, shape in pairs} == set(SHAPES)
        assert pairs == choose_heldout(seed, 8)
    few = choose_heldout(3, 4)
    assert len({colour for colour, _ in few}) == 4 and len({shape for _, shape in few}) == 4
    assert choose_heldout(0, 8) != choose_heldout(1, 8)


# -------------------------------------------------------------------------------------- ground truth


def _check_ground_truth(world: Path) -> None:
    """Masks, boxes and colours of every captioned image agree with its JSON record."""
    size = load_world_meta(world)["image_size"]
    for split in ("train", "val"):
        for record in _split(world, split)["images"]:
            image = np.asarray(Image.open(world / "images" / record["file_name"]).convert("RGB"), dtype=float)
            mask = np.asarray(Image.open(world / record["mask_file"]))
            objects = record["objects"]
            assert image.shape == (size, size, 3) and 1 <= len(objects) <= 3
            assert sorted(np.unique(mask)) == list(range(len(objects) + 1))
            for index, obj in enumerate(objects):
                _check_object(image, mask == index + 1, obj, size)
            for index, a in enumerate(objects):
                for b in objects[index + 1 :]:
                    assert _boxes_apart(a["bbox"], b["bbox"], gap=2), (record["file_name"], a, b)
            background = image[mask == 0]
            assert 20 <= background.mean() <= 85
            assert np.abs(background.mean(axis=0) - background.mean()).max() < 2  # grey, not tinted


def _check_object(image: np.ndarray, inside: np.ndarray, obj: dict[str, Any], size: int) -> None:
    assert obj["colour"] in COLOURS and obj["shape"] in SHAPES and obj["size"] in SIZES
    ys, xs = np.nonzero(inside)
    x, y, w, h = obj["bbox"]
    assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())  # tight box
    assert 0 < x and 0 < y and x + w < size and y + h < size
    # Jitter is +-12 per channel; noise averages out over the object's pixels.
    assert np.abs(image[inside].mean(axis=0) - COLOURS[obj["colour"]]).max() <= 15
    footprint = SIZE_FRACTIONS[obj["size"]] * size
    # The inset square is the smallest shape in its footprint (0.84 of it), before rounding.
    assert 0.8 * footprint * (1 - SIZE_JITTER) - 1 <= max(w, h) <= footprint * (1 + SIZE_JITTER) + 1


def _boxes_apart(a: list[int], b: list[int], gap: int) -> bool:
    return (a[0] + a[2] + gap <= b[0] or b[0] + b[2] + gap <= a[0]
            or a[1] + a[3] + gap <= b[1] or b[1] + b[3] + gap <= a[1])


def test_masks_boxes_and_colours_are_the_truth(shapes_world: Path) -> None:
    _check_ground_truth(shapes_world)


def test_smallest_images_still_fit_their_objects(tmp_path: Path) -> None:
    config = ShapesConfig(n_train=60, n_val=0, image_size=32, per_class_train=0, per_class_val=0,
                          n_alt_text=0, n_alt_text_val=0, workers=1)
    summary = generate_world(config, tmp_path / "small")
    _check_ground_truth(summary.out_dir)


def test_scenes_vary_in_count_size_and_repetition(shapes_world: Path) -> None:
    images = _split(shapes_world, "train")["images"] + _split(shapes_world, "val")["images"]
    per_image = Counter(len(image["objects"]) for image in images)
    assert all(per_image[n] >= len(images) // 6 for n in (1, 2, 3)), per_image
    assert {obj["size"] for image in images for obj in image["objects"]} == set(SIZES)
    repeated = [image for image in images
                if len({(o["colour"], o["shape"]) for o in image["objects"]}) < len(image["objects"])]
    assert repeated


def test_classification_images_show_their_colour(shapes_world: Path) -> None:
    for path in sorted((shapes_world / "classification" / "val").glob("*.png")):
        colour = CLASS_NAMES[int(path.stem.split("_")[0])].split(" ")[0]
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=float).reshape(-1, 3)
        vivid = pixels[pixels.max(axis=1) - pixels.min(axis=1) > 60]  # the grey background never is
        assert len(vivid) > 50, path
        assert np.abs(vivid.mean(axis=0) - COLOURS[colour]).max() <= 20, path


def test_alt_text_images_hold_one_seen_object_of_the_colour_their_captions_name(shapes_world: Path) -> None:
    meta = load_world_meta(shapes_world)
    heldout = {tuple(pair) for pair in meta["heldout"]}
    for split, n in (("train", meta["n_alt_text"]), ("val", meta["n_alt_text_val"])):
        data = _split(shapes_world / ALT_TEXT_DIR, split)
        assert [image["id"] for image in data["images"]] == list(range(n))
        captions = _captions_by_image(data)
        for image in data["images"]:
            (obj,) = image["objects"]
            assert (obj["colour"], obj["shape"]) not in heldout
            assert image["file_name"] == f"{split}_{image['id']:05d}.png"
            pixels = np.asarray(Image.open(shapes_world / ALT_TEXT_DIR / "images" / image["file_name"]))
            x, y, w, h = obj["bbox"]
            inside = pixels[y : y + h, x : x + w].reshape(-1, 3).astype(float)
            vivid = inside[inside.max(axis=1) - inside.min(axis=1) > 60]
            assert np.abs(vivid.mean(axis=0) - COLOURS[obj["colour"]]).max() <= 20
            assert len(set(captions[image["id"]])) == meta["captions_per_image"]
            for caption in captions[image["id"]]:
                # colour and shape, nothing else: no size, position or relation words
                assert parse_mentions(caption) == [Mention(obj["colour"], obj["shape"], 1)], caption
                assert not re.search(r"\b(small|little|large|big|top|bottom|left|right|middle|centre|above|"
                                     r"below|over|under)\b", caption), caption
    assert {(o["colour"], o["shape"]) for image in _split(shapes_world / ALT_TEXT_DIR, "train")["images"]
            for o in image["objects"]} <= {tuple(c.split(" ")) for c in CLASS_NAMES} - heldout


# -------------------------------------------------------------------------------------------- captions


def test_every_caption_names_every_object_with_its_count(shapes_world: Path) -> None:
    for split in ("train", "val"):
        data = _split(shapes_world, split)
        captions = _captions_by_image(data)
        for image in data["images"]:
            truth = Counter((obj["colour"], obj["shape"]) for obj in image["objects"])
            assert len(set(captions[image["id"]])) == len(captions[image["id"]]) == 5
            for caption in captions[image["id"]]:
                assert caption == caption.lower() and not caption.endswith(".")
                assert _mentioned_counts(caption) == truth, caption
                assert len(parse_mentions(caption)) == len(truth), caption


def test_caption_sizes_positions_and_relations_are_true(shapes_world: Path) -> None:
    data = _split(shapes_world, "train")
    captions = _captions_by_image(data)
    checked = Counter()
    for image in data["images"]:
        objects = [SceneObject(o["colour"], o["shape"], o["size"], tuple(o["bbox"]))
                   for o in image["objects"]]
        for caption in captions[image["id"]]:
            for mention in parse_mentions(caption):
                same = [o for o in objects if (o.colour, o.shape) == (mention.colour, mention.shape)]
                if mention.size is not None:
                    assert {o.size for o in same} == {mention.size}, caption
                    checked["size"] += 1
                if mention.position is not None:
                    assert len(same) == 1 and _in_region(same[0], mention.position, image["width"]), caption
                    checked["position"] += 1
            for relation, a, b in _relations(caption):
                first, second = (next(o for o in objects if (o.colour, o.shape) == pair) for pair in (a, b))
                assert _holds(relation, first, second), caption
                checked["relation"] += 1
    assert min(checked[kind] for kind in ("size", "position", "relation")) >= 10, checked


def _in_region(obj: SceneObject, position: str, image_size: int) -> bool:
    """Whether the object's centre lies in the named region of the 3x3 grid."""
    (x, y), third = obj.centre, image_size / 3
    row = "top" if y < third else "bottom" if y > 2 * third else ""
    column = "left" if x < third else "right" if x > 2 * third else ""
    return position == (f"{row} {column}".strip() or "middle")


def _holds(relation: str, a: SceneObject, b: SceneObject) -> bool:
    (ax, ay), (bx, by) = a.centre, b.centre
    return {"left of": ax < bx, "right of": ax > bx, "above": ay < by, "below": ay > by}[relation]


_PHRASE_TO_RELATION = {phrase: relation for relation, phrases in RELATION_PHRASES.items()
                       for phrase in phrases}
# A relation is only ever written between two single objects: "[a|an|one] [size] colour shape".
_SINGLE = rf"(?:a|an|one) (?:\w+ )?({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})"
_RELATION_WORDS = "|".join(sorted(_PHRASE_TO_RELATION, key=len, reverse=True))
_RELATION = re.compile(rf"{_SINGLE} ({_RELATION_WORDS}) {_SINGLE}")


def _relations(caption: str) -> list[tuple[str, tuple[str, str], tuple[str, str]]]:
    return [(_PHRASE_TO_RELATION[m[3]], (m[1], m[2]), (m[4], m[5])) for m in _RELATION.finditer(caption)]


def test_captions_use_the_whole_grammar(shapes_world: Path) -> None:
    annotations = _split(shapes_world, "train")["annotations"] + _split(shapes_world, "val")["annotations"]
    text = "\n".join(annotation["caption"] for annotation in annotations)
    for phrase in ("a picture of ", "there is ", "an image showing ", "two ", " little ", " big ", " small ",
                   " large ", " to the left of ", " in the middle", " in red", "from left to right, ",
                   " and "):
        assert phrase in text, phrase
    assert re.search(r"^a (\w+ )?(red|green|blue|yellow|purple|orange|cyan|pink) ", text, re.MULTILINE)


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("two red circles and a big blue cross in the top right",
         [Mention("red", "circle", 2), Mention("blue", "cross", 1, "large", "top right")]),
        ("a picture of three little green crosses",
         [Mention("green", "cross", 3, "small")]),
        ("an orange hexagon to the left of a pink star on the left",
         [Mention("orange", "hexagon", 1), Mention("pink", "star", 1, None, "left")]),
        ("there are two squares in blue and one small triangle in yellow at the bottom",
         [Mention("blue", "square", 2), Mention("yellow", "triangle", 1, "small", "bottom")]),
        ("we can see a circle, red stars and a cyan square in the top left corner.",
         [Mention(None, "circle", 1), Mention("red", "star", 2),
          Mention("cyan", "square", 1, None, "top left")]),
        ("a photo of a dog in the center", []),
        ("a big purple star in the center", [Mention("purple", "star", 1, "large", "middle")]),
    ],
)
def test_parse_mentions_reads_back_the_vocabulary(caption: str, expected: list[Mention]) -> None:
    assert parse_mentions(caption) == expected


_scene_objects = st.builds(
    SceneObject,
    colour=st.sampled_from(list(COLOURS)),
    shape=st.sampled_from(SHAPES),
    size=st.sampled_from(SIZES),
    bbox=st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(10, 22), st.integers(10, 22)),
)


@settings(max_examples=150, deadline=None)
@given(objects=st.lists(_scene_objects, min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1))
def test_parse_mentions_inverts_write_captions(objects: list[SceneObject], seed: int) -> None:
    truth = Counter((o.colour, o.shape) for o in objects)
    for caption in write_captions(objects, 64, np.random.default_rng(seed), 5):
        assert _mentioned_counts(caption) == truth, caption


# ------------------------------------------------------------------------------------- held-out classes


def _class_id(path: Path) -> int:
    return int(path.stem.split("_")[0])


def test_heldout_combinations_never_reach_training(shapes_world: Path) -> None:
    meta = load_world_meta(shapes_world)
    heldout = {tuple(pair) for pair in meta["heldout"]}
    assert len(heldout) == 8
    train = _split(shapes_world, "train")
    assert not heldout & {(o["colour"], o["shape"]) for image in train["images"] for o in image["objects"]}
    mentioned = {(m.colour, m.shape) for a in train["annotations"] for m in parse_mentions(a["caption"])}
    assert not heldout & mentioned
    unseen = set(meta["unseen_class_ids"])
    train_ids = {_class_id(path) for path in (shapes_world / "classification/train").glob("*.png")}
    assert train_ids == set(range(len(CLASS_NAMES))) - unseen
    folders = {path.name for path in (shapes_world / "imagefolder/train").iterdir()}
    assert folders == {CLASS_NAMES[i] for i in train_ids}
    val_ids = Counter(_class_id(path) for path in (shapes_world / "classification/val").glob("*.png"))
    assert val_ids == {i: 2 for i in range(len(CLASS_NAMES))}
    assert len(list((shapes_world / "imagefolder/val").iterdir())) == len(CLASS_NAMES)


# ------------------------------------------------------------------------------------------ the folder


def test_meta_and_split_files_have_the_documented_layout(shapes_world: Path) -> None:
    meta = load_world_meta(shapes_world)
    assert meta["generator_version"] == GENERATOR_VERSION
    assert (meta["seed"], meta["image_size"], meta["n_train"], meta["n_val"]) == (0, 64, 60, 20)
    assert (meta["per_class_train"], meta["per_class_val"]) == (2, 2)
    assert meta["colours"] == {name: list(rgb) for name, rgb in COLOURS.items()}
    assert meta["shapes"] == list(SHAPES) and meta["sizes"] == list(SIZES)
    assert meta["classes"][:2] == ["red circle", "red square"] and len(meta["classes"]) == 48
    assert [meta["classes"][i] for i in meta["unseen_class_ids"]] == [" ".join(p) for p in meta["heldout"]]
    for split in ("train", "val"):
        id2label = json.loads((shapes_world / "classification" / split / "id2label.json").read_text())
        assert id2label == {str(i): name for i, name in enumerate(meta["classes"])}
        data = _split(shapes_world, split)
        assert [image["id"] for image in data["images"]] == list(range(meta[f"n_{split}"]))
        for image in data["images"]:
            assert set(image) == {"file_name", "id", "width", "height", "objects", "mask_file"}
            assert image["file_name"] == f"{split}_{image['id']:05d}.png"
            assert (shapes_world / "images" / image["file_name"]).is_file()
            assert Image.open(shapes_world / image["mask_file"]).mode == "L"
            assert all(set(obj) == {"shape", "colour", "size", "bbox"} for obj in image["objects"])
        assert [a["id"] for a in data["annotations"]] == list(range(5 * meta[f"n_{split}"]))
    copy = shapes_world / "imagefolder/val" / CLASS_NAMES[3] / "1.png"
    assert (shapes_world / "classification/val/3_1.png").read_bytes() == copy.read_bytes()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda meta: meta.write_text("{not json"), "malformed JSON"),
        (lambda meta: meta.unlink(), "file not found"),
        (lambda meta: meta.write_text(json.dumps({"generator_version": GENERATOR_VERSION})), "missing field"),
        (lambda meta: meta.write_text(json.dumps({**json.loads(meta.read_text()), "generator_version": 0})),
         "generator_version"),
        (lambda meta: meta.write_text(json.dumps({**json.loads(meta.read_text()), "unseen_class_ids": [1]})),
         "disagree"),
    ],
)
def test_load_world_meta_names_the_file_at_fault(
    tmp_path: Path, shapes_world: Path, damage: Callable[[Path], Any], message: str
) -> None:
    meta = tmp_path / "meta.json"
    meta.write_bytes((shapes_world / "meta.json").read_bytes())
    damage(meta)
    with pytest.raises(VlkitError, match=message) as error:
        load_world_meta(tmp_path)
    assert "meta.json" in str(error.value)


def test_regenerating_replaces_the_world_and_leaves_nothing_behind(tmp_path: Path) -> None:
    config = ShapesConfig(n_train=10, n_val=5, per_class_train=1, per_class_val=1, n_alt_text=4,
                          n_alt_text_val=2, workers=1)
    generate_world(config, tmp_path / "world")
    (tmp_path / "world" / "stray.txt").write_text("left over")
    config.seed = 7
    generate_world(config, tmp_path / "world")
    assert not (tmp_path / "world" / "stray.txt").exists()
    assert load_world_meta(tmp_path / "world")["seed"] == 7
    assert [path.name for path in tmp_path.iterdir()] == ["world"]  # no partial or old folders


def test_refuses_to_overwrite_what_is_not_a_world(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(VlkitError, match="not empty"):
        generate_world(TINY_CONFIG, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(VlkitError, match="not a folder"):
        generate_world(TINY_CONFIG, tmp_path / "notes.txt")


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [("image_size", 31, "--image-size"), ("n_train", -1, "--train"), ("n_heldout", 9, "--heldout"),
     ("workers", 0, "--workers"), ("captions_per_image", 0, "--captions"), ("seed", 1.5, "--seed"),
     ("n_alt_text", -1, "--alt-text")],
)
def test_config_errors_name_the_field_and_the_cli_names_its_option(
    tmp_path: Path, field: str, value: Any, flag: str
) -> None:
    config = dataclasses.replace(TINY_CONFIG)
    setattr(config, field, value)
    with pytest.raises(VlkitError, match=re.escape(f"ShapesConfig.{field}: ")) as raised:
        generate_world(config, tmp_path / "world")
    assert not list(tmp_path.iterdir())
    assert as_option_error(raised.value).startswith(f"{flag}: must be ")


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_generates_a_world_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--quiet", "data", "shapes", "--out", str(tmp_path / "w"), "--seed", "2", "--train", "12",
          "--val", "4", "--per-class-val", "1", "--alt-text", "6", "--alt-text-val", "2", "--workers", "1"])
    meta = load_world_meta(tmp_path / "w")
    assert (meta["seed"], meta["n_train"], meta["n_val"], meta["per_class_val"]) == (2, 12, 4, 1)
    out = capsys.readouterr().out
    assert "12 train, 4 val" in out and "6 train, 2 val" in out and "held out" in out
    assert (meta["n_alt_text"], meta["n_alt_text_val"]) == (6, 2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--image-size", "16"], "--image-size"), (["--train", "-3"], "--train")],
)
def test_cli_bad_options_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", "data", "shapes", "--out", str(tmp_path / "w"), *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_cli_refuses_a_folder_that_is_not_a_world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", "data", "shapes", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "refusing to overwrite" in capsys.readouterr().err
