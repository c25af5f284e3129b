"""build-batches: sample X-X, X-Y and hybrid training batches from QA shards."""

from __future__ import annotations

from mt_qa.batches.groups import GroupIndex, load_groups
from mt_qa.batches.negatives import BM25NegativeMiner
from mt_qa.batches.samplers import HybridSampler, XXSampler, XYSampler, make_sampler, plan_epoch
from mt_qa.batches.stage import BuildBatchesStage

__all__ = ["BM25NegativeMiner", "BuildBatchesStage", "GroupIndex", "HybridSampler", "XXSampler", "XYSampler",
           "load_groups", "make_sampler", "plan_epoch"]
