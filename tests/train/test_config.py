"""``mtqa train``'s option defaults are TrainConfig's: declared once."""

from __future__ import annotations

import dataclasses

from mt_qa.train.cli import train
from mt_qa.train.config import TrainConfig


def test_every_option_default_is_the_config_default(tmp_path):
    ctx = train.make_context("train", ["--batches", str(tmp_path), "--model", "m", "--out", "o"])
    parsed = dict(ctx.params)
    # The two flags that invert a field.
    parsed["use_negatives"], parsed["progress"] = not parsed.pop("no_negatives"), not parsed.pop("quiet")
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert set(parsed) == set(fields)  # every setting is an option, every option a setting
    defaults = {name: value for name, value in fields.items() if value is not dataclasses.MISSING}
    assert {name: parsed[name] for name in defaults} == defaults
    assert len(defaults) >= 30
