"""Side-channel evidence of code matches: identifier spellings, magic numbers, typos."""
from __future__ import annotations

import pytest

from copyscope.code.plugin import CodeModality
from copyscope.code.side_channels import distinctive_identifier, likely_typo, unusual_constant
from copyscope.model import Artifact
from copyscope.report.html import render_html

# An SDK routine, and the same routine after its identifiers were renamed. The
# renamer kept a private name, the magic numbers and the author's misspellings.
SDK = b'''/* recieve the frame; the lenght comes first */
#include <stdint.h>
static const int kFrameSalt = 86401;
int frame_checksum(const unsigned char *frameBuffer, int frameLenght) {
    int acc = kFrameSalt;
    for (int k = 0; k < frameLenght; k++) {
        acc = (acc * 31 + frameBuffer[k]) % 1000003;
    }
    return acc ^ 0x5f3759df;
}
'''
RENAMED = b'''/* recieve the data; its lenght comes first */
#include <stdint.h>
static const int kFrameSalt = 86401;
int sum_bytes(const unsigned char *p, int n) {
    int a = kFrameSalt;
    for (int j = 0; j < n; j++) {
        a = (a * 31 + p[j]) % 1000003;
    }
    return a ^ 0x5F3759DF;
}
'''
# Independent code that shares only everyday names and numbers.
INDEPENDENT = b'''#include <stdio.h>
int count_items(int *items, int size) {
    int count = 0;
    for (int i = 0; i < size; i++) {
        if (items[i] > 255) count += 16;
    }
    printf("%d\\n", count);
    return count;
}
'''


def _match(a: bytes, b: bytes, name_a: str = "a.c", name_b: str = "b.c"):
    mod = CodeModality()
    q = mod.fingerprint(Artifact(data=a, origin=name_a))
    r = mod.fingerprint(Artifact(data=b, origin=name_b))
    return mod.verify(q, r)


def test_renamed_copy_keeps_names_constants_and_typos_as_evidence():
    side = _match(RENAMED, SDK, "copy.c", "sdk.c").extra["side_channels"]
    assert [x["text"] for x in side["identifiers"]] == ["kFrameSalt"]
    constants = {x["text"]: x for x in side["constants"]}
    assert set(constants) == {"0x5f3759df", "1000003", "86401"}
    # compared by value, reported as written on each side, with the lines
    assert constants["0x5f3759df"]["query_text"] == "0x5F3759DF"
    assert (constants["86401"]["registered_line"], constants["86401"]["query_line"]) == (3, 3)
    typos = {x["text"]: x["intended"] for x in side["typos"]}
    assert typos == {"recieve": "receive", "lenght": "length"}


def test_independent_code_shares_no_side_channel_evidence():
    m = _match(INDEPENDENT, SDK)
    assert m is None or m.extra["side_channels"] == {"identifiers": [], "constants": [], "typos": []}


def test_base_code_side_channels_are_not_evidence():
    mod = CodeModality()
    q = mod.fingerprint(Artifact(data=RENAMED, origin="copy.c"))
    r = mod.fingerprint(Artifact(data=SDK, origin="sdk.c"))
    base = mod.fingerprint(Artifact(data=b"static const int kFrameSalt = 86401;\n", origin="base.c"))
    side = mod.verify(mod.without_base(q, [base]), r).extra["side_channels"]
    assert side["identifiers"] == []
    assert "86401" not in {x["text"] for x in side["constants"]}


def test_report_shows_each_side_channel_with_lines():
    m = _match(RENAMED, SDK, "copy.c", "sdk.c")
    html = render_html({"schema": "x", "matches": [m.to_json()]})
    assert "Shared identifier spellings" in html and "kFrameSalt" in html
    assert "Shared unusual constants" in html and "0x5F3759DF" in html
    assert "Shared misspellings (possible typos)" in html and "recieve" in html


@pytest.mark.parametrize("text, value", [
    ("0x5f3759df", "1597463007"), ("0X5F3759DFu", "1597463007"), ("86401", "86401"),
    ("1_000_003", "1000003"), ("1234L", "1234"), ("0.0174533", "0.0174533"), ("12.75f", "12.75"),
    ("0", None), ("16", None), ("42", None), ("255", None), ("0xFFFF", None), ("4096", None),
    ("3000", None), ("86400", None), ("0.5", None), ("1e-9", None), ("0777", None), ("'x'", None),
    ("0xZZ", None), ("nan", None), ("1e999", None),
])
def test_unusual_constants(text, value):
    assert unusual_constant(text) == value


@pytest.mark.parametrize("name, expected", [
    ("mRenderQueueLock", True), ("decode_frame_hdr", True), ("threehalfs", True), ("HTTP_PORT", True),
    ("count", False), ("result", False), ("i", False), ("println", False), ("toString", False),
    ("MAX", False), ("__init__", False),
])
def test_distinctive_identifiers(name, expected):
    assert distinctive_identifier(name) is expected


@pytest.mark.parametrize("word, intended", [
    ("recieve", "receive"), ("lenght", "length"), ("widht", "width"), ("adress", "address"),
    ("funtion", "function"),
    ("length", None), ("colour", None), ("initialise", None), ("kwargs", None), ("stdint", None),
    ("ctx", None), ("xqzvbn", None),
])
def test_likely_typos(word, intended):
    assert likely_typo(word) == intended


# --------------------------------------------------------------------------- #
# Rarity: code common across the corpus counts less
# --------------------------------------------------------------------------- #

_BOILERPLATE = "\n".join(f"import pkg{i}.util.helpers as h{i}" for i in range(12)) + "\n"


def _project_file(n: int) -> bytes:
    """Twelve import lines every file of the corpus has, then its own code (its
    own strings make its statements its own)."""
    body = "\n".join(f'    log("routine {n} step {k}: %d", total + {k})' for k in range(6))
    return (_BOILERPLATE + f"\ndef routine_{n}(total):\n{body}\n    return total\n").encode()


def test_statements_common_across_the_corpus_count_less():
    from copyscope.stats import MemoryStats
    mod = CodeModality()
    corpus = [mod.fingerprint(Artifact(data=_project_file(n), origin=f"f{n}.py")) for n in range(200)]
    stats = MemoryStats(corpus)
    # an unrelated file of the same shop shares only the imports with corpus[0];
    # 200 files hold them, so they weigh 10/200
    query = mod.fingerprint(Artifact(data=_BOILERPLATE.encode() + b"\nprint('hello')\n", origin="q.py"))
    alone, in_corpus = mod.verify(query, corpus[0]), mod.verify(query, corpus[0], stats)
    assert alone.score > 0.25                    # without a corpus, the shared imports weigh as much as the code
    assert in_corpus.score < 0.1 * alone.score
    assert all(p.rarity < 0.5 for p in in_corpus.passages)
    # a real copy of corpus[0] keeps its score: its own statements are rare
    copy = mod.fingerprint(Artifact(data=_project_file(0), origin="copy.py"))
    assert mod.verify(copy, corpus[0], stats).score == pytest.approx(1.0)


def test_small_corpora_leave_scores_alone():
    from copyscope.stats import MemoryStats
    mod = CodeModality()
    corpus = [mod.fingerprint(Artifact(data=_project_file(n), origin=f"f{n}.py")) for n in range(5)]
    query = mod.fingerprint(Artifact(data=_BOILERPLATE.encode() + b"\nprint('hello')\n", origin="q.py"))
    a, b = mod.verify(query, corpus[0]), mod.verify(query, corpus[0], MemoryStats(corpus))
    assert a.score == b.score and [p.rarity for p in b.passages] == [1.0] * len(b.passages)
