"""Vocabulary maps on the real CTranslate2 (use_vmap) with the tiny random NLLB model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mt_qa.cli import main
from mt_qa.errors import MtqaError
from mt_qa.shards import ShardStore
from mt_qa.translate.models import load_model_info, read_vocabulary
from mt_qa.translate.stage import TranslateStage
from mt_qa.translate.translator import DecodeOptions, NllbTranslator, token_batches
from mt_qa.translate.vocab_map import (
    CHECK_FILE,
    META_FILE,
    WORD_START,
    VocabMap,
    VocabMapError,
    agreement,
    always_tokens,
    auto_map_dir,
    input_segments,
)

TEXTS = ["The river flows north through the valley.", "Marie Curie was born in Warsaw in 1867.",
         "Tickets cost twelve euros for adults.", "Who won Super Bowl 50?"]


@pytest.fixture(scope="module")
def model(tiny_ct2: Path):
    return load_model_info(tiny_ct2)


@pytest.fixture(scope="module")
def vocabulary(tiny_ct2: Path) -> list[str]:
    return read_vocabulary(tiny_ct2)


def full_map(model, vocabulary, langs=("deu_Latn", "zho_Hans")) -> VocabMap:
    vmap = VocabMap(model.sha256)
    for lang in langs:
        vmap.add(lang, vocabulary, "whole vocabulary")
    return vmap


def decode(translator: NllbTranslator, lang: str, use_map: bool = True):
    pieces = translator.tokenizer.encode(TEXTS)
    return pieces, translator.decode(pieces, ["eng_Latn"] * len(pieces), [lang] * len(pieces), use_map=use_map,
                                     return_scores=True)


def test_a_map_of_the_whole_vocabulary_changes_nothing(model, vocabulary):
    # Same guards as the stage (suppressed language tags, no <unk>, no-repeat n-grams): the map
    # plumbing alone must not change a token or a score.
    translator = NllbTranslator(model, device="cpu", vocab_map=full_map(model, vocabulary))
    translator.max_engines = 2
    for lang in ("deu_Latn", "zho_Hans"):
        _, mapped = decode(translator, lang)
        _, plain = decode(translator, lang, use_map=False)
        assert [h for h, _c, _s in mapped] == [h for h, _c, _s in plain]
        assert [s for *_, s in mapped] == pytest.approx([s for *_, s in plain], abs=1e-4)
    translator.close()


def test_a_small_map_restricts_the_output_to_its_candidates_and_the_source_pieces(model, vocabulary):
    own = [tok for tok in vocabulary[4:40] if not tok.endswith("_Latn")]
    vmap = VocabMap(model.sha256)
    vmap.add("deu_Latn", own, "test")
    translator = NllbTranslator(model, device="cpu", vocab_map=vmap)
    translator.max_engines = 2
    pieces, mapped = decode(translator, "deu_Latn")
    _, plain = decode(translator, "deu_Latn", use_map=False)
    allowed = set(vmap.candidates("deu_Latn", vocabulary))
    known = set(vocabulary)
    for piece in {p for src in pieces for p in src}:  # the batch's source copies and their ▁ variants
        allowed |= {piece} | ({piece[1:]} if piece[1:] in known else set()) | (
            {WORD_START + piece} if WORD_START + piece in known else set())
    mapped_tokens = {tok for hyp, _c, _s in mapped for tok in hyp[1:]}
    plain_tokens = {tok for hyp, _c, _s in plain for tok in hyp[1:]}
    assert mapped_tokens <= allowed
    assert plain_tokens - allowed, "the plain model must use tokens the map forbids, or this test shows nothing"
    # Source pieces outside the list are candidates (names and numbers are copied through).
    source_only = {p for src in pieces for p in src} - set(vmap.candidates("deu_Latn", vocabulary))
    assert mapped_tokens & source_only
    translator.close()


def test_always_tokens_are_digits_punctuation_and_control_tokens(vocabulary):
    always = always_tokens(vocabulary)
    assert {"</s>", "<unk>", ".", ",", "?"} <= always
    assert all(not any(ch.isalpha() for ch in tok) for tok in always if not tok.startswith("<"))
    assert "▁river" not in always and "deu_Latn" not in always


def test_vmap_text_has_the_always_line_and_one_copy_rule_per_piece(model, vocabulary):
    vmap = VocabMap(model.sha256)
    vmap.add("deu_Latn", ["▁Fluss"], "test")
    lines = vmap.vmap_text("deu_Latn", vocabulary).splitlines()
    assert lines[0].startswith("\t") and "deu_Latn" in lines[0].split() and "</s>" in lines[0].split()
    rules = dict(line.split("\t") for line in lines[1:])
    word = next(tok for tok in vocabulary if tok.startswith(WORD_START) and tok[1:].isalpha() and len(tok) > 3)
    assert rules[word].split()[0] == word
    assert len(rules) >= len(vocabulary) - len(lines[0].split()) - 210  # every piece but tags and the fixed ones
    assert not any(key.endswith("_Latn") or key in ("</s>", "<unk>") for key in rules)


def test_save_load_round_trip_and_refusals(model, vocabulary, tmp_path: Path):
    vmap = VocabMap(model.sha256)
    vmap.add("deu_Latn", ["▁Fluss", "▁der", "bad token", "deu_Latn"], "test")
    assert vmap.langs["deu_Latn"] == {"▁Fluss", "▁der"}  # tokens with spaces and tags never listed
    vmap.save(tmp_path / "map")
    again = VocabMap.load(tmp_path / "map", model.sha256)
    assert again.langs == vmap.langs and again.digest("deu_Latn") == vmap.digest("deu_Latn")
    with pytest.raises(VocabMapError, match="built for model"):
        VocabMap.load(tmp_path / "map", "0" * 64)
    with pytest.raises(VocabMapError, match="no list for zho_Hans"):
        again.require(["deu_Latn", "zho_Hans"])
    (tmp_path / "map" / "deu_Latn.txt").write_text("▁Fluss\n", encoding="utf-8")
    with pytest.raises(VocabMapError, match="does not match the sha256"):
        VocabMap.load(tmp_path / "map")
    with pytest.raises(VocabMapError, match="not a vocabulary map"):
        VocabMap.load(tmp_path)


def test_agreement_counts_identical_outputs_and_score_differences():
    result = agreement("deu_Latn", [(["a", "b"], -1.0), (["c"], -2.0)], [(["a", "b"], -1.0), (["d"], -2.5)])
    assert (result.segments, result.identical, result.share) == (2, 1, 0.5)
    assert result.mean_score_diff == pytest.approx(-0.25) and result.worst_score_diff == pytest.approx(-0.5)
    assert not result.passed(0.99) and result.passed(0.5)


def test_token_batches_caps_the_segments_per_batch():
    assert token_batches([5] * 10, 1000, max_count=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert token_batches([5] * 10, 1000) == [list(range(10))]


def test_memory_cap_grows_with_a_smaller_output_vocabulary(model, vocabulary):
    plain = NllbTranslator(model, device="cpu", max_batch_memory_mib=64, options=DecodeOptions(beam_size=2))
    small = VocabMap(model.sha256)
    small.add("deu_Latn", vocabulary[4:20], "test")
    mapped = NllbTranslator(model, device="cpu", max_batch_memory_mib=64, vocab_map=small)
    assert mapped.output_vocabulary("deu_Latn") < plain.output_vocabulary("deu_Latn") == len(vocabulary)
    assert mapped.max_batch_segments("deu_Latn") > plain.max_batch_segments("deu_Latn") >= 1
    assert NllbTranslator(model, device="cpu").max_batch_segments("deu_Latn") is None
    plain.close()
    mapped.close()


def test_input_segments_are_distinct_in_store_order_with_skip(qa_store: Path, model):
    translator = NllbTranslator(model, device="cpu")
    first = input_segments(qa_store, translator.tokenizer, 256, limit=5)
    nxt = input_segments(qa_store, translator.tokenizer, 256, skip=5, limit=5)
    every = input_segments(qa_store, translator.tokenizer, 256)
    assert len(first) == len(nxt) == 5 and every[:10] == first + nxt
    assert len({tuple(p) for _, p in every}) == len(every) and {lang for lang, _ in every} == {"eng_Latn"}
    translator.close()


def stage(qa_store: Path, out: Path, model_dir: Path, cache: Path, **kwargs) -> TranslateStage:
    return TranslateStage(qa_store, out, "de,zh", model=str(model_dir), device="cpu", cache=cache, progress=False,
                          **kwargs)


def test_translate_with_a_whole_vocabulary_map_equals_plain_and_keys_the_cache(qa_store, tiny_ct2, model,
                                                                               vocabulary, tmp_path: Path):
    full_map(model, vocabulary).save(tmp_path / "map")
    cache = tmp_path / "cache.sqlite"
    plain = stage(qa_store, tmp_path / "plain", tiny_ct2, cache).run()
    mapped = stage(qa_store, tmp_path / "mapped", tiny_ct2, cache, vocab_map=tmp_path / "map").run()
    # A map can change outputs: it is never served the plain run's entries (only its own, across shards).
    assert mapped["segments_translated"] == plain["segments_translated"] > 0
    assert mapped["segments_cached"] == plain["segments_cached"]
    assert mapped["vocab_map"] == str(tmp_path / "map") and plain["vocab_map"] is None

    def mt_rows(out: Path):
        return sorted((r["id"], r["question"], r["passage"]) for r in ShardStore.open(out).table().to_pylist()
                      if r["origin"] == "mt")

    assert mt_rows(tmp_path / "mapped") == mt_rows(tmp_path / "plain")
    manifest = json.loads((tmp_path / "mapped" / "manifest.json").read_text())
    assert set(manifest["params"]["vocab_map"]) == {"deu_Latn", "zho_Hans"}
    assert "vocab_map" not in json.loads((tmp_path / "plain" / "manifest.json").read_text())["params"]
    again = stage(qa_store, tmp_path / "mapped2", tiny_ct2, cache, vocab_map=tmp_path / "map").run()
    assert again["segments_translated"] == 0
    assert again["segments_cached"] == mapped["segments_translated"] + mapped["segments_cached"]


def test_check_with_a_whole_vocabulary_map_passes_and_is_recorded(qa_store, tiny_ct2, model, vocabulary,
                                                                  tmp_path: Path):
    full_map(model, vocabulary).save(tmp_path / "map")
    run = stage(qa_store, tmp_path / "out", tiny_ct2, None, vocab_map=tmp_path / "map", calibrate_segments=4)
    with pytest.raises(MtqaError, match="no held-out segments left after 100000"):
        stage(qa_store, tmp_path / "out", tiny_ct2, None, vocab_map=tmp_path / "map",
              calibrate_segments=100000).check_vocab_map(6)
    report = run.check_vocab_map(6)
    assert report["passed"] and report["langs"]["deu_Latn"]["identical_share"] == 1.0
    assert report["langs"]["deu_Latn"]["segments"] == 6
    recorded = json.loads((tmp_path / "map" / CHECK_FILE).read_text())
    assert recorded["passed"] and recorded["langs"]["zho_Hans"]["identical"] == 6
    assert not (tmp_path / "out").exists()  # a check translates nothing into the output


def test_auto_calibrates_enlarges_and_saves_in_the_cache(qa_store, tiny_ct2, model):
    run = stage(qa_store, Path("unused"), tiny_ct2, None, vocab_map="auto", calibrate_segments=8)
    report = run.check_vocab_map(6, threshold=0.99, max_rounds=3)
    directory = auto_map_dir(model)
    assert report["map"] == str(directory) and (directory / META_FILE).is_file()
    saved = VocabMap.load(directory, model.sha256)
    sources = saved.sources["deu_Latn"]
    assert sources[0].startswith("calibration: first 8 segments")
    rounds = report["rounds"]["deu_Latn"]
    # Each round below the threshold (but the last) enlarges the map with the plain outputs' pieces.
    assert len(sources) == rounds and all(s.startswith("enlarged: 6 held-out") for s in sources[1:])
    assert 1 <= rounds <= 3 and json.loads((directory / CHECK_FILE).read_text())["rounds"] == report["rounds"]


def test_vocab_map_command_from_a_sample_and_its_errors(tiny_ct2: Path, tmp_path: Path, capsys):
    sample = tmp_path / "de.txt"
    sample.write_text("Dies ist ein Testsatz.\nDer Fluss fließt nach Norden.\n", encoding="utf-8")
    out = tmp_path / "map"
    assert main(["model", "vocab-map", str(tiny_ct2), "-o", str(out), "--sample", f"de={sample}",
                 "--device", "cpu"]) == 0
    vmap = VocabMap.load(out)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tiny_ct2 / "sentencepiece.bpe.model"))
    expected = {p for line in sample.read_text(encoding="utf-8").splitlines() for p in sp.encode(line, out_type=str)}
    assert set(vmap.langs) == {"deu_Latn"} and vmap.langs["deu_Latn"] == expected
    assert "deu_Latn:" in capsys.readouterr().out
    assert main(["model", "vocab-map", str(tiny_ct2), "-o", str(out), "--sample", "de"]) == 1
    assert capsys.readouterr().err.startswith("Error: --sample 'de': expected LANG=FILE")
    assert main(["model", "vocab-map", str(tiny_ct2), "-o", str(out)]) == 1
    assert "give --sample" in capsys.readouterr().err
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Stra\xdfe\n".encode("latin-1"))
    assert main(["model", "vocab-map", str(tiny_ct2), "-o", str(out), "--sample", f"de={bad}", "--device", "cpu"]) == 1
    assert "not UTF-8" in capsys.readouterr().err


def test_translate_check_without_a_map_is_one_error_line(qa_store: Path, tiny_ct2: Path, tmp_path: Path, capsys):
    assert main(["translate", str(qa_store), "--langs", "de", "-o", str(tmp_path / "o"), "--model", str(tiny_ct2),
                 "--device", "cpu", "--check-vocab-map", "5", "-q"]) == 1
    assert capsys.readouterr().err.startswith("Error: --check-vocab-map needs --vocab-map auto or DIR")
    assert main(["translate", str(qa_store), "--langs", "de", "-o", str(tmp_path / "o"), "--model", str(tiny_ct2),
                 "--device-index", "x", "-q"]) == 1
    assert "--device-index 'x'" in capsys.readouterr().err
