"""Tests for copyscope.text.normalize: folding, token streams, spans, and the on-disk format.

The golden file ``tests/golden/fingerprints_v1.json`` pins the index keys of three
small texts: fingerprints are stored in registries on disk, so any change to the
fold table, the token hash, the k-gram hash or winnowing silently orphans every
registered work. Regenerate it deliberately with ``COPYSCOPE_REGEN=1 pytest ...``
(and bump the algorithm version / fold table name when you do).
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copyscope.model import Artifact
from copyscope.text.normalize import fold_table, tokenize
from copyscope.text.plugin import ALGORITHM, TextModality

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden") / "fingerprints_v1.json"
REGEN = os.environ.get("COPYSCOPE_REGEN") == "1"


def words(text: str) -> list[int]:
    return tokenize(text)["word"].hashes.tolist()


def cjk(text: str) -> list[int]:
    return tokenize(text)["cjk"].hashes.tolist()


def word_texts(text: str) -> list[str]:
    s = tokenize(text)["word"]
    return [text[a:b] for a, b in zip(s.starts.tolist(), s.ends.tolist())]


# --- folding facts: each pair must produce identical token hashes ---------------------

FOLDS = {
    "fullwidth_latin": ("ＣＯＰＹ ｃｏｐｙ", "copy copy"),
    "fullwidth_digits": ("２０２４", "2024"),
    "case": ("The LIGHTHOUSE Keeper", "the lighthouse keeper"),
    "accents": ("café naïve résumé Ångström", "cafe naive resume angstrom"),
    "combining_accent": ("cafe\u0301", "cafe"),
    "sharp_s": ("Straße", "strasse"),
    "capital_sharp_s": ("STRASSE", "straße"),
    "ligature_fi": ("ﬁne ﬂow", "fine flow"),
    "traditional_to_simplified": ("漢字", "汉字"),
    "traditional_sentence": ("這是一個關於茶葉的報導", "这是一个关于茶叶的报导"),
    "cyrillic_homoglyph_a": ("аpple", "apple"),
    "cyrillic_homoglyphs_mixed": ("сорy", "copy"),
    "greek_omicron": ("hοme", "home"),
    "zero_width_space_inside_word": ("co\u200bpy", "copy"),
    "soft_hyphen_inside_word": ("co\u00adpy", "copy"),
    "zero_width_joiner_inside_word": ("co\u200dpy", "copy"),
    "word_joiner_inside_word": ("co\u2060py", "copy"),
    "bom_inside_word": ("co\ufeffpy", "copy"),
    "punctuation_ignored": ("Hello, world! (It's) fine...", "hello world it s fine"),
    "whitespace_ignored": ("hello \t\n\n  world\u3000again\u00a0now", "hello world again now"),
    "cjk_punctuation_ignored": ("你好，世界。", "你好 世界"),
    "fullwidth_cjk_space": ("你好\u3000世界", "你好世界"),
}


@pytest.mark.parametrize("variant,plain", list(FOLDS.values()), ids=list(FOLDS))
def test_fold(variant, plain):
    a, b = tokenize(variant), tokenize(plain)
    assert a["word"].hashes.tolist() == b["word"].hashes.tolist()
    assert a["cjk"].hashes.tolist() == b["cjk"].hashes.tolist()
    assert len(a["word"]) + len(a["cjk"]) > 0


DISTINCT = {
    "different_words": ("copy", "cope"),
    "anagram_words_differ": ("ab", "ba"),
    "digits_are_not_letters": ("l0ve", "love"),
    "cyrillic_non_homoglyph_kept": ("дом", "dom"),
    "simplified_distinct_chars": ("汉", "字"),
    "japanese_kana_not_folded_to_kanji": ("か", "力"),
}


@pytest.mark.parametrize("a,b", list(DISTINCT.values()), ids=list(DISTINCT))
def test_no_overfolding(a, b):
    assert tokenize(a)["word"].hashes.tolist() + tokenize(a)["cjk"].hashes.tolist() != \
        tokenize(b)["word"].hashes.tolist() + tokenize(b)["cjk"].hashes.tolist()


@pytest.mark.parametrize("invisible", ["\U000E0041", "\U000E0001", "\U000E0100"],
                         ids=["tag_latin_a", "language_tag", "variation_selector_17"])
def test_invisible_supplementary_chars_removed_inside_word(invisible):
    assert words(f"co{invisible}py") == words("copy")


# --- streams ---------------------------------------------------------------------------

def test_word_and_cjk_streams_are_separated():
    text = "Ｃopy 漢字 ﬁne"
    s = tokenize(text)
    assert word_texts(text) == ["Ｃopy", "ﬁne"]
    assert s["word"].starts.tolist() == [0, 8] and s["word"].ends.tolist() == [4, 11]
    assert s["cjk"].starts.tolist() == [5, 6] and s["cjk"].ends.tolist() == [6, 7]
    assert cjk(text) == cjk("汉字")


def test_cjk_chars_split_words_without_spaces():
    text = "hello世界foo"
    assert word_texts(text) == ["hello", "foo"]
    assert tokenize(text)["cjk"].starts.tolist() == [5, 6]


@pytest.mark.parametrize("text,n_cjk", [
    ("こんにちは", 5),            # hiragana
    ("カタカナ", 4),              # katakana
    ("안녕하세요", 5),            # hangul
    ("สวัสดี", 4),               # thai: combining vowels/tones are removed, 4 base letters stay
    ("𠀀𠀁", 2),                  # CJK extension B (astral plane)
])
def test_scripts_without_spaces_are_char_tokens(text, n_cjk):
    s = tokenize(text)
    assert len(s["cjk"]) == n_cjk and len(s["word"]) == 0


@pytest.mark.parametrize("text,expected", [
    ("snake_case_name", ["snake", "case", "name"]),
    ("version 2.10", ["version", "2", "10"]),
    ("привет мир", ["привет", "мир"]),
    ("e-mail", ["e", "mail"]),
    ("😀emoji😀", ["emoji"]),
])
def test_word_boundaries(text, expected):
    assert word_texts(text) == expected


def test_empty_and_separator_only_text():
    for text in ("", "   \n\t", "!!! ... ---", "\u200b\u200b"):
        s = tokenize(text)
        assert len(s["word"]) == 0 and len(s["cjk"]) == 0
        assert s["word"].hashes.dtype == np.uint64


def test_expansion_keeps_spans_on_the_source_char():
    text = "x ﬁﬂ ß y"
    s = tokenize(text)["word"]
    assert [text[a:b] for a, b in zip(s.starts.tolist(), s.ends.tolist())] == ["x", "ﬁﬂ", "ß", "y"]
    assert words("ﬁﬂ") == words("fifl")


def test_zero_width_span_covers_the_invisible_char():
    text = "a co\u200bpy b"
    s = tokenize(text)["word"]
    assert (int(s.starts[1]), int(s.ends[1])) == (2, 7)
    assert text[2:7] == "co\u200bpy"


def test_token_hash_is_position_independent():
    a = tokenize("copy at the start")["word"].hashes
    b = tokenize("at the end copy")["word"].hashes
    assert a[0] == b[3]


def test_tokenize_is_deterministic():
    text = "Determinism: 同一输入 gives the same ﬁngerprint every time. Ｆｕｌｌ."
    a, b = tokenize(text), tokenize(text)
    for kind in ("word", "cjk"):
        assert a[kind].kind == kind
        for field in ("hashes", "starts", "ends"):
            np.testing.assert_array_equal(getattr(a[kind], field), getattr(b[kind], field))
        assert a[kind].hashes.dtype == np.uint64 and a[kind].starts.dtype == np.int64


# --- spans, by hypothesis ---------------------------------------------------------------

MIXED = st.text(
    alphabet=st.sampled_from(list(
        "abcXYZ019 ,.!?-_'\t\n\r" "éÅßﬁﬂ" "ＡＢｃ１" "漢字汉你好。，" "かカ한" "аеосрх" "ΑΒαο"
        "\u200b\u00ad\u200d\u0301\u0308\ufeff\u3000\u00a0" "😀𠀀")),
    max_size=60)


def _assert_spans_sane(text: str) -> None:
    for kind, s in tokenize(text).items():
        starts, ends = s.starts.tolist(), s.ends.tolist()
        assert len(starts) == len(ends) == len(s)
        prev_end = 0
        for a, b in zip(starts, ends):
            assert 0 <= a < b <= len(text), (kind, a, b)
            piece = text[a:b]
            assert piece and not any(ch.isspace() for ch in piece), (kind, piece)
            if kind == "word":
                assert a >= prev_end, "word tokens overlap or go backwards"
            else:
                assert b - a == 1 and a >= prev_end
            prev_end = b


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MIXED)
def test_spans_point_at_nonblank_source_text_mixed(text):
    _assert_spans_sane(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_spans_point_at_nonblank_source_text_any_unicode(text):
    _assert_spans_sane(text)


@settings(max_examples=200, deadline=None)
@given(MIXED)
def test_a_tokens_source_text_retokenizes_to_the_same_token(text):
    s = tokenize(text)["word"]
    for h, a, b in zip(s.hashes.tolist(), s.starts.tolist(), s.ends.tolist()):
        assert words(text[a:b]) == [h]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["alpha", "beta", "gamma", "漢", "字", "Ｆｕｌｌ"]), max_size=12),
       st.sampled_from([" ", "  ", "\n", ", ", "\t"]))
def test_separator_choice_does_not_change_hashes(tokens, sep):
    assert words(sep.join(tokens)) == words(" ".join(tokens))
    assert cjk(sep.join(tokens)) == cjk(" ".join(tokens))


# --- golden fingerprints: protects the on-disk format ----------------------------------

GOLDEN_TEXTS = {
    "en": ("en.txt", "The keeper climbed one hundred and fourteen iron steps at dusk, as he always had,\n"
                     "and lit the great lamp that had warned ships off the reef for a century.\n"),
    "zh": ("zh.txt", "永宁桥是一座单孔石拱桥，始建于清代，横跨青溪镇的小河。去年夏天的一场暴雨冲毁了桥墩的一角，"
                     "镇里随即组织工匠修复。\n"),
    "mixed": ("mixed.html", "<html><body><h1>读书会 Reading Club</h1><p>Healthy soil is alive: "
                            "一把泥土里的微生物比地球上的人还多。 Compost feeds it &amp; mulch protects it.</p>"
                            "</body></html>\n"),
}


def _golden_now() -> dict:
    plugin = TextModality()
    out = {"algorithm": ALGORITHM, "texts": {}}
    for key, (name, text) in GOLDEN_TEXTS.items():
        fp = plugin.fingerprint(Artifact(text.encode("utf-8"), origin=name))
        keys = fp.index_keys()
        assert keys.dtype == np.uint64
        out["texts"][key] = {"name": name, "text": text,
                             "index_keys": [f"{int(k):016x}" for k in keys.tolist()]}
    return out


def test_golden_index_keys():
    now = _golden_now()
    if REGEN:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(now, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN} missing: run with COPYSCOPE_REGEN=1 to create it"
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert golden["algorithm"] == now["algorithm"]
    assert set(golden["texts"]) == set(now["texts"])
    for key, want in golden["texts"].items():
        got = now["texts"][key]
        assert got["text"] == want["text"], f"{key}: golden input text changed; regenerate"
        assert got["index_keys"] == want["index_keys"], (
            f"{key}: index keys changed — the on-disk fingerprint format moved. If intended, bump "
            f"the algorithm version and regenerate with COPYSCOPE_REGEN=1")


def test_golden_file_has_sorted_unique_nonempty_keys():
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for key, entry in golden["texts"].items():
        ks = [int(h, 16) for h in entry["index_keys"]]
        assert ks, key
        assert ks == sorted(set(ks)), key


# --- the shipped fold table equals a fresh build ---------------------------------------

def _load_build_script():
    path = ROOT / "scripts" / "build_fold_table.py"
    spec = importlib.util.spec_from_file_location("_copyscope_build_fold_table", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shipped_fold_table_equals_fresh_build():
    opencc = pytest.importorskip("opencc")
    script = _load_build_script()
    fresh = script.build(opencc.OpenCC("t2s"))
    with np.load(ROOT / "src/copyscope/text/data/fold-v1.npz", allow_pickle=False) as shipped:
        assert set(shipped.files) == set(fresh)
        for name, arr in fresh.items():
            assert shipped[name].dtype == arr.dtype, name
            np.testing.assert_array_equal(shipped[name], arr, err_msg=name)


def test_no_whitespace_char_is_a_token_or_skip_char():
    """Deterministic backing for the span property above: over the whole table, every
    whitespace code point is a separator, and every expansion is made of word chars."""
    ft = fold_table()
    cls = ft.table >> np.uint32(24)
    for cp in range(ft.table.shape[0]):
        if not 0xD800 <= cp <= 0xDFFF and chr(cp).isspace():
            assert cls[cp] == 0, hex(cp)
    for exp in ft.expansions:
        assert exp.shape[0] >= 2 and np.all(cls[exp] == 1)


def test_fold_table_loader_matches_file_layout():
    ft = fold_table()
    assert ft.table.shape == (0x32000,)
    assert np.all(np.diff(ft.expand_cp.astype(np.int64)) > 0)
    assert len(ft.expansions) == ft.expand_cp.shape[0]
    i = int(np.searchsorted(ft.expand_cp, ord("ﬁ")))
    assert ft.expand_cp[i] == ord("ﬁ") and "".join(map(chr, ft.expansions[i].tolist())) == "fi"
    i = int(np.searchsorted(ft.expand_cp, ord("ß")))
    assert "".join(map(chr, ft.expansions[i].tolist())) == "ss"
