"""study.md: the video study's figures as Markdown tables (the temporal modules beside the baselines, the
shuffled-frame and frame-count ablations, the bars), the form docs/video.md quotes; and the chart."""

from __future__ import annotations

from typing import Any

from vlkit.pipelines.tables import MET, markdown_table, num, pct


def study_markdown(document: dict[str, Any]) -> str:
    """The whole study.md."""
    variants = [
        [v["temporal"], num(v["cider"], ".3f"), pct(v["order_accuracy"]), pct(v["chair_i"]),
         num(v["train_s"], ".0f"), num(v.get("step_s"), ".3f")]
        for v in document["variants"]
    ]  # fmt: skip
    base = document["baselines"]
    nearest, shuffled = base["nearest_clip"], base["shuffled_frames"]
    variants.append(["*nearest clip*", num(nearest["cider"], ".3f"), pct(nearest["order_accuracy"]),
                     pct(nearest.get("chair_i")), "", ""])  # fmt: skip
    variants.append([f"*{shuffled['temporal']}, frames shuffled*", num(shuffled["cider"], ".3f"),
                     pct(shuffled["order_accuracy"]), pct(shuffled.get("chair_i")), "", ""])  # fmt: skip
    ablation = document["ablations"]
    shuffle_rows = [
        [row["temporal"], pct(row["ordered"]["order_accuracy"]), pct(row["shuffled"]["order_accuracy"]),
         num(row["ordered"]["cider"], ".3f"), num(row["shuffled"]["cider"], ".3f")]
        for row in ablation["shuffled_frames"]
    ]  # fmt: skip
    frame_rows = [
        [str(row["frames"]), num(row["cider"], ".3f"), pct(row["order_accuracy"]), num(row["train_s"], ".0f")]
        for row in ablation["frames"]
    ]
    bars = [[bar["text"], pct(bar["value"]) if name == "order" else num(bar["value"], ".3f"),
             pct(bar["limit"]) if name == "order" else num(bar["limit"], ".3f"), MET[bar["met"]]]
            for name, bar in document["bars"].items()]  # fmt: skip
    return (
        "\n\n".join(
            [
                "# Video study: what time adds to a CLIP captioner",
                _setting(document),
                "## The temporal modules (validation)",
                markdown_table(
                    ["temporal", "CIDEr-D", "order accuracy", "CHAIR-i", "train (s)", "s / step"], variants
                ),
                "## Shuffled frames (the same captioners, each clip's frames in a seeded other order)",
                markdown_table(
                    [
                        "temporal",
                        "order acc., in order",
                        "order acc., shuffled",
                        "CIDEr-D, in order",
                        "CIDEr-D, shuffled",
                    ],
                    shuffle_rows,
                ),  # fmt: skip
                "## Frame count (seq)",
                markdown_table(["frames", "CIDEr-D", "order accuracy", "train (s)"], frame_rows),
                "## The bars",
                markdown_table(["bar", "figure", "limit", "met?"], bars),
            ]
        )
        + "\n"
    )


def _setting(document: dict[str, Any]) -> str:
    budget, clips = document["budget"], document["clips"]
    return (
        f"{clips['train']} training and {clips['val']} validation clips (`vlkit data shapes-video`, "
        f"seed {budget['seed']}); {budget['encoder']} (frozen, per-frame features cached) + "
        f"{budget['decoder']}, tuning {budget['tuning']}, {budget['steps']} steps of batch "
        f"{budget['batch_size']} at learning rate {budget['learning_rate']:g} for every run, "
        f"{budget['frames']} uniform frames, greedy decoding; {budget['workers']} run(s) at a time on "
        f"{document['cpu']}, {num(document.get('total_s'), '.0f')} s in all."
    )


def study_chart(document: dict[str, Any]) -> bytes:
    from vlkit.viz.video_chart import video_study_chart

    return video_study_chart(document)
