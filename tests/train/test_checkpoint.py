from __future__ import annotations

import json

import pytest
import torch

from vlkit.errors import VlkitError
from vlkit.train.checkpoint import (
    TrainState,
    is_complete,
    latest_complete,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)


def _state(step: int) -> TrainState:
    torch.manual_seed(step)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return TrainState(step, model.state_dict(), optimizer.state_dict(), {"last_epoch": step}, {"note": "x"})


def test_checkpoint_round_trip_restores_every_tensor_and_counter(tmp_path):
    state = _state(7)
    folder = save_checkpoint(tmp_path, state)
    loaded = load_checkpoint(folder)
    assert loaded.step == 7 and loaded.scheduler == {"last_epoch": 7} and loaded.extra == {"note": "x"}
    for name, tensor in state.model.items():
        assert torch.equal(loaded.model[name], tensor)
    fresh = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=1e-3)
    fresh.load_state_dict(loaded.optimizer)
    original, restored = state.optimizer["state"], fresh.state_dict()["state"]
    for param_id, values in original.items():
        for key, value in values.items():
            assert torch.equal(torch.as_tensor(restored[param_id][key]), torch.as_tensor(value))
    assert fresh.state_dict()["param_groups"] == state.optimizer["param_groups"]


def test_partial_checkpoint_is_never_loaded(tmp_path):
    good = save_checkpoint(tmp_path, _state(1), keep=5)
    bad = save_checkpoint(tmp_path, _state(2), keep=5)
    (bad / "model.safetensors").write_bytes(b"torn write")
    assert not is_complete(bad) and is_complete(good)
    assert latest_complete(tmp_path) == good
    with pytest.raises(VlkitError, match="partial or corrupt checkpoint"):
        load_checkpoint(bad)


def test_folder_without_manifest_is_not_a_checkpoint(tmp_path):
    save_checkpoint(tmp_path, _state(3))
    (tmp_path / "step-000000009").mkdir()  # killed before its manifest was written
    (tmp_path / ".tmp-step-000000010-1").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000000003"]
    assert latest_complete(tmp_path).name == "step-000000003"


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, _state(step), keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000000003", "step-000000004"]
    manifest = json.loads((tmp_path / "step-000000004" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.safetensors", "optimizer.safetensors", "state.json"}
