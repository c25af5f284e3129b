from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mt_qa.errors import MtqaError
from mt_qa.translate.cache import Translation, TranslationCache, segment_key

SETTINGS = {"model_sha256": "abc", "compute_type": "int8", "beam_size": 2}


def entry(text: str) -> Translation:
    return Translation(text=text, src_tokens=3, tgt_tokens=4, repetition=0.25, capped=False)


def test_roundtrip_and_keys(tmp_path: Path):
    with TranslationCache(tmp_path / "c.sqlite", SETTINGS) as cache:
        k1, k2 = segment_key("eng_Latn", "Hello."), segment_key("eng_Latn", "Bye.")
        assert segment_key("fra_Latn", "Hello.") != k1  # the source language is part of the key
        cache.put_many([("deu_Latn", k1, entry("Hallo.")), ("zho_Hans", k1, entry("你好。"))])
        assert cache.get_many("deu_Latn", [k1, k2]) == {k1: entry("Hallo.")}
        assert cache.get_many("zho_Hans", [k1])[k1].text == "你好。"
        assert cache.count() == 2
    # Persistent: a new connection sees it.
    with TranslationCache(tmp_path / "c.sqlite", SETTINGS) as cache:
        assert cache.get_many("deu_Latn", [k1])[k1].text == "Hallo."


def test_other_settings_never_read_each_others_output(tmp_path: Path):
    key = segment_key("eng_Latn", "Hello.")
    with TranslationCache(tmp_path / "c.sqlite", SETTINGS) as cache:
        cache.put_many([("deu_Latn", key, entry("Hallo."))])
    with TranslationCache(tmp_path / "c.sqlite", {**SETTINGS, "beam_size": 4}) as other:
        assert other.get_many("deu_Latn", [key]) == {}


def test_many_keys_are_looked_up_in_chunks(tmp_path: Path):
    keys = [segment_key("eng_Latn", f"sentence {i}") for i in range(1300)]
    with TranslationCache(tmp_path / "c.sqlite", SETTINGS) as cache:
        cache.put_many(("deu_Latn", k, entry(str(i))) for i, k in enumerate(keys))
        found = cache.get_many("deu_Latn", keys)
        assert len(found) == 1300 and found[keys[1234]].text == "1234"


def test_a_unit_is_stored_whole_or_not_at_all(tmp_path: Path):
    def items():
        yield ("deu_Latn", segment_key("eng_Latn", "a"), entry("A"))
        yield ("deu_Latn", segment_key("eng_Latn", "b"), Translation(None, 1, 1, 0.0, False))  # type: ignore[arg-type]

    with TranslationCache(tmp_path / "c.sqlite", SETTINGS) as cache:
        with pytest.raises(sqlite3.IntegrityError):
            cache.put_many(items())
        assert cache.count() == 0


def test_concurrent_writers_and_readers(tmp_path: Path):
    path = tmp_path / "c.sqlite"
    script = (
        "import sys; from mt_qa.translate.cache import *\n"
        "c = TranslationCache(sys.argv[1], {'model_sha256': 'abc', 'compute_type': 'int8', 'beam_size': 2})\n"
        "for i in range(50):\n"
        "    c.put_many([('deu_Latn', segment_key('eng_Latn', f'{sys.argv[2]}-{i}'), "
        "Translation('x', 1, 1, 0.0, False))])\n"
        "    c.get_many('deu_Latn', [segment_key('eng_Latn', 'w0-0')])\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), f"w{n}"]) for n in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with TranslationCache(path, SETTINGS) as cache:
        assert cache.count() == 150


def test_unusable_cache_path_is_a_clear_error(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(MtqaError, match="translation cache .* --no-cache"):
        TranslationCache(tmp_path / "file" / "c.sqlite", SETTINGS)
