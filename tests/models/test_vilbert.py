"""ViLBERT: co-attention is the formula (checked against a hand computation), padding gets no attention,
the regions are a set, with co-attention off the streams never meet, every variant trains a step and
survives save -> load with identical outputs, and bad batches and configs are one line naming the fault."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel

from tests.models.tiny import CORPUS
from tests.models.tiny_vilbert import TINY_VILBERT, tiny_batch
from vlkit.errors import ConfigError, VlkitError
from vlkit.models.vilbert.coattention import CoAttentionLayer
from vlkit.models.vilbert.config import ViLBertConfig
from vlkit.models.vilbert.convert import load_bert_text_stream
from vlkit.models.vilbert.heads import masked_region_loss
from vlkit.models.vilbert.model import ViLBertModel
from vlkit.models.vilbert.tokenizer import load_tokenizer, train_wordpiece_tokenizer
from vlkit.models.vilbert.variants import VARIANTS, count_parameters, scale_to_parameter_count, variant_config


def _perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter moved off its init (LayerNorms off identity, biases off zero), seeded."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return module.eval()


def _hand_attention(query, key, value, key_mask, heads):
    """Multi-head attention one score at a time: (Q, C), (K, C), (K, C), [K] -> context (Q, C), probs."""
    width = query.shape[1]
    size = width // heads
    context = torch.zeros(query.shape[0], width)
    probs = torch.zeros(heads, query.shape[0], key.shape[0])
    for h in range(heads):
        part = slice(h * size, (h + 1) * size)
        for i in range(query.shape[0]):
            scores = [float(query[i, part] @ key[j, part]) / math.sqrt(size) for j in range(key.shape[0])]
            top = max(s for s, real in zip(scores, key_mask, strict=True) if real)
            exps = [math.exp(s - top) if real else 0.0 for s, real in zip(scores, key_mask, strict=True)]
            for j, e in enumerate(exps):
                probs[h, i, j] = e / sum(exps)
                context[i, part] += probs[h, i, j] * value[j, part]
    return context, probs


def _linear(x, layer):
    return x @ layer.weight.T + layer.bias


def _layer_norm(x, norm):
    mean = x.mean(-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + norm.eps) * norm.weight + norm.bias


def _feed_forward(x, intermediate, output):
    hidden = _linear(x, intermediate.dense)
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))  # BERT's (exact) GELU
    return _layer_norm(_linear(hidden, output.dense) + x, output.LayerNorm)


@pytest.mark.parametrize("order", ["parallel", "sequential"])
@torch.no_grad()
def test_coattention_equals_a_hand_computation(order):
    config = dataclasses.replace(TINY_VILBERT, coattention_order=order)
    layer = _perturbed(CoAttentionLayer(config), seed=1)
    generator = torch.Generator().manual_seed(2)
    text = torch.randn(1, 3, config.hidden_size, generator=generator)
    vision = torch.randn(1, 4, config.v_hidden_size, generator=generator)
    text_mask, vision_mask = [True, True, False], [True, True, True, False]
    new_vision, new_text, probs = layer(vision, torch.tensor([vision_mask]), text, torch.tensor([text_mask]))

    bi, heads = layer.biattention, config.bi_num_attention_heads
    t, v = text[0], vision[0]
    text_context, text_probs = _hand_attention(
        _linear(t, bi.query2), _linear(v, bi.key1), _linear(v, bi.value1), vision_mask, heads
    )
    text_out = _layer_norm(_linear(text_context, layer.biOutput.dense2) + t, layer.biOutput.LayerNorm2)
    text_out = _feed_forward(text_out, layer.t_intermediate, layer.t_output)
    read = text_out if order == "sequential" else t  # sequential: vision reads the updated text
    vision_context, vision_probs = _hand_attention(
        _linear(v, bi.query1), _linear(read, bi.key2), _linear(read, bi.value2), text_mask, heads
    )
    vision_out = _layer_norm(_linear(vision_context, layer.biOutput.dense1) + v, layer.biOutput.LayerNorm1)
    vision_out = _feed_forward(vision_out, layer.v_intermediate, layer.v_output)

    torch.testing.assert_close(probs.text_to_vision[0], text_probs, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(probs.vision_to_text[0], vision_probs, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(new_text[0], text_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(new_vision[0], vision_out, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_padded_words_and_regions_get_zero_attention_weight_and_change_nothing():
    model = _perturbed(ViLBertModel(TINY_VILBERT), seed=3)
    batch = tiny_batch()
    output = model(**batch.inputs(), output_coattention=True)
    padded_words = ~batch.attention_mask.bool()  # (B, T)
    padded_visual = ~output.vision_mask  # (B, 1+R)
    assert padded_words.any() and padded_visual.any()
    assert len(output.coattention) == TINY_VILBERT.num_coattention_layers
    for layer in output.coattention:
        assert torch.all(layer.vision_to_text.permute(0, 3, 1, 2)[padded_words] == 0)
        assert torch.all(layer.text_to_vision.permute(0, 3, 1, 2)[padded_visual] == 0)
        assert torch.all(layer.text_to_vision.permute(0, 3, 1, 2)[~padded_visual] > 0)
    # Whatever the padding holds, the real positions' outputs stay the same (standard layers included).
    changed = tiny_batch()
    changed.input_ids[padded_words] = 7
    changed.region_features[padded_visual[:, 1:]] = 100.0
    changed.region_boxes[padded_visual[:, 1:]] = 0.5
    again = model(**changed.inputs())
    real_words, real_visual = ~padded_words, output.vision_mask
    torch.testing.assert_close(again.text_sequence[real_words], output.text_sequence[real_words])
    torch.testing.assert_close(again.vision_sequence[real_visual], output.vision_sequence[real_visual])
    torch.testing.assert_close(again.text_pooled, output.text_pooled)
    torch.testing.assert_close(again.vision_pooled, output.vision_pooled)


@torch.no_grad()
def test_permuting_the_regions_with_their_boxes_permutes_only_the_region_outputs():
    model = _perturbed(ViLBertModel(TINY_VILBERT), seed=4)
    batch = tiny_batch()
    order = torch.tensor([3, 0, 4, 2, 1])
    permuted = dataclasses.replace(
        batch,
        region_features=batch.region_features[:, order],
        region_boxes=batch.region_boxes[:, order],
        region_mask=batch.region_mask[:, order],
    )
    first, second = model(**batch.inputs()), model(**permuted.inputs())
    real = batch.attention_mask.bool()
    torch.testing.assert_close(second.text_sequence[real], first.text_sequence[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(second.text_pooled, first.text_pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(second.vision_pooled, first.vision_pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(second.region_sequence, first.region_sequence[:, order], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        model.referring_logits(second), model.referring_logits(first)[:, order], atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("with_coattention", [False, True])
def test_without_coattention_no_gradient_crosses_the_streams(with_coattention):
    model = ViLBertModel(dataclasses.replace(TINY_VILBERT, with_coattention=with_coattention))
    batch = tiny_batch()
    batch.region_features.requires_grad_(True)
    output = model(**batch.inputs())
    words = model.bert.embeddings.word_embeddings.weight
    text_to_regions = torch.autograd.grad(
        output.text_sequence.sum() + output.text_pooled.sum(), batch.region_features, allow_unused=True,
        retain_graph=True,
    )[0]  # fmt: skip
    vision_to_words = torch.autograd.grad(
        output.vision_sequence.sum() + output.vision_pooled.sum(), words, allow_unused=True
    )[0]
    crossed = [g is not None and bool(g.abs().sum() > 0) for g in (text_to_regions, vision_to_words)]
    assert crossed == [with_coattention, with_coattention]
    assert len(model.bert.encoder.c_layer) == (2 if with_coattention else 0)


def _one_step_loss(model: ViLBertModel, batch) -> torch.Tensor:
    """Every head's loss on a random batch: masked words, masked regions (KL), alignment, VQA, referring,
    retrieval."""
    output = model(**batch.inputs())
    generator = torch.Generator().manual_seed(5)
    words = model.masked_word_logits(output)  # (B, T, V)
    word_labels = torch.where(batch.attention_mask.bool(), batch.input_ids, -100)
    regions = model.masked_region_logits(output)  # (B, R, K)
    target = torch.rand(regions.shape, generator=generator).softmax(-1)
    aligned = torch.tensor([1, 0, 1])
    answers = torch.rand(3, model.config.num_answers, generator=generator)
    referent = torch.tensor([1, 4, 0])
    return (
        F.cross_entropy(words.flatten(0, 1), word_labels.flatten())
        + masked_region_loss(regions, target, batch.region_mask.bool())
        + F.cross_entropy(model.alignment_logits(output), aligned)
        + F.binary_cross_entropy_with_logits(model.answer_logits(output), answers)
        + F.cross_entropy(model.referring_logits(output), referent)
        + F.binary_cross_entropy_with_logits(model.retrieval_scores(output), aligned.float())
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_trains_a_step_and_round_trips_save_and_load(variant, tmp_path):
    config = variant_config(TINY_VILBERT, variant)
    model = ViLBertModel(config).train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(8)  # dropout's draws
    loss = _one_step_loss(model, tiny_batch(config))
    loss.backward()
    assert torch.isfinite(loss)
    grads = dict(model.named_parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in grads.values())
    # The referring score's bias shifts every region's score alike, which a softmax ignores: its gradient is
    # zero up to rounding. Every other weight gets a gradient and moves.
    still = {name for name, p in grads.items() if not p.grad.abs().sum() > 0}
    assert still <= {"vision_logit.bias"}
    optimizer.step()
    assert all(not torch.equal(before[name], p) for name, p in grads.items() if name not in still)

    tokenizer = train_wordpiece_tokenizer(CORPUS, vocab_size=config.vocab_size)
    model.eval().save_pretrained(tmp_path, tokenizer)
    loaded = ViLBertModel.from_pretrained(tmp_path)
    assert loaded.config == config and not loaded.training
    assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
    batch = tiny_batch(config, seed=6)
    with torch.no_grad():
        ours, theirs = (
            model(**batch.inputs(), output_coattention=True),
            loaded(**batch.inputs(), output_coattention=True),
        )
    for field in ("text_sequence", "vision_sequence", "text_pooled", "vision_pooled"):
        assert torch.equal(getattr(ours, field), getattr(theirs, field)), field
    assert torch.equal(model.masked_word_logits(ours), loaded.masked_word_logits(theirs))
    assert load_tokenizer(tmp_path)("a red star")["input_ids"] == tokenizer("a red star")["input_ids"]


def test_the_tokenizer_is_bert_s_layout():
    tokenizer = train_wordpiece_tokenizer(CORPUS, vocab_size=TINY_VILBERT.vocab_size)
    assert tokenizer.pad_token_id == TINY_VILBERT.pad_token_id == 0
    encoded = tokenizer("a red star", "is it in the middle?")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    first = tokens.index("[SEP]") + 1
    assert encoded["token_type_ids"] == [0] * first + [1] * (len(tokens) - first)
    assert train_wordpiece_tokenizer(CORPUS, vocab_size=40).get_vocab() == tokenizer.get_vocab()


def test_the_tokenizer_is_the_same_in_every_process():
    # tokenizers' trainer broke ties in per-process hash order: a study's workers got different vocabularies
    code = (
        "import json, sys; from vlkit.models.vilbert.tokenizer import train_wordpiece_tokenizer as t; "
        f"print(json.dumps(sorted(t({list(CORPUS)!r} * 3, vocab_size=200).get_vocab().items())))"
    )
    vocabularies = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2, 3)
    }  # fmt: skip
    assert len(vocabularies) == 1
    tokenizer = train_wordpiece_tokenizer(CORPUS, vocab_size=200)
    assert tokenizer.convert_ids_to_tokens(tokenizer("a red star")["input_ids"]) == [
        "[CLS]",
        "a",
        "red",
        "star",
        "[SEP]",
    ]


def test_a_hub_bert_fills_the_text_stream():
    bert_config = BertConfig(
        vocab_size=TINY_VILBERT.vocab_size, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=24, max_position_embeddings=12,
    )  # fmt: skip
    torch.manual_seed(7)
    bert = BertModel(bert_config).eval()
    model = ViLBertModel(dataclasses.replace(TINY_VILBERT, with_coattention=False))
    loaded = load_bert_text_stream(model, bert.state_dict(), "bert")
    assert len(loaded) == len([k for k in bert.state_dict() if k.startswith(("embeddings.", "encoder."))])
    batch = tiny_batch()
    with torch.no_grad():
        ours = model(**batch.inputs()).text_sequence
        theirs = bert(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    real = batch.attention_mask.bool()
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=1e-5)


def test_parameter_counts_and_the_matched_no_standard_layers_variant():
    model = ViLBertModel(TINY_VILBERT)
    assert count_parameters(TINY_VILBERT) == sum(p.numel() for p in model.parameters())
    target = count_parameters(TINY_VILBERT)
    only = variant_config(TINY_VILBERT, "no-standard-layers")
    assert only.num_hidden_layers == only.v_num_hidden_layers == 0
    layers = only.num_coattention_layers

    def gap(n: int) -> int:
        return abs(
            count_parameters(dataclasses.replace(only, t_biattention_id=[0] * n, v_biattention_id=[0] * n))
            - target
        )

    assert layers > 1 and gap(layers) <= min(gap(layers - 1), gap(layers + 1))
    wider = scale_to_parameter_count(TINY_VILBERT, 2 * target, "ffn")
    assert wider.intermediate_size > TINY_VILBERT.intermediate_size
    assert abs(count_parameters(wider) - 2 * target) < 0.02 * target


def _bad(**changes):
    batch = tiny_batch().inputs()
    for name, change in changes.items():
        batch[name] = change(batch[name])
    return batch


def _box_outside(boxes):
    boxes = boxes.clone()
    boxes[2, 1, 2] = 1.5
    return boxes


BAD_BATCHES = {
    "attention_mask": _bad(attention_mask=lambda m: m[:, :-1]),
    "region_boxes": _bad(region_boxes=lambda b: b[..., :4]),
    "region_features": _bad(region_features=lambda f: f[..., :-1]),
    "region_mask": _bad(region_mask=lambda m: m[:2]),
    "region_boxes ": _bad(region_boxes=_box_outside),  # a box outside [0, 1]
    "region_features  ": _bad(
        region_features=lambda f: f[:, :0], region_boxes=lambda b: b[:, :0], region_mask=lambda m: m[:, :0]
    ),  # an empty region list
    "region_mask ": _bad(
        region_mask=lambda m: torch.cat([torch.zeros_like(m[:1]), m[1:]])
    ),  # an image without
    "input_ids": _bad(input_ids=lambda i: i + TINY_VILBERT.vocab_size),
    "token_type_ids": {**tiny_batch().inputs(), "token_type_ids": torch.full((3, 6), 2)},
    "token_type_ids ": {**tiny_batch().inputs(), "token_type_ids": torch.zeros(3, 5, dtype=torch.long)},
}


@pytest.mark.parametrize("argument", BAD_BATCHES)
def test_a_bad_batch_is_one_line_naming_the_argument(argument):
    model = ViLBertModel(TINY_VILBERT)
    with pytest.raises(VlkitError) as raised:
        model(**BAD_BATCHES[argument])
    message = str(raised.value)
    assert message.startswith(f"{argument.strip()}: ") and "\n" not in message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (dict(t_biattention_id=[3, 2]), "t_biattention_id"),
        (dict(t_biattention_id=[2, 9]), "t_biattention_id"),
        (dict(v_biattention_id=[0]), "v_biattention_id"),
        (dict(bi_num_attention_heads=3), "bi_num_attention_heads"),
        (dict(coattention_order="backwards"), "coattention_order"),
        (dict(architecture="single_stream"), "v_hidden_size"),
    ],
)
def test_a_bad_config_names_the_field(changes, field):
    with pytest.raises(ConfigError) as raised:
        dataclasses.replace(TINY_VILBERT, **changes)
    assert raised.value.field == field and "\n" not in str(raised.value)


def test_the_config_round_trips_and_an_unknown_field_names_the_file(tmp_path):
    path = TINY_VILBERT.save_pretrained(tmp_path)
    assert ViLBertConfig.from_pretrained(tmp_path) == TINY_VILBERT
    path.write_text(path.read_text().replace('"seed"', '"sed"'))
    with pytest.raises(VlkitError, match=r"config\.json: unknown field 'sed'"):
        ViLBertConfig.from_pretrained(tmp_path)
