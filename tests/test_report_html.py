"""Tests for the self-contained HTML evidence report."""
from __future__ import annotations

import copy
import re


from copyscope.report import render_html, segments
from copyscope.report.html import MAX_PASSAGE_CHARS

SHA_Q = "ab12" + "0" * 56 + "cdef"
SHA_R = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SHA_ZH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

EN_Q = "The keeper climbed the stairs at dusk, as he always had, and lit the great lamp."
EN_R = "The keeper climbed the stairs at dawn, as he always had, and lit the great lamp."
ZH_Q = "灯塔看守人每天黄昏登上台阶，点亮那盏巨大的灯。"
ZH_R = "灯塔看守人每天清晨登上台阶，点亮那盏巨大的灯。"


def _side(text, matched, **extra):
    side = {"start": 100, "end": 100 + len(text), "byte_start": 100, "byte_end": 100 + len(text.encode()),
            "line_start": 12, "line_end": 20, "text": text, "matched": matched,
            "before": "context before. ", "after": " context after."}
    side.update(extra)
    return side


def _bundle(**over):
    bundle = {
        "schema": "copyscope.evidence/v1",
        "tool": {"name": "copyscope", "version": "0.1.0"},
        "operation": "check",
        "parameters": {"text": {"algorithm": "text.winnow/v1", "word_k": 3, "cjk_k": 5,
                                "window": 6, "threshold": 0.5}},
        "inputs": [
            {"role": "query", "path": "suspects/blog.html", "sha256": SHA_Q, "size": 12345,
             "media_type": "text/html", "encoding": "utf-8"},
            {"role": "registered", "path": "registered/en.md", "sha256": SHA_R, "size": 4567,
             "media_type": "text/markdown", "encoding": "utf-8", "work_id": "w_0001"},
            {"role": "registered", "path": "registered/zh.md", "sha256": SHA_ZH, "size": 890,
             "media_type": "text/markdown", "encoding": "utf-8"},
        ],
        "matches": [
            {"query": {"path": "suspects/blog.html", "sha256": SHA_Q},
             "registered": {"path": "registered/en.md", "sha256": SHA_R, "work_id": "w_0001",
                            "title": "The Lighthouse", "owner": "Ann Writer", "license": "CC-BY-4.0"},
             "modality": "text", "score": 0.97, "verdict": "copy",
             "coverage": {"registered": 0.92, "query": 0.31},
             "signals": {"passage_evidence": 0.99, "vocabulary_overlap": None},
             "passages": [{"stream": "word", "tokens": 120, "rarity": 0.98,
                           "query": _side(EN_Q, [[0, 33], [37, len(EN_Q)]]),
                           "registered": _side(EN_R, [[0, 33], [37, len(EN_R)]], line_start=1, line_end=9)}]},
            {"query": {"path": "suspects/blog.html", "sha256": SHA_Q},
             "registered": {"path": "registered/zh.md", "sha256": SHA_ZH},
             "modality": "text", "score": 0.41, "verdict": "below-threshold",
             "coverage": {"registered": 0.5, "query": 0.05},
             "signals": {"passage_evidence": 0.4},
             "passages": [{"stream": "cjk", "tokens": 18, "rarity": 0.9,
                           "query": _side(ZH_Q, [[0, 7], [9, len(ZH_Q)]]),
                           "registered": _side(ZH_R, [[0, 7], [9, len(ZH_R)]])}]},
        ],
    }
    bundle.update(over)
    return bundle


# --- segments() ---------------------------------------------------------------

def test_segments_basic_roundtrip():
    assert segments("abcdef", [[1, 3]]) == [("a", False), ("bc", True), ("def", False)]
    assert segments("abc", []) == [("abc", False)]
    assert segments("abc", None) == [("abc", False)]
    assert segments("", [[0, 5]]) == []
    assert segments("abc", [[0, 3]]) == [("abc", True)]


def test_segments_overlapping_unsorted_touching_merge():
    assert segments("abcdefghij", [[5, 8], [1, 4], [3, 6]]) == [("a", False), ("bcdefgh", True), ("ij", False)]
    assert segments("abcdef", [[0, 2], [2, 4]]) == [("abcd", True), ("ef", False)]
    assert segments("abcdef", [[1, 5], [2, 3]]) == [("a", False), ("bcde", True), ("f", False)]


def test_segments_out_of_range_and_malformed():
    assert segments("abc", [[-5, 1], [2, 99]]) == [("a", True), ("b", False), ("c", True)]
    assert segments("abc", [[10, 20], [2, 1], [1, 1]]) == [("abc", False)]
    assert segments("abc", [[None, 2], ["x", 1], [1], "zz", [1.0, 2.0]]) == [("a", False), ("b", True), ("c", False)]


def test_segments_always_rejoins_to_text():
    text = "灯塔看守人 lit the lamp"
    for ranges in ([[3, 1], [0, 100]], [[2, 4], [4, 6], [5, 9]], [[-1, -1]]):
        segs = segments(text, ranges)
        assert "".join(t for t, _ in segs) == text
        assert all(t for t, _ in segs)
        assert all(a[1] != b[1] for a, b in zip(segs, segs[1:]))  # runs alternate


# --- render_html() ------------------------------------------------------------

