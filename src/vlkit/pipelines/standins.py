"""`vlkit standins make`: the embedded default's stand-in "pretrained" CLIP and GPT-2, made and measured.

The shapes world is generated (deterministically, from its seed), the CLIP is trained on its alt-text corpus
and the GPT-2 on its scene captions with the embedded recipe (`vlkit.pipelines.embedded`), exactly as
`vlkit demo --from-scratch` trains them; then each is written as an HF-layout folder in fp16 (half the bytes;
loaders upcast to fp32) with its manifest, `vlkit_standin.json`: the command and seed that made it, the vlkit
version, the recipe, the digest of the world it was trained on, and its figures measured on the fp32 model
and again on the stored fp16 one. Run with no `--out` it rewrites the folders the package ships
(`vlkit/models/standins/`), which `vlkit:shapes-clip` and `vlkit:shapes-gpt2` name.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.models.hub import MANIFEST_FILE, PREFIX, STANDINS, STANDINS_DIR, standin_manifest
from vlkit.pipelines.embedded import embedded_plan, ensure_clip, ensure_lm, ensure_world, world_digest
from vlkit.runtime.files import read_json, write_json_atomic

log = logging.getLogger(__name__)

CLIP_NAME, LM_NAME = "shapes-clip", "shapes-gpt2"
ZEROSHOT_FIGURES = ("seed", "imagenet80")
# Files of a trained folder that the shipped one keeps besides the weights (the recipe, the training log).
KEPT_FILES = ("vlkit_train_config.json", "vlkit_lm_train_config.json", "train_log.jsonl")


def recipe_command(seed: int) -> str:
    return f"vlkit standins make --seed {seed}"


def make_standins(out: Path | None, work: Path, seed: int = 0, quick: bool = False) -> dict[str, Any]:
    """Make the world under `work`, train (or reuse) the CLIP and the GPT-2 there, write both stand-ins into
    `out` (default: the package's folder); return {name: manifest}."""
    from importlib.metadata import version

    out = out or STANDINS_DIR
    plan = embedded_plan(seed, quick)
    world = work / "world"
    train_set, val_set, _ = ensure_world(plan.world, world)
    ensure_clip(plan.clip, world, work / "clip")
    ensure_lm(plan.lm, train_set, val_set, world, work / "lm")
    meta = read_json(world / "meta.json")
    common = {
        "command": recipe_command(seed) + (" (quick)" if quick else ""),
        "seed": seed,
        "vlkit_version": version("vlkit"),
        "world": {
            "seed": meta["seed"],
            "generator_version": meta["generator_version"],
            "meta_sha256": world_digest(world),
        },
        "storage_dtype": "float16",
    }
    manifests = {}
    for name, source, recipe, measure in (
        (CLIP_NAME, work / "clip", plan.clip, _clip_figures),
        (LM_NAME, work / "lm", plan.lm, _lm_figures),
    ):
        target = out / name
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=out if out.is_dir() else None))
        try:
            _export_fp16(name, source, staging)
            manifest = {
                "name": PREFIX + name,
                "description": STANDINS[name],
                **common,
                "recipe": dataclasses.asdict(recipe),
                "figures": {
                    "float32": measure(source, world, val_set),
                    "stored": measure(staging, world, val_set),
                },
            }
            write_json_atomic(staging / MANIFEST_FILE, manifest)
            staging.chmod(0o755)  # mkdtemp's 0700 (and the weights' 0600) would hide shipped files
            for file in staging.iterdir():
                file.chmod(0o644)
            out.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(str(staging), target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("%s%s written to %s", PREFIX, name, target)
        manifests[name] = manifest
    return manifests


def _export_fp16(name: str, source: Path, target: Path) -> None:
    """The trained folder's model in fp16 with its tokenizer and processor files (no checkpoints)."""
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel, GPT2LMHeadModel

    model_class = CLIPModel if name == CLIP_NAME else GPT2LMHeadModel
    model_class.from_pretrained(source).half().save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    if name == CLIP_NAME:
        AutoImageProcessor.from_pretrained(source, backend="pil").save_pretrained(target)
    for file in KEPT_FILES:
        if (source / file).is_file():
            shutil.copy2(source / file, target / file)


def _clip_figures(folder: Path, world: Path, val_set: Any) -> dict[str, Any]:
    """Zero-shot top-1 on the world's classification val: best template and ensemble of each set."""
    from vlkit.models.clip import ClipSpec, load_clip
    from vlkit.pipelines.zeroshot import run_zeroshot

    clip, figures = load_clip(ClipSpec(str(folder), precision="fp32")), {}
    with tempfile.TemporaryDirectory() as scratch:
        for templates in ZEROSHOT_FIGURES:
            result = run_zeroshot(
                ClipSpec(str(folder), precision="fp32"),
                world / "classification" / "val",
                templates,
                Path(scratch) / f"{templates}.json",
                clip=clip,
            )
            best = max(result["templates"], key=lambda t: t["top1"])
            figures[templates] = {
                "best_template": best["template"],
                "best": {k: best[k] for k in ("top1", "seen_top1", "unseen_top1")},
                "ensemble": {k: result["ensemble"][k] for k in ("top1", "seen_top1", "unseen_top1")},
            }
    return figures


def _lm_figures(folder: Path, world: Path, val_set: Any) -> dict[str, Any]:
    """Mean next-token loss on every validation caption (teacher forcing, eval mode)."""
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from vlkit.train.lm_trainer import token_rows

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = GPT2LMHeadModel.from_pretrained(folder, dtype=torch.float32).eval()
    rows = token_rows(tokenizer, val_set.all_captions(), model.config.n_positions)
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows.input_ids), 256):
            part = slice(start, start + 256)
            labels = rows.labels[part]
            logits = model(input_ids=rows.input_ids[part], attention_mask=rows.attention_mask[part]).logits
            shifted = labels[:, 1:]
            total += float(
                torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), shifted.reshape(-1), reduction="sum"
                )
            )
            tokens += int((shifted != -100).sum())
    return {"val_loss": total / max(tokens, 1), "val_tokens": tokens}


def check_standins_seed(seed: int) -> None:
    """The shipped stand-ins were trained on one world; another seed's world needs its own models."""
    trained = standin_manifest(CLIP_NAME)["world"]["seed"]
    if seed != trained:
        raise VlkitError(
            f"--seed {seed}: the shipped {PREFIX}{CLIP_NAME} and {PREFIX}{LM_NAME} were trained on the "
            f"world of "
            f"seed {trained}; add --from-scratch to train a CLIP and a GPT-2 on the world of seed {seed}"
        )


def check_standins_world(world: Path) -> None:
    """The world must be the one the shipped stand-ins were trained on (same meta.json digest: same seed,
    sizes, generator version and pixels); one line naming the stand-in and both digests otherwise."""
    found, meta = world_digest(world), read_json(world / "meta.json")
    for name in (CLIP_NAME, LM_NAME):
        trained = standin_manifest(name)["world"]
        if trained["meta_sha256"] != found:
            raise VlkitError(
                f"{PREFIX}{name} was trained on the shapes world of seed {trained['seed']} (generator "
                f"v{trained['generator_version']}, meta.json sha256 {trained['meta_sha256'][:12]}), but "
                f"{world} (seed {meta.get('seed')}, generator v{meta.get('generator_version')}) has "
                f"{found[:12]}: run `vlkit demo --from-scratch` to train a CLIP and a GPT-2 on this world"
            )
