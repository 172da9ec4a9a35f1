"""The shipped stand-ins `vlkit:shapes-clip` and `vlkit:shapes-gpt2`: their manifests agree with the world
generator and the recipe, the CLIP gives the README's zero-shot figure on the default world, the names load
wherever a model goes, another world is refused with one line, and `make_standins` writes what ships."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from vlkit.cli.main import main
from vlkit.errors import VlkitError
from vlkit.models.hub import MANIFEST_FILE, STANDINS, STANDINS_DIR, resolve_model_name, standin_manifest
from vlkit.pipelines.embedded import embedded_plan, world_digest
from vlkit.pipelines.standins import (
    CLIP_NAME,
    LM_NAME,
    check_standins_world,
    make_standins,
    recipe_command,
)
from vlkit.shapes.world import GENERATOR_VERSION, generate_world

README = Path(__file__).resolve().parents[2] / "README.md"
# Zero-shot top-1 of the stored fp16 CLIP may differ from the manifest's by an image or two across CPUs
# (960 images: 0.1 point each); the README rounds to a tenth of a point.
TOLERANCE = 0.005


@pytest.fixture(scope="module")
def default_world(tmp_path_factory) -> Path:
    """The embedded default's world, generated again from its seed (about 12 s on 2 cores)."""
    folder = tmp_path_factory.mktemp("default") / "world"
    generate_world(embedded_plan(0, quick=False).world, folder)
    return folder


def test_the_shipped_manifests_agree_with_the_generator_and_the_recipe(default_world):
    plan = embedded_plan(0, quick=False)
    for name, recipe in ((CLIP_NAME, plan.clip), (LM_NAME, plan.lm)):
        manifest = standin_manifest(name)
        assert manifest["name"] == f"vlkit:{name}" and name in STANDINS
        assert manifest["world"]["meta_sha256"] == world_digest(default_world), name
        assert manifest["world"]["generator_version"] == GENERATOR_VERSION
        assert manifest["recipe"] == json.loads(json.dumps(dataclasses.asdict(recipe))), name
        assert manifest["command"] == recipe_command(0) and manifest["seed"] == 0
        with safe_open(STANDINS_DIR / name / "model.safetensors", "pt") as weights:
            dtypes = {weights.get_slice(key).get_dtype() for key in weights.keys()}
        assert dtypes == {"F16"}, name  # stored in half precision, as the manifest says
        assert manifest["storage_dtype"] == "float16"


def test_the_shipped_clip_gives_the_readme_zero_shot_figures_on_the_default_world(default_world, tmp_path):
    from vlkit.models.clip import ClipSpec
    from vlkit.pipelines.zeroshot import run_zeroshot

    result = run_zeroshot(
        ClipSpec("vlkit:shapes-clip"),
        default_world / "classification" / "val",
        "imagenet80",
        tmp_path / "r.json",
    )
    best = max(result["templates"], key=lambda t: t["top1"])
    stored = standin_manifest(CLIP_NAME)["figures"]["stored"]["imagenet80"]
    assert best["top1"] == pytest.approx(stored["best"]["top1"], abs=TOLERANCE)
    assert result["ensemble"]["top1"] == pytest.approx(stored["ensemble"]["top1"], abs=TOLERANCE)
    # The README's headline row: "... `vlkit:shapes-clip` ... | 97.6% / 97.1% |" (best template / ensemble).
    row = next(
        line
        for line in README.read_text().splitlines()
        if "zero-shot top-1" in line and "shapes-clip" in line
    )
    shown = [float(x) / 100 for x in re.findall(r"([\d.]+)%", row)[:2]]
    assert shown == pytest.approx([best["top1"], result["ensemble"]["top1"]], abs=TOLERANCE + 0.0005)


def test_standin_names_load_wherever_a_model_goes():
    from vlkit.models.captioner.config import CaptionerSpec
    from vlkit.models.captioner.model import build_captioner
    from vlkit.models.clip import load_clip

    clip = load_clip("vlkit:shapes-clip")
    assert clip.name == "vlkit:shapes-clip"
    assert next(clip.model.parameters()).dtype == torch.float32  # fp16 on disk, fp32 to compute
    captioner = build_captioner(CaptionerSpec("vlkit:shapes-clip", "vlkit:shapes-gpt2", "cross-attn"))
    assert all(p.dtype == torch.float32 for p in captioner.model.parameters())
    assert captioner.tokenizer.eos_token_id is not None


