"""Training throughput on 1 process and on 2 processes under `accelerate launch` (gloo on the CPU).

The same `vlkit clip train` command (the embedded default's CLIP architecture, the same global batch) runs
once as one process with every core and once as two processes with one core each; images/s is the global
batch over the mean step time the loop logs (start-up, tokenizer training and checkpoint writing excluded,
as the steps between the first and the last log record). The peer is the one-process run: on a 2-core
machine two processes split the same cores, so the row says what the gradient all-reduce and the gathered
contrastive loss cost, not a speed-up a user with more cores or GPUs would see.

A second row runs the one-process command on the same images written as WebDataset shards
(`--train-shards`, shuffling buffer 1000): the folder path holds every image's pixels in memory, decoded
once; the stream decodes each PNG at every step, so the row is what streaming costs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import BenchRow

COMMAND = "python -m bench scaling"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _images_per_second(out: Path, batch: int) -> float:
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    first, last = records[0], records[-1]
    return batch * (last["step"] - first["step"]) / (last["seconds"] - first["seconds"])


def run(quick: bool) -> list[BenchRow]:
    steps, batch, images = (6, 16, 64) if quick else (60, 64, 1024)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        vlkit = [sys.executable, "-m", "vlkit.cli.main", "--quiet"]
        subprocess.run(
            [*vlkit, "data", "shapes", "--out", str(root / "world"), "--train", str(images), "--val", "16",
             "--alt-text", "0", "--alt-text-val", "0"],
            check=True,
            capture_output=True,
        )
        train = ["clip", "train", "--data", str(root / "world"), "--steps", str(steps), "--batch-size",
                 str(batch), "--mixed-precision", "no", "--log-every", "1",
                 "--checkpoint-every", str(steps)]  # fmt: skip
        env = {**os.environ, "VLKIT_PROGRESS": "0"}
        subprocess.run(
            [*vlkit, *train, "--out", str(root / "one")],
            env={**env, "OMP_NUM_THREADS": str(cores)},
            check=True,
            capture_output=True,
        )
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", str(_free_port()), "-m", "vlkit.cli.main", "--quiet"]  # fmt: skip
        subprocess.run(
            [*launch, *train, "--out", str(root / "two")],
            env={**env, "OMP_NUM_THREADS": str(max(1, cores // 2))},
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*vlkit, "data", "shard", "--annotations", str(root / "world" / "train.json"), "--out",
             str(root / "shards"), "--per-shard", str(images // 4)],
            check=True,
            capture_output=True,
        )  # fmt: skip
        pattern = str(root / "shards" / "data-{000000..000003}.tar")
        subprocess.run(
            [
                *vlkit,
                *train,
                "--train-shards",
                pattern,
                "--shuffle-buffer",
                "1000",
                "--out",
                str(root / "shards_run"),
            ],
            env={**env, "OMP_NUM_THREADS": str(cores)},
            check=True,
            capture_output=True,
        )
        one, two = _images_per_second(root / "one", batch), _images_per_second(root / "two", batch)
        streamed = _images_per_second(root / "shards_run", batch)
    return [
        BenchRow(
            "scaling",
            "CLIP training images/s, 2 processes vs 1 (accelerate launch, gloo)",
            two,
            one,
            "images/s",
            True,
            "report",
            True,
            COMMAND,
            f"embedded default's CLIP, global batch {batch}, {steps} steps, {cores} cores in all: 1 process "
            f"with {cores} threads against 2 with {max(1, cores // 2)} each; the same cores shared, so this "
            "is the cost of the all-reduce and the gathered loss, not a speed-up",
        ),
        BenchRow(
            "scaling",
            "CLIP training images/s, WebDataset shard stream vs image folder (1 process)",
            streamed,
            one,
            "images/s",
            True,
            "report",
            True,
            COMMAND,
            f"the same {images} images as 4 shards, shuffling buffer 1000; the folder path decodes every "
            "image once into memory, the stream decodes each image at every step",
        ),
    ]
