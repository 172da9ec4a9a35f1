"""vlkit's ViLBERT against the reference implementation's own forward, on the same weights.

Builds the reference's `BertForMultiModalPreTraining` and `VILBertForVLTasks` (facebookresearch/
vilbert-multi-task, vilbert/vilbert.py) at a small size of its 6-layer base's key structure, with random
weights, converts their state dicts with `vlkit.models.vilbert.convert.convert_reference`, and prints the
largest difference of every output: both streams, both pooled outputs and every head. The reference's data
puts the whole-image token (the mean region feature, box 0, 0, 1, 1, 1) first; vlkit's model adds it itself.

    git clone https://github.com/facebookresearch/vilbert-multi-task /tmp/vilbert-multi-task
    .venv/bin/python examples/research/vilbert_reference_parity.py --reference /tmp/vilbert-multi-task

The reference's `vilbert/utils.py` needs boto3, tensorboardX and an old torch (`torch._six`); only its
`PreTrainedModel` base is used by the model, so a stand-in of a few lines replaces it. An example, not part of
the package: it runs code from another repository.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import torch
from torch import nn

from vlkit.models.vilbert.convert import convert_reference
from vlkit.models.vilbert.model import ViLBertModel

SMALL = dict(
    vocab_size=60, hidden_size=24, num_hidden_layers=4, num_attention_heads=2, intermediate_size=40,
    max_position_embeddings=20, v_feature_size=10, v_target_size=7, v_hidden_size=16, v_num_hidden_layers=3,
    v_num_attention_heads=2, v_intermediate_size=20, bi_hidden_size=12, bi_num_attention_heads=3,
    v_biattention_id=[0, 1, 2], t_biattention_id=[2, 3, 4],
)  # fmt: skip
TRAINING_ONLY = dict(
    visual_target=0, fast_mode=False, fixed_v_layer=0, fixed_t_layer=0, in_batch_pairs=False,
    fusion_method="mul", dynamic_attention=False, with_coattention=True, objective=0, num_negative=128,
    model="bert", task_specific_tokens=False, visualization=False,
)  # fmt: skip


class _PreTrainedModel(nn.Module):
    """The part of the reference's `utils.PreTrainedModel` its models use."""

    def __init__(self, config, *inputs, **kwargs):
        super().__init__()
        self.config = config

    def _tie_or_clone_weights(self, first, second):
        first.weight = second.weight


def load_reference(checkout: Path) -> types.ModuleType:
    package = types.ModuleType("vilbert")
    package.__path__ = [str(checkout / "vilbert")]
    utils = types.ModuleType("vilbert.utils")
    utils.PreTrainedModel = _PreTrainedModel
    sys.modules.update({"vilbert": package, "vilbert.utils": utils})
    spec = importlib.util.spec_from_file_location("vilbert.vilbert", checkout / "vilbert" / "vilbert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(reference: types.ModuleType, base: dict, tasks: bool) -> dict[str, float]:
    config_json = {**base, **SMALL}
    torch.manual_seed(0)
    config = reference.BertConfig.from_dict(config_json)
    for name, value in TRAINING_ONLY.items():
        setattr(config, name, getattr(config, name, value))
    ref = reference.VILBertForVLTasks(config, 11) if tasks else reference.BertForMultiModalPreTraining(config)
    with torch.no_grad():  # off the init: LayerNorms off identity, biases off zero
        for parameter in ref.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    ref.eval()
    converted = convert_reference(ref.state_dict(), config_json, "reference")
    ours = ViLBertModel(converted.config)
    fresh = ours.state_dict()
    ours.load_weights({**{n: fresh[n] for n in converted.new}, **converted.state}, "reference")

    g = torch.Generator().manual_seed(1)
    batch, words, regions = 3, 6, 5
    ids = torch.randint(1, SMALL["vocab_size"], (batch, words), generator=g)
    words_mask = torch.ones(batch, words, dtype=torch.long)
    words_mask[1, 4:], words_mask[2, 2:] = 0, 0
    features = torch.randn(batch, regions, SMALL["v_feature_size"], generator=g)
    boxes = torch.rand(batch, regions, 5, generator=g)
    regions_mask = torch.ones(batch, regions, dtype=torch.long)
    regions_mask[0, 3:] = 0
    weights = regions_mask.float().unsqueeze(-1)
    image_feature = (features * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True)
    ref_features = torch.cat([image_feature, features], 1)
    ref_boxes = torch.cat([torch.tensor([0.0, 0, 1, 1, 1]).expand(batch, 1, 5), boxes], 1)
    ref_mask = torch.cat([torch.ones(batch, 1, dtype=torch.long), regions_mask], 1)
    with torch.no_grad():
        t, v, pt, pv, _ = ref.bert(ids, ref_features, ref_boxes, torch.zeros_like(ids), words_mask, ref_mask)
        out = ours(ids, words_mask, features, boxes, regions_mask)
        words_real, visual_real = words_mask.bool(), ref_mask.bool()
        words_logits, region_logits, alignment = ref.cls(t, v, pt, pv)
        diffs = {
            "text_sequence": (t - out.text_sequence)[words_real],
            "vision_sequence": (v - out.vision_sequence)[visual_real],
            "text_pooled": pt - out.text_pooled,
            "vision_pooled": pv - out.vision_pooled,
            "masked_word_logits": (words_logits - ours.masked_word_logits(out))[words_real],
            "masked_region_logits": region_logits[:, 1:] - ours.masked_region_logits(out),
            "alignment_logits": alignment - ours.alignment_logits(out),
        }
        if tasks:
            fused = pt * pv
            diffs["answer_logits"] = ref.vil_prediction(fused) - ours.answer_logits(out)
            diffs["retrieval_scores"] = ref.vil_logit(fused).squeeze(-1) - ours.retrieval_scores(out)
            referring = ref.vision_logit(v)[:, 1:, 0] - ours.referring_logits(out)
            diffs["referring_logits"] = referring[regions_mask.bool()]
    return {name: float(d.abs().max()) for name, d in diffs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of vilbert-multi-task")
    args = parser.parse_args()
    reference = load_reference(args.reference)
    base = json.loads((args.reference / "config" / "bert_base_6layer_6conect.json").read_text())
    for tasks in (False, True):
        print("VILBertForVLTasks" if tasks else "BertForMultiModalPreTraining")
        for name, diff in compare(reference, base, tasks).items():
            print(f"  {name:22s} max |reference - vlkit| = {diff:.2e}")


if __name__ == "__main__":
    main()
