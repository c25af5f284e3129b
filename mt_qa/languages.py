"""Language codes: ISO 639-1 / ISO 639-3 / FLORES-200, resolved in one place.

Rows carry ``lang`` (ISO 639-1 where one exists, else ISO 639-3) and ``lang_code`` (the
FLORES-200 code NLLB needs). Users may type any of the three forms, in any case, with ``-`` or
``_``. The table holds all 202 FLORES-200 codes NLLB-200 knows.

Rules worth knowing (docs/translate.md has the full story):

- Where a FLORES code is an individual language inside a macrolanguage (``arb`` in ``ara``,
  ``swh`` in ``swa``, ``pes`` in ``fas``, ``zsm`` in ``msa``, ...), ``iso3`` is the
  macrolanguage code that matches ISO 639-1 (what users and language detectors emit); the
  FLORES prefix (``arb``) resolves as well.
- Six languages come in two scripts. The more common script is the default and gets the plain
  code; the other gets a BCP-47 style script subtag as its ``lang``: ``zh`` is Simplified
  Chinese (``zho_Hans``, the script of XQuAD/MLQA), ``zh-Hant`` is Traditional (``zho_Hant``).
  Region tags (``zh-cn``, ``zh-tw``, ``zh-hk``) name a language, not a script, and language
  detectors emit them for any Chinese text, so they resolve to ``zh``; ask for ``zh-Hant`` or
  ``zho_Hant`` to get Traditional Chinese.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache

from mt_qa.errors import MtqaError


@dataclass(frozen=True)
class Language:
    iso1: str | None
    iso3: str
    flores: str
    name: str

    @property
    def code(self) -> str:
        """The value stored in a row's ``lang`` column (unique per FLORES code)."""
        return _VARIANT_CODES.get(self.flores) or self.iso1 or self.iso3

    @property
    def script(self) -> str:
        """ISO 15924 script of the FLORES code, e.g. 'Latn', 'Hans'."""
        return self.flores.split("_", 1)[1]


class UnknownLanguageError(MtqaError):
    pass


