"""Models of real size, random weights from the real configs, through the loaders a hub id goes through:
a CLIP ViT-L/14 vision tower at 224 px (a 16x16 patch grid) and GPT-2 124M with GPT-2's real tokenizer
(50,257 tokens; converted from the course's layout by `vlkit convert gpt2`) as a captioner,
two training steps of every tuning method, greedy and beam captions, and attention maps on the 16x16 grid;
and the course's encoder, timm's `vit_large_patch14_clip_224` in timm's hub layout, with one method.

Slow (about 2 minutes on 2 cores): the suite's one look at the sizes users run; their step times and peak
memory are measured in bench/ (`python -m bench captioning`).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, GPT2Config, GPT2LMHeadModel

from tests.models.gpt2_layouts import course_state
from vlkit.captioning.attention import attention_maps
from vlkit.captioning.config import DecodingConfig
from vlkit.captioning.generate import caption_images
from vlkit.cli.main import main
from vlkit.data.captions import load_caption_dataset
from vlkit.data.images import read_image
from vlkit.models.captioner.config import CaptionerSpec
from vlkit.models.captioner.model import load_captioner
from vlkit.models.tuning import TUNING_METHODS, tuning_method
from vlkit.train.caption_trainer import train_captioner
from vlkit.train.config import CaptionTrainConfig, LoopConfig

pytestmark = pytest.mark.slow

VIT_L_14 = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    patch_size=14,
    image_size=224,
    projection_dim=768,
)


@pytest.fixture(scope="module")
def real_parts(tmp_path_factory, shapes_world, real_gpt2):
    root = tmp_path_factory.mktemp("real")
    train = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(**VIT_L_14)).save_pretrained(root / "vit-l-14")
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(
        root / "vit-l-14"
    )
    # GPT-2 124M as the course ships it: a state dict in the Conv1D layout without `transformer.` and the
    # real encoder.json + vocab.bpe, made an HF folder by `vlkit convert gpt2`.
    gpt2 = GPT2LMHeadModel(GPT2Config())  # GPT2Config() is GPT-2 124M
    assert sum(p.numel() for p in gpt2.parameters()) == 124_439_808
    torch.save(course_state(gpt2), root / "decoder_model.bin")
    del gpt2
    main(
        [
            "--quiet",
            "convert",
            "gpt2",
            "--state-dict",
            str(root / "decoder_model.bin"),
            "--vocab",
            str(real_gpt2.encoder_json),
            "--merges",
            str(real_gpt2.vocab_bpe),
            "--out",
            str(root / "gpt2"),
        ]
    )
    images = dataclasses.replace(train, images=train.images[:4])
    return root / "vit-l-14", root / "gpt2", images


def _check_captions(folder: Path, images) -> None:
    captioner = load_captioner(folder)
    assert captioner.patch_grid() == (16, 16) and captioner.prefix_tokens() == 1
    pictures = [read_image(image.path) for image in images.images[:2]]
    greedy = caption_images(captioner, pictures, DecodingConfig(max_new_tokens=6), return_attentions=True)
    beam = caption_images(captioner, pictures, DecodingConfig(num_beams=3, max_new_tokens=6))
    assert len(greedy.captions) == len(beam.captions) == 2
    maps = attention_maps(greedy, 0)
    assert maps.maps.shape[1:] == (16, 16)
    assert maps.maps.shape[0] == len(greedy.token_ids[0])
    assert np.allclose(maps.maps.reshape(len(maps.maps), -1).sum(axis=1), 1.0, atol=1e-5)


def _train(encoder: Path, decoder: Path, method: str, images, out: Path):
    spec = CaptionerSpec(
        str(encoder),
        str(decoder),
        method,
        dataclasses.asdict(tuning_method(method).default_config()),
        max_caption_tokens=16,
    )
    loop = LoopConfig(steps=2, learning_rate=1e-4, warmup_steps=0, checkpoint_every=2, mixed_precision="no")
    return train_captioner(
        CaptionTrainConfig(spec, batch_size=2, loop=loop, eval_batch_size=2), images, None, out
    )


@pytest.mark.parametrize("method", list(TUNING_METHODS))
def test_every_method_trains_two_steps_and_captions_at_real_size(real_parts, tmp_path, method):
    encoder, decoder, images = real_parts
    result = _train(encoder, decoder, method, images, tmp_path / method)
    assert np.isfinite(result.final_loss)
    assert (result.feature_cache is None) == (method == "full")  # frozen encoders train from the cache
    _check_captions(tmp_path / method, images)
    shutil.rmtree(tmp_path / method)  # 1.7 GB of weights and checkpoints a method: not kept by pytest


def test_timms_vit_l_14_in_its_hub_layout_captions_at_real_size(real_parts, tmp_path):
    import timm
    from timm.models import save_for_hf

    _, decoder, images = real_parts
    torch.manual_seed(0)
    model = timm.create_model("vit_large_patch14_clip_224", pretrained=False, num_classes=0)
    save_for_hf(model, str(tmp_path / "timm-vit-l-14"), safe_serialization=True)
    del model
    result = _train(tmp_path / "timm-vit-l-14", decoder, "cross-attn", images, tmp_path / "captioner")
    assert np.isfinite(result.final_loss)
    _check_captions(tmp_path / "captioner", images)
    shutil.rmtree(tmp_path)


def test_a_clip_vit_b_32_with_clips_own_tokenizer_runs_zero_shot_and_clipscore(
    shapes_world, clip_tokenizer_dir, tmp_path
):
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    from vlkit.captioning.scores import evaluate_captions
    from vlkit.models.clip import ClipSpec, load_clip
    from vlkit.pipelines.zeroshot import run_zeroshot

    tokenizer = AutoTokenizer.from_pretrained(clip_tokenizer_dir)
    torch.manual_seed(0)
    # CLIPConfig's defaults are ViT-B/32: 224 px, 32 px patches, 12 + 12 layers, 49,408 tokens, 77 positions
    config = CLIPConfig(
        text_config={"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id},
    )
    model = CLIPModel(config)
    assert 150_000_000 < sum(p.numel() for p in model.parameters()) < 152_000_000
    model.save_pretrained(tmp_path / "clip-b-32")
    del model
    tokenizer.save_pretrained(tmp_path / "clip-b-32")
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(
        tmp_path / "clip-b-32"
    )
    result = run_zeroshot(
        ClipSpec(str(tmp_path / "clip-b-32")),
        shapes_world / "classification" / "val",
        "seed",
        tmp_path / "r.json",
    )
    assert len(result["templates"]) == 3 and 0.0 <= result["ensemble"]["top1"] <= 1.0
    clip = load_clip(str(tmp_path / "clip-b-32"))
    val = load_caption_dataset(shapes_world / "val.json", shapes_world / "images")
    images = {image.id: image.path for image in val.images[:4]}
    scores = evaluate_captions(
        {key: "a photo of a red circle" for key in images},
        {image.id: image.captions for image in val.images[:4]},
        images=images,
        clip=clip,
        metrics=("clip_score", "ref_clip_score"),
        prefix=None,  # the course's CLIPScore: no text prefix
    )
    assert scores.metrics["clip_score"] is not None and scores.metrics["ref_clip_score"] is not None
