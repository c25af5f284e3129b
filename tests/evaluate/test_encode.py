from __future__ import annotations

import shutil

import numpy as np
import pytest

from mt_qa.errors import MtqaError
from mt_qa.evaluate.encode import EmbeddingCache, Encoder, model_content_hash, resolve_model_dir

TEXTS = ["the cat sat", "el gato", "the cat sat", "il gatto", "el gato"]


def test_unique_texts_are_encoded_once_and_match_direct_encoding(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    enc = Encoder(str(tiny_model), cache_dir=tmp_path / "cache", batch_size=2, progress=False)
    emb = enc.encode(TEXTS, prefix="query: ")
    assert emb.shape == (5, 32) and emb.dtype == np.float32
    assert enc.stats["unique"] == 3 and enc.stats["encoded"] == 3
    assert np.array_equal(emb[0], emb[2]) and np.array_equal(emb[1], emb[4])
    direct = SentenceTransformer(str(tiny_model), device="cpu").encode(
        ["query: the cat sat", "query: el gato", "query: il gatto"], normalize_embeddings=True)
    np.testing.assert_allclose(emb[[0, 1, 3]], direct, atol=1e-5)
    enc.close()


def test_cache_is_reused_across_runs_without_loading_the_model(tiny_model, tmp_path):
    first = Encoder(str(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    a = first.encode(TEXTS, prefix="passage: ")
    first.close()
    second = Encoder(str(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    b = second.encode(TEXTS[:2] + ["new text"], prefix="passage: ")
    assert second.stats["cached"] == 2 and second.stats["encoded"] == 1
    np.testing.assert_array_equal(a[:2], b[:2])
    third = Encoder(str(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    third.encode(TEXTS, prefix="passage: ")
    assert third.stats["encoded"] == 0 and third._model is None  # nothing to encode: model never loaded
    # The prefix is part of the key: same texts with another prefix are new strings.
    third.encode(TEXTS, prefix="query: ")
    assert third.stats["encoded"] == 3


def test_cache_key_follows_model_content_not_path(tiny_model, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert model_content_hash(copy) == model_content_hash(tiny_model)
    enc = Encoder(str(copy), cache_dir=tmp_path / "cache", progress=False, max_length=32)
    base = Encoder(str(tiny_model), cache_dir=tmp_path / "cache", progress=False, max_length=32)
    assert enc.cache_model_key == base.cache_model_key
    # Changing a weight file changes the content hash, so old embeddings are not reused.
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    changed = Encoder(str(copy), cache_dir=tmp_path / "cache", progress=False, max_length=32)
    assert changed.model_hash != base.model_hash and changed.cache_model_key != base.cache_model_key
    # max length and normalisation are part of the key too
    assert Encoder(str(tiny_model), cache_dir=tmp_path / "cache", max_length=16).cache_model_key != \
        base.cache_model_key
    assert Encoder(str(tiny_model), cache_dir=tmp_path / "cache", max_length=32,
                   normalize=False).cache_model_key != base.cache_model_key


def test_in_memory_mode_and_errors(tiny_model, tmp_path):
    enc = Encoder(str(tiny_model), cache_dir=False, progress=False)
    enc.encode(["a b c"])
    enc.encode(["a b c"])
    assert enc.stats["encoded"] == 1 and enc.cache is None
    with pytest.raises(MtqaError, match="not a local directory"):
        resolve_model_dir("no-such-org/no-such-model-xyz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MtqaError, match="empty"):
        Encoder(str(tmp_path / "empty"), cache_dir=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("not a model")
    with pytest.raises(MtqaError, match="cannot load"):
        Encoder(str(tmp_path / "junk"), cache_dir=False, progress=False).encode(["x"])


def test_embedding_cache_round_trip(tmp_path):
    cache = EmbeddingCache(tmp_path)
    keys = [bytes([i]) * 32 for i in range(3)]
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.put("m", keys, vecs)
    got = cache.get("m", keys + [b"z" * 32])
    assert set(got) == set(keys)
    np.testing.assert_array_equal(got[keys[1]], vecs[1])
    assert cache.get("other", keys) == {}
    assert cache.count("m") == 3
    cache.close()
