"""run: YAML pipelines and the executors that run their steps (local processes, Ray)."""

from __future__ import annotations
