"""Tests for copyscope.text.markup: visible text and offsets back into the source."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copyscope.text.markup import Plain, sniff_markup, strip_html, strip_markdown, to_plain


def _check_map(p: Plain, src: str, *, inserts: bool = True) -> None:
    """Every char is verbatim from its source position, or a separator / entity."""
    assert p.offsets.dtype == np.int64 and len(p.offsets) == len(p.text) + 1
    assert np.all(np.diff(p.offsets) >= 0), "offsets must be non-decreasing"
    assert 0 <= p.offsets[-1] <= len(src)
    for i, ch in enumerate(p.text):
        o = int(p.offsets[i])
        if src[o] == ch:
            continue
        assert inserts, f"char {i} {ch!r} maps to {src[o:o + 10]!r}"
        assert (ch == "\n" and src[o] == "<") or src[o] == "&", (i, ch, src[o:o + 10])


# --- HTML ---------------------------------------------------------------------------

def test_html_basic_document():
    src = ("<!DOCTYPE html><html><head><title>Title</title>"
           "<style>p { color: red }</style><script>if (a < b) { x = '</p>' }</script></head>"
           "<body><p>Hello <b>world</b>!</p><!-- hidden --><div>中文内容</div></body></html>")
    p = strip_html(src)
    assert "Hello world!" in p.text and "中文内容" in p.text and "Title" in p.text
    for gone in ("color", "x =", "hidden", "DOCTYPE", "<", ">"):
        assert gone not in p.text
    _check_map(p, src)
    i = p.text.index("中文内容")
    assert src[p.offsets[i]:p.offsets[i + 4]] == "中文内容"


def test_html_block_tags_emit_newline_at_tag():
    src = "a<p>b</p>c<br>d<li>e<span>f</span>g"
    p = strip_html(src)
    assert p.text == "a\nb\nc\nd\nefg"
    assert [int(p.offsets[i]) for i, ch in enumerate(p.text) if ch == "\n"] == [1, 5, 10, 15]
    assert p.offsets[-1] == len(src)


@pytest.mark.parametrize("src,text", [
    ("a &amp; b", "a & b"), ("&lt;tag&gt;", "<tag>"), ("x&nbsp;y", "x\xa0y"),
    ("&#20013;&#x4e2d;&#X4E2D;", "中中中"), ("&copy 2024", "© 2024"), ("&amp", "&"),
    ("AT&T &unknown; & ;", "AT&T &unknown; & ;"), ("&#0;&#xD800;&#99999999999;", "\ufffd" * 3),
    ("&#150;", "\u2013"), ("&notit;", "¬it;"),
])
def test_html_entities(src, text):
    p = strip_html(src)
    assert p.text == text
    _check_map(p, src)


def test_entity_maps_to_its_start_and_end_covers_it():
    p = strip_html("x &amp;")
    assert p.text == "x &" and p.offsets.tolist() == [0, 1, 2, 7]


@pytest.mark.parametrize("tag", ["script", "style", "noscript", "template", "svg", "SCRIPT"])
def test_html_dropped_content(tag):
    src = f"before<{tag} type='x'>hidden <b>stuff</b></{tag} >after"
    assert strip_html(src).text == "beforeafter"


def test_html_unclosed_script_drops_to_end():
    assert strip_html("ok<script>var a = '<p>no</p>'").text == "ok"


def test_html_self_closing_svg_keeps_following_text():
    assert strip_html("a<svg/>b").text == "ab"


@pytest.mark.parametrize("src,text", [
    ("a < b and c > d", "a < b and c > d"),
    ("1<2", "1<2"),
    ('<a title="x > y">link</a>', "link"),
    ("<a title='it>s'>x</a>y", "xy"),
    ("<p unclosed", ""),
    ("text<!-- never closed", "text"),
    ("<!-->visible<!--->too", "visibletoo"),
    ("a<![CDATA[ x ]]>b", "ab"),
    ("a<?xml version='1.0'?>b", "ab"),
    ("a</>b</ 3>c", "abc"),
    ("<img alt=\"it's\">ok", "ok"),
    ("x</中>y", "xy"),
    ("<b>bold<i>both</b>italic", "boldbothitalic"),
])
def test_html_malformed(src, text):
    p = strip_html(src)
    assert p.text == text
    _check_map(p, src)


def test_html_empty():
    p = strip_html("")
    assert p.text == "" and p.offsets.tolist() == [0]


@pytest.mark.parametrize("piece", ["<", "<!--", "<a", "</", "<!", "&a", "&#", '<a href="', "<a =' ",
                                   "<script>", "<b>", "<a b=c>", "&amp;"])
def test_html_pathological_linear(piece):
    src = piece * (2_000_000 // len(piece))
    t = time.perf_counter()
    p = strip_html(src)
    assert time.perf_counter() - t < 10
    assert len(p.offsets) == len(p.text) + 1


# --- HTML property test ---------------------------------------------------------

_WORDS = st.lists(st.sampled_from([*"abc xyz,.;:!?-'\"中文字测试 =/", "< ", "1<2", "& ", "a>b"]),
                  min_size=1, max_size=12).map("".join)
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&nbsp;": "\xa0", "&#20013;": "中", "&#x4E2D;": "中",
             "&quot;": '"', "&eacute;": "é"}
_NODES = st.one_of(
    _WORDS.map(lambda w: (w, w)),
    st.sampled_from(sorted(_ENTITIES.items())),
    st.sampled_from(["b", "i", "span", "a", "em"]).flatmap(
        lambda t: st.sampled_from([f"<{t}>", f"</{t}>", f'<{t} title="x > y">', f"<{t} class='c'>"])).map(lambda x: (x, "")),
    st.sampled_from(["p", "div", "br", "li", "h2", "tr"]).flatmap(
        lambda t: st.sampled_from([f"<{t}>", f"</{t}>", f"<{t.upper()} id=a>", f"<{t}/>"])).map(lambda x: (x, "\n")),
    st.sampled_from(["<!-- c -->", "<!-- <p>x</p> -->", "<script>a<b && '</p>'</script>",
                     "<style>p>b{}</style>", "<!doctype html>"]).map(lambda x: (x, "")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_NODES, max_size=30))
def test_html_property_offsets(nodes):
    src = "".join(s for s, _ in nodes)
    expected = "".join(t for _, t in nodes)
    p = strip_html(src)
    assert p.text == expected
    _check_map(p, src)


# --- Markdown ----------------------------------------------------------------------

def _md(src: str) -> str:
    p = strip_markdown(src)
    _check_map(p, src, inserts="&" in src)
    return p.text


@pytest.mark.parametrize("src,text", [
    ("# Heading", "Heading"), ("### Heading ###", "Heading "), ("#hashtag", "#hashtag"),
    ("Some *emph* and **bold** and __u__ and _i_ and ~~del~~.", "Some emph and bold and u and i and del."),
    ("snake_case_name and 2 * 3 = 6", "snake_case_name and 2 * 3 = 6"),
    ("a*b*c", "abc"), ("***both***", "both"), ("*unclosed", "*unclosed"),
    ("use `x = *y*` here", "use x = *y* here"), ("``a ` b``", "a ` b"), ("`unclosed", "`unclosed"),
    ("see [the *docs*](http://x.com/a_(b) \"T\") now", "see the docs now"),
    ("![alt text](img.png) and [ref link][id] and [coll][]", "alt text and ref link and coll"),
    ("[not a link] and [x]", "[not a link] and [x]"),
    ("> quoted\n> > nested", "quoted\nnested"),
    ("- one\n* two\n+ three\n1. four\n2) five\n- [x] done", "one\ntwo\nthree\nfour\nfive\ndone"),
    ("[id]: http://example.com\ntext", "\ntext"),
    ("a\n---\nb\n***\nc\n=====", "a\n\nb\n\nc\n"),
    ("```python\ncode *kept* [x](y)\n```\nafter", "\ncode *kept* [x](y)\n\nafter"),
    ("~~~\n```\nstill code\n~~~\n", "\n```\nstill code\n\n"),
    ("Escaped \\*star\\* and \\[x\\]", "Escaped *star* and [x]"),
    ("<http://auto.link/x> and <me@x.org>", "http://auto.link/x and me@x.org"),
    ("<span class=\"a\">html</span> <!-- c --> &amp; done", "html  & done"),
    ("| a | b |\n|---|:--:|\n| 1 | 2 |", "| a | b |\n\n| 1 | 2 |"),
    ("中文 **粗体** 和 *斜体*。", "中文 粗体 和 斜体。"),
    ("line\r\nnext\r\n", "line\r\nnext\r\n"),
    ("", ""),
])
def test_markdown(src, text):
    assert _md(src) == text


@pytest.mark.parametrize("piece", ["[", "]", "[a](", "`", "``` ", "*", "_a", "<", "<!--", "![", "\\", "# ",
                                   "> ", "- ", "[a]", "<a ", "&a", "~~", "|-"])
def test_markdown_pathological_linear(piece):
    """Work grows linearly: 8x the input may cost at most ~20x the time (a quadratic
    stripper would cost 64x). Relative, so a loaded machine cannot fail it."""
    def cost(n: int) -> float:
        src = piece * (n // len(piece))
        best = float("inf")
        for s in {src, src.replace(" ", "\n")}:
            t = time.process_time()
            p = strip_markdown(s)
            best = min(best, time.process_time() - t) if s is src else best
            assert len(p.offsets) == len(p.text) + 1
        return max(best, 1e-4)
    small, large = cost(125_000), cost(1_000_000)
    assert large < 20 * small + 0.5


def test_markdown_deeply_nested_links():
    src = "[" * 5000 + "x" + "](u)" * 5000
    p = strip_markdown(src)
    _check_map(p, src, inserts=False)


_MD_WORD = st.text(st.sampled_from(list("abcxyz中文测")), min_size=1, max_size=6)
_MD_NODES = st.one_of(
    _MD_WORD.map(lambda w: (w, w)),
    _MD_WORD.map(lambda w: (f"*{w}*", w)),
    _MD_WORD.map(lambda w: (f"**{w}**", w)),
    _MD_WORD.map(lambda w: (f"~~{w}~~", w)),
    st.text(st.sampled_from(list("ab*_[] ")), min_size=1, max_size=6).filter(
        lambda w: w.strip() == w).map(lambda w: (f"`{w}`", w)),
    _MD_WORD.map(lambda w: (f"[{w}](http://e.com/{w})", w)),
    _MD_WORD.map(lambda w: (f"![{w}](i.png)", w)),
)
_MD_LINE = st.tuples(st.sampled_from(["", "# ", "## ", "- ", "1. ", "> "]), st.lists(_MD_NODES, min_size=1, max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.lists(_MD_LINE, min_size=1, max_size=6))
def test_markdown_property_offsets(lines):
    src = "\n".join(prefix + " ".join(s for s, _ in nodes) for prefix, nodes in lines)
    expected = "\n".join(" ".join(t for _, t in nodes) for _, nodes in lines)
    p = strip_markdown(src)
    assert p.text == expected
    _check_map(p, src, inserts=False)


# --- sniffing and dispatch ---------------------------------------------------------

@pytest.mark.parametrize("src,name,kind", [
    ("anything", "page.HTML", "html"), ("anything", "a.htm", "html"), ("x", "b.xhtml", "html"),
    ("# x", "notes.md", "markdown"), ("# x", "notes.markdown", "markdown"),
    ("\ufeff  <!DOCTYPE html><p>x", None, "html"), ("<html lang=en>", "x.txt", "html"),
    ("<?xml version='1.0'?>\n<!DOCTYPE html>", None, "html"),
    ("<div><p>a</p><p>b</p></div>", None, "html"),
    ("text " * 50 + "<br>" * 12, None, "html"),
    ("plain text, 1 < 2 and a <b>bold</b> word", "a.txt", "plain"),
    ("# heading\n\n*x*", None, "plain"),
])
def test_sniff(src, name, kind):
    assert sniff_markup(src, name) == kind


def test_to_plain_dispatch():
    assert to_plain("<p>x</p>", "html").text == "\nx\n"
    assert to_plain("*x*", "markdown").text == "x"
    p = to_plain("a<b>", "plain")
    assert p.text == "a<b>" and p.offsets.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        to_plain("x", "pdf")
