"""translate: machine-translate QA shards with NLLB-200 through CTranslate2 (int8 by default)."""

from __future__ import annotations

from mt_qa.translate.cache import Translation, TranslationCache
from mt_qa.translate.models import DEFAULT_MODEL, ModelError, ModelInfo, convert, resolve_model
from mt_qa.translate.stage import TranslateStage
from mt_qa.translate.translator import DecodeOptions, NllbTranslator

__all__ = ["DEFAULT_MODEL", "DecodeOptions", "ModelError", "ModelInfo", "NllbTranslator", "TranslateStage",
           "Translation", "TranslationCache", "convert", "resolve_model"]
