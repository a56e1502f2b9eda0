"""Tests for copyscope.code: language detection, the tree-sitter tokenizer, the
Pygments fallback, and triage.

Every language has one sample under ``tests/code_samples/<lang>/``: the same small
program (read numbers, summarise them in a function with a loop and a
conditional, print the message string literal "Mean of the values: ", use the
magic constant 0x5F3759DF, one comment). The conformance class checks each
sample against the tokenizer's contract; the golden files
``tests/golden/code_tokens/<lang>.json`` pin the normalised token stream.
Fingerprints will be built from ``norm``, so a change there silently changes
every code fingerprint: regenerate deliberately with
``COPYSCOPE_REGEN=1 pytest tests/test_code_tokens.py``.
"""
from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import numpy as np
import pytest

from copyscope.code import languages, tokens
from copyscope.code.languages import SUPPORTED, language_for, parser_for
from copyscope.code.tokens import (KIND_IDENT, KIND_NUMBER, KIND_OTHER, KIND_STRING, CodeTokens,
                                   tokenize_code)
from copyscope.code.triage import VENDOR_DIRS, triage, triage_reason
from copyscope.errors import LimitError

HERE = Path(__file__).resolve().parent
SAMPLES = HERE / "code_samples"
GOLDEN_DIR = HERE / "golden" / "code_tokens"
REGEN = os.environ.get("COPYSCOPE_REGEN") == "1"

MESSAGE = "Mean of the values: "
MAGIC = "0x5F3759DF"
COMMENT = "Compute summary statistics for the input values."

# language -> (sample file, the message literal exactly as written, quotes included)
CASES: dict[str, tuple[str, str]] = {
    "java": ("java/Stats.java", '"Mean of the values: "'),
    "kotlin": ("kotlin/Stats.kt", '"Mean of the values: "'),
    "c": ("c/stats.c", '"Mean of the values: %f\\n"'),
    "cpp": ("cpp/stats.cpp", '"Mean of the values: "'),
    "objc": ("objc/Stats.m", '@"Mean of the values: %f"'),
    "swift": ("swift/stats.swift", '"Mean of the values: "'),
    "csharp": ("csharp/Stats.cs", '"Mean of the values: "'),
    "go": ("go/stats.go", '"Mean of the values: "'),
    "rust": ("rust/stats.rs", '"Mean of the values: "'),
    "python": ("python/stats.py", '"Mean of the values: "'),
    "javascript": ("javascript/stats.js", '"Mean of the values: "'),
    "typescript": ("typescript/stats.ts", '"Mean of the values: "'),
    "tsx": ("tsx/StatsView.tsx", '"Mean of the values: "'),
    "php": ("php/stats.php", '"Mean of the values: "'),
}

# Languages without a tree-sitter grammar here: the Pygments fallback.
FALLBACK_CASES: dict[str, tuple[str, str]] = {
    "ruby": ("ruby/stats.rb", '"Mean of the values: "'),
    "lua": ("lua/stats.lua", '"Mean of the values: "'),
}


def sample(name: str) -> tuple[str, bytes]:
    path = SAMPLES / name
    return str(path), path.read_bytes()


