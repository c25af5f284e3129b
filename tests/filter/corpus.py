"""Crafted parallel QA groups (an English source and its translations) and a store writer for the tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mt_qa.languages import UnknownLanguageError, resolve
from mt_qa.records import QA_SCHEMA, qa_record
from mt_qa.shards import ShardStore, shard_name

# Three topics, each written in English, Spanish, German, Russian and Chinese (our own text).
TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "amazon": {
        "en": ("How many countries does the Amazon basin span?",
               "The Amazon rainforest covers much of the Amazon basin of South America. The basin spans nine "
               "countries and holds the largest tropical forest on Earth. Scientists estimate that it contains "
               "about 390 billion individual trees."),
        "es": ("¿Cuántos países abarca la cuenca del Amazonas?",
               "La selva amazónica cubre gran parte de la cuenca del Amazonas en América del Sur. La cuenca abarca "
               "nueve países y alberga el bosque tropical más grande de la Tierra. Los científicos calculan que "
               "contiene unos 390 mil millones de árboles."),
        "de": ("Wie viele Länder umfasst das Amazonasbecken?",
               "Der Amazonas-Regenwald bedeckt einen großen Teil des Amazonasbeckens in Südamerika. Das Becken "
               "erstreckt sich über neun Länder und beherbergt den größten tropischen Wald der Erde. "
               "Wissenschaftler schätzen, dass er etwa 390 Milliarden Bäume enthält."),
        "ru": ("Сколько стран охватывает бассейн Амазонки?",
               "Тропический лес Амазонии покрывает большую часть бассейна Амазонки в Южной Америке. Бассейн "
               "охватывает девять стран и содержит крупнейший тропический лес на Земле. По оценкам учёных, в нём "
               "растёт около 390 миллиардов деревьев."),
        "zh": ("亚马逊盆地横跨多少个国家？",
               "亚马逊雨林覆盖了南美洲亚马逊盆地的大部分地区。该盆地横跨九个国家，拥有地球上最大的热带森林。"
               "科学家估计，那里大约有三千九百亿棵树。"),
    },
    "wall": {
        "en": ("Which dynasty built the best-known sections of the Great Wall?",
               "The Great Wall of China is a series of fortifications built across the northern borders of ancient "
               "Chinese states. Several walls were built from as early as the 7th century BC. The best-known "
               "sections were built by the Ming dynasty."),
        "es": ("¿Qué dinastía construyó los tramos más conocidos de la Gran Muralla?",
               "La Gran Muralla China es una serie de fortificaciones construidas a lo largo de las fronteras del "
               "norte de los antiguos estados chinos. Varias murallas se construyeron ya desde el siglo VII a. C. "
               "Los tramos más conocidos fueron construidos por la dinastía Ming."),
        "de": ("Welche Dynastie baute die bekanntesten Abschnitte der Chinesischen Mauer?",
               "Die Chinesische Mauer ist eine Reihe von Befestigungen, die entlang der nördlichen Grenzen der "
               "alten chinesischen Staaten errichtet wurden. Mehrere Mauern entstanden bereits im 7. Jahrhundert "
               "v. Chr. Die bekanntesten Abschnitte wurden von der Ming-Dynastie gebaut."),
        "ru": ("Какая династия построила самые известные участки Великой стены?",
               "Великая Китайская стена представляет собой ряд укреплений, построенных вдоль северных границ "
               "древних китайских государств. Отдельные стены возводились уже в VII веке до н. э. Самые известные "
               "участки построила династия Мин."),
        "zh": ("长城最著名的部分是哪个朝代修建的？",
               "中国长城是沿着古代中国各国北部边界修建的一系列防御工事。早在公元前七世纪就开始修建城墙。"
               "最著名的部分是明朝修建的。"),
    },
    "photo": {
        "en": ("What gas is released during photosynthesis?",
               "Photosynthesis is the process by which green plants use sunlight to turn water and carbon dioxide "
               "into sugar. Oxygen is released as a by-product of this reaction. Most of the oxygen in the "
               "atmosphere comes from photosynthesis."),
        "es": ("¿Qué gas se libera durante la fotosíntesis?",
               "La fotosíntesis es el proceso mediante el cual las plantas verdes usan la luz del sol para "
               "convertir el agua y el dióxido de carbono en azúcar. El oxígeno se libera como subproducto de esta "
               "reacción. La mayor parte del oxígeno de la atmósfera procede de la fotosíntesis."),
        "de": ("Welches Gas wird bei der Photosynthese freigesetzt?",
               "Die Photosynthese ist der Vorgang, bei dem grüne Pflanzen Sonnenlicht nutzen, um Wasser und "
               "Kohlendioxid in Zucker umzuwandeln. Sauerstoff wird als Nebenprodukt dieser Reaktion freigesetzt. "
               "Der größte Teil des Sauerstoffs in der Atmosphäre stammt aus der Photosynthese."),
        "ru": ("Какой газ выделяется при фотосинтезе?",
               "Фотосинтез — это процесс, при котором зелёные растения используют солнечный свет, чтобы превращать "
               "воду и углекислый газ в сахар. Кислород выделяется как побочный продукт этой реакции. Большая часть "
               "кислорода в атмосфере образуется в результате фотосинтеза."),
        "zh": ("光合作用过程中释放出什么气体？",
               "光合作用是绿色植物利用阳光把水和二氧化碳转化为糖的过程。氧气是这一反应的副产品。"
               "大气中的大部分氧气来自光合作用。"),
    },
}


def row(source_id: str, lang: str, question: str, passage: str, *, dataset: str = "demo", split: str = "dev",
        origin: str | None = None, **extra: Any) -> dict[str, Any]:
    """One valid QA row; English rows are the group's source, others machine translations."""
    origin = origin or ("source" if lang == "en" else "mt")
    try:
        lang_code = resolve(lang).flores
    except UnknownLanguageError:
        lang_code = f"{lang}_Latn"
    return qa_record(dataset=dataset, split=split, source_id=source_id, lang=lang, lang_code=lang_code,
                     question=question, passage=passage, passage_sentences=[passage] if passage else [],
                     origin=origin, **extra)


def group(topic: str, source_id: str | None = None, langs: Iterable[str] = ("en", "es", "de"),
          **overrides: tuple[str, str]) -> list[dict[str, Any]]:
    """The rows of one topic's group; ``es=(question, passage)`` replaces a language's text."""
    sid = source_id or topic
    out = []
    for lang in langs:
        question, passage = overrides.get(lang, TEXTS[topic][lang])
        out.append(row(sid, lang, question, passage))
    return out


def write_store(root: Path, shards: list[list[Mapping[str, Any]]], stage: str = "translate") -> Path:
    """Write rows as a finished shard store, one list of rows per shard."""
    store = ShardStore(root, stage, QA_SCHEMA)
    store.begin({"test": True}, [], overwrite=True)
    names = []
    for i, rows in enumerate(shards):
        name = shard_name(i)
        names.append(name)
        writer = store.writer(name)
        writer.add(list(rows))
        writer.commit()
    store.finalize(expected=names)
    return root
