"""`vlkit` with a caption loss broken on purpose, for `accelerate launch` in test_distributed.py: every
process divides its share's token-loss sum by its own share's token count (the one-process loss), instead of
the global batch's token count, so that DDP's average of the processes' gradients weighs the shares' tokens
unequally. The library is unchanged; the trainer looks make_caption_loss up when it trains."""

from __future__ import annotations

import torch

import vlkit.train.caption_trainer as caption_trainer
from vlkit.cli.main import main

_correct = caption_trainer.make_caption_loss


def _per_process_mean(trains_encoder: bool, processes: int = 1):
    return _correct(trains_encoder, processes=1)  # the mean over this process's own tokens


if __name__ == "__main__":
    torch.set_num_threads(1)
    caption_trainer.make_caption_loss = _per_process_mean
    main()
