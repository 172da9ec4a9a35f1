"""`vlkit convert vilbert`: a facebookresearch/vilbert-multi-task checkpoint converts name for name.

The reference's keys and shapes are written out below from its source (vilbert/vilbert.py: BertEmbeddings,
BertImageEmbeddings, BertLayer, BertImageLayer, BertConnectionLayer, the poolers, BertPreTrainingHeads,
VILBertForVLTasks), not from vlkit's model, so a name vlkit gets wrong fails here. The 6-layer base (~250M
weights) is checked on meta tensors (names and shapes); a scaled-down config of the same key structure is
converted for real, loaded and run."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import save_file

from tests.models.tiny_vilbert import tiny_batch
from vlkit.cli.main import main
from vlkit.models.vilbert.convert import CONFIG_FIELDS, convert_reference
from vlkit.models.vilbert.model import TIED_KEYS, ViLBertModel
from vlkit.models.vilbert.tokenizer import load_tokenizer
from vlkit.models.vilbert.variants import count_parameters

# config/bert_base_6layer_6conect.json of the reference, verbatim.
BASE_6LAYER = json.loads("""{
  "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
  "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 512,
  "num_attention_heads": 12, "num_hidden_layers": 12, "type_vocab_size": 2, "vocab_size": 30522,
  "v_feature_size": 2048, "v_target_size": 1601, "v_hidden_size": 1024, "v_num_hidden_layers":6,
  "v_num_attention_heads":8, "v_intermediate_size":1024, "bi_hidden_size":1024, "bi_num_attention_heads":8,
  "bi_intermediate_size": 1024, "bi_attention_type":1, "v_attention_probs_dropout_prob":0.1,
  "v_hidden_act":"gelu", "v_hidden_dropout_prob":0.1, "v_initializer_range":0.02,
  "v_biattention_id":[0, 1, 2, 3, 4, 5], "t_biattention_id":[6, 7, 8, 9, 10, 11], "pooling_method": "mul"
}""")
# The same key structure in small: 4 text layers (2 before the first co-attention), 3 visual, 2 co-attention.
SMALL = dict(
    BASE_6LAYER, vocab_size=40, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
    intermediate_size=24, max_position_embeddings=12, v_feature_size=6, v_target_size=5, v_hidden_size=12,
    v_num_hidden_layers=3,
    v_num_attention_heads=3, v_intermediate_size=20, bi_hidden_size=8, bi_num_attention_heads=2,
    v_biattention_id=[0, 1], t_biattention_id=[2, 3],
)  # fmt: skip
ANSWERS, GQA_ANSWERS = 3129, 1533  # VILBertForVLTasks' vil_prediction and vil_prediction_gqa sizes
UNUSED = re.compile(
    r"bert\.encoder\.c_layer\.\d+\.biOutput\.q_dense[12]\..*|cls\.predictions\.decoder\.weight"
    r"|(vil_prediction_gqa|vil_binary_prediction|vil_tri_prediction|linguisic_logit)\..*"
)  # the keys the conversion drops: unused by the reference's forward, tied, or heads vlkit has no task for


def _linear(name: str, n_in: int, n_out: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (n_out, n_in), f"{name}.bias": (n_out,)}


def _norm(name: str, width: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (width,), f"{name}.bias": (width,)}


def _bert_layer(name: str, width: int, inner: int) -> dict[str, tuple[int, ...]]:
    """BertLayer, BertImageLayer: attention.self.{query,key,value}, attention.output, the FFN."""
    return {
        **_linear(f"{name}.attention.self.query", width, width),
        **_linear(f"{name}.attention.self.key", width, width),
        **_linear(f"{name}.attention.self.value", width, width),
        **_linear(f"{name}.attention.output.dense", width, width),
        **_norm(f"{name}.attention.output.LayerNorm", width),
        **_linear(f"{name}.intermediate.dense", width, inner),
        **_linear(f"{name}.output.dense", inner, width),
        **_norm(f"{name}.output.LayerNorm", width),
    }


def _connection_layer(name: str, c: dict) -> dict[str, tuple[int, ...]]:
    """BertConnectionLayer: biattention (BertBiAttention), biOutput (BertBiOutput), both feed-forwards."""
    t, v, bi = c["hidden_size"], c["v_hidden_size"], c["bi_hidden_size"]
    keys = {}
    for part, width in (("query1", v), ("key1", v), ("value1", v), ("query2", t), ("key2", t), ("value2", t)):
        keys.update(_linear(f"{name}.biattention.{part}", width, bi))
    keys.update(_linear(f"{name}.biOutput.dense1", bi, v) | _norm(f"{name}.biOutput.LayerNorm1", v))
    keys.update(_linear(f"{name}.biOutput.q_dense1", bi, v))
    keys.update(_linear(f"{name}.biOutput.dense2", bi, t) | _norm(f"{name}.biOutput.LayerNorm2", t))
    keys.update(_linear(f"{name}.biOutput.q_dense2", bi, t))
    keys.update(_linear(f"{name}.v_intermediate.dense", v, c["v_intermediate_size"]))
    keys.update(
        _linear(f"{name}.v_output.dense", c["v_intermediate_size"], v)
        | _norm(f"{name}.v_output.LayerNorm", v)
    )
    keys.update(_linear(f"{name}.t_intermediate.dense", t, c["intermediate_size"]))
    keys.update(
        _linear(f"{name}.t_output.dense", c["intermediate_size"], t) | _norm(f"{name}.t_output.LayerNorm", t)
    )
    return keys


def _simple_classifier(name: str, n_in: int, hidden: int, n_out: int) -> dict[str, tuple[int, ...]]:
    return (
        _linear(f"{name}.logit_fc.0", n_in, hidden)
        | _norm(f"{name}.logit_fc.2", hidden)
        | _linear(f"{name}.logit_fc.3", hidden, n_out)
    )


def reference_keys(c: dict, tasks: bool) -> dict[str, tuple[int, ...]]:
    """The state dict keys and shapes of BertForMultiModalPreTraining (or, `tasks`, VILBertForVLTasks)."""
    t, v, bi = c["hidden_size"], c["v_hidden_size"], c["bi_hidden_size"]
    keys = {
        "bert.embeddings.word_embeddings.weight": (c["vocab_size"], t),
        "bert.embeddings.position_embeddings.weight": (c["max_position_embeddings"], t),
        "bert.embeddings.token_type_embeddings.weight": (c["type_vocab_size"], t),
        **_norm("bert.embeddings.LayerNorm", t),
        **_linear("bert.v_embeddings.image_embeddings", c["v_feature_size"], v),
        **_linear("bert.v_embeddings.image_location_embeddings", 5, v),
        **_norm("bert.v_embeddings.LayerNorm", v),
    }
    for i in range(c["num_hidden_layers"]):
        keys.update(_bert_layer(f"bert.encoder.layer.{i}", t, c["intermediate_size"]))
    for i in range(c["v_num_hidden_layers"]):
        keys.update(_bert_layer(f"bert.encoder.v_layer.{i}", v, c["v_intermediate_size"]))
    for i in range(len(c["v_biattention_id"])):
        keys.update(_connection_layer(f"bert.encoder.c_layer.{i}", c))
    keys.update(_linear("bert.t_pooler.dense", t, bi) | _linear("bert.v_pooler.dense", v, bi))
    keys.update(
        _linear("cls.predictions.transform.dense", t, t) | _norm("cls.predictions.transform.LayerNorm", t)
    )
    keys.update(
        {"cls.predictions.decoder.weight": (c["vocab_size"], t), "cls.predictions.bias": (c["vocab_size"],)}
    )
    keys.update(_linear("cls.bi_seq_relationship", bi, 2))
    keys.update(_linear("cls.imagePredictions.transform.dense", v, v))
    keys.update(_norm("cls.imagePredictions.transform.LayerNorm", v))
    keys.update(_linear("cls.imagePredictions.decoder", v, c["v_target_size"]))
    if tasks:
        keys.update(_simple_classifier("vil_prediction", bi, 2 * bi, ANSWERS))
        keys.update(_simple_classifier("vil_prediction_gqa", bi, 2 * bi, GQA_ANSWERS))
        keys.update(_simple_classifier("vil_binary_prediction", 2 * bi, 2 * bi, 2))
        keys.update(_linear("vil_logit", bi, 1) | _linear("vil_tri_prediction", bi, 3))
        keys.update(_linear("vision_logit", v, 1) | _linear("linguisic_logit", t, 1))
    return keys


def _random_state(keys: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {name: 0.2 * torch.randn(shape, generator=generator) for name, shape in keys.items()}
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"].clone()  # tied
    return state


@pytest.mark.parametrize("tasks", [False, True], ids=["pretraining", "multi-task"])
def test_the_6_layer_base_converts_name_for_name(tasks):
    keys = reference_keys(BASE_6LAYER, tasks)
    state = {name: torch.empty(shape, device="meta") for name, shape in keys.items()}
    converted = convert_reference(state, BASE_6LAYER, "base.bin")
    config = converted.config
    assert {f: getattr(config, f) for f in CONFIG_FIELDS if f in BASE_6LAYER} == {
        f: BASE_6LAYER[f] for f in CONFIG_FIELDS if f in BASE_6LAYER
    }
    assert config.num_answers == (ANSWERS if tasks else 0)
    assert sorted(converted.dropped) == sorted(name for name in keys if UNUSED.fullmatch(name))
    assert {name: tuple(t.shape) for name, t in converted.state.items()} == {
        name: shape for name, shape in keys.items() if not UNUSED.fullmatch(name)
    }
    new_heads = ["vil_logit.bias", "vil_logit.weight", "vision_logit.bias", "vision_logit.weight"]
    assert sorted(converted.new) == ([] if tasks else new_heads)
    with torch.device("meta"):
        ours = ViLBertModel(config).state_dict()
    assert sorted(set(ours) - set(TIED_KEYS)) == sorted([*converted.state, *converted.new])
    # vlkit's model has exactly the reference's weights that its forward uses.
    used = sum(torch.Size(shape).numel() for name, shape in keys.items() if not UNUSED.fullmatch(name))
    new = sum(ours[name].numel() for name in converted.new)
    assert count_parameters(config) == used + new


def _write_checkpoint(folder, seed=0):
    state = _random_state(reference_keys(SMALL, tasks=True), seed)
    (folder / "config.json").write_text(json.dumps(SMALL))
    save_file(state, str(folder / "ckpt.safetensors"))
    torch.save(state, folder / "pytorch_model_9.bin")
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
        f"w{i}" for i in range(SMALL["vocab_size"] - 5)
    ]
    (folder / "vocab.txt").write_text("\n".join(pieces) + "\n")
    return state


def test_a_reference_checkpoint_converts_loads_and_runs(tmp_path, capsys):
    state = _write_checkpoint(tmp_path)
    out = tmp_path / "vilbert"
    files = ["--state-dict", tmp_path / "ckpt.safetensors", "--config", tmp_path / "config.json"]
    main(
        [
            "--quiet",
            "convert",
            "vilbert",
            *map(str, files),
            "--out",
            str(out),
            "--vocab",
            str(tmp_path / "vocab.txt"),
        ]
    )
    assert "wrote" in capsys.readouterr().out
    model = ViLBertModel.from_pretrained(out)
    loaded = model.state_dict()
    for name, tensor in state.items():
        if not UNUSED.fullmatch(name):
            assert torch.equal(loaded[name], tensor), name
    assert torch.equal(model.cls.predictions.decoder.weight, state["bert.embeddings.word_embeddings.weight"])
    assert load_tokenizer(out).convert_tokens_to_ids(["[PAD]", "w3"]) == [0, 8]

    batch = tiny_batch(model.config)
    with torch.no_grad():
        output = model(**batch.inputs())
        fused = output.text_pooled * output.vision_pooled  # the reference's "mul" fusion
        hidden = fused @ state["vil_prediction.logit_fc.0.weight"].T + state["vil_prediction.logit_fc.0.bias"]
        hidden = torch.nn.functional.layer_norm(
            torch.nn.functional.gelu(hidden), hidden.shape[-1:], state["vil_prediction.logit_fc.2.weight"],
            state["vil_prediction.logit_fc.2.bias"], eps=1e-12,
        )  # fmt: skip
        answers = (
            hidden @ state["vil_prediction.logit_fc.3.weight"].T + state["vil_prediction.logit_fc.3.bias"]
        )
        torch.testing.assert_close(model.answer_logits(output), answers)
    assert torch.isfinite(output.text_sequence).all() and torch.isfinite(output.vision_sequence).all()


def test_a_pickle_converts_only_with_allow_pickle(tmp_path, capsys):
    state = _write_checkpoint(tmp_path)
    args = ["convert", "vilbert", "--state-dict", str(tmp_path / "pytorch_model_9.bin"),
            "--config", str(tmp_path / "config.json"), "--out", str(tmp_path / "out")]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert (
        exit_info.value.code == 2
        and "\n" not in err
        and "--allow-pickle" in err
        and "pytorch_model_9.bin" in err
    )
    main(["--quiet", "--allow-pickle", *args])
    loaded = ViLBertModel.from_pretrained(tmp_path / "out").state_dict()
    assert torch.equal(loaded["bert.encoder.c_layer.1.biattention.query1.weight"],
                       state["bert.encoder.c_layer.1.biattention.query1.weight"])  # fmt: skip


def _edit_state(folder, edit):
    state = _random_state(reference_keys(SMALL, tasks=False), 1)
    edit(state)
    save_file(state, str(folder / "ckpt.safetensors"))


BAD = {
    "unknown config field": (lambda c: c.update(v_feature_dim=2048), None, "unknown field 'v_feature_dim'"),
    "dynamic attention": (lambda c: c.update(dynamic_attention=True), None, "dynamic_attention = True"),
    "wrong shape": (None, lambda s: s.update({"bert.v_pooler.dense.weight": torch.zeros(8, 13)}),
                    "bert.v_pooler.dense.weight has shape (8, 13), expected (8, 12)"),
    "missing key": (None, lambda s: s.pop("bert.encoder.c_layer.1.t_output.LayerNorm.bias"),
                    "lacks 'bert.encoder.c_layer.1.t_output.LayerNorm.bias'"),
    "unknown key": (None, lambda s: s.update({"bert.embeddings.task_embeddings.weight": torch.zeros(20, 16)}),
                    "unknown key 'bert.embeddings.task_embeddings.weight'"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gives_one_line_and_exit_code_2(case, tmp_path, capsys):
    edit_config, edit_state, expected = BAD[case]
    config = dict(SMALL)
    if edit_config:
        edit_config(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    _edit_state(tmp_path, edit_state or (lambda s: None))
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", "convert", "vilbert", "--state-dict", str(tmp_path / "ckpt.safetensors"),
              "--config", str(tmp_path / "config.json"), "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err and "\n" not in err and err.startswith("error:") and expected in err, err
    assert not (tmp_path / "out").exists()
