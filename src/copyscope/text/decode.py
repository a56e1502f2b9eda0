"""Raw input bytes → text, plus an exact map from character offsets back to bytes.

Why this module exists: copyscope reports every passage as offsets into the
ORIGINAL file bytes, so decoding has to be (a) deterministic — the same bytes
give the same text on every run and machine — and (b) exactly invertible per
character, whatever the encoding.

Decision order (first that applies wins):

1. a BOM (UTF-32, UTF-8, UTF-16; UTF-32-LE is tested before UTF-16-LE because
   its BOM starts with the UTF-16-LE one);
2. NUL bytes: UTF-16/32 without a BOM if the NULs sit in alternate positions,
   otherwise binary;
3. strict UTF-8 (the fast path for almost every input);
4. a multi-byte ``<meta charset>`` declaration that decodes strictly;
5. GB18030 vs Big5 by a fixed rule: whichever decoding has more *common*
   Chinese characters (see ``_cjk_score``); charset-normalizer is too easily
   swayed on short CJK samples;
6. EUC-JP / Shift_JIS when that reading is at least 20% kana;
7. a single-byte ``<meta charset>`` (only now: "iso-8859-1" is a common lie
   on GBK pages);
8. Western text (cp1252) when its non-ASCII letters sit inside Latin words;
9. charset-normalizer on the first 64 KiB only (so it can never hang), then
   the whole input strictly with its pick.

Known limits: ISO-2022-JP (7-bit) comes out as ASCII; a very short EUC-JP
text can read as Big5; Central European cp1250 text without ť/ź may read as
cp1252. Every decision is a pure function of the bytes.
"""
from __future__ import annotations

import codecs
import functools
import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from copyscope.errors import InputError

_SAMPLE = 64 * 1024                  # charset-normalizer never sees more than this
_SCORE_CHARS = 4000                  # non-ASCII chars inspected by the scoring rules
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Stateless, ASCII-compatible multi-byte codecs: per-character re-encoding gives
# exact byte lengths (checked against the real bytes before it is trusted).
_MULTIBYTE = frozenset({"gb18030", "gbk", "big5", "cp950", "big5hkscs", "shift_jis",
                        "cp932", "euc_jp", "euc_kr", "cp949", "euc_jis_2004"})
_CTRL_RE = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_NONASCII_RE = re.compile("[^\x00-\x7f]")
_HANZI_RE = re.compile("[\u4e00-\u9fff]")
_SPACED_HANZI = re.compile("[\u4e00-\u9fff] [\u4e00-\u9fff]")
_WORD_RE = re.compile(r"[^\W\d_]+")
_ASCII_ALPHA = re.compile("[A-Za-z]")
_META_RE = re.compile(rb"""<meta[^>]{0,300}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{2,40})""", re.I)
_TYPO = frozenset("\u201c\u201d\u2018\u2019\u2013\u2014\u2026\u2022\u20ac\u2122\xab\xbb\xb0\xa0\xa9\xae")
_ALIASES = {"iso8859-1": "latin-1", "gbk": "gb18030", "gb2312": "gb18030"}


@dataclass(frozen=True)
class Decoded:
    """Decoded text plus what is needed to map character offsets back to bytes."""

    text: str            # decoded text, BOM removed, newlines NOT altered
    encoding: str        # canonical name: "utf-8", "utf-8-sig", "utf-16-le", "gb18030", ...
    bom_length: int      # bytes of BOM skipped at the start
    _data: bytes | None = field(default=None, repr=False, compare=False)  # original bytes
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def byte_offsets(self, char_offsets: np.ndarray) -> np.ndarray:
        """Byte offset in the original data (BOM included) of each char offset.

        ``char_offsets`` may range over ``0..len(text)`` inclusive; anything else
        raises ``ValueError`` (negative indices must not silently wrap).
        """
        idx = np.asarray(char_offsets, dtype=np.int64)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) > len(self.text)):
            raise ValueError(f"char offset out of range 0..{len(self.text)}")
        cum = self._cache.get("cum")
        if cum is None:
            cum = np.zeros(len(self.text) + 1, dtype=np.int64)
            np.cumsum(self._widths(), out=cum[1:])
            cum += self.bom_length
            self._cache["cum"] = cum
        return cum[idx]

    def _widths(self) -> np.ndarray:
        """Encoded byte length of every character (computed once, lazily)."""
        enc, text = self.encoding, self.text
        body = self._data[self.bom_length:] if self._data is not None else None
        cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        if enc in ("utf-8", "utf-8-sig"):
            return 1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000).astype(np.int64)
        if enc.startswith("utf-16"):
            return 2 + 2 * (cp >= 0x10000).astype(np.int64)
        if enc.startswith("utf-32"):
            return np.full(len(text), 4, dtype=np.int64)
        if _is_single_byte(enc):
            return np.ones(len(text), dtype=np.int64)
        if body is None:
            body = text.encode(_codec(enc))
        if enc in _MULTIBYTE:
            widths = _multibyte_widths(cp, enc)
            encoded = text.encode(enc)      # a prefix of body: an incomplete tail is left out
            if widths is not None and int(widths.sum()) == len(encoded) and body.startswith(encoded):
                return widths
        return _exact_widths(body, _codec(enc), len(text))


