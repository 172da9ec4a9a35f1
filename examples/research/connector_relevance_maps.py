"""Attention maps of a captioner with a connector, carried back through the connector: the pointing game.

With a connector (`vlkit caption train --connector-layers N`) the decoder's cross-attention weighs the
connector's output tokens, each of which mixes several of the image tokens. This script spreads each output
token's attention over the input tokens in proportion to how much that output depends on each input (the
Frobenius norm of the connector's Jacobian block d out_j / d in_i, per image, each row normalized to sum to
1), then scores the maps as `vlkit caption attend` does. A question the README answers with it: does the
pointing game that falls with a connector come back when the maps are read through it? (It does not.)

    .venv/bin/python examples/research/connector_relevance_maps.py --model runs/exp/local1_b128 \
        --annotations runs/demo/world/val.json --out runs/exp/local1_b128/relevance

An example, not part of the package: it swaps `vlkit.pipelines.attend.caption_images` for a wrapper rather
than adding an option for a reading that measured worse.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import vlkit.pipelines.attend as attend
from vlkit.models.captioner.model import load_captioner
from vlkit.pipelines.attend import AttendRequest, grounding_summary, run_attend


def connector_relevance(connector: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    """(B, N, C) image tokens -> (B, N out, N in): each output token's share of dependence on each input."""
    rows = []
    for tokens in features:
        jacobian = torch.func.jacrev(lambda x: connector(x[None])[0])(tokens)  # (N, C, N, C)
        norms = jacobian.pow(2).sum(dim=(1, 3)).sqrt()  # (N out, N in)
        rows.append((norms / norms.sum(dim=1, keepdim=True)).detach())
    return torch.stack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a captioner folder with a connector")
    parser.add_argument("--annotations", type=Path, required=True, help="the shapes world's val.json")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    captioner = load_captioner(args.model)
    connector = getattr(captioner.model, "connector", None)
    if connector is None:
        parser.error(f"{args.model}: this captioner has no connector (config.json connector_layers is 0)")
    caption_images = attend.caption_images
    seen: dict[str, torch.Tensor] = {}
    # The tokens the connector last read (after any width projection): those of the teacher-forced pass that
    # `caption_images` takes the attention from, after `generate`.
    connector.register_forward_pre_hook(lambda module, args: seen.update(tokens=args[0].detach()))

    def through_connector(captioner, images, config=None, return_attentions=False, first_index=0):
        output = caption_images(captioner, images, config, return_attentions, first_index)
        if return_attentions:
            tokens = seen["tokens"].clone()  # read under inference mode: a copy autograd may use
            relevance = connector_relevance(connector, tokens).float()
            output.attentions = [a.float() @ relevance[k] for k, a in enumerate(output.attentions)]
        return output

    attend.caption_images = through_connector
    report = run_attend(captioner, AttendRequest(out=args.out, annotations=args.annotations))
    print(grounding_summary(report["grounding"]))


if __name__ == "__main__":
    main()
