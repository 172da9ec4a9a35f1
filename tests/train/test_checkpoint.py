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


class _Killed(BaseException):
    """Stands for SIGKILL arriving half way through a delete."""


def _rmtree_killed_after_one_file(path, ignore_errors=False):
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else []
    if files:
        files[0].unlink()
        raise _Killed


@pytest.mark.parametrize("overwrite", [False, True], ids=["pruning an old step", "rewriting the same step"])
def test_a_kill_half_way_through_deleting_a_checkpoint_leaves_no_partial_step_folder(
    tmp_path, monkeypatch, overwrite
):
    save_checkpoint(tmp_path, _state(1), keep=2)
    save_checkpoint(tmp_path, _state(2), keep=2)
    with monkeypatch.context() as patched:
        patched.setattr("vlkit.train.checkpoint.shutil.rmtree", _rmtree_killed_after_one_file)
        with pytest.raises(_Killed):
            save_checkpoint(tmp_path, _state(2 if overwrite else 3), keep=2)
    steps = sorted(tmp_path.glob("step-*"))
    assert steps and all(is_complete(path) for path in steps)
    assert latest_complete(tmp_path).name == ("step-000000001" if overwrite else "step-000000003")
    save_checkpoint(tmp_path, _state(4), keep=2)  # the next save sweeps what the killed delete left
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000000001" if overwrite else "step-000000003", "step-000000004"
    ]
