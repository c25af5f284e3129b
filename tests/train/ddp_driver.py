"""Run under torchrun by test_distributed.py: one step's gradients with the batch split across ranks."""

from __future__ import annotations

import sys

import torch

from mt_qa.train import BatchSource, BiEncoderTrainer, TrainConfig
from mt_qa.train.distributed import init_distributed, shutdown_distributed
from mt_qa.train.model import load_model, make_loss


def main(batches: str, model_dir: str, out: str, mini_batch_size: int) -> None:
    torch.set_num_threads(1)
    env, device = init_distributed("cpu")
    trainer = BiEncoderTrainer(TrainConfig(batches=batches, model=model_dir, out=out, max_query_length=32,
                                           max_passage_length=96, mini_batch_size=mini_batch_size))
    trainer.model = load_model(model_dir, device)
    trainer.loss_fn = make_loss(trainer.model, 0.05, mini_batch_size, gather=env.enabled)
    batch = next(BatchSource(batches).iter())
    loss = trainer.loss_fn(trainer._inputs(batch.shard_for(env.rank, env.world_size)), None)
    loss.backward()
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    env.average_gradients(params)
    loss = env.mean(loss.detach())
    if env.is_main:
        grads = {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None}
        torch.save({"loss": loss.item(), "grads": grads}, out)
    shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