def check_invariants(data: bytes, toks: CodeTokens) -> None:
    """The structural contract every CodeTokens must meet, whatever the input."""
    n = len(toks)
    assert len(toks.norm) == len(toks.text) == n
    assert toks.kinds.dtype == np.uint8 and toks.kinds.shape == (n,)
    assert toks.starts.dtype == np.int64 and toks.starts.shape == (n,)
    assert toks.ends.dtype == np.int64 and toks.ends.shape == (n,)
    assert toks.lines.dtype == np.int32 and toks.lines.shape == (n,)
    assert set(np.unique(toks.kinds).tolist()) <= {KIND_OTHER, KIND_IDENT, KIND_STRING, KIND_NUMBER}
    starts, ends = toks.starts.tolist(), toks.ends.tolist()
    for i, (s, e, text) in enumerate(zip(starts, ends, toks.text)):
        assert 0 <= s < e <= len(data), (i, s, e)
        assert data[s:e].decode("utf-8", "replace") == text, (i, s, e, text)
    assert all(ends[i] <= starts[i + 1] for i in range(n - 1)), "spans overlap or are out of order"
    for s, line in zip(starts, toks.lines.tolist()):
        assert line == data.count(b"\n", 0, s) + 1
    for kind, norm, text in zip(toks.kinds.tolist(), toks.norm, toks.text):
        if kind == KIND_IDENT:
            assert norm == "I"
        elif kind == KIND_STRING:
            assert norm == "S"
        elif kind == KIND_NUMBER:
            assert norm == "N"
        else:
            assert norm and not any(c.isspace() for c in norm), (norm, text)
    prev_end = -1
    for text, s, e, line in toks.comments:
        assert 0 <= s < e <= len(data) and s >= prev_end
        assert data[s:e].decode("utf-8", "replace") == text
        assert line == data.count(b"\n", 0, s) + 1
        prev_end = e
        # no token inside a comment
        i = int(np.searchsorted(toks.starts, s))
        assert i == n or toks.starts[i] >= e
        assert i == 0 or toks.ends[i - 1] <= s
    assert toks.parse_errors >= 0


