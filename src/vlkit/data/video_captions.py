"""Video caption datasets: the COCO caption layout with videos, and the MSR-VTT and MSVD annotation files.

```
{"videos": [{"id": 1, "file_name": "clip_00001.mp4", ...}],
 "annotations": [{"id": 10, "video_id": 1, "caption": "A red circle moves to the left."}]}
```
plus a folder the file names are relative to (what `vlkit data shapes-video` writes). It is validated entry
by entry as `captions.py` validates the image layout, with the same rules (ids integers or strings, unique;
annotation ids unique when present; file names inside the root; non-blank captions; every video captioned),
and each problem is one `VlkitError` naming the file, the entry and the field.

The public benchmarks come in their own files, and their captioning and retrieval splits differ (a model
trained on a retrieval split has seen videos of the captioning test split), so each reader names the split
it loaded in `VideoCaptionData.split`:
- **MSR-VTT** (`load_msrvtt`): `train_val_videodatainfo.json` / `test_videodatainfo.json` or the merged
  `MSRVTT_data.json`: `"videos": [{"video_id": "video0", "split": "train"|"validate"|"test", ...}]`,
  `"sentences": [{"video_id", "caption", "sen_id"}]`, 20 captions a video. The captioning split is the 2016
  challenge's (6,513 / 497 / 2,990 videos, from each video's "split"). A retrieval split is a list of videos:
  the 7k and 9k training lists (`MSRVTT_train.7k.csv`, `MSRVTT_train.9k.csv`, column `video_id`) and the
  1k-A test (`MSRVTT_JSFUSION_test.csv`, whose `sentence` column gives the one caption per video that
  retrieval is scored on); how many of a list's videos sit in each captioning split is logged and kept.
- **MSVD** (`load_msvd`): `AllVideoDescriptions.txt` (lines `<clip name> <caption>`, `#` comments) with
  `youtube_mapping.txt` (lines `<clip name> vid<N>`): the standard split is vid1-1200 train, vid1201-1300
  val, vid1301-1970 test (1,200 / 100 / 670); or a list of clip names (CLIP4Clip's `test_list.txt`).
Plain `csv` and text parsing: pandas would add a dependency for three columns.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlkit.data.captions import MAX_CAPTION_WORDS, path_inside_root
from vlkit.data.video import VIDEO_EXTENSIONS
from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json, write_json_atomic

logger = logging.getLogger(__name__)

MSRVTT_CAPTION_SPLITS: dict[str, int] = {"train": 6513, "validate": 497, "test": 2990}
MSVD_SPLITS: dict[str, tuple[int, int]] = {"train": (1, 1200), "val": (1201, 1300), "test": (1301, 1970)}


@dataclass
class CaptionVideo:
    """One video of a caption dataset and its reference captions, in annotation order."""

    id: int | str
    file_name: str
    path: Path
    captions: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        """The file name without folder or extension: the key prediction files use."""
        return Path(self.file_name).stem


@dataclass
class VideoCaptionData:
    """The videos of one annotation file (or one split of it), in the file's order, with their captions."""

    annotations: Path
    video_root: Path
    entries: list[CaptionVideo]
    split: str = "all"  # which split this is, in words ("MSR-VTT captioning test (2016 challenge split)")
    split_counts: dict[str, int] = field(default_factory=dict)  # a retrieval list: its videos per split

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def videos(self) -> list[tuple[int | str, Path]]:
        return [(entry.id, entry.path) for entry in self.entries]

    @property
    def captions(self) -> dict[int | str, list[str]]:
        return {entry.id: entry.captions for entry in self.entries}

    def stem_to_video(self) -> dict[str, CaptionVideo]:
        """Videos keyed by file stem; two videos with one stem are an error (ambiguous predictions)."""
        by_stem: dict[str, CaptionVideo] = {}
        for entry in self.entries:
            if entry.stem in by_stem:
                raise VlkitError(
                    f"{self.annotations}: file names {by_stem[entry.stem].file_name!r} and "
                    f"{entry.file_name!r} share the stem {entry.stem!r}"
                )
            by_stem[entry.stem] = entry
        return by_stem

    def all_captions(self) -> list[str]:
        return [caption for entry in self.entries for caption in entry.captions]

    def video_paths(self) -> list[Path]:
        return [entry.path for entry in self.entries]


# ------------------------------------------------------------------------------------- the COCO layout