def decode_bytes(data: bytes, *, name: str = "<input>") -> Decoded:
    """Decode ``data`` deterministically; raise ``InputError`` for empty/binary input."""
    data = bytes(data)
    if not data:
        raise InputError(f"{name}: file is empty")
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return _finish(_strict(data[len(bom):], enc, name, len(bom)), enc, len(bom), data, name)
    if b"\x00" in data:
        enc = _sniff_wide(data)
        if enc is None:
            raise InputError(f"{name}: looks like binary data, not text")
        return _finish(_strict(data, enc, name), enc, 0, data, name)
    try:
        return _finish(_dec(data, "utf-8"), "utf-8", 0, data, name)
    except UnicodeDecodeError:
        pass
    enc, text = _decode_legacy(data, name)
    return _finish(text, enc, 0, data, name)


def _finish(text: str, enc: str, bom: int, data: bytes, name: str) -> Decoded:
    """Apply the empty/binary checks that hold whatever the encoding was."""
    if not text.strip():
        raise InputError(f"{name}: file is empty")
    if "\x00" in text or len(_CTRL_RE.findall(text)) * 10 > len(text):
        raise InputError(f"{name}: looks like binary data, not text")
    return Decoded(text, enc, bom, _data=data)


def _dec(data: bytes, codec: str) -> str:
    """Strict decode that leaves out an incomplete character at the very end.

    Callers decode prefixes (a 64 KiB sniff sample) that may stop mid-character;
    such a cut must not make valid UTF-8 or GB18030 look undecodable.  Invalid
    bytes anywhere else still raise.
    """
    return codecs.getincrementaldecoder(codec)("strict").decode(data, final=False)


def _codec(enc: str) -> str:
    return "utf-8" if enc == "utf-8-sig" else enc


def _strict(body: bytes, enc: str, name: str, base: int = 0) -> str:
    try:
        return _dec(body, _codec(enc))
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: looks like binary data, not text "
                         f"(invalid {enc} bytes at offset {base + exc.start})") from None


def _canonical(label: str) -> str:
    """Codec label → canonical name (raises LookupError for unknown labels)."""
    name = codecs.lookup(label).name
    return _ALIASES.get(name, name)


@functools.lru_cache(maxsize=None)
def _is_single_byte(codec: str) -> bool:
    """True when every byte decodes to exactly one char (charmap codecs)."""
    try:   # the second probe rules out UTF-8, where each bad byte is one U+FFFD
        return (len(bytes(range(256)).decode(codec, "replace")) == 256
                and len(b"\xc3\xa9\xe4\xb8\xad".decode(codec, "replace")) == 5)
    except LookupError:
        return False


