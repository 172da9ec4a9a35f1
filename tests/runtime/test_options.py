"""Config dataclasses as one declaration per setting: JSON round trips, the flat layout of earlier versions,
errors that name the field, and the CLI options built from the fields."""

from __future__ import annotations

import dataclasses
import json

import pytest

from vlkit.captioning.config import DecodingConfig
from vlkit.cli.options import build, config_options
from vlkit.errors import ConfigError, VlkitError
from vlkit.models.architectures import ClipArchitecture, LmArchitecture
from vlkit.models.captioner.config import CaptionerSpec
from vlkit.runtime.options import config_from_dict, flag_of, walk_options
from vlkit.shapes.world import ShapesConfig
from vlkit.train.config import CaptionTrainConfig, ClipTrainConfig, LmTrainConfig, LoopConfig

SPEC = CaptionerSpec("enc", "dec", "lora", {"rank": 4}, 20, connector_layers=1, connector="local")
CONFIGS = [
    LoopConfig(steps=7, seed=3),
    ClipTrainConfig(ClipArchitecture(image_size=32), batch_size=8, swap_groups=[["a", "b"]]),
    LmTrainConfig(LmArchitecture(width=16), batch_size=4),
    CaptionTrainConfig(SPEC, batch_size=5, epochs=2, loop=LoopConfig(steps=9)),
    DecodingConfig(num_beams=3, max_new_tokens=9),
    DecodingConfig(sample=True, top_p=0.9, top_k=5, temperature=0.7, seed=2, repetition_penalty=1.2),
    ShapesConfig(seed=4, n_train=10),
    SPEC,
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_every_config_survives_a_json_round_trip(config):
    data = json.loads(json.dumps(dataclasses.asdict(config)))
    assert config_from_dict(type(config), data, "test") == config


def test_a_caption_train_config_of_the_flat_layout_still_loads():
    # The layout written before the captioner's fields moved into `captioner` (vlkit_caption_train.json).
    flat = {
        "encoder": "enc", "decoder": "dec", "tuning": "lora", "tuning_config": {"rank": 4},
        "max_caption_tokens": 20, "connector_layers": 1, "connector": "local", "batch_size": 5,
        "epochs": 2, "loop": dataclasses.asdict(LoopConfig(steps=9)), "feature_cache": True,
        "feature_cache_dir": None, "feature_dtype": "float32", "val_limit": None, "eval_batch_size": 64,
    }  # fmt: skip
    loaded = CaptionTrainConfig.from_dict(flat)
    assert loaded == CaptionTrainConfig(SPEC, batch_size=5, epochs=2, loop=LoopConfig(steps=9))
    assert CaptionTrainConfig.from_dict(dataclasses.asdict(loaded)) == loaded


def test_an_unknown_field_is_an_error_naming_the_source():
    with pytest.raises(VlkitError, match=r"cfg\.json: unknown field 'stepz' of LoopConfig"):
        config_from_dict(LoopConfig, {"stepz": 3}, "cfg.json")


@pytest.mark.parametrize(
    ("make", "owner", "field"),
    [
        (lambda: DecodingConfig(num_beams=0), DecodingConfig, "num_beams"),
        (lambda: LoopConfig(steps=-1), LoopConfig, "steps"),
        (lambda: LoopConfig(mixed_precision="fp8"), LoopConfig, "mixed_precision"),
        (lambda: CaptionerSpec("e", "d", connector_layers=99), CaptionerSpec, "connector_layers"),
        (lambda: CaptionerSpec("e", "d", tuning="nope"), CaptionerSpec, "tuning"),
        (lambda: ClipTrainConfig(batch_size=1), ClipTrainConfig, "batch_size"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_config_field(make, owner, field):
    with pytest.raises(ConfigError, match=rf"^{owner.__name__}\.{field}: ") as caught:
        make()
    assert (caught.value.owner, caught.value.field) == (owner, field)


def test_each_field_declares_its_flag_once_and_the_cli_reads_it():
    assert flag_of(DecodingConfig, "num_beams") == "--beams"
    flags = [f.metadata["flag"] for _, f, _, _ in walk_options(CaptionTrainConfig)]
    assert len(flags) == len(set(flags))
    assert {"--encoder", "--decoder", "--tuning", "--connector", "--steps", "--seed"} <= set(flags)


def test_nested_defaults_are_the_trainers_own_and_overrides_apply():
    defaults = {path: default for path, _, default, _ in walk_options(CaptionTrainConfig)}
    assert defaults[("loop", "steps")] == CaptionTrainConfig(SPEC).loop.steps == 1000
    assert dict((p, d) for p, _, d, _ in walk_options(ClipTrainConfig))[("loop", "steps")] == 3000
    config = build(CaptionTrainConfig, {"loop": {"steps": 5}}, captioner={"encoder": "e", "decoder": "d"})
    # The fields without a flag keep the trainer's defaults, not LoopConfig's (weight decay 0.01, not 0.05).
    assert (config.loop.steps, config.loop.weight_decay, config.captioner.encoder) == (5, 0.01, "e")


def test_config_options_write_the_commands_signature():
    import inspect

    @config_options(DecodingConfig, "decoding", only=("beams",), defaults={"beams": 2})
    def command(decoding: dict, out: str = "x") -> dict:
        return decoding

    parameters = inspect.signature(command).parameters
    assert list(parameters) == ["out", "beams"] and parameters["beams"].default.default == 2
    assert command(out="y", beams=4) == {"num_beams": 4}
