"""What the decoding controls do to a captioner's validation captions: greedy, beam search, the repetition
controls and seeded sampling, each scored with CIDEr-D, CLIPScore and CHAIR-i, and a count of the captions
that name the same object twice ("a yellow circle and a yellow circle").

Every setting goes through `vlkit.captioning.generate.predict_captions` and is scored by
`vlkit.pipelines.sweep.score_predictions`, as `vlkit caption predict` and `vlkit evaluate` would; sampled
settings run once per seed and report the mean and the range. A caption repeats an object when two of its
noun phrases (`vlkit.shapes.grammar.parse_mentions`) have the same colour and shape; for the captions that
greedy search repeats in, the table also gives how many still repeat under each setting and their CHAIR-i.

    .venv/bin/python examples/research/decoding_controls.py --captioner runs/demo/sweep/cross-attn \\
        --world runs/demo/world --clip vlkit:shapes-clip --out runs/exp/decoding

`--count-start-token` also runs the repetition penalties as transformers' own `repetition_penalty=` does,
counting the decoder's start token (which is the end token) as already said.

An example, not part of the package: it reads the shapes world's object lists, which real datasets don't have.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from collections.abc import Iterator
from pathlib import Path

from vlkit.captioning import sampling
from vlkit.captioning.config import DecodingConfig
from vlkit.captioning.generate import predict_captions
from vlkit.data.captions import load_caption_dataset
from vlkit.metrics.grounding import chair
from vlkit.models.captioner.model import load_captioner
from vlkit.models.clip import load_clip
from vlkit.pipelines.sweep import score_predictions
from vlkit.shapes.grammar import parse_mentions

# (row name, `vlkit caption predict` flags, DecodingConfig fields); sampled rows get --seed per seed
SETTINGS = [
    ("greedy", "", {}),
    ("beam 3", "--beams 3", {"num_beams": 3}),
    ("no-repeat-ngram 2", "--no-repeat-ngram 2", {"no_repeat_ngram_size": 2}),
    ("no-repeat-ngram 3", "--no-repeat-ngram 3", {"no_repeat_ngram_size": 3}),
    (
        "beam 3, no-repeat-ngram 3",
        "--beams 3 --no-repeat-ngram 3",
        {"num_beams": 3, "no_repeat_ngram_size": 3},
    ),
    ("repetition penalty 1.2", "--repetition-penalty 1.2", {"repetition_penalty": 1.2}),
    ("repetition penalty 1.5", "--repetition-penalty 1.5", {"repetition_penalty": 1.5}),
    ("top-p 0.9", "--sample --top-p 0.9", {"sample": True, "top_p": 0.9}),
    ("top-k 5", "--sample --top-k 5", {"sample": True, "top_k": 5}),
    (
        "T 0.7, top-p 0.9",
        "--sample --temperature 0.7 --top-p 0.9",
        {"sample": True, "temperature": 0.7, "top_p": 0.9},
    ),
]
PENALTIES = [name for name, _, fields in SETTINGS if "repetition_penalty" in fields]


def repeated_objects(caption: str) -> set[tuple[str | None, str]]:
    """The (colour, shape) of every object the caption names in two noun phrases or more (sizes aside)."""
    named = [(m.colour, m.shape) for m in parse_mentions(caption)]
    return {pair for pair in named if named.count(pair) > 1}


def repeats_an_object(caption: str) -> bool:
    return bool(repeated_objects(caption))


def scene_has_them_twice(caption: str, scene: list[dict]) -> bool:
    """Every object the caption repeats is in the scene twice or more (so the repeat says something true)."""

    def alike(colour: str | None, shape: str) -> int:
        return sum(o["shape"] == shape and colour in (None, o["colour"]) for o in scene)

    return all(alike(colour, shape) >= 2 for colour, shape in repeated_objects(caption))


@contextlib.contextmanager
def start_token_counted() -> Iterator[None]:
    """The repetition controls as transformers applies them: over the whole sequence, start token included."""
    kept = sampling.CaptionTokensOnly
    sampling.CaptionTokensOnly = lambda processor: processor  # type: ignore[assignment, misc]
    try:
        yield
    finally:
        sampling.CaptionTokensOnly = kept  # type: ignore[misc]


def run_setting(captioner, val, clip, fields: dict, out: Path) -> dict:
    """Caption the validation images with one decoding; its scores and its captions."""
    predictions = predict_captions(captioner, val.image_paths(), DecodingConfig(**fields))
    out.mkdir(parents=True, exist_ok=True)
    (out / "val_predictions.json").write_text(json.dumps(predictions, indent=1))
    scores = score_predictions(out / "val_predictions.json", val, out / "evaluation", clip)
    captions = [predictions[image.stem] for image in val.images]
    return {**scores, "captions": captions, "words": statistics.mean(len(c.split()) for c in captions)}


def subset_figures(captions: list[str], objects: list, subset: list[int]) -> dict:
    """Of the captions at `subset`: how many repeat an object, and their CHAIR-i."""
    chosen = [captions[i] for i in subset]
    return {
        "still_repeating": sum(repeats_an_object(c) for c in chosen),
        "chair_i": chair(chosen, [objects[i] for i in subset]).chair_i,
    }


def summarise(runs: list[dict], objects: list, greedy_repeaters: list[int]) -> dict:
    """Mean, min and max over seeds of every figure of one setting."""
    per_run = [
        {
            "cider": r["cider"],
            "clip_score": r["clip_score"],
            "chair_i": r["chair_i"],
            "words": r["words"],
            "repeating": sum(repeats_an_object(c) for c in r["captions"]),
            **{
                f"repeaters_{k}": v
                for k, v in subset_figures(r["captions"], objects, greedy_repeaters).items()
            },
        }
        for r in runs
    ]
    return {
        key: {
            "mean": statistics.mean(run[key] for run in per_run),
            "min": min(run[key] for run in per_run),
            "max": max(run[key] for run in per_run),
        }
        for key in per_run[0]
    }


def cell(figure: dict, pattern: str) -> str:
    text = format(figure["mean"], pattern)
    if figure["max"] > figure["min"]:
        text += f" ({format(figure['min'], pattern)}-{format(figure['max'], pattern)})"
    return text


COLUMNS = [  # (heading, figure, format)
    ("CIDEr-D", "cider", ".3f"),
    ("CLIPScore", "clip_score", ".3f"),
    ("CHAIR-i", "chair_i", ".1%"),
    ("words", "words", ".2f"),
    ("captions repeating an object", "repeating", ".0f"),
    ("greedy's repeaters: still repeating", "repeaters_still_repeating", ".0f"),
    ("greedy's repeaters: CHAIR-i", "repeaters_chair_i", ".1%"),
]


def markdown(table: dict) -> str:
    lines = [
        "| decoding | "
        + " | ".join(heading for heading, _, _ in COLUMNS)
        + " | `vlkit caption predict` flags |",
        "|---|" + "---:|" * len(COLUMNS) + "---|",
    ]
    for name, row in table.items():
        cells = [cell(row["figures"][key], pattern) for _, key, pattern in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | `{row['flags']}` |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captioner", type=Path, required=True)
    parser.add_argument("--world", type=Path, required=True, help="a shapes world: val.json and images/")
    parser.add_argument("--clip", default="vlkit:shapes-clip", help="CLIPScore's model")
    parser.add_argument("--seeds", default="0,1,2", help="the sampled settings' seeds")
    parser.add_argument("--count-start-token", action="store_true")
    parser.add_argument("--out", type=Path, required=True, help="folder for every setting's captions")
    args = parser.parse_args()

    captioner = load_captioner(args.captioner)
    val = load_caption_dataset(args.world / "val.json", args.world / "images")
    objects = [image.extra["objects"] for image in val.images]
    clip = load_clip(args.clip)
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = list(SETTINGS)
    if args.count_start_token:
        settings += [(f"{n}, start token counted", "", f) for n, _, f in SETTINGS if n in PENALTIES]
    runs: dict[str, list[dict]] = {}
    for name, _, fields in settings:
        context = start_token_counted() if name.endswith("start token counted") else contextlib.nullcontext()
        with context:
            for seed in seeds if fields.get("sample") else [None]:
                chosen = {**fields, **({"seed": seed} if seed is not None else {})}
                folder = (
                    args.out
                    / name.replace(" ", "_").replace(",", "")
                    / (f"seed{seed}" if seed is not None else "")
                )
                runs.setdefault(name, []).append(run_setting(captioner, val, clip, chosen, folder))
        print(f"{name}: done", flush=True)
    greedy = runs["greedy"][0]["captions"]
    repeaters = [i for i, caption in enumerate(greedy) if repeats_an_object(caption)]
    table = {}
    for name, flags, fields in settings:
        sampled = bool(fields.get("sample"))
        table[name] = {
            "flags": flags + (" --seed S" if sampled else ""),
            "seeds": seeds if sampled else None,
            "figures": summarise(runs[name], objects, repeaters),
        }
    truly_repeated = sum(scene_has_them_twice(greedy[i], objects[i]) for i in repeaters)
    report = {
        "captioner": str(args.captioner),
        "n_images": len(val.images),
        "greedy_repeaters": len(repeaters),
        "greedy_repeaters_whose_scene_has_two_alike": truly_repeated,
        "settings": table,
    }
    (args.out / "decoding.json").write_text(json.dumps(report, indent=1))
    print(markdown(table))
    print(
        f"\n{len(repeaters)} of {len(val.images)} greedy captions name an object twice; in "
        f"{truly_repeated} of them the scene does hold two objects of each repeated colour and shape."
    )


if __name__ == "__main__":
    main()
