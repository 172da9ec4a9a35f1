"""Reference ViLBERT checkpoints and hub BERTs made vlkit weights.

`convert_vilbert` reads a state dict of facebookresearch/vilbert-multi-task (`BertForMultiModalPreTraining`
or `VILBertForVLTasks`, `torch.save(model.state_dict())`) and its JSON config (config/bert_base_6layer_6conect
.json and kin) and writes a `ViLBertModel` folder. vlkit keeps the reference's parameter names, so the
conversion is mostly checking: every key is known and of the shape the config gives, and only these change:

    dropped   biOutput.q_dense1/q_dense2 (built, never used by the reference's forward); the masked-word
              decoder (the word embeddings, tied); heads vlkit has no task for (vil_prediction_gqa,
              vil_binary_prediction, vil_tri_prediction, linguisic_logit); c_layer.* with_coattention off
    renamed   `module.` prefixes (DataParallel) and LayerNorm's old gamma/beta names
    new       the fine-tuning heads a pre-training checkpoint lacks (vision_logit, vil_logit), seeded
The VQA head's size is read off `vil_prediction`. A pickle is read only with `allow_pickle` (`vlkit
--allow-pickle`), through torch.load(weights_only=True); safetensors always.

`load_bert_text_stream` puts a hub BERT's embeddings, layers and masked-word transform (BertModel or
BertForPreTraining names) into the text stream, as the paper initializes it from bert-base-uncased.

Hand-written because no library knows ViLBERT's layout: the reference loads only its own pickles.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vlkit.errors import VlkitError
from vlkit.models.convert_gpt2 import read_state_dict
from vlkit.models.vilbert.config import ViLBertConfig
from vlkit.models.vilbert.model import TIED_KEYS, ViLBertModel, read_weights
from vlkit.runtime.files import read_json

log = logging.getLogger(__name__)

# The reference config's fields that are ViLBertConfig's, under the same names.
CONFIG_FIELDS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
    "type_vocab_size", "initializer_range", "v_feature_size", "v_target_size", "v_hidden_size",
    "v_num_hidden_layers", "v_num_attention_heads", "v_intermediate_size", "v_attention_probs_dropout_prob",
    "v_hidden_act", "v_hidden_dropout_prob", "bi_hidden_size", "bi_num_attention_heads", "v_biattention_id",
    "t_biattention_id", "with_coattention", "fusion_method",
)  # fmt: skip
# Fields its model code never reads, or reads only in training (freezing, negatives, batch pairing).
IGNORED_FIELDS = (
    "bi_intermediate_size", "bi_attention_type", "pooling_method", "v_initializer_range", "visual_target",
    "fast_mode", "fixed_v_layer", "fixed_t_layer", "in_batch_pairs", "objective", "num_negative",
    "visualization",
)  # fmt: skip
# Fields that change the architecture into one vlkit does not build: the only value accepted.
UNSUPPORTED = {"model": "bert", "dynamic_attention": False, "task_specific_tokens": False}
UNUSED_KEY = re.compile(r"bert\.encoder\.c_layer\.\d+\.biOutput\.q_dense[12]\.(weight|bias)")
UNUSED_HEADS = ("vil_prediction_gqa.", "vil_binary_prediction.", "vil_tri_prediction.", "linguisic_logit.")
NEW_HEADS = ("vision_logit.", "vil_logit.")
ANSWERS_KEY = "vil_prediction.logit_fc.3.weight"


@dataclass
class ConvertedViLBert:
    """A reference state dict in vlkit's names, its config, and what the conversion changed."""

    config: ViLBertConfig
    state: dict[str, torch.Tensor]
    dropped: list[str] = field(default_factory=list)  # the source's keys left out
    new: list[str] = field(default_factory=list)  # vlkit's weights the source lacks (fresh, seeded)


def config_from_reference(data: Any, source: str) -> ViLBertConfig:
    """The `ViLBertConfig` of a reference JSON config; a field of no known meaning is an error naming it."""
    if not isinstance(data, dict):
        raise VlkitError(f"{source}: expected a JSON object (the reference's BertConfig)")
    for name, accepted in UNSUPPORTED.items():
        if name in data and data[name] != accepted:
            raise VlkitError(f"{source}: {name} = {data[name]!r} is not supported (only {accepted!r})")
    unknown = [name for name in data if name not in (*CONFIG_FIELDS, *IGNORED_FIELDS, *UNSUPPORTED)]
    if unknown:
        raise VlkitError(
            f"{source}: unknown field {unknown[0]!r} (not a field of the reference's BertConfig)"
        )
    return ViLBertConfig.from_dict({name: data[name] for name in CONFIG_FIELDS if name in data}, source)


def convert_reference(state: dict[str, torch.Tensor], reference_config: Any, source: str) -> ConvertedViLBert:
    """Map a reference state dict onto `ViLBertModel`'s names, checking each key and shape against the
    config. Works on meta tensors too (names and shapes only)."""
    config = config_from_reference(reference_config, f"{source} (config)")
    answers = state.get(ANSWERS_KEY, state.get(f"module.{ANSWERS_KEY}"))
    if answers is not None:
        config = dataclasses.replace(config, num_answers=int(answers.shape[0]))
    with torch.device("meta"):  # the names and shapes of the model this config builds, no memory
        expected = {name: tuple(t.shape) for name, t in ViLBertModel(config).state_dict().items()}
    converted: dict[str, torch.Tensor] = {}
    dropped = []
    for key, tensor in state.items():
        name = _vlkit_name(key)
        if _is_dropped(name, config):
            dropped.append(key)
            continue
        if name not in expected:
            raise VlkitError(f"{source}: unknown key {key!r} (not a weight of this ViLBERT config)")
        if tuple(tensor.shape) != expected[name]:
            raise VlkitError(f"{source}: {key} has shape {tuple(tensor.shape)}, expected {expected[name]}")
        if name in converted:
            raise VlkitError(f"{source}: {key!r} names a weight already read under another key")
        converted[name] = tensor
    absent = [name for name in expected if name not in converted and name not in TIED_KEYS]
    lacking = [name for name in absent if not name.startswith(NEW_HEADS)]
    if lacking:
        raise VlkitError(f"{source}: lacks {lacking[0]!r} ({len(lacking)} weights of this config missing)")
    return ConvertedViLBert(config, converted, dropped, absent)


