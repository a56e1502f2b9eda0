"""Tests for copyscope.text.decode: encoding decisions and exact byte offsets."""
from __future__ import annotations

import codecs
import random
import time

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from copyscope.errors import InputError
from copyscope.text.decode import Decoded, decode_bytes

GB_TEXT = "北京时间昨日，国务院新闻办公室举行发布会，介绍今年前三季度国民经济运行情况。我们认为这是一个好消息。"
BIG5_TEXT = "北京時間昨日，國務院新聞辦公室舉行發佈會，介紹今年前三季度國民經濟運行情況。我們認為這是一個好消息。"


def _check_offsets(d: Decoded, data: bytes, codec: str) -> None:
    offs = d.byte_offsets(np.arange(len(d.text) + 1))
    assert offs[0] == d.bom_length and offs[-1] == len(data)
    for i, off in enumerate(offs.tolist()):
        assert data[d.bom_length:off].decode(codec) == d.text[:i]


# --- round trips ---------------------------------------------------------------

@pytest.mark.parametrize("text", ["hello world\r\nline two\n", "naïve café 中文 😀\n"])
def test_utf8_round_trip(text):
    data = text.encode("utf-8")
    d = decode_bytes(data)
    assert (d.text, d.encoding, d.bom_length) == (text, "utf-8", 0)
    _check_offsets(d, data, "utf-8")


def test_utf8_sig():
    data = codecs.BOM_UTF8 + "ünïcode\ntext".encode()
    d = decode_bytes(data)
    assert (d.text, d.encoding, d.bom_length) == ("ünïcode\ntext", "utf-8-sig", 3)
    _check_offsets(d, data, "utf-8")


@pytest.mark.parametrize("enc,bom", [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
                                     ("utf-32-le", codecs.BOM_UTF32_LE), ("utf-32-be", codecs.BOM_UTF32_BE)])
def test_wide_with_bom(enc, bom):
    text = "Hello 世界 😀\r\nbye"
    data = bom + text.encode(enc)
    d = decode_bytes(data)
    assert (d.text, d.encoding, d.bom_length) == (text, enc, len(bom))
    _check_offsets(d, data, enc)


@pytest.mark.parametrize("enc", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_wide_without_bom(enc):
    text = "Plain English text, no byte order mark at all.\n" * 3
    d = decode_bytes(text.encode(enc))
    assert (d.text, d.encoding, d.bom_length) == (text, enc, 0)


@pytest.mark.parametrize("enc,text", [("gb18030", GB_TEXT), ("big5", BIG5_TEXT)])
def test_chinese_legacy(enc, text):
    data = text.encode(enc)
    d = decode_bytes(data)
    assert (d.text, d.encoding) == (text, enc)
    _check_offsets(d, data, enc)


@pytest.mark.parametrize("enc,text", [("gb18030", GB_TEXT), ("big5", BIG5_TEXT)])
def test_chinese_web_page_with_long_ascii_head(enc, text):
    page = ("<!DOCTYPE html><html><head><script>var a = 1;</script>"
            + '<link rel="stylesheet" href="/s.css">' * 150
            + f"</head><body><p>{text * 5}</p></body></html>")
    d = decode_bytes(page.encode(enc))
    assert (d.text, d.encoding) == (page, enc)


def test_short_chinese_both_ways():
    assert decode_bytes("中文测试".encode("gb18030")).encoding == "gb18030"
    assert decode_bytes("中文測試".encode("big5")).encoding == "big5"


def test_meta_charset_is_honoured():
    page = '<html><head><meta charset="gb2312"></head><body>你好，世界</body></html>'
    d = decode_bytes(page.encode("gbk"))
    assert (d.text, d.encoding) == (page, "gb18030")


def test_wrong_single_byte_meta_loses_to_cjk_rule():
    page = '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">' + GB_TEXT
    assert decode_bytes(page.encode("gb18030")).encoding == "gb18030"


@pytest.mark.parametrize("enc,text", [
    ("euc_kr", "대한민국은 민주공화국이다. 모든 국민은 인간으로서의 존엄과 가치를 가지며, 행복을 추구할 권리를 가진다."),
    ("euc_jp", "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗い所で泣いていた事だけは記憶している。"),
    ("shift_jis", "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"),
])
def test_other_cjk_not_mistaken_for_chinese(enc, text):
    d = decode_bytes(text.encode(enc))
    assert d.text == text and d.encoding not in ("gb18030", "big5", "cp950")
    _check_offsets(d, text.encode(enc), d.encoding)


@pytest.mark.parametrize("text", ["café résumé", "Ça va? Très bien. À bientôt.",
                                  "\u201cQuoted\u201d \u2013 it\u2019s fine\u2026", "Ele é um homem. Não há.",
                                  "¿Cómo estás? ¡Muy bien!"])
def test_western_single_byte(text):
    data = text.encode("cp1252")
    d = decode_bytes(data)
    assert d.text == text and d.encoding in ("cp1252", "latin-1")
    _check_offsets(d, data, d.encoding)


def test_cyrillic_single_byte_not_read_as_western():
    text = "Съешь же ещё этих мягких французских булок, да выпей чаю."
    assert decode_bytes(text.encode("cp1251")).text == text


@pytest.mark.parametrize("enc,text,cut", [("utf-8", GB_TEXT * 3, 1), ("utf-8", GB_TEXT * 3, 2),
                                          ("gb18030", GB_TEXT * 3, 1), ("big5", BIG5_TEXT * 3, 1)])
def test_sample_cut_mid_character(enc, text, cut):
    """A prefix sample (e.g. the first 64 KiB) may end inside a character."""
    data = text.encode(enc)[:len(text[:-1].encode(enc)) + cut]
    d = decode_bytes(data)
    assert (d.encoding, d.text) == (enc, text[:-1])
    assert d.byte_offsets([len(d.text)])[0] == len(text[:-1].encode(enc))
    _check_offsets(d, data[:len(text[:-1].encode(enc))], enc)


def test_newlines_untouched():
    assert decode_bytes(b"a\r\nb\rc\n").text == "a\r\nb\rc\n"


# --- refusals ------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, b"  \n\t\r\n "])
def test_empty(data):
    with pytest.raises(InputError, match="f.txt: file is empty"):
        decode_bytes(data, name="f.txt")


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06\x00\x00\x00",
    random.Random(1).randbytes(4000),
    b"text with a \x00 NUL byte in it",
    bytes(range(1, 32)) * 20,
    b"\xe9" * 50_000,
])
def test_binary(data):
    with pytest.raises(InputError, match="x.bin: looks like binary data, not text"):
        decode_bytes(data, name="x.bin")