def load_video_captions(
    annotations: str | os.PathLike[str],
    videos: str | os.PathLike[str],
    check_files: bool = True,
    require_captions: bool = True,
) -> VideoCaptionData:
    """Load and validate a COCO-layout video caption file whose file names are relative to `videos`."""
    annotations, videos = Path(annotations), Path(videos)
    data, source = read_json(annotations), str(annotations)
    if not isinstance(data, dict):
        raise VlkitError(f"{source}: expected a JSON object with 'videos' and 'annotations'")
    if check_files and not videos.is_dir():
        raise VlkitError(f"{videos}: video folder not found (for {source})")
    entries = _list_field(data, "videos", source)
    if not entries:
        raise VlkitError(f"{source}: 'videos' is empty")
    parsed = _parse_videos(entries, source, videos, check_files)
    by_id = {entry.id: entry for entry in parsed}
    seen_annotation_ids: dict[int | str, int] = {}
    listed = _list_field(data, "annotations", source) if require_captions or "annotations" in data else []
    for index, entry in enumerate(listed):
        where = f"{source}: annotations[{index}]"
        entry = _object(entry, where)
        video_id = _id(entry, "video_id", where)
        caption = _string(entry, "caption", where)
        if "id" in entry:
            annotation_id = _id(entry, "id", where)
            if annotation_id in seen_annotation_ids:
                raise VlkitError(
                    f"{where}: duplicate annotation id {annotation_id!r} "
                    f"(also annotations[{seen_annotation_ids[annotation_id]}])"
                )
            seen_annotation_ids[annotation_id] = index
        if video_id not in by_id:
            raise VlkitError(f"{where}: video_id {video_id!r} has no video")
        by_id[video_id].captions.append(_check_caption(caption, where))
    if require_captions:
        for index, entry in enumerate(parsed):
            if not entry.captions:
                raise VlkitError(
                    f"{source}: videos[{index}]: video {entry.file_name!r} (id {entry.id!r}) has "
                    "no caption (allow this with require_captions=False)"
                )
    logger.info("%s: %d videos, %d captions", source, len(parsed), sum(len(e.captions) for e in parsed))
    return VideoCaptionData(annotations=annotations, video_root=videos, entries=parsed)


def _parse_videos(entries: list[Any], source: str, root: Path, check_files: bool) -> list[CaptionVideo]:
    parsed: list[CaptionVideo] = []
    index_of_id: dict[int | str, int] = {}
    index_of_name: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: videos[{index}]"
        entry = _object(entry, where)
        video_id, file_name = _id(entry, "id", where), _string(entry, "file_name", where)
        if video_id in index_of_id:
            raise VlkitError(
                f"{where}: duplicate video id {video_id!r} (also videos[{index_of_id[video_id]}])"
            )
        normalized = os.path.normpath(file_name)
        if normalized in index_of_name:
            raise VlkitError(
                f"{where}: duplicate file_name {file_name!r} (also videos[{index_of_name[normalized]}])"
            )
        path = path_inside_root(root, file_name, where)
        if check_files and not path.is_file():
            raise VlkitError(f"{where}: video file {path} not found")
        index_of_id[video_id], index_of_name[normalized] = index, index
        extra = {key: value for key, value in entry.items() if key not in ("id", "file_name")}
        parsed.append(CaptionVideo(id=video_id, file_name=file_name, path=path, extra=extra))
    return parsed


def _list_field(data: dict[str, Any], key: str, source: str) -> list[Any]:
    if key not in data:
        raise VlkitError(f"{source}: missing top-level key {key!r}")
    if not isinstance(data[key], list):
        raise VlkitError(f"{source}: {key!r} must be a list")
    return data[key]