# (ISO 639-1 or "", ISO 639-3, FLORES-200, English name), in NLLB's FAIRSEQ_LANGUAGE_CODES order.
_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("", "ace", "ace_Arab", "Acehnese (Arabic script)"),
    ("", "ace", "ace_Latn", "Acehnese (Latin script)"),
    ("", "acm", "acm_Arab", "Mesopotamian Arabic"),
    ("", "acq", "acq_Arab", "Ta'izzi-Adeni Arabic"),
    ("", "aeb", "aeb_Arab", "Tunisian Arabic"),
    ("af", "afr", "afr_Latn", "Afrikaans"),
    ("", "ajp", "ajp_Arab", "South Levantine Arabic"),
    ("ak", "aka", "aka_Latn", "Akan"),
    ("am", "amh", "amh_Ethi", "Amharic"),
    ("", "apc", "apc_Arab", "North Levantine Arabic"),
    ("ar", "ara", "arb_Arab", "Arabic"),
    ("", "ars", "ars_Arab", "Najdi Arabic"),
    ("", "ary", "ary_Arab", "Moroccan Arabic"),
    ("", "arz", "arz_Arab", "Egyptian Arabic"),
    ("as", "asm", "asm_Beng", "Assamese"),
    ("", "ast", "ast_Latn", "Asturian"),
    ("", "awa", "awa_Deva", "Awadhi"),
    ("ay", "aym", "ayr_Latn", "Central Aymara"),
    ("", "azb", "azb_Arab", "South Azerbaijani"),
    ("az", "aze", "azj_Latn", "North Azerbaijani"),
    ("ba", "bak", "bak_Cyrl", "Bashkir"),
    ("bm", "bam", "bam_Latn", "Bambara"),
    ("", "ban", "ban_Latn", "Balinese"),
    ("be", "bel", "bel_Cyrl", "Belarusian"),
    ("", "bem", "bem_Latn", "Bemba"),
    ("bn", "ben", "ben_Beng", "Bengali"),
    ("", "bho", "bho_Deva", "Bhojpuri"),
    ("", "bjn", "bjn_Arab", "Banjar (Arabic script)"),
    ("", "bjn", "bjn_Latn", "Banjar (Latin script)"),
    ("bo", "bod", "bod_Tibt", "Standard Tibetan"),
    ("bs", "bos", "bos_Latn", "Bosnian"),
    ("", "bug", "bug_Latn", "Buginese"),
    ("bg", "bul", "bul_Cyrl", "Bulgarian"),
    ("ca", "cat", "cat_Latn", "Catalan"),
    ("", "ceb", "ceb_Latn", "Cebuano"),
    ("cs", "ces", "ces_Latn", "Czech"),
    ("", "cjk", "cjk_Latn", "Chokwe"),
    ("", "ckb", "ckb_Arab", "Central Kurdish"),
    ("", "crh", "crh_Latn", "Crimean Tatar"),
    ("cy", "cym", "cym_Latn", "Welsh"),
    ("da", "dan", "dan_Latn", "Danish"),
    ("de", "deu", "deu_Latn", "German"),
    ("", "dik", "dik_Latn", "Southwestern Dinka"),
    ("", "dyu", "dyu_Latn", "Dyula"),
    ("dz", "dzo", "dzo_Tibt", "Dzongkha"),
    ("el", "ell", "ell_Grek", "Greek"),
    ("en", "eng", "eng_Latn", "English"),
    ("eo", "epo", "epo_Latn", "Esperanto"),
    ("et", "est", "est_Latn", "Estonian"),
    ("eu", "eus", "eus_Latn", "Basque"),
    ("ee", "ewe", "ewe_Latn", "Ewe"),
    ("fo", "fao", "fao_Latn", "Faroese"),
    ("fa", "fas", "pes_Arab", "Persian"),
    ("fj", "fij", "fij_Latn", "Fijian"),
    ("fi", "fin", "fin_Latn", "Finnish"),
    ("", "fon", "fon_Latn", "Fon"),
    ("fr", "fra", "fra_Latn", "French"),
    ("", "fur", "fur_Latn", "Friulian"),
    ("ff", "ful", "fuv_Latn", "Nigerian Fulfulde"),
    ("gd", "gla", "gla_Latn", "Scottish Gaelic"),
    ("ga", "gle", "gle_Latn", "Irish"),
    ("gl", "glg", "glg_Latn", "Galician"),
    ("gn", "grn", "grn_Latn", "Guarani"),
    ("gu", "guj", "guj_Gujr", "Gujarati"),
    ("ht", "hat", "hat_Latn", "Haitian Creole"),
    ("ha", "hau", "hau_Latn", "Hausa"),
    ("he", "heb", "heb_Hebr", "Hebrew"),
    ("hi", "hin", "hin_Deva", "Hindi"),
    ("", "hne", "hne_Deva", "Chhattisgarhi"),
    ("hr", "hrv", "hrv_Latn", "Croatian"),
    ("hu", "hun", "hun_Latn", "Hungarian"),
    ("hy", "hye", "hye_Armn", "Armenian"),
    ("ig", "ibo", "ibo_Latn", "Igbo"),
    ("", "ilo", "ilo_Latn", "Ilocano"),
    ("id", "ind", "ind_Latn", "Indonesian"),
    ("is", "isl", "isl_Latn", "Icelandic"),
    ("it", "ita", "ita_Latn", "Italian"),
    ("jv", "jav", "jav_Latn", "Javanese"),
    ("ja", "jpn", "jpn_Jpan", "Japanese"),
    ("", "kab", "kab_Latn", "Kabyle"),
    ("", "kac", "kac_Latn", "Jingpho"),
    ("", "kam", "kam_Latn", "Kamba"),
    ("kn", "kan", "kan_Knda", "Kannada"),
    ("ks", "kas", "kas_Arab", "Kashmiri (Arabic script)"),
    ("ks", "kas", "kas_Deva", "Kashmiri (Devanagari script)"),
    ("ka", "kat", "kat_Geor", "Georgian"),
    ("kr", "kau", "knc_Arab", "Central Kanuri (Arabic script)"),
    ("kr", "kau", "knc_Latn", "Central Kanuri (Latin script)"),
    ("kk", "kaz", "kaz_Cyrl", "Kazakh"),
    ("", "kbp", "kbp_Latn", "Kabiyè"),
    ("", "kea", "kea_Latn", "Kabuverdianu"),
    ("km", "khm", "khm_Khmr", "Khmer"),
    ("ki", "kik", "kik_Latn", "Kikuyu"),
    ("rw", "kin", "kin_Latn", "Kinyarwanda"),
    ("ky", "kir", "kir_Cyrl", "Kyrgyz"),
    ("", "kmb", "kmb_Latn", "Kimbundu"),
    ("kg", "kon", "kon_Latn", "Kikongo"),
    ("ko", "kor", "kor_Hang", "Korean"),
    ("ku", "kur", "kmr_Latn", "Northern Kurdish"),
    ("lo", "lao", "lao_Laoo", "Lao"),
    ("lv", "lav", "lvs_Latn", "Latvian"),
    ("", "lij", "lij_Latn", "Ligurian"),
    ("li", "lim", "lim_Latn", "Limburgish"),
    ("ln", "lin", "lin_Latn", "Lingala"),
    ("lt", "lit", "lit_Latn", "Lithuanian"),
    ("", "lmo", "lmo_Latn", "Lombard"),
    ("", "ltg", "ltg_Latn", "Latgalian"),
    ("lb", "ltz", "ltz_Latn", "Luxembourgish"),
    ("", "lua", "lua_Latn", "Luba-Kasai"),
    ("lg", "lug", "lug_Latn", "Ganda"),
    ("", "luo", "luo_Latn", "Luo"),
    ("", "lus", "lus_Latn", "Mizo"),
    ("", "mag", "mag_Deva", "Magahi"),
    ("", "mai", "mai_Deva", "Maithili"),
    ("ml", "mal", "mal_Mlym", "Malayalam"),
    ("mr", "mar", "mar_Deva", "Marathi"),
    ("", "min", "min_Latn", "Minangkabau"),
    ("mk", "mkd", "mkd_Cyrl", "Macedonian"),
    ("mg", "mlg", "plt_Latn", "Plateau Malagasy"),
    ("mt", "mlt", "mlt_Latn", "Maltese"),
    ("", "mni", "mni_Beng", "Meitei (Bengali script)"),
    ("mn", "mon", "khk_Cyrl", "Halh Mongolian"),
    ("", "mos", "mos_Latn", "Mossi"),
    ("mi", "mri", "mri_Latn", "Maori"),
    ("ms", "msa", "zsm_Latn", "Standard Malay"),
    ("my", "mya", "mya_Mymr", "Burmese"),
    ("nl", "nld", "nld_Latn", "Dutch"),
    ("nn", "nno", "nno_Latn", "Norwegian Nynorsk"),
    ("nb", "nob", "nob_Latn", "Norwegian Bokmål"),
    ("ne", "nep", "npi_Deva", "Nepali"),
    ("", "nso", "nso_Latn", "Northern Sotho"),
    ("", "nus", "nus_Latn", "Nuer"),
    ("ny", "nya", "nya_Latn", "Nyanja"),
    ("oc", "oci", "oci_Latn", "Occitan"),
    ("om", "orm", "gaz_Latn", "West Central Oromo"),
    ("or", "ori", "ory_Orya", "Odia"),
    ("", "pag", "pag_Latn", "Pangasinan"),
    ("pa", "pan", "pan_Guru", "Eastern Panjabi"),
    ("", "pap", "pap_Latn", "Papiamento"),
    ("pl", "pol", "pol_Latn", "Polish"),
    ("pt", "por", "por_Latn", "Portuguese"),
    ("", "prs", "prs_Arab", "Dari"),
    ("ps", "pus", "pbt_Arab", "Southern Pashto"),
    ("qu", "que", "quy_Latn", "Ayacucho Quechua"),
    ("ro", "ron", "ron_Latn", "Romanian"),
    ("rn", "run", "run_Latn", "Rundi"),
    ("ru", "rus", "rus_Cyrl", "Russian"),
    ("sg", "sag", "sag_Latn", "Sango"),
    ("sa", "san", "san_Deva", "Sanskrit"),
    ("", "sat", "sat_Beng", "Santali"),
    ("", "scn", "scn_Latn", "Sicilian"),
    ("", "shn", "shn_Mymr", "Shan"),
    ("si", "sin", "sin_Sinh", "Sinhala"),
    ("sk", "slk", "slk_Latn", "Slovak"),
    ("sl", "slv", "slv_Latn", "Slovenian"),
    ("sm", "smo", "smo_Latn", "Samoan"),
    ("sn", "sna", "sna_Latn", "Shona"),
    ("sd", "snd", "snd_Arab", "Sindhi"),
    ("so", "som", "som_Latn", "Somali"),
    ("st", "sot", "sot_Latn", "Southern Sotho"),
    ("es", "spa", "spa_Latn", "Spanish"),
    ("sq", "sqi", "als_Latn", "Tosk Albanian"),
    ("sc", "srd", "srd_Latn", "Sardinian"),
    ("sr", "srp", "srp_Cyrl", "Serbian"),
    ("ss", "ssw", "ssw_Latn", "Swati"),
    ("su", "sun", "sun_Latn", "Sundanese"),
    ("sv", "swe", "swe_Latn", "Swedish"),
    ("sw", "swa", "swh_Latn", "Swahili"),
    ("", "szl", "szl_Latn", "Silesian"),
    ("ta", "tam", "tam_Taml", "Tamil"),
    ("tt", "tat", "tat_Cyrl", "Tatar"),
    ("te", "tel", "tel_Telu", "Telugu"),
    ("tg", "tgk", "tgk_Cyrl", "Tajik"),
    ("tl", "tgl", "tgl_Latn", "Tagalog"),
    ("th", "tha", "tha_Thai", "Thai"),
    ("ti", "tir", "tir_Ethi", "Tigrinya"),
    ("", "taq", "taq_Latn", "Tamasheq (Latin script)"),
    ("", "taq", "taq_Tfng", "Tamasheq (Tifinagh script)"),
    ("", "tpi", "tpi_Latn", "Tok Pisin"),
    ("tn", "tsn", "tsn_Latn", "Tswana"),
    ("ts", "tso", "tso_Latn", "Tsonga"),
    ("tk", "tuk", "tuk_Latn", "Turkmen"),
    ("", "tum", "tum_Latn", "Tumbuka"),
    ("tr", "tur", "tur_Latn", "Turkish"),
    ("tw", "twi", "twi_Latn", "Twi"),
    ("", "tzm", "tzm_Tfng", "Central Atlas Tamazight"),
    ("ug", "uig", "uig_Arab", "Uyghur"),
    ("uk", "ukr", "ukr_Cyrl", "Ukrainian"),
    ("", "umb", "umb_Latn", "Umbundu"),
    ("ur", "urd", "urd_Arab", "Urdu"),
    ("uz", "uzb", "uzn_Latn", "Northern Uzbek"),
    ("", "vec", "vec_Latn", "Venetian"),
    ("vi", "vie", "vie_Latn", "Vietnamese"),
    ("", "war", "war_Latn", "Waray"),
    ("wo", "wol", "wol_Latn", "Wolof"),
    ("xh", "xho", "xho_Latn", "Xhosa"),
    ("yi", "yid", "ydd_Hebr", "Eastern Yiddish"),
    ("yo", "yor", "yor_Latn", "Yoruba"),
    ("", "yue", "yue_Hant", "Yue Chinese (Cantonese)"),
    ("zh", "zho", "zho_Hans", "Chinese (Simplified)"),
    ("zh", "zho", "zho_Hant", "Chinese (Traditional)"),
    ("zu", "zul", "zul_Latn", "Zulu"),
)

