#!/usr/bin/env python3
"""Build ``copyscope/text/data/fold-v1.npz``: the per-code-point fold table.

Why a shipped table: the text engine maps every code point through one
vectorised lookup (≥10 MB/s per core), and fingerprints must not change when
the Python (Unicode) or OpenCC version on a machine changes. The table is the
frozen result of: NFKD → drop combining marks → NFKC → casefold → OpenCC t2s →
homoglyph folding, restricted to results that are a single code point.

Layout (little-endian uint32, one entry per code point below TABLE_SIZE):
    bits 0-23  folded code point (0 for separators)
    bits 24-25 class: 0 separator, 1 word char, 2 CJK-like char, 3 skip (removed)
Plus ``expand_cp`` (uint32) / ``expand_to`` (UTF-32-LE of each expansion,
NUL-separated) for word characters whose fold is several characters (ﬁ → fi).

Run: ``python scripts/build_fold_table.py`` (needs ``opencc``). A test checks
that the shipped file equals a fresh build when OpenCC is importable.
"""
from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import numpy as np

TABLE_SIZE = 0x32000
SEP, WORD, CJK, SKIP = 0, 1, 2, 3
OUT = Path(__file__).resolve().parents[1] / "src/copyscope/text/data/fold-v1.npz"

# Scripts written without spaces between words: each character is a token.
CHAR_SCRIPTS = [
    (0x0E00, 0x0EFF),   # Thai, Lao
    (0x1000, 0x109F),   # Myanmar
    (0x1780, 0x17FF),   # Khmer
    (0x2E80, 0x2FDF),   # CJK radicals
    (0x3040, 0x30FF),   # Hiragana, Katakana
    (0x3100, 0x312F),   # Bopomofo
    (0x3400, 0x4DBF),   # CJK Ext A
    (0x4E00, 0x9FFF),   # CJK Unified
    (0xAC00, 0xD7AF),   # Hangul syllables
    (0xF900, 0xFAFF),   # CJK compatibility ideographs
    (0x20000, 0x31FFF),  # CJK Ext B..H
]

# Latin look-alikes used to defeat naive matching (Cyrillic/Greek homoglyphs).
HOMOGLYPHS = {
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "γ": "y",
}


def in_char_script(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in CHAR_SCRIPTS)


def word_expansion(ch: str) -> str | None:
    """The multi-character fold of a letter or digit (ﬁ → fi, ß → ss), if any."""
    if not unicodedata.category(ch)[0] in "LN" or in_char_script(ord(ch)):
        return None
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    out = unicodedata.normalize("NFKC", base).casefold()
    out = "".join(HOMOGLYPHS.get(c, c) for c in out if unicodedata.category(c)[0] in "LN")
    return out if len(out) > 1 else None


def fold_char(ch: str, t2s) -> tuple[int, int]:
    cat = unicodedata.category(ch)
    cp = ord(ch)
    if cat in ("Mn", "Me", "Cf"):
        return 0, SKIP             # combining marks, zero-width and format characters
    if in_char_script(cp) and cat.startswith("L"):
        out = unicodedata.normalize("NFKC", ch)
        if len(out) == 1 and t2s is not None:
            simp = t2s.convert(out)
            out = simp if len(simp) == 1 else out
        return (ord(out) if len(out) == 1 else cp), CJK
    if not (cat.startswith("L") or cat.startswith("N")):
        return 0, SEP
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    out = unicodedata.normalize("NFKC", base).casefold()
    out = "".join(HOMOGLYPHS.get(c, c) for c in out)
    if len(out) != 1:
        # Expansions (ligatures, ß, ①): copyscope.text.normalize expands these in a
        # pre-pass, so the table keeps the unexpanded (case-folded) character.
        out = ch.casefold() if len(ch.casefold()) == 1 else ch
    return ord(out), (CJK if in_char_script(ord(out)) else WORD)


def build(t2s) -> dict[str, np.ndarray]:
    table = np.zeros(TABLE_SIZE, dtype="<u4")
    expand_cp, expand_to = [], []
    for cp in range(TABLE_SIZE):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        folded, cls = fold_char(chr(cp), t2s)
        table[cp] = (cls << 24) | folded
        exp = word_expansion(chr(cp))
        if exp is not None:
            expand_cp.append(cp)
            expand_to.append(exp)
    return {
        "table": table,
        "expand_cp": np.array(expand_cp, dtype="<u4"),
        "expand_to": np.frombuffer("\0".join(expand_to).encode("utf-32-le"), dtype="<u4"),
    }


def main() -> None:
    import opencc  # noqa: PLC0415  (build-time only)
    arrays = build(opencc.OpenCC("t2s"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