def _object(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise VlkitError(f"{where}: expected an object, got {type(entry).__name__}")
    return entry


def _id(entry: dict[str, Any], key: str, where: str) -> int | str:
    if key not in entry:
        raise VlkitError(f"{where}: missing field {key!r}")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise VlkitError(f"{where}: field {key!r} must be an integer or a string, got {value!r}")
    return value


def _string(entry: dict[str, Any], key: str, where: str) -> str:
    if key not in entry:
        raise VlkitError(f"{where}: missing field {key!r}")
    if not isinstance(entry[key], str):
        raise VlkitError(f"{where}: field {key!r} must be a string, got {entry[key]!r}")
    return entry[key]


def _check_caption(caption: str, where: str) -> str:
    if not caption.strip():
        raise VlkitError(f"{where}: caption is empty")
    if len(caption.split()) > MAX_CAPTION_WORDS:
        raise VlkitError(f"{where}: caption has over {MAX_CAPTION_WORDS:,} words (MAX_CAPTION_WORDS)")
    return caption


# ------------------------------------------------------------------------------------- MSR-VTT and MSVD


def load_msrvtt(
    annotations: str | os.PathLike[str],
    videos: str | os.PathLike[str],
    split: str = "test",
    *,
    video_list: str | os.PathLike[str] | None = None,
    check_files: bool = True,
) -> VideoCaptionData:
    """One split of MSR-VTT: a captioning split by the videos' own "split" field ("train", "validate" or
    "val", "test"), or, with `video_list` (a CSV with a `video_id` column, or one id a line), that retrieval
    list, whose `sentence` column, when it has one, replaces the 20 captions (the 1k-A test's one each)."""
    annotations, videos = Path(annotations), Path(videos)
    data, source = read_json(annotations), str(annotations)
    if not isinstance(data, dict):
        raise VlkitError(f"{source}: expected MSR-VTT's JSON object with 'videos' and 'sentences'")
    split_of: dict[str, str] = {}
    for index, entry in enumerate(_list_field(data, "videos", source)):
        entry = _object(entry, f"{source}: videos[{index}]")
        split_of[str(_id(entry, "video_id", f"{source}: videos[{index}]"))] = str(entry.get("split", ""))
    captions: dict[str, list[str]] = {}
    for index, entry in enumerate(_list_field(data, "sentences", source)):
        where = f"{source}: sentences[{index}]"
        entry = _object(entry, where)
        video_id = str(_id(entry, "video_id", where))
        if video_id not in split_of:
            raise VlkitError(f"{where}: video_id {video_id!r} is not among the file's videos")
        captions.setdefault(video_id, []).append(_check_caption(_string(entry, "caption", where), where))
    if video_list is None:
        wanted = "validate" if split == "val" else split
        if wanted not in MSRVTT_CAPTION_SPLITS:
            raise VlkitError(
                f"split: MSR-VTT's captioning splits are train, validate (val), test; got {split!r} "
                "(a retrieval split is a video list: pass video_list)"
            )
        ids = [video_id for video_id, of in split_of.items() if of == wanted]
        if len(ids) != MSRVTT_CAPTION_SPLITS[wanted]:
            logger.warning(
                "%s: %d videos in split %r, the 2016 split has %d",
                source,
                len(ids),
                wanted,
                MSRVTT_CAPTION_SPLITS[wanted],
            )
        name, counts = f"MSR-VTT captioning {wanted} (2016 challenge split, {len(ids)} videos)", {}
    else:
        ids, sentences = _read_video_list(Path(video_list))
        unknown = [video_id for video_id in ids if video_id not in split_of]
        if unknown:
            raise VlkitError(
                f"{video_list}: video {unknown[0]!r} is not in {source} ({len(unknown)} unknown)"
            )
        if sentences:
            captions = {**captions, **{video_id: [sentences[video_id]] for video_id in ids}}
        counts = {of: sum(split_of[v] == of for v in ids) for of in MSRVTT_CAPTION_SPLITS}
        name = f"MSR-VTT retrieval list {Path(video_list).name} ({len(ids)} videos)"
        logger.info("%s: its videos by captioning split: %s", name, counts)
    entries = _entries(ids, captions, videos, source, check_files)
    return VideoCaptionData(
        annotations=annotations, video_root=videos, entries=entries, split=name, split_counts=counts
    )


def load_msvd(
    descriptions: str | os.PathLike[str],
    videos: str | os.PathLike[str],
    split: str = "test",
    *,
    mapping: str | os.PathLike[str] | None = None,
    video_list: str | os.PathLike[str] | None = None,
    check_files: bool = True,
) -> VideoCaptionData:
    """One split of MSVD from AllVideoDescriptions.txt: the standard 1200/100/670 split ("train", "val",
    "test") through `mapping` (youtube_mapping.txt), or the clips of `video_list` (one name a line)."""
    descriptions, videos = Path(descriptions), Path(videos)
    captions: dict[str, list[str]] = {}
    for number, line in enumerate(_text_lines(descriptions), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, caption = line.strip().partition(" ")
        captions.setdefault(name, []).append(_check_caption(caption, f"{descriptions}: line {number}"))
    if (mapping is None) == (video_list is None):
        raise VlkitError(
            "load_msvd: give either mapping (youtube_mapping.txt, for the standard split) or "
            "video_list (one clip name a line)"
        )
    if mapping is not None:
        if split not in MSVD_SPLITS:
            raise VlkitError(f"split: MSVD's standard splits are {', '.join(MSVD_SPLITS)}; got {split!r}")
        low, high = MSVD_SPLITS[split]
        ids = [name for name, number in _read_mapping(Path(mapping)) if low <= number <= high]
        name_of_split = f"MSVD {split} (vid{low}-vid{high} of {Path(mapping).name}: the 1200/100/670 split)"
    else:
        ids = _read_video_list(Path(video_list))[0]  # type: ignore[arg-type]
        name_of_split = f"MSVD list {Path(video_list).name} ({len(ids)} clips)"  # type: ignore[arg-type]
    entries = _entries(ids, captions, videos, str(descriptions), check_files)
    return VideoCaptionData(annotations=descriptions, video_root=videos, entries=entries, split=name_of_split)


def _entries(
    ids: Iterable[str], captions: dict[str, list[str]], videos: Path, source: str, check_files: bool
) -> list[CaptionVideo]:
    entries, missing = [], []
    for video_id in ids:
        if not captions.get(video_id):
            raise VlkitError(f"{source}: video {video_id!r} has no caption")
        path = next(
            (
                videos / f"{video_id}{ext}"
                for ext in VIDEO_EXTENSIONS
                if (videos / f"{video_id}{ext}").is_file()
            ),
            videos / f"{video_id}.mp4",
        )
        if check_files and not path.is_file():
            missing.append(video_id)
        entries.append(CaptionVideo(id=video_id, file_name=path.name, path=path, captions=captions[video_id]))
    if missing:
        raise VlkitError(
            f"{videos}: no video file for {missing[0]!r} ({'/'.join(VIDEO_EXTENSIONS)}); "
            f"{len(missing)} of {len(entries)} videos missing"
        )
    return entries


def _text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise VlkitError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VlkitError(f"{path}: cannot read ({exc})") from exc


def _read_video_list(path: Path) -> tuple[list[str], dict[str, str]]:
    """Ids of a CSV with a `video_id` column (and its `sentence`s, if any) or of a text file, one a line."""
    lines = _text_lines(path)
    if lines and "video_id" in next(csv.reader([lines[0]])):
        rows = list(csv.DictReader(lines))
        ids = [row["video_id"].strip() for row in rows]
        sentences = {row["video_id"].strip(): row["sentence"] for row in rows if row.get("sentence")}
        return ids, sentences
    return [line.strip() for line in lines if line.strip()], {}


def _read_mapping(path: Path) -> list[tuple[str, int]]:
    pairs = []
    for number, line in enumerate(_text_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].startswith("vid") or not parts[1][3:].isdigit():
            raise VlkitError(f"{path}: line {number}: expected '<clip name> vid<N>', got {line.strip()!r}")
        pairs.append((parts[0], int(parts[1][3:])))
    return pairs


def write_video_layout(data: VideoCaptionData, out: str | os.PathLike[str]) -> Path:
    """Write one split as the video layout `vlkit caption train --data` reads: OUT/annotations.json (its
    "info" names the split and the file it came from) and OUT/videos, a symbolic link to the videos' folder
    (nothing is copied; `--videos OUT/annotations.json` reads the split's videos only). Returns the
    annotations file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    link = out / "videos"
    target = data.video_root.resolve()
    if link.is_symlink() or link.exists():
        if not (link.is_symlink() and link.resolve() == target):
            raise VlkitError(f"--out {out}: {link} exists and is not a link to {target}")
    else:
        link.symlink_to(target, target_is_directory=True)
    pairs = [(entry.id, caption) for entry in data.entries for caption in entry.captions]
    document = {
        "info": {"split": data.split, "source": str(data.annotations)},
        "videos": [{"id": entry.id, "file_name": entry.file_name} for entry in data.entries],
        "annotations": [{"video_id": v, "caption": c, "id": n} for n, (v, c) in enumerate(pairs)],
    }
    write_json_atomic(out / "annotations.json", document)
    return out / "annotations.json"