def _vlkit_name(key: str) -> str:
    name = key.removeprefix("module.")
    if name.endswith(".gamma"):
        return name[: -len("gamma")] + "weight"
    if name.endswith(".beta"):
        return name[: -len("beta")] + "bias"
    return name


def _is_dropped(name: str, config: ViLBertConfig) -> bool:
    return (
        bool(UNUSED_KEY.fullmatch(name))
        or name in TIED_KEYS
        or name.startswith(UNUSED_HEADS)
        or (not config.with_coattention and name.startswith("bert.encoder.c_layer."))
    )


def convert_vilbert(
    state_dict_file: Path,
    config_file: Path,
    out: Path,
    allow_pickle: bool = False,
    vocab_file: Path | None = None,
) -> ConvertedViLBert:
    """Write a `ViLBertModel` folder at `out` from a reference checkpoint and its JSON config.

    Args:
        state_dict_file: .safetensors, or (with `allow_pickle`) a torch.save'd state dict, read with
            torch.load(weights_only=True).
        config_file: the reference's JSON config the checkpoint was trained with.
        out: the folder to write (config.json, model.safetensors, and the tokenizer with `vocab_file`).
        vocab_file: a WordPiece vocab.txt (bert-base-uncased's, which the reference uses), saved as the
            folder's tokenizer; it must have `vocab_size` entries.
    """
    if out.exists() and not out.is_dir():
        raise VlkitError(f"{out}: exists and is not a folder")
    converted = convert_reference(read_checkpoint(state_dict_file, allow_pickle), read_json(config_file),
                                  str(state_dict_file))  # fmt: skip
    tokenizer = _vocab_tokenizer(vocab_file, converted.config) if vocab_file is not None else None
    model = ViLBertModel(converted.config)  # the new heads keep their seeded init
    fresh = model.state_dict()
    model.load_weights(
        {**{name: fresh[name] for name in converted.new}, **converted.state}, str(state_dict_file)
    )
    model.save_pretrained(out, tokenizer)
    log.info("%s: %d weights, %d dropped, %d new -> %s", state_dict_file, len(converted.state),
             len(converted.dropped), len(converted.new), out)  # fmt: skip
    return converted


def read_checkpoint(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from a pickle when allowed (torch.load(weights_only=True))."""
    if path.suffix == ".safetensors":
        return read_weights(path)
    if not allow_pickle:
        raise VlkitError(
            f"{path}: a pickle; pass `vlkit --allow-pickle convert vilbert ...` to read it with "
            "torch.load(weights_only=True), or give a .safetensors file"
        )
    return read_state_dict(path)


def _vocab_tokenizer(vocab_file: Path, config: ViLBertConfig) -> Any:
    """BERT's uncased WordPiece over a vocab.txt: one word piece a line, its id the line's number."""
    from transformers import BertTokenizer

    if not vocab_file.is_file():
        raise VlkitError(f"{vocab_file}: vocabulary file not found")
    try:
        pieces = vocab_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VlkitError(f"{vocab_file}: cannot read it as UTF-8 text ({str(exc).splitlines()[0]})") from exc
    vocab = {piece: i for i, piece in enumerate(pieces)}
    if len(vocab) != len(pieces):
        raise VlkitError(f"{vocab_file}: a word piece appears twice")
    if len(vocab) != config.vocab_size:
        raise VlkitError(f"{vocab_file}: {len(vocab)} word pieces, but vocab_size is {config.vocab_size}")
    if "[UNK]" not in vocab or "[PAD]" not in vocab:
        raise VlkitError(f"{vocab_file}: no [UNK] or no [PAD] (BERT's special pieces)")
    return BertTokenizer(vocab=vocab, do_lower_case=True)


def load_bert_text_stream(model: ViLBertModel, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Copy a hub BERT's embeddings, layers and masked-word transform into `model`'s text stream; returns
    the vlkit names loaded. Its pooler and next-sentence head are left out (ViLBERT's differ); a BERT
    deeper than the text stream, or of another width, is an error naming `source`."""
    expected = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        name = key.removeprefix("bert.")
        if name.startswith(("embeddings.", "encoder.layer.")):
            name = f"bert.{name}"
        elif not name.startswith(("cls.predictions.transform.", "cls.predictions.bias")):
            continue  # pooler, seq_relationship, the tied decoder, position_ids buffers
        if name not in expected:
            if name.endswith("position_ids"):
                continue
            raise VlkitError(f"{source}: {key!r} has no place in this ViLBERT's text stream")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise VlkitError(
                f"{source}: {key} has shape {tuple(tensor.shape)}, the text stream's {name} "
                f"{tuple(expected[name].shape)}"
            )
        loaded[name] = tensor
    if "bert.embeddings.word_embeddings.weight" not in loaded:
        raise VlkitError(f"{source}: not a BERT state dict (no embeddings.word_embeddings.weight)")
    model.load_state_dict(loaded, strict=False)
    return sorted(loaded)