# The less common script of a two-script language: its ``lang`` carries a script subtag so it
# never collides with the default script's rows. Every other FLORES code is its script's only one.
_VARIANT_CODES: dict[str, str] = {
    "ace_Arab": "ace-Arab",
    "bjn_Arab": "bjn-Arab",
    "kas_Deva": "ks-Deva",
    "knc_Arab": "kr-Arab",
    "taq_Tfng": "taq-Tfng",
    "zho_Hant": "zh-Hant",
}

# Other spellings users and detectors produce: Chinese tags, macrolanguage members, retired
# ISO 639-1 codes still emitted by detectors (iw, in, ji, jw), common English names. Other
# region tags (pt-BR, de-CH) are handled generically by ``resolve``.
_ALIASES = {
    "zh-cn": "zh", "zh-sg": "zh", "zh-tw": "zh", "zh-hk": "zh", "zh-mo": "zh", "zh-hans": "zh", "cmn": "zh",
    "cmn-hans": "zh", "cmn-hant": "zh-hant", "zh-hant-tw": "zh-hant", "zh-hant-hk": "zh-hant", "chinese": "zh",
    "no": "nb", "nor": "nb", "norwegian": "nb", "iw": "he", "in": "id", "ji": "yi",
    "jw": "jv", "mo": "ro", "fil": "tl", "filipino": "tl", "prs-af": "prs", "fa-af": "prs", "ku-arab": "ckb",
    "sr-cyrl": "sr", "albanian": "sq", "malay": "ms", "swahili": "sw", "persian": "fa", "farsi": "fa",
    "mongolian": "mn", "oromo": "om", "latvian": "lv", "uzbek": "uz", "nepali": "ne", "pashto": "ps",
    "cantonese": "yue", "kurdish": "ku", "yiddish": "yi", "quechua": "qu", "aymara": "ay", "kanuri": "kr",
    "malagasy": "mg", "fulah": "ff", "azerbaijani": "az", "panjabi": "pa", "punjabi": "pa", "tibetan": "bo",
}


