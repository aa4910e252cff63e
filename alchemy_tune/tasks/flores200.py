"""The languages of SIB-200 (FLORES-200 codes) and the ``sib200`` task's default roles, with their reasons.

Kept apart from the loader (``tasks/sib200.py``) so that the registry can declare the roles without
importing a loader. A language is its release folder: ``<ISO 639-3>_<ISO 15924 script>`` (``zho_Hant``).
Eight ISO codes come in two scripts (:data:`SCRIPT_TWINS`): one URIEL vector, two folders.

Seen (24), chosen for spread rather than size: 16 families (Indo-European eng fra rus hin ell;
Afro-Asiatic arb hau amh heb; Sino-Tibetan zho; Japonic jpn; Koreanic kor; Turkic tur; Austronesian ind
tgl; Austroasiatic vie; Niger-Congo swh yor; Dravidian tam; Uralic fin; Kartvelian kat; Kra-Dai tha;
Quechuan quy; Mongolic khk), 13 scripts (Latin, Cyrillic, Devanagari, Arabic, Han, Japanese, Hangul,
Ethiopic, Tamil, Greek, Georgian, Thai, Hebrew), every inhabited continent, and resource levels from
English to Ayacucho Quechua, Yoruba and Khalkha Mongolian.

Validation (15), spread the same way so that choosing on them is choosing on "a language like the test
languages": each is a held-out member of a seen family, or of a family or script no seen language has
(deu spa pol: close relatives of seen languages in Latin script; urd: a seen language's close relative in
another script; pes: Iranian in Arabic script; zul ibo: Bantu and Volta-Niger; tel: Dravidian in its own
script; est: Uralic; mya: Sino-Tibetan in Myanmar script; khm: Austroasiatic in Khmer script; uzn:
Turkic; ceb: Austronesian; som: Cushitic; hye: Armenian, an unseen script and branch).

Test: every other language (164), but the other-script twins of seen languages (``arb_Latn`` of
``arb_Arab``, ``zho_Hant`` of ``zho_Hans``), which share the seen language's URIEL vector and are left out
unless ``script_twins`` is set.
"""

from __future__ import annotations

SIB200_LANGUAGES: tuple[str, ...] = tuple("""
ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn als_Latn amh_Ethi apc_Arab arb_Arab
arb_Latn ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn azb_Arab azj_Latn bak_Cyrl bam_Latn
ban_Latn bel_Cyrl bem_Latn ben_Beng bho_Deva bjn_Arab bjn_Latn bod_Tibt bos_Latn bug_Latn bul_Cyrl cat_Latn
ceb_Latn ces_Latn cjk_Latn ckb_Arab crh_Latn cym_Latn dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek
eng_Latn epo_Latn est_Latn eus_Latn ewe_Latn fao_Latn fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn
gaz_Latn gla_Latn gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn
hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn jpn_Jpan kab_Latn kac_Latn kam_Latn
kan_Knda kas_Arab kas_Deva kat_Geor kaz_Cyrl kbp_Latn kea_Latn khk_Cyrl khm_Khmr kik_Latn kin_Latn kir_Cyrl
kmb_Latn kmr_Latn knc_Arab knc_Latn kon_Latn kor_Hang lao_Laoo lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn
ltg_Latn ltz_Latn lua_Latn lug_Latn luo_Latn lus_Latn lvs_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Arab
min_Latn mkd_Cyrl mlt_Latn mni_Beng mos_Latn mri_Latn mya_Mymr nld_Latn nno_Latn nob_Latn npi_Deva nqo_Nkoo
nso_Latn nus_Latn nya_Latn oci_Latn ory_Orya pag_Latn pan_Guru pap_Latn pbt_Arab pes_Arab plt_Latn pol_Latn
por_Latn prs_Arab quy_Latn ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva sat_Olck scn_Latn shn_Mymr sin_Sinh
slk_Latn slv_Latn smo_Latn sna_Latn snd_Arab som_Latn sot_Latn spa_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn
swe_Latn swh_Latn szl_Latn tam_Taml taq_Latn taq_Tfng tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi
tpi_Latn tsn_Latn tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn urd_Arab
uzn_Latn vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn yue_Hant zho_Hans zho_Hant zsm_Latn
zul_Latn
""".split())
"""The 205 language folders of the release (``data/annotated/``), in its (alphabetical) order."""

SEEN: tuple[str, ...] = (
    "eng_Latn", "fra_Latn", "rus_Cyrl", "hin_Deva", "ell_Grek", "arb_Arab", "hau_Latn", "amh_Ethi", "heb_Hebr",
    "zho_Hans", "jpn_Jpan", "kor_Hang", "tur_Latn", "ind_Latn", "tgl_Latn", "vie_Latn", "swh_Latn", "yor_Latn",
    "tam_Taml", "fin_Latn", "kat_Geor", "tha_Thai", "quy_Latn", "khk_Cyrl",
)
VAL: tuple[str, ...] = (
    "deu_Latn", "spa_Latn", "pol_Latn", "urd_Arab", "pes_Arab", "zul_Latn", "ibo_Latn", "tel_Telu", "est_Latn",
    "mya_Mymr", "khm_Khmr", "uzn_Latn", "ceb_Latn", "som_Latn", "hye_Armn",
)
HELD_OUT: tuple[str, ...] = tuple(lang for lang in SIB200_LANGUAGES if lang not in SEEN)


def iso_of(lang: str) -> str:
    """The ISO 639-3 part of a folder code (``zho_Hant`` -> ``zho``)."""
    return lang.split("_", 1)[0]


def script_of(lang: str) -> str:
    """The ISO 15924 script of a folder code (``zho_Hant`` -> ``Hant``); '' for a code without one."""
    return lang.split("_", 1)[1] if "_" in lang else ""


def twins_of(lang: str, languages: tuple[str, ...] = SIB200_LANGUAGES) -> tuple[str, ...]:
    """The other-script folders of ``lang``'s ISO code among ``languages``."""
    return tuple(other for other in languages if other != lang and iso_of(other) == iso_of(lang))


SCRIPT_TWINS: tuple[tuple[str, ...], ...] = tuple(sorted({
    tuple(sorted((lang,) + twins_of(lang))) for lang in SIB200_LANGUAGES if twins_of(lang)}))
"""The ISO codes written in two scripts: (ace_Arab, ace_Latn), (arb_Arab, arb_Latn), ... (8 pairs)."""
