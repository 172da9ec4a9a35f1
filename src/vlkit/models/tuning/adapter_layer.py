"""The bottleneck adapter module of the `adapter` tuning method (torch): written here, peft has none."""

from __future__ import annotations

import torch


class BottleneckAdapter(torch.nn.Module):
    """x + up(gelu(down(x))), with `up` zero-initialized so the adapter starts as the identity."""

    def __init__(self, width: int, bottleneck: int):
        super().__init__()
        self.down = torch.nn.Linear(width, bottleneck)
        self.up = torch.nn.Linear(bottleneck, width)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(torch.nn.functional.gelu(self.down(hidden)))  # (B, T, C)

    def after_attention(self, module: torch.nn.Module, args: tuple, output: tuple) -> tuple:
        # GPT-2's attention returns (output, attention weights); only the output is adapted.
        return (self(output[0]), *output[1:])

    def after_mlp(self, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return self(output)
