"""Reassembling one machine-translated row from its translated segments, with its signals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mt_qa.languages import Language
from mt_qa.records import qa_id
from mt_qa.shards import ShardWriter
from mt_qa.translate.cache import Translation
from mt_qa.translate.segment import SourcePlan, reassemble


@dataclass
class _Job:
    """One row to write: a source row, its segment plan, and the target language."""

    row: dict[str, Any]
    plan: SourcePlan
    lang: Language


@dataclass
class _LangSummary:
    rows: int = 0
    existing: int = 0
    rejected: int = 0
    unique: int = 0
    cached: int = 0
    translated: int = 0


@dataclass
class _RunCounters:
    """What a run reports (cache hits, speed): not in the manifest, which must not depend on them."""

    segments_translated: int = 0
    segments_cached: int = 0
    translate_seconds: float = 0.0
    by_lang: dict[str, _LangSummary] = field(default_factory=dict)


def mt_row(job: _Job, translated: dict[str, Translation], writer: ShardWriter, shard: str, counters: _RunCounters,
           source: str, origin_detail: str) -> dict[str, Any] | None:
    """The ``mt`` row of ``job``, or None (an empty translation goes to rejects/)."""
    row, plan, lang = job.row, job.plan, job.lang
    texts = {piece: translated[piece].text for piece in plan.pieces()}
    question, sentences = reassemble(plan, texts, lang)
    passage = "".join(sentences)
    new_id = qa_id(row["group_id"], lang.code)
    if not question or (row["passage"].strip() and not passage.strip()):
        what = "question" if not question else "passage"
        writer.reject(source=source, location=f"{shard}: {row['id']} -> {lang.code}",
                      record_id=new_id, reason="empty_translation",
                      detail=f"the model returned nothing for the {what}",
                      payload={"id": new_id, "question": question, "passage_sentences": sentences})
        counters.by_lang[lang.code].rejected += 1
        return None
    pieces = plan.pieces()
    src_tokens = sum(translated[p].src_tokens for p in pieces)
    tgt_tokens = sum(translated[p].tgt_tokens for p in pieces)
    repetition = max((translated[p].repetition for p in pieces), default=0.0)
    answers, starts = keep_verbatim_answers(row["answers"], sentences, row["answer_sentence_index"])
    writer.count("answers.kept", len(answers))
    writer.count("answers.dropped", len({a.strip() for a in row["answers"] if a.strip()}) - len(answers))
    writer.count(f"rows.mt.{lang.code}")
    counters.by_lang[lang.code].rows += 1
    return {
        **row,
        "id": new_id,
        "lang": lang.code,
        "lang_code": lang.flores,
        "question": question,
        "passage": passage,
        "passage_sentences": sentences,
        "answers": answers,
        "answer_starts": starts,
        "origin": "mt",
        "origin_detail": origin_detail,
        "mt_length_ratio": round(tgt_tokens / src_tokens, 4) if src_tokens else None,
        "mt_repetition": round(repetition, 4),
    }


def keep_verbatim_answers(answers: list[str], sentences: list[str], index: int) -> tuple[list[str], list[int]]:
    """Answers whose exact text is in the translated answer sentence, with passage offsets.

    Translating an answer span on its own is unreliable (no context, and its translation
    rarely matches the passage's wording), so only answers that survive verbatim (names,
    numbers, dates) are kept, located inside the sentence the English answer was in.
    """
    if not 0 <= index < len(sentences):
        return [], []
    offset = sum(len(s) for s in sentences[:index])
    sentence = sentences[index]
    kept: list[str] = []
    starts: list[int] = []
    for answer in answers:
        answer = answer.strip()
        if len(answer) < 2 or answer in kept:
            continue
        pos = _find_bounded(sentence, answer)
        if pos >= 0:
            kept.append(answer)
            starts.append(offset + pos)
    return kept, starts


def _joins_word(a: str, b: str) -> bool:
    """Would ``a`` directly followed by ``b`` run two words together (same kind of letters)?"""
    return a.isalnum() and b.isalnum() and a.isascii() == b.isascii()


def _find_bounded(text: str, needle: str) -> int:
    pos = text.find(needle)
    while pos >= 0:
        end = pos + len(needle)
        left_ok = pos == 0 or not _joins_word(text[pos - 1], needle[0])
        right_ok = end == len(text) or not _joins_word(needle[-1], text[end])
        if left_ok and right_ok:
            return pos
        pos = text.find(needle, pos + 1)
    return -1