def test_binary_with_random_nuls_property():
    rng = random.Random(7)
    for _ in range(50):
        data = bytearray(rng.randrange(256) for _ in range(rng.randrange(20, 3000)))
        data[rng.randrange(len(data))] = 0
        with pytest.raises(InputError, match="binary"):
            decode_bytes(bytes(data))


def test_invalid_utf16_after_bom_raises():
    with pytest.raises(InputError, match="binary.*offset 6"):   # lone low surrogate
        decode_bytes(codecs.BOM_UTF16_LE + "ab".encode("utf-16-le") + b"\x00\xdcc\x00")


def test_incomplete_final_character_is_left_out():
    d = decode_bytes(codecs.BOM_UTF16_LE + b"a\x00b")
    assert (d.text, d.encoding) == ("a", "utf-16-le")
    assert d.byte_offsets([1])[0] == 4


def test_large_input_is_fast():
    data = ("中文测试，这是一个很长的文本。" * 100_000).encode("gb18030")
    t = time.perf_counter()
    d = decode_bytes(data)
    assert d.byte_offsets([len(d.text)])[0] == len(data)
    assert time.perf_counter() - t < 10


# --- byte_offsets ----------------------------------------------------------------

def test_byte_offsets_range_checked():
    d = decode_bytes("abc".encode())
    assert d.byte_offsets(np.array([], dtype=np.int64)).shape == (0,)
    with pytest.raises(ValueError):
        d.byte_offsets([4])
    with pytest.raises(ValueError):
        d.byte_offsets([-1])


def test_byte_offsets_slow_path_codec():
    # johab is not on the fast-path list: exercises the incremental-decoder path.
    text = "한국어 텍스트 abc 한글"
    data = text.encode("johab")
    _check_offsets(Decoded(text, "johab", 0), data, "johab")


_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\n\t\r"),
                min_size=1, max_size=60).filter(lambda t: t.strip())
_HANZI = st.text(st.sampled_from(list(GB_TEXT + "abc def\n,.")), min_size=4, max_size=80).filter(
    lambda t: sum(ord(c) > 127 for c in t) >= 4)


def _valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(_TEXT, st.data())
def test_property_utf8(text, data):
    raw = text.encode("utf-8")
    d = decode_bytes(raw)
    i = data.draw(st.integers(0, len(text)))
    assert raw[:d.byte_offsets([i])[0]].decode("utf-8") == text[:i]


@settings(max_examples=150, deadline=None)
@given(_TEXT, st.data())
def test_property_utf16le_bom(text, data):
    raw = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    d = decode_bytes(raw)
    assert (d.encoding, d.bom_length) == ("utf-16-le", 2)
    i = data.draw(st.integers(0, len(text)))
    off = d.byte_offsets([i])[0]
    assert raw[2:off].decode("utf-16-le") == text[:i]


@settings(max_examples=150, deadline=None)
@given(_TEXT, st.data())
def test_property_gb18030_any_text(text, data):
    raw = text.encode("gb18030")
    d = Decoded(text, "gb18030", 0)
    i = data.draw(st.integers(0, len(text)))
    assert raw[:d.byte_offsets([i])[0]].decode("gb18030") == text[:i]


@settings(max_examples=100, deadline=None)
@given(_HANZI, st.data())
def test_property_gb18030_detected(text, data):
    raw = text.encode("gb18030")
    assume(not _valid_utf8(raw))        # UTF-8 is tried first, by design (e.g. 一 = D2 BB)
    d = decode_bytes(raw)
    assert (d.text, d.encoding) == (text, "gb18030")
    idx = data.draw(st.lists(st.integers(0, len(text)), min_size=1, max_size=5))
    for i, off in zip(idx, d.byte_offsets(np.array(idx)).tolist()):
        assert raw[:off].decode("gb18030") == text[:i]
