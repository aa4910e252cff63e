"""Names, families and scripts of the languages of the bundled and paper tasks, for readable reports.

Keyed by ISO 639-3 / lang2vec code (both the macro-language and the individual code where datasets
differ, e.g. ``swa``/``swh``); a few dataset codes override the script (``zh-TW`` is Traditional Han).
Families are top-level (Glottolog/Ethnologue); unknown codes fall back to the code itself.
"""

from __future__ import annotations

from dataclasses import dataclass

IE, AA, NC, AN, ST, DR, TU, UR, AUA = ("Indo-European", "Afro-Asiatic", "Niger-Congo", "Austronesian",
                                       "Sino-Tibetan", "Dravidian", "Turkic", "Uralic", "Austroasiatic")


@dataclass(frozen=True)
class LangInfo:
    name: str
    family: str
    script: str


_TABLE: dict[str, tuple[str, str, str]] = {
    "eng": ("English", IE, "Latin"), "fra": ("French", IE, "Latin"), "spa": ("Spanish", IE, "Latin"),
    "ita": ("Italian", IE, "Latin"), "deu": ("German", IE, "Latin"), "por": ("Portuguese", IE, "Latin"),
    "ron": ("Romanian", IE, "Latin"), "pol": ("Polish", IE, "Latin"), "rus": ("Russian", IE, "Cyrillic"),
    "ukr": ("Ukrainian", IE, "Cyrillic"), "hin": ("Hindi", IE, "Devanagari"),
    "ben": ("Bengali", IE, "Bengali"),
    "mar": ("Marathi", IE, "Devanagari"), "pan": ("Punjabi", IE, "Gurmukhi"), "urd": ("Urdu", IE, "Arabic"),
    "pes": ("Persian", IE, "Arabic"), "fas": ("Persian", IE, "Arabic"), "hye": ("Armenian", IE, "Armenian"),
    "ell": ("Greek", IE, "Greek"), "isl": ("Icelandic", IE, "Latin"), "lav": ("Latvian", IE, "Latin"),
    "afr": ("Afrikaans", IE, "Latin"), "cat": ("Catalan", IE, "Latin"), "cym": ("Welsh", IE, "Latin"),
    "dan": ("Danish", IE, "Latin"), "nob": ("Norwegian", IE, "Latin"), "nor": ("Norwegian", IE, "Latin"),
    "nld": ("Dutch", IE, "Latin"), "slv": ("Slovenian", IE, "Latin"), "sqi": ("Albanian", IE, "Latin"),
    "als": ("Albanian", IE, "Latin"), "swe": ("Swedish", IE, "Latin"),
    "arb": ("Arabic", AA, "Arabic"), "ara": ("Arabic", AA, "Arabic"),
    "arq": ("Algerian Arabic", AA, "Arabic"),
    "ary": ("Moroccan Arabic", AA, "Arabic"), "heb": ("Hebrew", AA, "Hebrew"),
    "amh": ("Amharic", AA, "Ethiopic"),
    "tir": ("Tigrinya", AA, "Ethiopic"), "hau": ("Hausa", AA, "Latin"), "som": ("Somali", AA, "Latin"),
    "orm": ("Oromo", AA, "Latin"), "gaz": ("Oromo", AA, "Latin"),
    "swh": ("Swahili", NC, "Latin"), "swa": ("Swahili", NC, "Latin"), "ibo": ("Igbo", NC, "Latin"),
    "lin": ("Lingala", NC, "Latin"), "lug": ("Ganda", NC, "Latin"), "run": ("Rundi", NC, "Latin"),
    "sna": ("Shona", NC, "Latin"), "xho": ("Xhosa", NC, "Latin"), "yor": ("Yoruba", NC, "Latin"),
    "kin": ("Kinyarwanda", NC, "Latin"),
    "tgl": ("Tagalog", AN, "Latin"), "ind": ("Indonesian", AN, "Latin"), "jav": ("Javanese", AN, "Latin"),
    "msa": ("Malay", AN, "Latin"), "zsm": ("Malay", AN, "Latin"),
    "cmn": ("Chinese", ST, "Han"), "zho": ("Chinese", ST, "Han"), "mya": ("Burmese", ST, "Myanmar"),
    "jpn": ("Japanese", "Japonic", "Japanese"), "kor": ("Korean", "Koreanic", "Hangul"),
    "tur": ("Turkish", TU, "Latin"), "aze": ("Azerbaijani", TU, "Latin"), "azj": ("Azerbaijani", TU, "Latin"),
    "fin": ("Finnish", UR, "Latin"), "hun": ("Hungarian", UR, "Latin"),
    "kat": ("Georgian", "Kartvelian", "Georgian"),
    "vie": ("Vietnamese", AUA, "Latin"), "khm": ("Khmer", AUA, "Khmer"), "tha": ("Thai", "Kra-Dai", "Thai"),
    "kan": ("Kannada", DR, "Kannada"), "mal": ("Malayalam", DR, "Malayalam"), "tam": ("Tamil", DR, "Tamil"),
    "tel": ("Telugu", DR, "Telugu"), "mon": ("Mongolian", "Mongolic", "Cyrillic"),
    "khk": ("Mongolian", "Mongolic", "Cyrillic"), "pcm": ("Nigerian Pidgin", "Creole", "Latin"),
}
# Dataset codes whose script differs from their language's usual one.
_SCRIPT_BY_DATASET_CODE = {"zh-TW": "Han (Traditional)", "zh-CN": "Han (Simplified)"}


def lookup(lang: str, uriel: str | None = None) -> LangInfo:
    """Info for a dataset code ``lang`` (its URIEL code ``uriel`` is tried first)."""
    for code in (uriel, lang, str(lang).split("-")[0].split("_")[0]):
        if code and code in _TABLE:
            name, family, script = _TABLE[code]
            return LangInfo(name, family, _SCRIPT_BY_DATASET_CODE.get(lang, script))
    return LangInfo(str(lang), "unknown", "unknown")


def label(lang: str, uriel: str | None = None) -> str:
    """``"Swahili (sw-KE)"``; the bare code when the language is not in the table."""
    info = lookup(lang, uriel)
    return lang if info.name == lang else f"{info.name} ({lang})"
