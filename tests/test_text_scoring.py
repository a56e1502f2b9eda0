"""Behavioural checks of TextModality.verify: scores, verdicts and located evidence."""
from __future__ import annotations

from importlib import resources

import numpy as np
import opencc
import pytest

from copyscope.model import Artifact
from copyscope.stats import MemoryStats
from copyscope.text.decode import decode_bytes
from copyscope.text.plugin import TextModality

SAMPLES = resources.files("copyscope").joinpath("samples/text")
PLUGIN = TextModality()


def fp(data: bytes | str, name: str):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return PLUGIN.fingerprint(Artifact(data, origin=name))


def sample(rel: str):
    return fp(SAMPLES.joinpath(rel).read_bytes(), rel)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


# --- verbatim -----------------------------------------------------------------------------

@pytest.mark.parametrize("rel", ["registered/en_soil.txt", "registered/en_lighthouse.md",
                                 "registered/zh_tea.txt", "registered/zh_bridge.txt"])
def test_verbatim_copy_scores_at_least_099(rel):
    data = SAMPLES.joinpath(rel).read_bytes()
    m = PLUGIN.verify(fp(data, "copy" + rel[-4:]), fp(data, rel))
    assert m is not None and m.verdict == "copy"
    assert m.score >= 0.99
    # k-grams repeated more than max_occ times inside one document are skipped, hence not exactly 1
    assert m.coverage_query >= 0.95 and m.coverage_registered >= 0.95
    assert m.coverage_query == pytest.approx(m.coverage_registered)


# --- a 3-sentence fragment inside a long unrelated text ----------------------------------

REG_SENTS = [
    "The Hollin Moss peat bog lies in a shallow basin north of the quarry road.",
    "For two centuries it was drained with ditches so that sheep could graze the drier margins.",
    "In the spring of 2019 a team of twelve volunteers began blocking those ditches with wooden dams and bales of heather.",
    "Within a single winter the water table rose by almost forty centimetres, and sphagnum moss returned to the bare patches.",
    "Curlews, absent for a generation, were heard calling over the northern pools the following May.",
    "The project now monitors rainfall, carbon flux and bird numbers from a hut built of reclaimed pallets.",
    "Its organisers hope that neighbouring estates will copy the method before the next drought.",
]
REGISTERED = "Restoring Hollin Moss\n\n" + " ".join(REG_SENTS[:3]) + "\n" + " ".join(REG_SENTS[3:]) + "\n"
FRAGMENT = " ".join(REG_SENTS[2:5])
QUERY_LINES = [
    "Notes from the municipal orchestra's autumn season",
    "",
    "The orchestra opened its season with a programme of overtures by lesser-known composers.",
    "Ticket sales were brisk, helped by a discount scheme aimed at students and pensioners.",
    "The conductor, newly appointed after a long search, favoured brisk tempi and crisp attacks.",
    "Several critics praised the woodwind section, singling out a bassoon solo in the second half.",
    "Rehearsals moved to the renovated corn exchange, whose acoustics proved warmer than expected. "
    + FRAGMENT + " Brass players complained about draughts from the loading bay.",
    "A youth ensemble performed in the foyer before each concert, drawing crowds of parents.",
    "Programme notes were written by a retired music teacher who knew every player by name.",
    "In November the heating failed during a Sibelius symphony and the audience kept their coats on.",
    "The season closed with a choral work that filled the hall to the last seat.",
    "Plans for next year include a tour of market towns and a commission from a local composer.",
]
QUERY = "\n".join(QUERY_LINES) + "\n"


def test_fragment_fixture_offsets():
    # What the passage assertions below rely on, computed from the construction.
    assert QUERY.index(FRAGMENT) == 508 and line_of(QUERY, 508) == 7
    assert REGISTERED.index(REG_SENTS[2]) == 189 and line_of(REGISTERED, 189) == 3
    assert line_of(REGISTERED, REGISTERED.index(REG_SENTS[4])) == 4