def _sniff_wide(data: bytes) -> str | None:
    """UTF-32/UTF-16 without BOM: NUL bytes in fixed positions of each unit."""
    sample = data[:4096]
    if len(data) % 4 == 0 and len(sample) >= 4:
        q = np.frombuffer(sample[: len(sample) // 4 * 4], dtype=np.uint8).reshape(-1, 4) == 0
        if (q[:, 2] & q[:, 3]).mean() >= 0.9 and q[:, 0].mean() < 0.5:
            return "utf-32-le"
        if (q[:, 0] & q[:, 1]).mean() >= 0.9 and q[:, 3].mean() < 0.5:
            return "utf-32-be"
    if len(data) % 2 == 0 and len(sample) >= 2:
        p = np.frombuffer(sample[: len(sample) // 2 * 2], dtype=np.uint8).reshape(-1, 2) == 0
        even, odd = p[:, 0].mean(), p[:, 1].mean()
        if odd >= 0.3 and even <= 0.05:
            return "utf-16-le"
        if even >= 0.3 and odd <= 0.05:
            return "utf-16-be"
    return None


def _decode_legacy(data: bytes, name: str) -> tuple[str, str]:
    """Non-UTF-8 input without NULs: meta charset, CJK rule, Western rule, detector."""
    meta = _from_meta(data)
    if meta and not _is_single_byte(meta[0]):
        return meta                     # a multi-byte declaration is specific: trust it
    found = _cjk_choice(data) or _japanese_choice(data) or meta or _western_choice(data)
    if found:
        return found
    enc = _detect(data[:_SAMPLE])
    if enc is None:
        raise InputError(f"{name}: looks like binary data, not text")
    try:
        return enc, _dec(data, enc)
    except UnicodeDecodeError as exc:
        text = data.decode(enc, "replace") if _is_single_byte(enc) else ""
        if text and text.count("\ufffd") * 10 <= len(text):
            return enc, text            # only single-byte text may be patched up
        raise InputError(f"{name}: looks like binary data, not text "
                         f"(invalid {enc} bytes at offset {exc.start})") from None


def _from_meta(data: bytes) -> tuple[str, str] | None:
    m = _META_RE.search(data[:4096])
    if not m:
        return None
    try:
        enc = _canonical(m.group(1).decode("ascii"))
    except LookupError:
        return None
    candidates = {"big5": ("big5", "cp950"), "latin-1": ("cp1252",)}.get(enc, (enc,))
    for cand in candidates:
        if cand.startswith(("utf-16", "utf-32", "utf-7")):
            continue
        try:
            return cand, _dec(data, cand)
        except UnicodeDecodeError:
            continue
    return None


@functools.lru_cache(maxsize=1)
def _common_hanzi() -> frozenset[str]:
    """GB2312 level 1 ∪ Big5 level 1: the frequent simplified and traditional hanzi."""
    chars: set[str] = set()
    for lead in range(0xB0, 0xD8):
        for trail in range(0xA1, 0xFF):
            chars.update(bytes((lead, trail)).decode("gb2312", "ignore"))
    for lead in range(0xA4, 0xC7):
        for trail in itertools.chain(range(0x40, 0x7F), range(0xA1, 0xFF) if lead < 0xC6 else ()):
            chars.update(bytes((lead, trail)).decode("big5", "ignore"))
    return frozenset(chars)


def _cjk_score(text: str) -> int | None:
    """common − 2·bad over the first non-ASCII chars; None if it is not Chinese.

    Big5 bytes read as GBK give kana, Cyrillic, box drawing and private-use
    chars; GB2312 bytes read as Big5 give rare level-2 hanzi or fail outright.
    Latin-1 read as either gives rare hanzi, which count as neither.
    """
    common = _common_hanzi()
    good = bad = total = hanzi = end = 0
    for m in itertools.islice(_NONASCII_RE.finditer(text), _SCORE_CHARS):
        ch, end = m.group(), m.end()
        o = ord(ch)
        total += 1
        hanzi += 0x4E00 <= o <= 0x9FFF
        if ch in common or 0x3000 <= o <= 0x303F or 0xFF01 <= o <= 0xFF5E or 0x2010 <= o <= 0x2027 or o == 0xB7:
            good += 1
        elif not 0x4E00 <= o <= 0x9FFF:
            bad += 1
    if total == 0 or good * 5 < total * 4:
        return None
    if hanzi >= 20 and len(_SPACED_HANZI.findall(text, 0, end)) * 10 > hanzi:
        return None                     # words between spaces: EUC-KR Hangul, not Chinese
    return good - 2 * bad


def _cjk_choice(data: bytes) -> tuple[str, str] | None:
    best: tuple[int, str, str] | None = None
    for enc in ("gb18030", "big5", "cp950"):
        if enc == "cp950" and best is not None and best[1] == "big5":
            continue                      # cp950 ⊃ big5: same text, same score
        try:
            text = _dec(data, enc)
        except UnicodeDecodeError:
            continue
        score = _cjk_score(text)
        if enc != "gb18030" and not _big5_trails_plausible(text):
            score = None
        if score is not None and (best is None or score > best[0]):
            best = (score, enc, text)
    return (best[1], best[2]) if best else None


def _japanese_choice(data: bytes) -> tuple[str, str] | None:
    """EUC-JP / Shift_JIS when ≥ 20% of the non-ASCII chars are kana.

    Chinese or Korean bytes read as these codecs give kanji, half-width
    katakana or failures, hardly ever full-width kana.
    """
    for enc in ("euc_jp", "cp932"):
        try:
            text = _dec(data, enc)
        except UnicodeDecodeError:
            continue
        chars = [m.group() for m in itertools.islice(_NONASCII_RE.finditer(text), _SCORE_CHARS)]
        kana = sum("\u3040" <= ch <= "\u30ff" for ch in chars)
        if chars and kana * 5 >= len(chars):
            return enc, text
    return None


def _big5_trails_plausible(text: str) -> bool:
    """Real Big5 uses trail bytes 0x40-0x7E for ~40% of hanzi; EUC-JP/EUC-KR never do."""
    chars = [m.group() for m in itertools.islice(_HANZI_RE.finditer(text), 2000)]
    if len(chars) < 20:
        return True
    low = sum(ch.encode("cp950")[1] < 0x7F for ch in chars)
    return low * 10 >= len(chars)


def _western_choice(data: bytes) -> tuple[str, str] | None:
    """cp1252 when ≥ 80% of non-ASCII chars are letters inside Latin words or typography.

    Cyrillic/Greek bytes read as cp1252 give words made only of accented
    letters; Polish ż/ł/ą read as cp1252 give ¿ ³ ¹ inside words.
    """
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    ok = total = 0
    words = _WORD_RE.finditer(text)       # walked in step with the chars: linear time
    word, verdict = None, False
    for m in itertools.islice(_NONASCII_RE.finditer(text), _SCORE_CHARS):
        i, ch = m.start(), m.group()
        total += 1
        prev = text[i - 1] if i else " "
        if ch in _TYPO or (ch in "\xbf\xa1" and not prev.isalpha()):
            ok += 1
        elif ch.isalpha():
            while word is None or word.end() <= i:
                word = next(words, None)
                if word is None:
                    break
                verdict = word.end() - word.start() == 1 or bool(_ASCII_ALPHA.search(word.group()))
            ok += word is not None and word.start() <= i and verdict
    return ("cp1252", text) if total and ok * 5 >= total * 4 else None


def _detect(sample: bytes) -> str | None:
    """charset-normalizer's best guess for a bounded sample (imported lazily)."""
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        return None
    try:
        enc = _canonical(best.encoding)
    except LookupError:
        return None
    try:   # EBCDIC & co. are never what a modern text file is; UTF-16/32 need NULs
        ascii_ok = b"Az09 <>\n".decode(enc) == "Az09 <>\n"
    except UnicodeDecodeError:
        ascii_ok = False
    return enc if ascii_ok and not enc.startswith(("utf-16", "utf-32")) else None


def _multibyte_widths(cp: np.ndarray, enc: str) -> np.ndarray | None:
    """ASCII → 1 byte; each distinct non-ASCII char encoded once."""
    widths = np.ones(len(cp), dtype=np.int64)
    mask = cp >= 0x80
    if mask.any():
        uniq, inv = np.unique(cp[mask], return_inverse=True)
        try:
            lens = np.array([len(chr(c).encode(enc)) for c in uniq.tolist()], dtype=np.int64)
        except (UnicodeEncodeError, ValueError):
            return None
        widths[mask] = lens[inv]
    return widths


def _exact_widths(body: bytes, codec: str, n_chars: int) -> np.ndarray:
    """Slow but exact: feed the bytes one at a time to an incremental decoder."""
    dec = codecs.getincrementaldecoder(codec)("strict")
    ends: list[int] = []
    view = memoryview(body)
    for i in range(len(body)):
        ends.extend([i + 1] * len(dec.decode(view[i:i + 1])))
    try:
        ends.extend([len(body)] * len(dec.decode(b"", final=True)))
    except UnicodeDecodeError:
        pass                            # incomplete tail, left out of the text
    if len(ends) != n_chars:
        raise ValueError(f"{codec}: bytes do not decode to the stored text")
    return np.diff(np.array([0, *ends], dtype=np.int64))
