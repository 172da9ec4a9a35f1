"""The prefix module of the `prefix` tuning method: peft's `PrefixEncoder` and the pre-hook that puts its
key/value pairs in front of the decoder's cache (why a hook and not peft's model wrapper: `prefix.py`)."""

from __future__ import annotations

from typing import Any

import torch
from peft import PrefixEncoder, PrefixTuningConfig
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from vlkit.errors import VlkitError


class DecoderPrefix(torch.nn.Module):
    """peft's `PrefixEncoder` and the pre-hook putting its key/value pairs in front of the decoder's cache."""

    def __init__(self, peft_config: PrefixTuningConfig, cache_argument: str = "past_key_values"):
        super().__init__()
        # The decoder's name for its cache: `cache` from transformers 5.24 (which ignores a `past_key_values`
        # passed beside it), `past_key_values` before.
        self.cache_argument = cache_argument
        self.old_cache_argument = "past_key_values" if cache_argument == "cache" else "cache"
        self.encoder = PrefixEncoder(peft_config)
        self.layers = peft_config.num_layers
        self.heads = peft_config.num_attention_heads
        self.tokens = peft_config.num_virtual_tokens
        self.width = peft_config.token_dim
        self.register_buffer("token_ids", torch.arange(self.tokens), persistent=False)

    def key_values(self, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, keys and values of shape (B, heads, tokens, head width), as peft's `get_prompt`."""
        flat = self.encoder(self.token_ids.unsqueeze(0).expand(batch, -1))  # (B, P, layers * 2 * C)
        per_head = flat.view(batch, self.tokens, self.layers * 2, self.heads, self.width // self.heads)
        stacked = per_head.permute(2, 0, 3, 1, 4)  # (layers * 2, B, heads, P, head width)
        return [(stacked[2 * i], stacked[2 * i + 1]) for i in range(self.layers)]

    def inject(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict]:
        tokens = kwargs.get("input_ids", args[0] if args else None)
        if tokens is None:
            tokens = kwargs["inputs_embeds"]
        batch = tokens.shape[0]
        cache = kwargs.get(self.cache_argument)
        if cache is None:
            cache = kwargs.pop(self.old_cache_argument, None)
        if cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        if not isinstance(cache, EncoderDecoderCache):
            raise VlkitError(
                f"prefix tuning: expected the decoder's EncoderDecoderCache, got {type(cache).__name__}"
            )
        if cache.self_attention_cache.get_seq_length() == 0:
            for layer, (keys, values) in enumerate(self.key_values(batch)):
                cache.self_attention_cache.update(keys, values, layer)
        kwargs[self.cache_argument] = cache
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.ndim == 2:
            # A mask over the caption alone gets ones for the prefix in front, as peft does.
            missing = cache.self_attention_cache.get_seq_length() + tokens.shape[1] - mask.shape[1]
            if missing > 0:
                kwargs["attention_mask"] = torch.cat([mask.new_ones(batch, missing), mask], dim=1)
        return args, kwargs