def test_three_sentence_fragment_in_long_text_is_located_exactly():
    q, r = fp(QUERY, "orchestra.txt"), fp(REGISTERED, "hollin.txt")
    m = PLUGIN.verify(q, r)
    assert m is not None and m.verdict == "copy"
    assert m.score >= 0.5
    assert len(m.passages) == 1
    p = m.passages[0]
    q_start = QUERY.index(FRAGMENT)
    q_end = q_start + len(FRAGMENT) - 1                     # the final '.' is not part of any token
    r_start = REGISTERED.index(REG_SENTS[2])
    r_end = REGISTERED.index(REG_SENTS[4]) + len(REG_SENTS[4]) - 1
    assert (p.query.start, p.query.end) == (q_start, q_end) == (508, 841)
    assert (p.registered.start, p.registered.end) == (r_start, r_end) == (189, 522)
    assert (p.query.line_start, p.query.line_end) == (7, 7)
    assert (p.registered.line_start, p.registered.line_end) == (3, 4)
    assert p.query.text == FRAGMENT[:-1]
    assert p.registered.text.replace("\n", " ") == FRAGMENT[:-1]
    assert (p.query.byte_start, p.query.byte_end) == (508, 841)     # ASCII: bytes == chars
    n_words = len(FRAGMENT.replace(",", " ").split())
    assert p.stream == "word" and p.tokens == n_words == 56
    assert p.query.matched == ((0, q_end - q_start),)
    assert p.query.before.endswith("warmer than expected. ")
    assert p.query.after.startswith(". Brass players")
    # A short fragment of a long page: low coverage, yet a confident verdict.
    assert m.coverage_query < 0.5 and m.coverage_registered < 0.7


def test_fragment_score_grows_with_fragment_length():
    r = fp(REGISTERED, "hollin.txt")
    scores = []
    for n in (1, 2, 3):
        frag = " ".join(REG_SENTS[2:2 + n])
        m = PLUGIN.verify(fp(QUERY.replace(FRAGMENT, frag), "q.txt"), r)
        scores.append(0.0 if m is None else m.score)
    assert scores[0] < scores[1] < scores[2]


# --- unrelated, same topic ------------------------------------------------------------------

def _paragraph_corpus():
    """Whole demo files plus every paragraph as its own doc: > vocab_min_docs, so IDF is on."""
    docs = []
    for d in ("registered", "suspects"):
        for entry in sorted(SAMPLES.joinpath(d).iterdir(), key=lambda e: e.name):
            data = entry.read_bytes()
            docs.append(fp(data, entry.name))
            text = decode_bytes(data).text
            docs += [fp(para, f"{entry.name}#{i}") for i, para in enumerate(text.split("\n\n")) if para.strip()]
    return docs


@pytest.mark.parametrize("suspect,registered", [
    ("suspects/innocent_en.txt", "registered/en_lighthouse.md"),
    ("suspects/innocent_zh.txt", "registered/zh_tea.txt"),
])
def test_unrelated_same_topic_scores_below_half(suspect, registered):
    q, r = sample(suspect), sample(registered)
    m = PLUGIN.verify(q, r)
    assert m is None or (m.score < 0.5 and m.verdict == "below-threshold")
    stats = MemoryStats(_paragraph_corpus())
    assert stats.n_docs >= PLUGIN.params.vocab_min_docs
    m = PLUGIN.verify(q, r, stats)
    assert m is not None                                    # the vocabulary signal is on...
    assert m.signals["vocabulary_overlap"] is not None and m.signals["passage_evidence"] == 0.0
    assert m.score < 0.5 and m.verdict == "below-threshold"  # ...but shared topic words are not a copy


def test_same_topic_written_independently_synthetic():
    a = ("Volunteers repainted the lighthouse at Carrick Ness last spring. The lamp room was cleaned, "
         "the brass polished and the lens inspected by a specialist from the mainland.")
    b = ("A lighthouse keeper's diary from 1902 describes cleaning the lamp every morning. He polished "
         "brass fittings, trimmed wicks and recorded the weather for the harbour board.")
    m = PLUGIN.verify(fp(a, "a.txt"), fp(b, "b.txt"))
    assert m is None or m.score < 0.5


# --- traditional vs simplified Chinese ------------------------------------------------------

