"""What happens in one generated clip: its events, where each object is in every frame, and the frames drawn.

`plan_clip` draws a clip from its own random generator: 8-16 frames, one event or two in order (an object
moves left/right/up/down, appears, disappears or changes colour), one object per event with distinct shapes,
and sometimes a still distractor. Every state lasts at least two frames, so 8 frames sampled uniformly from
16 see each event happen. Objects never overlap: no frame shows two of them closer than GAP_PX.
`render_clip` draws the frames with the shapes world's shapes, colours and noise (`scenes.draw_shape`), so
a frame reads like a world image to a CLIP trained on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from vlkit.shapes.clip_grammar import DIRECTIONS, EVENT_KINDS, ClipEvent
from vlkit.shapes.grammar import COLOURS, SHAPES, SIZES
from vlkit.shapes.scenes import (
    BACKGROUND_GREY,
    BACKGROUND_NOISE_STD,
    COLOUR_JITTER,
    GAP_PX,
    OBJECT_NOISE_STD,
    PLACEMENT_TRIES,
    SIZE_FRACTIONS,
    SIZE_JITTER,
    draw_shape,
)

# How often a clip has each story: one event of a kind, or two events in order.
CLIP_KINDS: dict[str, float] = {
    "moves": 0.2,
    "appears": 0.1,
    "disappears": 0.1,
    "changes": 0.2,
    "sequence": 0.4,
}
DISTRACTOR_PROBABILITY = 0.4
MIN_TRAVEL = 0.25  # of the image side: the shortest move
MIN_STATE_FRAMES = 2  # every state (before / after an event) is shown this many frames at least
PLAN_TRIES = 20


@dataclass
class Track:
    """One object through a clip: its colour in each frame (None: not shown) and its square's corner."""

    shape: str
    size: str
    side: int
    jitter: tuple[int, int, int]
    colours: list[str | None]
    corners: list[tuple[int, int]]


@dataclass
class ClipPlan:
    """A clip before drawing: its tracks and events (in the order they happen)."""

    n_frames: int
    tracks: list[Track]
    events: list[ClipEvent]
    story: str = "moves"
    background: int = 50
    extra: dict[str, int] = field(default_factory=dict)


@dataclass
class FrameObject:
    """An object as drawn in one frame: its words and its tight box [x1, y1, x2, y2) in pixels."""

    colour: str
    shape: str
    size: str
    box: tuple[int, int, int, int]

    def to_json(self) -> dict[str, object]:
        return {"colour": self.colour, "shape": self.shape, "size": self.size, "box": list(self.box)}


# ---------------------------------------------------------------------------------------------- planning


def plan_clip(rng: np.random.Generator, image_size: int, min_frames: int, max_frames: int) -> ClipPlan:
    """A random clip. An object that does not fit beside the ones placed is drawn again (PLACEMENT_TRIES
    times), then the whole layout (PLAN_TRIES times); the story is kept."""
    n_frames = int(rng.integers(min_frames, max_frames + 1))
    stories = list(CLIP_KINDS)
    weights = np.array([CLIP_KINDS[s] for s in stories])
    story = stories[int(rng.choice(len(stories), p=weights / weights.sum()))]
    kinds = (
        [EVENT_KINDS[int(i)] for i in rng.integers(len(EVENT_KINDS), size=2)]
        if story == "sequence"
        else [story]
    )
    half = n_frames // 2
    windows = [(0, half - 1), (half, n_frames - 1)] if len(kinds) == 2 else [(0, n_frames - 1)]
    for _ in range(PLAN_TRIES):
        plan = _try_plan(rng, image_size, n_frames, kinds, windows)
        if plan is not None:
            plan.story = story
            return plan
    raise RuntimeError(f"no layout fits {kinds} in a {image_size} px clip after {PLAN_TRIES} tries")


def _try_plan(
    rng: np.random.Generator,
    image_size: int,
    n_frames: int,
    kinds: list[str],
    windows: list[tuple[int, int]],
) -> ClipPlan | None:
    shapes = [SHAPES[int(i)] for i in rng.permutation(len(SHAPES))]
    tracks: list[Track] = []
    events: list[ClipEvent] = []
    for kind, (low, high), shape in zip(kinds, windows, shapes, strict=False):
        for _ in range(PLACEMENT_TRIES):
            track, event = _event_track(rng, image_size, n_frames, kind, low, high, shape)
            if _fits(track, tracks):
                break
        else:
            return None
        tracks.append(track)
        events.append(event)
    if rng.random() < DISTRACTOR_PROBABILITY:
        for _ in range(PLACEMENT_TRIES):
            still = _still_track(rng, image_size, n_frames, shapes[len(kinds)])
            if _fits(still, tracks):
                tracks.append(still)
                break
    background = int(rng.integers(BACKGROUND_GREY[0], BACKGROUND_GREY[1] + 1))
    return ClipPlan(n_frames=n_frames, tracks=tracks, events=events, background=background)


