"""`load_vl_model`: a folder's config.json names its VL model class, which loads it; anything else is one
error naming the folder or file."""

from __future__ import annotations

import json

import pytest
import torch

from tests.models.tiny_vilbert import TINY_VILBERT, tiny_batch
from vlkit.errors import VlkitError
from vlkit.models.vilbert.config import ViLBertConfig
from vlkit.models.vilbert.model import ViLBertModel
from vlkit.models.vilbert.vl_models import load_vl_model, vl_model_kind


def test_a_saved_vilbert_loads_by_the_class_its_config_names(tmp_path):
    model = ViLBertModel(TINY_VILBERT)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["vlkit_vl_model"] == "vilbert"
    assert ViLBertConfig.from_pretrained(tmp_path) == TINY_VILBERT  # the key is the folder's, not a field
    loaded = load_vl_model(tmp_path)
    assert type(loaded) is ViLBertModel and not loaded.training
    assert loaded.count_parameters() == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        ours, theirs = model(**tiny_batch().inputs()), loaded(**tiny_batch().inputs())
    assert torch.equal(model.answer_logits(ours), loaded.answer_logits(theirs))


def test_a_config_naming_an_unknown_class_is_one_error(tmp_path):
    ViLBertModel(TINY_VILBERT).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "vlkit_vl_model": "flamingo"}))
    with pytest.raises(VlkitError, match="'flamingo' is unknown"):
        vl_model_kind(tmp_path)
