"""Every module of the package imports (the smoke test of ``tox -e lowest``: the oldest allowed versions)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import mt_qa

MODULES = sorted(m.name for m in pkgutil.walk_packages(mt_qa.__path__, "mt_qa."))


def test_the_package_has_its_modules():
    assert {"mt_qa.cli", "mt_qa.train.trainer", "mt_qa.translate.translator", "mt_qa.run.runner"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)


def test_the_apis_training_calls_exist():
    """The sentence-transformers API the trainer calls (losses module from 5.4, ``preprocess``)."""
    pytest.importorskip("torch")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import (  # noqa: F401
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    assert callable(getattr(SentenceTransformer, "preprocess", None))