def _key(code: str) -> str:
    return code.strip().lower().replace("_", "-").replace(" ", "")


@cache
def _index() -> dict[str, Language]:
    """Every accepted spelling -> Language; default scripts are indexed first so they win."""
    index: dict[str, Language] = {}
    langs = [Language(iso1 or None, iso3, flores, name) for iso1, iso3, flores, name in _TABLE]
    for lang in sorted(langs, key=lambda lang: lang.flores in _VARIANT_CODES):
        keys = (lang.flores, lang.code, lang.iso1 or "", lang.iso3, lang.flores.split("_")[0], lang.name,
                lang.name.split(" (")[0])
        for key in filter(None, map(_key, keys)):
            index.setdefault(key, lang)
    for alias, target in _ALIASES.items():
        index.setdefault(_key(alias), index[_key(target)])
    return index


def all_languages() -> list[Language]:
    """Every FLORES-200 language NLLB-200 knows, in NLLB's code order."""
    by_flores = {lang.flores: lang for lang in _index().values()}
    return [by_flores[flores] for _, _, flores, _ in _TABLE]


def resolve(code: str) -> Language:
    """Resolve ISO 639-1, ISO 639-3, FLORES-200, an alias or a BCP-47 region tag (``de-CH``).

    Unknown codes raise UnknownLanguageError with close suggestions.
    """
    key = _key(code)
    index = _index()
    if key in index:
        return index[key]
    base, _, region = key.partition("-")
    if base in index and (len(region) == 2 or region.isdigit()) and region.isalnum():
        return index[base]  # a region subtag (de-CH, es-419) does not change the language
    raise UnknownLanguageError(f"unknown language code {code!r}{_suggest(key, index)}")


def _suggest(key: str, index: dict[str, Language]) -> str:
    # A known language with an unknown script or region ('deu_Cyrl', 'de-CH') comes first.
    prefix = key.split("-")[0]
    close = ([prefix] if prefix != key and prefix in index else []) + difflib.get_close_matches(
        key, list(index), n=12, cutoff=0.6)
    seen: list[Language] = []
    for match in close:
        if index[match] not in seen:
            seen.append(index[match])
    if not seen:
        return "; FLORES-200 codes look like 'deu_Latn', ISO codes like 'de' or 'deu'"
    shown = ", ".join(f"{lang.code} / {lang.flores} ({lang.name})" for lang in seen[:4])
    return f"; did you mean {shown}?"


def parse_langs(spec: str) -> list[Language]:
    """'de,ar,zh' -> languages, in order, without repeats."""
    out: list[Language] = []
    for part in spec.split(","):
        if part.strip():
            lang = resolve(part)
            if lang not in out:
                out.append(lang)
    if not out:
        raise UnknownLanguageError(f"no language codes in {spec!r}")
    return out
