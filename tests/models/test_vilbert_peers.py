"""ViLBERT's peers (transformers' LXMERT and VisualBERT with ViLBERT's heads) and the blind baselines: every
head trains a step, a folder survives save -> load with identical outputs, the peers are sized to ViLBERT's
count, the backbone is transformers' own model, and the baselines never see what they hide."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from transformers import LxmertModel, VisualBertModel

from tests.models.tiny_vilbert import TINY_VILBERT, tiny_batch
from vlkit.errors import ConfigError, VlkitError
from vlkit.models.vilbert.baselines import BlindedModel, hide_question
from vlkit.models.vilbert.config import VL_MODEL_KEY
from vlkit.models.vilbert.heads import masked_region_loss
from vlkit.models.vilbert.model import ViLBertModel
from vlkit.models.vilbert.peer_config import PEER_KINDS, PeerConfig
from vlkit.models.vilbert.peers import PeerModel, build_peer, count_peer_parameters, lxmert_config, peer_like
from vlkit.models.vilbert.variants import count_parameters
from vlkit.models.vilbert.vl_models import load_vl_model


def _perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return module.eval()


def _head_outputs(model, inputs) -> dict[str, torch.Tensor]:
    output = model(**inputs)
    return {
        "text": output.text_sequence,
        "vision": output.vision_sequence,
        "words": model.masked_word_logits(output),
        "regions": model.masked_region_logits(output),
        "alignment": model.alignment_logits(output),
        "answers": model.answer_logits(output),
        "referring": model.referring_logits(output),
        "retrieval": model.retrieval_scores(output),
    }


@pytest.mark.parametrize("kind", PEER_KINDS)
def test_a_peer_trains_every_head_a_step(kind):
    model = build_peer(peer_like(kind, TINY_VILBERT))
    batch = tiny_batch()
    model.train()
    out = _head_outputs(model, batch.inputs())
    assert out["vision"].shape[:2] == (3, 1 + 5)  # the whole-image token, then the regions
    assert out["referring"].shape == (3, 5) and out["answers"].shape == (3, TINY_VILBERT.num_answers)
    assert out["referring"][0, -2:].max() == torch.finfo(torch.float32).min  # padded regions never picked
    target = torch.softmax(torch.randn(3, 5, TINY_VILBERT.v_target_size), -1)
    loss = (
        F.cross_entropy(out["words"].flatten(0, 1), batch.input_ids.flatten())
        + masked_region_loss(out["regions"], target, batch.region_mask.bool())
        + F.cross_entropy(out["alignment"], torch.tensor([0, 1, 1]))
        + F.cross_entropy(out["answers"], torch.tensor([0, 1, 2]))
        + F.cross_entropy(out["referring"], torch.tensor([0, 1, 2]))
        + out["retrieval"].sum()
    )
    loss.backward()
    without_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # transformers' LXMERT embeds token type 0 at padding_idx 0, so its (only used) row never learns.
    expected = ["lxmert.embeddings.token_type_embeddings.weight"] if kind == "lxmert" else []
    assert without_grad == expected


@pytest.mark.parametrize("kind", PEER_KINDS)
def test_a_peer_survives_save_and_load_with_identical_outputs(kind, tmp_path):
    model = _perturbed(build_peer(peer_like(kind, TINY_VILBERT)), seed=3)
    model.save_pretrained(tmp_path / kind)
    saved = json.loads((tmp_path / kind / "config.json").read_text())
    assert saved[VL_MODEL_KEY] == kind
    loaded = load_vl_model(tmp_path / kind)
    assert type(loaded) is type(model) and loaded.config == model.config
    inputs = tiny_batch(seed=4).inputs()
    with torch.no_grad():
        expected, got = _head_outputs(model, inputs), _head_outputs(loaded, inputs)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_the_backbones_are_transformers_own_models_under_their_prefix():
    lxmert = build_peer(peer_like("lxmert", TINY_VILBERT))
    visualbert = build_peer(peer_like("visualbert", TINY_VILBERT))
    assert isinstance(lxmert.lxmert, LxmertModel) and isinstance(visualbert.visual_bert, VisualBertModel)
    # The tied masked-word decoder is the backbone's word embedding matrix.
    assert lxmert.cls.predictions.decoder.weight is lxmert.lxmert.embeddings.word_embeddings.weight
    # VisualBERT reads the feature and the 5-d box through one projection (its box input).
    projection = visualbert.visual_bert.embeddings.visual_projection
    assert projection.in_features == TINY_VILBERT.v_feature_size + 5
    assert lxmert_config(lxmert.config).visual_pos_dim == 4


@pytest.mark.parametrize("kind", PEER_KINDS)
def test_a_peer_is_sized_to_vilbert_s_parameter_count(kind):
    target = count_parameters(TINY_VILBERT)
    config = peer_like(kind, TINY_VILBERT)
    count = count_peer_parameters(config)
    assert count == build_peer(config).count_parameters()
    assert abs(count - target) / target < 0.03
    wider = dataclasses.replace(TINY_VILBERT, intermediate_size=96)
    assert count_peer_parameters(peer_like(kind, wider)) > count  # follows the target


def test_the_peer_box_input_changes_its_outputs():
    for kind in PEER_KINDS:
        model = _perturbed(build_peer(peer_like(kind, TINY_VILBERT)), seed=5)
        batch = tiny_batch(seed=6)
        moved = dataclasses.replace(batch, region_boxes=batch.region_boxes.flip(1))
        with torch.no_grad():
            a = model.referring_logits(model(**batch.inputs()))
            b = model.referring_logits(model(**moved.inputs()))
        assert not torch.allclose(a[1:], b[1:]), kind  # (sample 0's padding is where the flip moves boxes)


def test_bad_peer_configs_and_folders_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="kind"):
        PeerConfig(kind="uniter")
    with pytest.raises(ConfigError, match="vision_layers"):
        PeerConfig(kind="visualbert", vision_layers=1, cross_layers=0)
    config = peer_like("lxmert", TINY_VILBERT)
    build_peer(config).save_pretrained(tmp_path / "p")
    data = json.loads((tmp_path / "p" / "config.json").read_text())
    (tmp_path / "p" / "config.json").write_text(json.dumps({**data, VL_MODEL_KEY: "visualbert"}))
    with pytest.raises(ConfigError, match=VL_MODEL_KEY):
        PeerModel.from_pretrained(tmp_path / "p")
    build_peer(dataclasses.replace(config, hidden_size=8)).save_pretrained(tmp_path / "q")
    (tmp_path / "q" / "config.json").write_text(json.dumps(data))
    with pytest.raises(VlkitError, match="model.safetensors"):
        PeerModel.from_pretrained(tmp_path / "q")


# ------------------------------------------------------------------------------------------ baselines


def _models():
    yield _perturbed(ViLBertModel(TINY_VILBERT), seed=7)
    yield _perturbed(build_peer(peer_like("lxmert", TINY_VILBERT)), seed=8)


def test_the_question_only_baseline_never_sees_the_image():
    for model in _models():
        blind = BlindedModel(model, "regions")
        batch = tiny_batch(seed=9)
        other = tiny_batch(seed=10)  # other features, boxes; and every region real
        other = dataclasses.replace(
            batch,
            region_features=other.region_features,
            region_boxes=other.region_boxes,
            region_mask=torch.ones_like(other.region_mask),
        )
        with torch.no_grad():
            a, b = blind(**batch.inputs()), blind(**other.inputs())
            full_a, full_b = model(**batch.inputs()), model(**other.inputs())
        assert torch.equal(blind.answer_logits(a), blind.answer_logits(b))
        assert torch.equal(a.text_sequence, b.text_sequence)
        assert not torch.allclose(model.answer_logits(full_a), model.answer_logits(full_b))  # the model would


def test_the_image_only_baseline_never_sees_the_question():
    for model in _models():
        blind = BlindedModel(model, "question")
        batch = tiny_batch(seed=11)
        ids = torch.randint(
            5, TINY_VILBERT.vocab_size, batch.input_ids.shape, generator=torch.Generator().manual_seed(1)
        )
        ids[:, 0] = batch.input_ids[:, 0]
        last = batch.attention_mask.sum(1) - 1
        ids[torch.arange(3), last] = batch.input_ids[torch.arange(3), last]  # the same [SEP]
        ids[batch.attention_mask == 0] = 0
        shorter = batch.attention_mask.clone()
        shorter[0, 3:], ids[0, 2] = 0, batch.input_ids[0, last[0]]  # a shorter question, its [SEP] moved
        other = dataclasses.replace(batch, input_ids=ids, attention_mask=shorter)
        with torch.no_grad():
            a, b = blind(**batch.inputs()), blind(**other.inputs())
        assert torch.equal(blind.answer_logits(a), blind.answer_logits(b))
        assert torch.equal(blind.referring_logits(a), blind.referring_logits(b))
        assert not torch.equal(batch.input_ids, other.input_ids)


def test_hiding_the_question_keeps_cls_and_sep_and_the_text_length():
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 7, 3, 0, 0]])
    mask = (ids != 0).long()
    hidden, hidden_mask = hide_question(ids, mask, pad_token_id=0)
    assert hidden.tolist() == [[2, 3, 0, 0, 0], [2, 3, 0, 0, 0]]
    assert hidden_mask.tolist() == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0]]


def test_a_blinded_model_survives_save_and_load(tmp_path):
    model = BlindedModel(_perturbed(ViLBertModel(TINY_VILBERT), seed=12), "regions")
    model.save_pretrained(tmp_path / "b")
    loaded = load_vl_model(tmp_path / "b")  # the VL models' loader reads it as what it is: blind
    assert isinstance(loaded, BlindedModel) and isinstance(loaded.model, ViLBertModel)
    assert loaded.hide == "regions" and loaded.name == "question-only"
    inputs = tiny_batch(seed=13).inputs()
    with torch.no_grad():
        assert torch.equal(model.answer_logits(model(**inputs)), loaded.answer_logits(loaded(**inputs)))
    assert loaded.count_parameters() == count_parameters(TINY_VILBERT)
    with pytest.raises(VlkitError, match="hide"):
        BlindedModel(ViLBertModel(TINY_VILBERT), "words")