def test_traditional_repost_of_simplified_article_scores_at_least_09():
    m = PLUGIN.verify(sample("suspects/zh_repost_traditional.txt"), sample("registered/zh_tea.txt"))
    assert m is not None and m.verdict == "copy" and m.score >= 0.9
    assert {p.stream for p in m.passages} == {"cjk"}


def test_opencc_converted_copy_scores_at_least_09():
    simplified = SAMPLES.joinpath("registered/zh_bridge.txt").read_text(encoding="utf-8")
    traditional = opencc.OpenCC("s2t").convert(simplified)
    assert traditional != simplified
    m = PLUGIN.verify(fp(traditional, "trad.txt"), fp(simplified, "simp.txt"))
    assert m is not None and m.score >= 0.9
    assert m.coverage_registered >= 0.9
    for p in m.passages:          # evidence is quoted from each side's own script
        assert p.query.text == traditional[p.query.start:p.query.end]
        assert p.registered.text == simplified[p.registered.start:p.registered.end]


# --- HTML page with a registered Markdown article, GB18030 bytes ------------------------------

MD_ARTICLE = """# 青石巷的旧书摊

每逢周六清晨，退休教师周明远都会把三只木箱搬到青石巷口，摆开他的旧书摊。**箱子里的书大多来自街坊捐赠**，从泛黄的连环画到整套的《辞海》，应有尽有。

他给每本书都包上牛皮纸书皮，并用毛笔写上书名。来买书的孩子如果读完一本，可以拿回来换另一本，*不收一分钱*。

去年冬天，巷子改造，书摊一度被迫停了三个月。街坊们自发写信给街道办，书摊才得以在新修的长廊下重新开张。
"""
HTML_PAGE = """<!DOCTYPE html>
<html><head><meta charset="gb2312"><title>城市生活 - 转载</title>
<style>body { font-family: serif; }</style>
<script>var tracker = "青石巷的旧书摊";</script></head>
<body><nav>首页 | 城市 | 生活</nav>
<p>编者按：以下文章转载自网络，略有删节。</p>
<article>
<h1>青石巷的旧书摊</h1>
<p>每逢周六清晨，退休教师周明远都会把三只木箱搬到青石巷口，摆开他的旧书摊。<strong>箱子里的书大多来自街坊捐赠</strong>，从泛黄的连环画到整套的&ldquo;辞海&rdquo;，应有尽有。</p>
<p>他给每本书都包上牛皮纸书皮，并用毛笔写上书名。来买书的孩子如果读完一本，可以拿回来换另一本，<em>不收一分钱</em>。</p>
<p>去年冬天，巷子改造，书摊一度被迫停了三个月。街坊们自发写信给街道办，书摊才得以在新修的长廊下重新开张。</p>
</article>
<footer>版权所有 &copy; 2024 城市生活网</footer>
</body></html>
"""


def test_gb18030_html_copy_of_markdown_article_has_exact_char_and_byte_offsets():
    data = HTML_PAGE.encode("gb18030")
    q, r = fp(data, "page.html"), fp(MD_ARTICLE, "article.md")
    assert (q.decoded.encoding, q.markup, r.markup) == ("gb18030", "html", "markdown")
    m = PLUGIN.verify(q, r)
    assert m is not None and m.verdict == "copy" and m.score >= 0.99
    assert len(m.passages) == 1
    p = m.passages[0]
    # Offsets point into the HTML *source* (tags included), not into the stripped text.
    start = HTML_PAGE.index("青石巷的旧书摊</h1>")
    end = HTML_PAGE.index("重新开张。</p>") + len("重新开张")
    assert (p.query.start, p.query.end) == (start, end)
    assert p.query.text == HTML_PAGE[start:end]
    assert "<p>" in p.query.text and "&ldquo;" in p.query.text and "<strong>" in p.query.text
    assert (p.query.line_start, p.query.line_end) == (line_of(HTML_PAGE, start), line_of(HTML_PAGE, end - 1)) == (8, 11)
    # Byte offsets: computed independently, and the slice decodes back to the quoted text.
    assert p.query.byte_start == len(HTML_PAGE[:start].encode("gb18030"))
    assert p.query.byte_end == len(HTML_PAGE[:end].encode("gb18030"))
    assert data[p.query.byte_start:p.query.byte_end].decode("gb18030") == p.query.text
    # The registered side points into the Markdown source (markup included).
    r_start, r_end = MD_ARTICLE.index("青石巷"), MD_ARTICLE.index("重新开张") + len("重新开张")
    assert (p.registered.start, p.registered.end) == (r_start, r_end) == (2, 194)
    assert "**" in p.registered.text
    assert MD_ARTICLE.encode()[p.registered.byte_start:p.registered.byte_end].decode() == p.registered.text