def test_renders_sample_bundle():
    html = render_html(_bundle(), generated_at="2024-05-01T12:00:00Z")
    assert html.startswith("<!DOCTYPE html>")
    assert html.rstrip().endswith("</html>")
    assert "copyscope evidence report" in html
    assert "0.1.0" in html and "check" in html
    assert "2024-05-01T12:00:00Z" in html
    for sha in (SHA_Q, SHA_R, SHA_ZH):
        assert sha in html  # full hash, never shortened
    # exact matches are <mark>ed; the edited word sits in the weaker tint
    assert '<mark class="hit">The keeper climbed the stairs at </mark><span class="edit">dusk</span>' in html
    assert '<span class="edit">dawn</span>' in html
    assert '<mark class="hit">灯塔看守人每天</mark><span class="edit">黄昏</span>' in html
    assert '<span class="edit">清晨</span>' in html
    assert "本报告" in html and "Noto Sans CJK SC" in html and "Microsoft YaHei" in html
    # metadata, anchors, numbering, locations
    assert "The Lighthouse" in html and "Ann Writer" in html and "CC-BY-4.0" in html and "w_0001" in html
    assert 'href="#match-1"' in html and 'id="match-1"' in html and 'id="match-2"' in html
    assert "Passage 1 of 1 · 120 tokens · rarity 0.98" in html
    assert "lines 12–20" in html and "lines 1–9" in html
    assert f"bytes 100–{100 + len(ZH_Q.encode())}" in html
    assert "text.threshold" in html and "text.algorithm" in html
    assert "v-copy" in html and "below-threshold" in html
    assert "n/a" in html  # null signal
    assert "Verify: recompute the SHA-256 of each input file and compare with the table above." in html
    assert "source of truth" in html
    assert "@media print" in html
    assert "No copying found" not in html


def test_generated_at_is_optional():
    html = render_html(_bundle())
    assert "generated" not in html.split("<footer>")[1]


def test_hostile_text_is_escaped():
    evil = '</script><script>alert(1)</script> "><img src=x onerror=alert(1)> <b>bold</b>'
    bundle = _bundle()
    p = bundle["matches"][0]["passages"][0]
    p["query"] = _side(evil, [[0, 34]], before="<script>alert(2)</script>", after="<style>*{}</style>")
    bundle["matches"][0]["registered"]["title"] = "<script>alert(3)</script>"
    bundle["matches"][0]["verdict"] = '"><script>alert(4)</script>'
    bundle["inputs"][0]["path"] = '"><img src=x onerror=alert(5)>.html'
    bundle["parameters"] = {"<script>alert(6)</script>": {"x": "</td><script>alert(7)</script>"}}
    html = render_html(bundle, generated_at="<script>alert(8)</script>")
    low = html.lower()
    assert "<script" not in low  # no script element at all: the report uses no JS
    assert "<img" not in low and "<b>bold" not in low and "<style>*" not in low
    assert '<mark class="hit">&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;</mark>' in html
    assert '<span class="edit"> &#34;&gt;&lt;img src=x onerror=alert(1)&gt; &lt;b&gt;bold&lt;/b&gt;</span>' in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(8)&lt;/script&gt;" in html
    assert 'class="badge v-other"' in html  # unknown verdicts never reach a class attribute


def test_no_external_references():
    html = render_html(_bundle(), generated_at="2024-05-01")
    # The only "http" in the document is the CSP meta tag's http-equiv attribute name.
    assert "http" not in html.replace('<meta http-equiv="Content-Security-Policy"', "")
    assert "default-src 'none'" in html
    low = html.lower()
    for needle in ("src=", "href=\"/", "href=\"//", "@import", "url(", "<link", "<script", "<img", "<iframe"):
        assert needle not in low, needle
    assert set(re.findall(r'href="([^"]*)"', html)) <= {f"#match-{i}" for i in (1, 2)}


def test_zero_matches():
    html = render_html(_bundle(matches=[]))
    assert "No copying found above the threshold" in html
    assert SHA_Q in html and SHA_R in html
    assert 'class="match"' not in html


def test_minimal_and_missing_fields():
    html = render_html({"matches": [{}, {"passages": [{}]}, {"passages": None, "score": None}]})
    assert "copyscope evidence report" in html
    assert "No passages are recorded for this match." in html
    assert "(no passage text recorded)" in html
    assert "No inputs are listed" in html
    assert render_html({}).count("No copying found above the threshold") == 1


def test_match_with_zero_passages():
    bundle = _bundle()
    bundle["matches"][0]["passages"] = []
    html = render_html(bundle)
    assert "No passages are recorded for this match." in html
    assert "Passage 1 of 1 · 18 tokens" in html  # the second match still renders


def test_truncation_note_and_clipped_ranges():
    long_text = "x" * (MAX_PASSAGE_CHARS + 5000)
    bundle = _bundle()
    p = bundle["matches"][0]["passages"][0]
    p["query"] = _side(long_text, [[0, 10], [MAX_PASSAGE_CHARS - 5, MAX_PASSAGE_CHARS + 100], [MAX_PASSAGE_CHARS + 200, MAX_PASSAGE_CHARS + 300]],
                       after="AFTER-CONTEXT-MARKER")
    html = render_html(bundle)
    assert "… truncated (5,000 chars not shown; passage has 25,000 chars, first 20,000 shown)" in html
    assert "x" * (MAX_PASSAGE_CHARS + 1) not in html
    assert f'<mark class="hit">{"x" * 5}</mark><span class="trunc">' in html  # clipped at the cap
    assert "AFTER-CONTEXT-MARKER" not in html  # not contiguous with what is shown
    assert html.count("truncated (") == 1  # the registered side is short


def test_many_passages_single_document():
    bundle = _bundle()
    base = bundle["matches"][0]["passages"][0]
    bundle["matches"][0]["passages"] = [copy.deepcopy(base) for _ in range(500)]
    html = render_html(bundle)
    assert "Passage 500 of 500" in html and "Passage 1 of 500" in html
    assert html.count('<div class="passage"') == 501
    assert html.count("<html") == 1 and html.count("</html>") == 1
