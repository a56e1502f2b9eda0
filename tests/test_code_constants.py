"""Named literal constants read as their literals (``copyscope.code.constants``)."""
from __future__ import annotations

from copyscope.code.constants import inline_constants
from copyscope.code.plugin import CodeModality, _segments
from copyscope.code.tokens import tokenize_code
from copyscope.model import Artifact

ORIGINAL = b"""public class T1 {
    public static void main(String[] args) {
        System.out.println("Welcome to Java");
        System.out.println("Welcome to Java");
        System.out.println("Welcome to Java");
        System.out.println(10 * 12);
    }
}
"""

# IR-Plag L3: the message and the magic number moved into named constants.
EXTRACTED = b"""public class Kasus1L3 {
    private static final int FEET = 12;
    public static void main(String[] args) {
        String teks = "Welcome to Java";
        System.out.println(teks);
        System.out.println(teks);
        System.out.println(teks);
        System.out.println(10 * FEET);
    }
}
"""


def _bag(src: bytes, language: str = "java", inline: bool = True):
    tokens = tokenize_code(src, language)
    return _segments(inline_constants(tokens) if inline else tokens)


def test_extracted_constants_read_as_the_original_statements():
    assert not _bag(ORIGINAL) - _bag(EXTRACTED)        # every statement of the original is in the copy
    assert _bag(ORIGINAL) - _bag(EXTRACTED, inline=False)
    m = CodeModality()
    a, b = (m.fingerprint(Artifact(s, origin=f"{n}.java")) for n, s in (("a", ORIGINAL), ("b", EXTRACTED)))
    match = m.verify(b, a)
    assert match.signals["statements"] == 1.0 and match.signals["literals"] == 1.0 and match.score > 0.9


def test_reassigned_incremented_or_looped_names_are_not_constants():
    src = b"""class C { void f() {
        int total = 0;
        total += 5;
        int i = 0;
        i++;
        String label = "a";
        label = "b";
        print(total, i, label);
    } }"""
    toks = tokenize_code(src, "java")
    assert inline_constants(toks) is toks              # nothing inlined: every name is written again


def test_members_and_keyword_arguments_are_left_alone():
    py = b"""LIMIT = 3
def f(xs, sep=", "):
    obj.LIMIT = 4
    return sep.join(xs[:LIMIT])
"""
    toks = inline_constants(tokenize_code(py, "python"))
    # obj.LIMIT = 4 assigns a member, not the constant: LIMIT is still inlined at its plain use
    assert toks.text.count("LIMIT") == 2 and toks.text.count("3") == 2     # declaration and member kept
    # a keyword default is no declaration
    assert "sep" in toks.text


def test_spans_of_kept_tokens_are_unchanged():
    toks = tokenize_code(EXTRACTED, "java")
    out = inline_constants(toks)
    assert len(out) == len(toks) and out.text != toks.text
    for s, e, t in zip(out.starts.tolist(), out.ends.tolist(), out.text):
        original = EXTRACTED[s:e].decode()
        assert original == t or original in ("teks", "FEET")   # a use shows its literal, at its own span
