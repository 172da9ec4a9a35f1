"""The video captioner's temporal modules: what each can see of time, every module x tuning method trains a
step, and the folder round trip gives the same captioner."""

from __future__ import annotations

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutput

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.errors import ConfigError, VlkitError
from vlkit.models.captioner.encoders import TokenLayout
from vlkit.models.captioner.model import CaptionerSpec, build_captioner, load_captioner
from vlkit.models.captioner.temporal import TEMPORAL_KINDS, pool_frame_tokens
from vlkit.models.tuning import TUNING_METHODS

FRAMES = 4


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    clip, _, gpt2 = save_tiny_parts(tmp_path_factory.mktemp("parts"))
    return clip, gpt2


def _build(parts, temporal: str, tuning: str = "cross-attn", **spec):
    clip, gpt2 = parts
    return build_captioner(
        CaptionerSpec(
            str(clip), str(gpt2), tuning, max_caption_tokens=12, temporal=temporal, frames=FRAMES, **spec
        )
    )


def _features(captioner, seed: int = 0) -> torch.Tensor:
    """Pooled frame tokens of 2 random clips: (2, FRAMES * frame tokens, encoder width)."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(2, FRAMES, 3, 32, 32, generator=generator)
    from vlkit.models.captioner.temporal import encode_frame_pixels

    with torch.no_grad():
        return encode_frame_pixels(captioner.model, pixels, captioner.token_layout(), 2)


def _logits(captioner, features: torch.Tensor) -> torch.Tensor:
    ids = torch.tensor([[0, 5, 9, 3], [0, 7, 2, 8]])
    with torch.no_grad():
        out = captioner.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=features), decoder_input_ids=ids
        )
    return out.logits


def _reverse_frames(features: torch.Tensor, frame_tokens: int) -> torch.Tensor:
    batch, length, width = features.shape
    return features.reshape(batch, -1, frame_tokens, width).flip(1).reshape(batch, length, width)


def test_frame_pooling_keeps_cls_and_averages_the_patch_grid():
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).reshape(2, 17, 3)  # CLS + 4x4 grid
    pooled = pool_frame_tokens(tokens, TokenLayout(1, (4, 4)), 2)
    assert pooled.shape == (2, 5, 3)
    assert torch.equal(pooled[:, 0], tokens[:, 0])
    grid = tokens[:, 1:].reshape(2, 4, 4, 3)
    assert torch.allclose(pooled[:, 1], grid[:, :2, :2].mean(dim=(1, 2)))  # the top-left quarter
    assert torch.allclose(pooled[:, 4], grid[:, 2:, 2:].mean(dim=(1, 2)))  # the bottom-right quarter
    no_cls = pool_frame_tokens(tokens[:, 1:], TokenLayout(0, (4, 4)), 0)
    assert torch.allclose(no_cls[:, 0], tokens[:, 1:].mean(dim=1))


def test_meanp_is_blind_to_frame_order_and_seq_and_concat_are_not(parts):
    for temporal in TEMPORAL_KINDS:
        captioner = _build(parts, temporal)
        if temporal != "meanp":  # as after training: at 0.02 the embeddings move the logits by ~1e-6 only
            torch.nn.init.normal_(captioner.model.temporal.frame_embedding, std=1.0)
        features = _features(captioner)
        frame_tokens = captioner.video_settings().frame_tokens
        reversed_logits = _logits(captioner, _reverse_frames(features, frame_tokens))
        same = torch.allclose(_logits(captioner, features), reversed_logits, atol=1e-5)
        assert same == (temporal == "meanp"), temporal


@pytest.mark.parametrize("temporal", TEMPORAL_KINDS)
@pytest.mark.parametrize("tuning", list(TUNING_METHODS))
def test_every_temporal_module_and_method_trains_a_step_and_round_trips(parts, tmp_path, temporal, tuning):
    captioner = _build(parts, temporal, tuning)
    model = captioner.model
    temporal_weights = [p for p in model.temporal.parameters()]
    assert all(p.requires_grad for p in temporal_weights)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    model.train()
    pixels = torch.randn(2, FRAMES, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    from vlkit.models.captioner.temporal import encode_frame_pixels

    with torch.set_grad_enabled(captioner.method.trains_encoder):
        features = encode_frame_pixels(model, pixels, captioner.token_layout(), 2)
    ids = torch.randint(1, len(captioner.tokenizer), (2, 6), generator=torch.Generator().manual_seed(2))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    loss = model(
        encoder_outputs=BaseModelOutput(last_hidden_state=features), decoder_input_ids=ids, labels=ids
    ).loss
    loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if n in before and not torch.equal(before[n], p)}
    assert any(n.startswith("temporal.") for n in changed) == (temporal != "meanp")  # meanp has no weights
    assert any(".crossattention." in n for n in changed)

    model.eval()
    folder = captioner.save(tmp_path / "captioner")
    loaded = load_captioner(folder)
    assert loaded.video == captioner.video
    test_features = _features(captioner, seed=3)
    assert torch.equal(_logits(captioner, test_features), _logits(loaded, test_features))


def test_video_settings_are_checked_with_the_field_named(parts):
    with pytest.raises(ConfigError, match="temporal"):
        CaptionerSpec("e", "d", temporal="lstm")
    with pytest.raises(ConfigError, match="connector"):
        CaptionerSpec("e", "d", temporal="seq", connector_layers=1, connector="local")
    captioner = _build(parts, "concat")
    too_many = torch.zeros(1, (FRAMES + 1) * 5, 32)
    with pytest.raises(VlkitError, match="temporal: 25 video tokens are not 1 to 4 frames"):
        _logits(captioner, too_many.expand(2, -1, -1))