# --------------------------------------------------------------------------- #
# Conformance: one class, parametrised over every language sample
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("lang", sorted(CASES))
class TestLanguageSample:
    def _load(self, lang: str) -> tuple[str, bytes, CodeTokens]:
        path, data = sample(CASES[lang][0])
        return path, data, tokenize_code(data, lang, path=path)

    def test_language_detected(self, lang):
        path, data = sample(CASES[lang][0])
        assert language_for(path, data) == lang

    def test_parses_cleanly(self, lang):
        _, _, toks = self._load(lang)
        assert toks.parse_errors == 0
        assert toks.language == lang
        assert len(toks) > 80

    def test_invariants(self, lang):
        _, data, toks = self._load(lang)
        check_invariants(data, toks)

    def test_message_literal_is_one_string_token(self, lang):
        _, data, toks = self._load(lang)
        hits = [i for i, t in enumerate(toks.text) if MESSAGE in t]
        assert len(hits) == 1, [toks.text[i] for i in hits]
        i = hits[0]
        assert toks.kinds[i] == KIND_STRING and toks.norm[i] == "S"
        assert toks.text[i] == CASES[lang][1]           # whole literal, quotes (and prefix) included
        assert data[toks.starts[i]:toks.ends[i]].decode() == CASES[lang][1]

    def test_magic_constant_is_a_number(self, lang):
        _, _, toks = self._load(lang)
        hits = [i for i, t in enumerate(toks.text) if t == MAGIC]
        assert len(hits) == 1
        assert toks.kinds[hits[0]] == KIND_NUMBER and toks.norm[hits[0]] == "N"

    def test_comment_goes_to_comments_not_tokens(self, lang):
        _, data, toks = self._load(lang)
        assert len(toks.comments) == 1
        text, s, e, line = toks.comments[0]
        assert COMMENT in text
        assert data[s:e].decode() == text
        assert not any("summary" in t for t in toks.text)
        assert line == data[:s].count(b"\n") + 1

    def test_identifiers_are_I(self, lang):
        _, _, toks = self._load(lang)
        names = {"values", "$values"}
        found = [i for i, t in enumerate(toks.text) if t in names]
        assert len(found) >= 3
        assert all(toks.kinds[i] == KIND_IDENT and toks.norm[i] == "I" for i in found)
        func = [i for i, t in enumerate(toks.text) if t in ("summarize", "Summarize", "meanOf")]
        assert func and all(toks.norm[i] == "I" for i in func)
        assert all(n == "I" for n, k in zip(toks.norm, toks.kinds.tolist()) if k == KIND_IDENT)
        # keywords and punctuation keep their text
        assert "if" in toks.norm and "(" in toks.norm

    def test_golden_norm(self, lang):
        path, _, toks = self._load(lang)
        golden = GOLDEN_DIR / f"{lang}.json"
        now = {"language": lang, "sample": CASES[lang][0], "count": len(toks), "norm": list(toks.norm)}
        if REGEN:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(json.dumps(now, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
        assert golden.exists(), f"{golden} missing: run with COPYSCOPE_REGEN=1 to create it"
        want = json.loads(golden.read_text(encoding="utf-8"))
        assert want["sample"] == now["sample"]
        assert want["norm"] == now["norm"], (
            f"{lang}: normalised tokens changed; if intended, regenerate with COPYSCOPE_REGEN=1 "
            f"(code fingerprints change with them)")


def test_every_supported_language_has_a_sample_and_golden():
    assert set(CASES) == set(SUPPORTED)
    for lang in SUPPORTED:
        assert (GOLDEN_DIR / f"{lang}.json").exists() or REGEN


# --------------------------------------------------------------------------- #
# languages.py
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("path,lang", [
    ("A.java", "java"), ("a.kt", "kotlin"), ("build.gradle.kts", "kotlin"), ("a.c", "c"),
    ("a.cc", "cpp"), ("a.cpp", "cpp"), ("a.cxx", "cpp"), ("a.hpp", "cpp"), ("a.hh", "cpp"),
    ("a.m", "objc"), ("a.mm", "objc"), ("a.swift", "swift"), ("a.cs", "csharp"), ("a.go", "go"),
    ("a.rs", "rust"), ("a.py", "python"), ("a.pyi", "python"), ("a.js", "javascript"),
    ("a.mjs", "javascript"), ("a.cjs", "javascript"), ("a.jsx", "javascript"),
    ("a.ts", "typescript"), ("a.tsx", "tsx"), ("a.php", "php"), ("DIR/SUB/Main.JAVA", "java"),
    ("a.rb", None), ("a.lua", None), ("Makefile", None), ("a", None), ("", None), ("a.txt", None),
])
def test_language_for_extension(path, lang):
    assert language_for(path) == lang


@pytest.mark.parametrize("data,lang", [
    (None, "c"),
    (b"", "c"),
    (b"#ifndef X_H\n#define X_H\nint f(int x);\nstruct s { int a; };\n#endif\n", "c"),
    (b"#pragma once\nclass Foo {\npublic:\n  int x;\n};\n", "cpp"),
    (b"template <typename T> T max(T a, T b);\n", "cpp"),
    (b"namespace util { int f(); }\n", "cpp"),
    (b"std::string name(void);\n", "cpp"),
    (b"#import <Foundation/Foundation.h>\n@interface Foo : NSObject\n@end\n", "objc"),
])
def test_language_for_header(data, lang):
    assert language_for("include/x.h", data) == lang


def test_parser_is_cached_per_language():
    assert parser_for("java") is parser_for("java")
    assert parser_for("java") is not parser_for("kotlin")
    with pytest.raises(ValueError):
        parser_for("cobol")


@pytest.mark.parametrize("lang", SUPPORTED)
def test_configured_node_kinds_exist_in_grammar(lang):
    """The node tables were read off the grammars; a renamed kind must fail loudly."""
    grammar = languages.language_object(lang)
    assert grammar.id_for_node_kind("no_such_kind_anywhere", True) is None
    groups = tokens.table_kinds(lang)
    assert groups["string"] and groups["number"] and groups["comment"]
    for group, kinds in groups.items():
        for kind in kinds:
            assert grammar.id_for_node_kind(kind, True) is not None, (lang, group, kind)


# --------------------------------------------------------------------------- #
# Specific token rules
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("lang,src,literal", [
    ("python", b'x = f"a {b!r:>{w}} c"\n', 'f"a {b!r:>{w}} c"'),
    ("python", b"x = rb'\\d+'\n", "rb'\\d+'"),
    ("python", b'x = """doc\nstring"""\n', '"""doc\nstring"""'),
    ("javascript", b"let s = `a ${b + `c ${d}`} e`;", "`a ${b + `c ${d}`} e`"),
    ("typescript", b"let s: string = 'it\\'s';", "'it\\'s'"),
    ("kotlin", b'val s = "a ${b.c} $d"', '"a ${b.c} $d"'),
    ("kotlin", b'val s = """raw\n$x"""', '"""raw\n$x"""'),
    ("swift", b'let s = "a \\(b) c"', '"a \\(b) c"'),
    ("swift", b'let s = #"raw \\(x)"#', '#"raw \\(x)"#'),
    ("csharp", b'var s = $"a {b} c";', '$"a {b} c"'),
    ("csharp", b'var s = @"C:\\path";', '@"C:\\path"'),
    ("java", b'class A { String s = """\n  text\n  """; }', '"""\n  text\n  """'),
    ("java", b"class A { char c = '\\n'; }", "'\\n'"),
    ("go", b"package a\nvar s = `raw\nstring`\n", "`raw\nstring`"),
    ("rust", b'fn f() { let s = r#"raw "x""#; }', 'r#"raw "x""#'),
    ("rust", b"fn f() { let c = 'x'; }", "'x'"),
    ("cpp", b'auto s = R"(raw\n)";', 'R"(raw\n)"'),
    ("c", b"char c = '\\0';", "'\\0'"),
    ("php", b'<?php $s = "a {$b} c";', '"a {$b} c"'),
    ("php", b"<?php $s = <<<EOT\nhello $x\nEOT;\n", "<<<EOT\nhello $x\nEOT"),
])
def test_string_like_nodes_are_one_token(lang, src, literal):
    toks = tokenize_code(src, lang)
    assert toks.parse_errors == 0
    strings = [t for t, k in zip(toks.text, toks.kinds.tolist()) if k == KIND_STRING]
    assert literal in strings, strings
    check_invariants(src, toks)


def test_non_ascii_source_offsets_are_exact():
    src = ('class Größe {\n  // ünïcödé ☃ comment\n  String naïve = "héllo ☃ 😀";\n'
           '  int ñ = 42;\n}\n').encode("utf-8")
    toks = tokenize_code(src, "java")
    assert toks.parse_errors == 0
    check_invariants(src, toks)
    assert "Größe" in toks.text and toks.kinds[toks.text.index("Größe")] == KIND_IDENT
    i = toks.text.index('"héllo ☃ 😀"')
    assert toks.kinds[i] == KIND_STRING
    assert src[toks.starts[i]:toks.ends[i]] == '"héllo ☃ 😀"'.encode()
    assert toks.comments[0][0] == "// ünïcödé ☃ comment"


def test_php_keywords_are_case_folded_in_norm():
    toks = tokenize_code(b"<?php FUNCTION foo() { RETURN 1; }\n", "php")
    assert toks.norm[:3] == ("<?php", "function", "I")
    assert "return" in toks.norm and "RETURN" in toks.text


def test_preprocessor_directive_and_macro_body():
    src = b"#  define SQUARE(x) ((x) * (x)) /* sq */\n#if  X\nint y;\n#endif\n"
    toks = tokenize_code(src, "c")
    check_invariants(src, toks)
    assert toks.norm[0] == "#define" and toks.text[0] == "#  define"
    assert "#if" in toks.norm
    # the macro body (an opaque preproc_arg) is still tokenized
    body = toks.norm[toks.norm.index(")") + 1:toks.norm.index("#if")]
    assert body == ("(", "(", "I", ")", "*", "(", "I", ")", ")")
    assert [c[0] for c in toks.comments] == ["/* sq */"]


def test_markup_text_is_a_string_token():
    toks = tokenize_code(b"const a = <p>\n  Hello world\n</p>;", "tsx")
    assert "Hello world" in toks.text
    assert toks.kinds[toks.text.index("Hello world")] == KIND_STRING
    toks = tokenize_code(b"<html><body>\n<?php echo 1; ?>\n</body>", "php")
    assert toks.text[0] == "<html><body>" and toks.kinds[0] == KIND_STRING


# --------------------------------------------------------------------------- #
# Pygments fallback
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("lang", sorted(FALLBACK_CASES))
def test_pygments_fallback_sample(lang):
    name, literal = FALLBACK_CASES[lang]
    path, data = sample(name)
    assert language_for(path, data) is None
    toks = tokenize_code(data, None, path=path)
    assert toks.language == f"pygments:{lang}"
    check_invariants(data, toks)
    hits = [i for i, t in enumerate(toks.text) if MESSAGE in t]
    assert len(hits) == 1 and toks.text[hits[0]] == literal and toks.kinds[hits[0]] == KIND_STRING
    magic = [i for i, t in enumerate(toks.text) if t == MAGIC]
    assert len(magic) == 1 and toks.kinds[magic[0]] == KIND_NUMBER
    assert len(toks.comments) == 1 and COMMENT in toks.comments[0][0]
    assert not any("summary" in t for t in toks.text)
    assert all(toks.kinds[i] == KIND_IDENT for i, t in enumerate(toks.text) if t == "values")
    assert "summarize" in toks.text and toks.norm[toks.text.index("summarize")] == "I"


def test_pygments_fallback_non_ascii_byte_offsets():
    src = '# cömment ☃\nname = "naïve 😀"\nputs name + "x"\n'.encode("utf-8")
    toks = tokenize_code(src, None, path="script.rb")
    check_invariants(src, toks)
    i = toks.text.index('"naïve 😀"')
    assert src[toks.starts[i]:toks.ends[i]] == '"naïve 😀"'.encode()
    assert toks.comments[0][:3] == ("# cömment ☃", 0, len("# cömment ☃".encode()))
    j = toks.text.index("puts")
    assert toks.starts[j] == src.index(b"puts")


def test_pygments_fallback_invalid_utf8_and_unknown_extension():
    src = b"caf\xe9 := 12 + x\x80y; \xff\n\"str\" -- note\n"
    for path in ("a.rb", "a.unknownext", ""):
        toks = tokenize_code(src, None, path=path)
        check_invariants(src, toks)
        assert "12" in toks.text
    toks = tokenize_code(src, None, path="a.unknownext")
    assert toks.language == "pygments:text"
    assert toks.kinds[toks.text.index("12")] == KIND_NUMBER


def test_language_name_without_grammar_uses_pygments_by_name():
    path, data = sample("ruby/stats.rb")
    assert tokenize_code(data, "ruby").language == "pygments:ruby"


# --------------------------------------------------------------------------- #
# Broken, hostile and large inputs
# --------------------------------------------------------------------------- #

def _hostile_inputs(lang: str) -> list[bytes]:
    _, data = sample(CASES[lang][0])
    rng = random.Random(1234)
    return [
        b"",
        b"   \n\t\n",
        b"\xef\xbb\xbf" + data,                                      # UTF-8 BOM
        data[: len(data) // 2],                                      # truncated
        data.replace(b"(", b"", 3),                                  # unbalanced
        bytes(rng.randrange(256) for _ in range(3000)),              # noise
        b"\x00" * 50 + data[:200],                                   # NUL bytes
        "x = 'caf\xe9' // ü\n".encode("latin-1") * 5,                 # not UTF-8
        data[:100] + b"\xed\xa0\x80\xc3" + data[100:300],            # surrogate + cut sequence
        "ident_ü = \"☃\"; 😀😀".encode("utf-8") + b"\xe2\x98",         # ends mid-character
        b"}" * 500 + b"{" * 500,
    ]


@pytest.mark.parametrize("lang", sorted(CASES))
def test_broken_and_non_utf8_inputs_never_raise(lang):
    for data in _hostile_inputs(lang):
        toks = tokenize_code(data, lang)
        check_invariants(data, toks)
    toks = tokenize_code(b"\xef\xbb\xbf" + sample(CASES[lang][0])[1], lang)
    assert toks.parse_errors == 0                  # a BOM is not a syntax error


@pytest.mark.parametrize("lang", sorted(CASES))
def test_broken_code_reports_parse_errors(lang):
    _, data = sample(CASES[lang][0])
    broken = data[: len(data) // 2] + b"\n ) ] } @@@ ) ( ;; \"\n"
    toks = tokenize_code(broken, lang)
    check_invariants(broken, toks)
    assert toks.parse_errors > 0
    assert len(toks) > 20                          # error-tolerant: the good part still tokenizes


def test_pygments_fallback_broken_inputs_never_raise():
    for data in _hostile_inputs("python"):
        for path in ("x.rb", "x.lua", "x.unknown", "x.sql", "x.hs"):
            check_invariants(data, tokenize_code(data, None, path=path))


@pytest.mark.parametrize("lang", sorted(CASES))
def test_deep_nesting_does_not_crash(lang):
    depth = 10_000
    prefix = b"<?php $x = " if lang == "php" else b"x = "
    src = prefix + b"(" * depth + b"1" + b")" * depth + b";\n"
    toks = tokenize_code(src, lang)
    check_invariants(src, toks)
    assert toks.norm.count("(") == depth and toks.norm.count(")") == depth
    braces = b"{" * depth + b"}" * depth
    check_invariants(braces, tokenize_code(braces, lang))


def _generated_java(target_bytes: int) -> bytes:
    _, data = sample("java/Stats.java")
    parts, size, i = [], 0, 0
    while size < target_bytes:
        chunk = data.replace(b"class Stats", b"class Stats%d" % i)
        parts.append(chunk)
        size += len(chunk)
        i += 1
    return b"\n".join(parts)


def test_large_generated_file_is_linear_and_fast():
    """5 MB of Java (the 50 MB case is refused by the size limit, see below).
    Time is linear in size; the throughput is printed (-s) for the record."""
    small = _generated_java(1_000_000)
    big = _generated_java(5_000_000)
    t0 = time.perf_counter()
    toks_small = tokenize_code(small, "java")
    t1 = time.perf_counter()
    toks = tokenize_code(big, "java")
    t2 = time.perf_counter()
    assert toks.parse_errors == 0
    assert abs(len(toks) / len(toks_small) - len(big) / len(small)) < 0.05
    rate = len(big) / (t2 - t1) / 1e6
    print(f"\njava throughput: {rate:.2f} MB/s ({len(big)} bytes, {len(toks)} tokens)")
    assert t2 - t1 < 60, "5 MB took over a minute"
    assert (t2 - t1) < 12 * (t1 - t0) + 1.0, "super-linear time"


def test_oversized_input_is_refused_quickly():
    data = b"int x = 1;\n" * (50 * 1024 * 1024 // 11 + 1)         # > 50 MB
    t0 = time.perf_counter()
    with pytest.raises(LimitError):
        tokenize_code(data, "java", path="big.java")
    with pytest.raises(LimitError):
        tokenize_code(data, None, path="big.rb")
    assert time.perf_counter() - t0 < 5
    with pytest.raises(LimitError):
        tokenize_code(b"x" * 101, "c", max_bytes=100)


def test_tokens_len_and_frozen():
    toks = tokenize_code(b"int x = 1;", "c")
    assert len(toks) == 5
    with pytest.raises(Exception):
        toks.norm = ()                                                # type: ignore[misc]
    with pytest.raises(ValueError):
        toks.starts[0] = 7                                            # arrays are read-only


# --------------------------------------------------------------------------- #
# triage
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("name", sorted(v[0] for v in list(CASES.values()) + list(FALLBACK_CASES.values())))
def test_triage_ordinary_samples(name):
    path, data = sample(name)
    assert triage(path, data) is None
    assert triage_reason(path, data) is None


def _noise(n: int, seed: int) -> bytes:
    """Random bytes without NULs (so only the "mostly not text" rule can call them binary)."""
    rng = random.Random(seed)
    return bytes(rng.randrange(1, 256) for _ in range(n))


@pytest.mark.parametrize("path,data,category", [
    ("web/app.min.js", b"var a=1;" * 200, "minified"),
    ("web/app.js", b"/* header */\n" + b"x=1;" * 1600, "minified"),           # one 6,400-byte line
    ("web/app.js", b"var a = 1;\n" * 300 + b"x" * 301 * 300, "minified"),     # average > 300
    ("api/x.go", b"// Code generated by protoc-gen-go. DO NOT EDIT.\n\npackage api\n", "generated"),
    ("x.js", b"/**\n * Copyright\n *\n * @generated SignedSource<<abc>>\n */\nvar x;\n", "generated"),
    ("x.c", b"/*\n  This file was automatically generated by tool 1.2\n*/\nint x;\n", "generated"),
    ("x.py", b"# AUTOGENERATED FILE\nx = 1\n", "generated"),
    ("proto/msg_pb2.py", b"import sys\n", "generated"),
    ("Forms/Main.Designer.cs", b"partial class Main {}\n", "generated"),
    ("obj/App.g.cs", b"class App {}\n", "generated"),
    ("vendor/github.com/x/y.go", b"package y\n", "vendored"),
    ("src/third_party/zlib/inflate.c", b"int x;\n", "vendored"),
    ("web/node_modules/left-pad/index.js", b"module.exports = 1;\n", "vendored"),
    ("static/bower_components/jq/jq.js", b"var x;\n", "vendored"),
    ("C:\\proj\\external\\lib\\a.cpp", b"int x;\n", "vendored"),
    ("deps/lua/lapi.c", b"int x;\n", "vendored"),
    ("img.java", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("utf16.cs", "class A {}".encode("utf-16-le"), "binary"),
    ("noise.c", _noise(20000, seed=5), "binary"),
])
def test_triage_categories(path, data, category):
    assert triage(path, data) == category
    found = triage_reason(path, data)
    assert found is not None and found[0] == category
    assert found[1] and "\n" not in found[1]


def test_triage_not_fooled():
    # a generator's own source has the marker inside a string literal
    gen = b'package gen\n\nconst header = "// Code generated by gen. DO NOT EDIT."\n'
    assert triage("gen/gen.go", gen) is None
    # a marker far below the header does not count
    late = b"int x;\n" * 100 + b"// DO NOT EDIT below this line\n"
    assert triage("x.c", late) is None
    # legacy 8-bit text is not binary; a long line in a long file is not minification
    assert triage("x.c", "/* café ü */ int x;\n".encode("latin-1") * 50) is None
    assert triage("x.js", b"var a = 1;\n" * 2000 + b"x" * 6000 + b"\n") is None
    # "vendor" as a file name or as part of a directory name is not vendored
    assert triage("src/vendor.py", b"x = 1\n") is None
    assert triage("src/vendored_stuff/a.py", b"x = 1\n") is None


def test_triage_precedence_and_configuration():
    assert triage("node_modules/x/app.min.js", b"var a=1;" * 200) == "vendored"
    assert triage("vendor/x.bin", b"\x00\x01") == "binary"
    assert triage("libs/x.c", b"int x;\n") is None
    assert triage("libs/x.c", b"int x;\n", vendor_dirs=("libs",)) == "vendored"
    assert triage("vendor/x.c", b"int x;\n", vendor_dirs=("libs",)) is None
    assert "vendor" in VENDOR_DIRS and "node_modules" in VENDOR_DIRS


def test_triage_of_non_source_judges_the_path_only():
    long_line = b"word " * 2000 + b"\n"
    assert triage_reason("a.txt", long_line)[0] == "minified"
    assert triage_reason("a.txt", long_line, source=False) is None
    assert triage_reason("a.txt", b"Code generated by hand. DO NOT EDIT.\n", source=False) is None
    assert triage_reason("node_modules/pkg/README.md", b"text\n", source=False)[0] == "vendored"