def _event_track(
    rng: np.random.Generator, image_size: int, n_frames: int, kind: str, low: int, high: int, shape: str
) -> tuple[Track, ClipEvent]:
    size = "small" if kind == "moves" else SIZES[int(rng.integers(len(SIZES)))]
    track = _still_track(rng, image_size, n_frames, shape, size)
    colour = track.colours[0]
    assert colour is not None
    # The frame that first shows the new state: MIN_STATE_FRAMES of the old one before it in the window.
    at = int(rng.integers(low + MIN_STATE_FRAMES, high - MIN_STATE_FRAMES + 2))
    common = {"kind": kind, "colour": colour, "shape": shape, "size": size}
    if kind == "appears":
        track.colours = [None if t < at else colour for t in range(n_frames)]
        return track, ClipEvent(frame=at, last_frame=at, **common)
    if kind == "disappears":
        track.colours = [colour if t < at else None for t in range(n_frames)]
        return track, ClipEvent(frame=at, last_frame=at, **common)
    if kind == "changes":
        others = [c for c in COLOURS if c != colour]
        to_colour = others[int(rng.integers(len(others)))]
        track.colours = [colour if t < at else to_colour for t in range(n_frames)]
        return track, ClipEvent(frame=at, last_frame=at, to_colour=to_colour, **common)
    direction = DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]
    track.corners = _path(rng, image_size, track.side, direction, n_frames, low, high)
    return track, ClipEvent(frame=low + 1, last_frame=high, direction=direction, **common)


def _still_track(
    rng: np.random.Generator, image_size: int, n_frames: int, shape: str, size: str | None = None
) -> Track:
    size = size or SIZES[int(rng.integers(len(SIZES)))]
    side = round(SIZE_FRACTIONS[size] * image_size * rng.uniform(1 - SIZE_JITTER, 1 + SIZE_JITTER))
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    corner = tuple(int(v) for v in rng.integers(1, image_size - side, size=2))
    jitter = tuple(int(v) for v in rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3))
    return Track(
        shape=shape,
        size=size,
        side=side,
        jitter=jitter,  # type: ignore[arg-type]
        colours=[colour] * n_frames,
        corners=[corner] * n_frames,
    )  # type: ignore[list-item]


def _path(
    rng: np.random.Generator, image_size: int, side: int, direction: str, n_frames: int, low: int, high: int
) -> list[tuple[int, int]]:
    """Corners of an object that rests until frame `low`, moves evenly until `high`, then rests."""
    room = image_size - 2 - side  # corners run over 1 .. image_size - 1 - side
    travel = int(rng.integers(round(MIN_TRAVEL * image_size), room + 1))
    start = (
        int(rng.integers(1 + travel, room + 2))
        if direction in ("left", "up")
        else int(rng.integers(1, room + 2 - travel))
    )
    end = start - travel if direction in ("left", "up") else start + travel
    across = int(rng.integers(1, image_size - side))
    corners = []
    for t in range(n_frames):
        along = round(start + (end - start) * min(1.0, max(0.0, (t - low) / (high - low))))
        corners.append((along, across) if direction in ("left", "right") else (across, along))
    return corners


def _fits(track: Track, placed: list[Track]) -> bool:
    """No frame shows `track` within GAP_PX of a placed object."""
    for t, colour in enumerate(track.colours):
        if colour is None:
            continue
        ax1, ay1 = track.corners[t]
        ax2, ay2 = ax1 + track.side, ay1 + track.side
        for other in placed:
            if other.colours[t] is None:
                continue
            bx1, by1 = other.corners[t]
            bx2, by2 = bx1 + other.side, by1 + other.side
            if not (ax2 + GAP_PX <= bx1 or bx2 + GAP_PX <= ax1 or ay2 + GAP_PX <= by1 or by2 + GAP_PX <= ay1):
                return False
    return True


# --------------------------------------------------------------------------------------------- rendering


def render_clip(
    plan: ClipPlan, rng: np.random.Generator, image_size: int
) -> tuple[list[np.ndarray], list[list[FrameObject]]]:
    """The (H, W, 3) uint8 frames of a plan and the objects each frame shows, with their drawn boxes.

    The background (grey and its noise) stays still, as a fixed camera's would; the objects' noise is drawn
    afresh each frame."""
    shape = (image_size, image_size, 3)
    base = plan.background + BACKGROUND_NOISE_STD * rng.standard_normal(shape)
    frames, objects = [], []
    for t in range(plan.n_frames):
        label = Image.new("L", (image_size, image_size), 0)
        draw = ImageDraw.Draw(label)
        shown = [track for track in plan.tracks if track.colours[t] is not None]
        for index, track in enumerate(shown):
            x0, y0 = track.corners[t]
            draw_shape(draw, track.shape, x0, y0, track.side, fill=index + 1)
        mask = np.asarray(label)
        pixels = base.copy()
        in_frame = []
        for index, track in enumerate(shown):
            colour = track.colours[t]
            assert colour is not None
            inside = mask == index + 1
            rgb = np.add(COLOURS[colour], track.jitter)
            pixels[inside] = rgb + OBJECT_NOISE_STD * rng.standard_normal((int(inside.sum()), 3))
            ys, xs = np.nonzero(inside)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            in_frame.append(FrameObject(colour=colour, shape=track.shape, size=track.size, box=box))
        frames.append(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
        objects.append(in_frame)
    return frames, objects