def test_an_unknown_vlkit_name_is_one_line_naming_the_shipped_ones(capsys):
    with pytest.raises(VlkitError, match="vlkit:shapes-clip, vlkit:shapes-gpt2"):
        resolve_model_name("vlkit:shapes-vit")
    assert resolve_model_name("openai/clip-vit-base-patch32") == "openai/clip-vit-base-patch32"


def test_another_world_is_refused_naming_the_stand_in_and_both_digests(shapes_world):
    with pytest.raises(VlkitError) as error:
        check_standins_world(shapes_world)
    message = str(error.value)
    assert "vlkit:shapes-clip" in message and "--from-scratch" in message
    assert standin_manifest(CLIP_NAME)["world"]["meta_sha256"][:12] in message
    assert world_digest(shapes_world)[:12] in message and "\n" not in message


def test_demo_with_another_seed_and_no_from_scratch_exits_2_before_making_a_world(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", "demo", "--seed", "1", "--out", str(tmp_path / "demo")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--seed 1" in err and "--from-scratch" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "demo" / "world").exists()


def test_make_standins_writes_fp16_folders_with_manifests_that_load(tmp_path):
    from vlkit.models.clip import load_clip

    manifests = make_standins(tmp_path / "out", tmp_path / "work", seed=0, quick=True)
    assert set(manifests) == {CLIP_NAME, LM_NAME}
    for name, manifest in manifests.items():
        folder = tmp_path / "out" / name
        assert json.loads((folder / MANIFEST_FILE).read_text()) == manifest
        assert manifest["world"]["meta_sha256"] == world_digest(tmp_path / "work" / "world")
        assert set(manifest["figures"]) == {"float32", "stored"}
        assert not (folder / "checkpoints").exists()
    lm = manifests[LM_NAME]["figures"]
    assert lm["stored"]["val_loss"] == pytest.approx(lm["float32"]["val_loss"], rel=1e-3)
    clip = load_clip(str(tmp_path / "out" / CLIP_NAME))
    assert clip.encode_texts(["a red circle"]).shape[0] == 1


def _summary(cider: float, from_scratch: bool = False) -> dict:
    return {
        "models": {"clip": "vlkit:shapes-clip", "lm": "vlkit:shapes-gpt2", "from_scratch": from_scratch},
        "zeroshot": {"seed": {"best": {"top1": 0.97}, "ensemble": {"top1": 0.96}}},
        "captioning": {
            "budget": {"steps": 400},
            "methods": [{"tuning": "cross-attn", "cider": cider, "clip_score": 1.9, "chair_i": 0.29}],
        },
        "bars": {"pointing_game": 0.41},
    }


def test_a_default_demo_warns_naming_each_figure_that_drifted_beyond_the_noise(tmp_path, caplog):
    from vlkit.pipelines.demo_figures import FIGURES_FILE, NOISE, drifted_figures, record_demo_figures

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(_summary(2.10)))
    record_demo_figures(summary, tmp_path / "figures.json")
    assert drifted_figures(_summary(2.10 + NOISE["cider"] / 2), tmp_path / "figures.json") == []
    drifted = drifted_figures(_summary(2.10 + 2 * NOISE["cider"]), tmp_path / "figures.json")
    assert [d["figure"] for d in drifted] == ["cross-attn.cider"]
    assert "cross-attn.cider" in caplog.text
    other_budget = _summary(3.0)
    other_budget["captioning"]["budget"] = {"steps": 10}
    assert drifted_figures(other_budget, tmp_path / "figures.json") == []  # not comparable: not compared
    summary.write_text(json.dumps(_summary(2.10, from_scratch=True)))
    with pytest.raises(VlkitError, match="not a demo on the shipped stand-ins"):
        record_demo_figures(summary, tmp_path / "other.json")
    # the figures that ship were recorded for the demo's own budget
    shipped = json.loads(FIGURES_FILE.read_text())
    assert shipped["budget"]["steps"] == embedded_plan(0, quick=False).captioner_steps
