"""`vlkit caption attend --videos DIR`: caption clips and draw, for every generated word, how its
cross-attention spread over the frames.

For each clip: the caption, one figure (rows = frames with their thumbnails, columns = the generated words,
the end token included; a cell is the word's attention summed over that frame's tokens, heads and layers
reduced as asked: `vlkit.captioning.video.frame_attention`) and the raw (frames, words) matrix as `.npy`.
A meanp captioner averages its frames before the decoder reads them, so its attention belongs to no frame:
it is refused with a one-line error rather than drawn as a flat picture.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlkit.captioning.attention import Aggregation
from vlkit.captioning.config import DecodingConfig
from vlkit.captioning.video import caption_videos, frame_attention, video_sampling
from vlkit.data.video import read_video
from vlkit.errors import VlkitError
from vlkit.models.captioner.model import Captioner
from vlkit.pipelines.attend import token_labels
from vlkit.runtime.files import write_bytes_atomic, write_json_atomic
from vlkit.runtime.progress import track
from vlkit.viz.plots import frames_words_figure


@dataclass
class VideoAttendRequest:
    """What to caption and draw: one field per option of `vlkit caption attend --videos`."""

    out: Path
    videos: list[Path]
    aggregation: Aggregation = field(default_factory=Aggregation)
    figures: int = 16  # figures for the first N clips (matrices and captions are written for all)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)


@dataclass
class ClipAttention:
    """One clip's caption, word labels and (frames, words) attention."""

    stem: str
    caption: str
    words: list[str]
    weights: np.ndarray  # (frames, words), each column sums to 1


def attend_clips(
    captioner: Captioner,
    clips: Sequence[Sequence[Any]],
    stems: Sequence[str],
    decoding: DecodingConfig,
    aggregation: Aggregation | None = None,
) -> list[ClipAttention]:
    """Caption clips of frames and reduce each word's attention to one weight per frame."""
    if captioner.video_settings().temporal == "meanp":
        raise VlkitError(
            "attend: a meanp captioner averages its frames first: its attention belongs to no frame"
        )
    output = caption_videos(captioner, clips, decoding, return_attentions=True)
    assert output.attentions is not None
    end = captioner.tokenizer.eos_token_id
    return [
        ClipAttention(
            stem,
            output.captions[k],
            token_labels(output, k, end),
            frame_attention(output.attentions[k], output.frames, output.frame_tokens, aggregation),
        )
        for k, stem in enumerate(stems)
    ]


def draw_clip(path: Path, frames: Sequence[Any], clip: ClipAttention) -> None:
    """Write one clip's frames x words figure."""
    figure = frames_words_figure([np.asarray(f) for f in frames], clip.words, clip.weights, clip.caption)
    write_bytes_atomic(path, figure)


def run_video_attend(captioner: Captioner, request: VideoAttendRequest) -> dict[str, Any]:
    """Caption every clip with its frame attention; write figures/, maps/ and captions.json."""
    if not request.videos:
        raise VlkitError("--videos: nothing to caption")
    sampling = video_sampling(captioner)
    batch = request.decoding.batch_size
    captions: dict[str, Any] = {}
    for start in track(
        range(0, len(request.videos), batch), "attend", total=-(-len(request.videos) // batch)
    ):
        paths = request.videos[start : start + batch]
        clips = [read_video(path, sampling).frames for path in paths]
        found = attend_clips(captioner, clips, [p.stem for p in paths], request.decoding, request.aggregation)
        for k, (frames, clip) in enumerate(zip(clips, found, strict=True)):
            buffer = io.BytesIO()
            np.save(buffer, clip.weights.astype(np.float32), allow_pickle=False)
            write_bytes_atomic(request.out / "maps" / f"{clip.stem}.npy", buffer.getvalue())
            captions[clip.stem] = {"caption": clip.caption, "tokens": clip.words}
            if start + k < request.figures:
                draw_clip(request.out / "figures" / f"{clip.stem}.png", frames, clip)
    write_json_atomic(
        request.out / "captions.json",
        {"aggregation": request.aggregation.name, "sampling": sampling.key(), "videos": captions},
    )
    return {"n_videos": len(request.videos), "captions": str(request.out / "captions.json")}