def test_gb18030_sample_fragment_byte_offsets_decode_to_quoted_text():
    data = SAMPLES.joinpath("suspects/zh_fragment_gbk.txt").read_bytes()
    q = fp(data, "zh_fragment_gbk.txt")
    assert q.decoded.encoding == "gb18030"
    m = PLUGIN.verify(q, sample("registered/zh_bridge.txt"))
    assert m is not None and m.verdict == "copy" and m.passages
    text = data.decode("gb18030")
    for p in m.passages:
        s = p.query
        assert data[s.byte_start:s.byte_end].decode("gb18030") == s.text == text[s.start:s.end]
        assert s.byte_end - s.byte_start == len(s.text.encode("gb18030"))
        assert s.byte_end - s.byte_start < len(s.text.encode("utf-8"))   # 2-byte hanzi, not UTF-8's 3


def test_blog_repost_passage_points_into_html_source():
    raw = SAMPLES.joinpath("suspects/blog_repost.html").read_bytes()
    html = raw.decode("utf-8")
    q, r = fp(raw, "blog_repost.html"), sample("registered/en_lighthouse.md")
    m = PLUGIN.verify(q, r)
    assert m is not None and m.verdict == "copy" and m.score >= 0.99
    body = max(m.passages, key=lambda p: p.tokens)
    start = html.index("On a grey Saturday in March")
    end = html.index("So neither do we") + len("So neither do we")
    assert (body.query.start, body.query.end) == (start, end)
    assert body.query.text == html[start:end]
    assert "&nbsp;" in body.query.text and "&ldquo;" in body.query.text   # entities stay as in the file
    assert raw[body.query.byte_start:body.query.byte_end].decode("utf-8") == body.query.text
    assert body.query.line_start == line_of(html, start) and body.query.line_end == line_of(html, end - 1)
    for p in m.passages:
        assert html[p.query.start:p.query.end] == p.query.text


def test_blog_repost_registered_span_starts_where_the_query_span_does():
    md = SAMPLES.joinpath("registered/en_lighthouse.md").read_text(encoding="utf-8")
    m = PLUGIN.verify(sample("suspects/blog_repost.html"), sample("registered/en_lighthouse.md"))
    body = max(m.passages, key=lambda p: p.tokens)
    assert body.registered.start == md.index("On a grey Saturday in March")


def test_verify_with_and_without_stats_agree_on_verdicts_for_copies():
    stats = MemoryStats([sample("registered/en_soil.txt"), sample("registered/zh_tea.txt")])
    for s, r in (("suspects/en_light_edit.txt", "registered/en_soil.txt"),
                 ("suspects/zh_repost_traditional.txt", "registered/zh_tea.txt")):
        m = PLUGIN.verify(sample(s), sample(r), stats)
        assert m is not None and m.verdict == "copy"
        assert m.signals["vocabulary_overlap"] is None          # 2 docs < vocab_min_docs
        assert 0.0 < m.signals["passage_evidence"] <= 1.0


def test_no_shared_text_returns_none():
    assert PLUGIN.verify(fp("completely different words here today", "a.txt"),
                         fp("nothing alike whatsoever in this sentence", "b.txt")) is None


def test_match_passages_are_sorted_by_registered_then_query_offset():
    m = PLUGIN.verify(sample("suspects/blog_repost.html"), sample("registered/en_lighthouse.md"))
    keys = [(p.registered.start, p.query.start) for p in m.passages]
    assert keys == sorted(keys)
    assert np.isfinite([p.rarity for p in m.passages]).all()
