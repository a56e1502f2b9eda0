"""HTML and Markdown → visible text, keeping a map from every plain char to the source.

Why: copies are found in the text a reader sees, but must be reported at
positions in the file the user gave us, so removing markup keeps, for every
output char, the index of the source char it came from.

Both scanners are hand-written, single pass and linear time even on hostile
input (megabytes of ``<`` or ``<!--``): every search either moves forward or
gives up on the rest of the input, the way a browser does at end of file.
Nothing is collapsed or normalised here; that happens later.
"""
from __future__ import annotations

import html.entities
import os
import re
from dataclasses import dataclass

import numpy as np

_HTML5 = html.entities.html5
_RAW = ("script", "style", "noscript", "template", "svg")      # content dropped
_RAW_CLOSE = {n: re.compile(rf"</{n}[\s/>]", re.I) for n in _RAW}
_BLOCK = frozenset(
    "address article aside blockquote body br caption center dd details dialog dir div dl dt "
    "fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 head header hgroup hr html legend "
    "li main menu nav ol option p pre section select summary table tbody td textarea tfoot th "
    "thead title tr ul".split())
_MARKUP = re.compile(r"<[A-Za-z/!?]|&(?=[#A-Za-z])")
_ASCII_ALPHA = re.compile(r"[A-Za-z]")
_TAG_NAME = re.compile(r"/?([A-Za-z][^\s/>]*)")
_TAG_TAIL = re.compile(r""">|=\s*(["'])""")
_ENTITY = re.compile(r"&(?:#[xX]([0-9A-Fa-f]+)|#([0-9]+)|([A-Za-z][A-Za-z0-9]{0,31}))(;?)")
_HTML_EXT = frozenset({".html", ".htm", ".xhtml", ".shtml"})
_MD_EXT = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})
_HTML_START = re.compile(r"(?:<\?xml[^>]{0,200}>\s*)?(?:<!doctype\s|<html[\s>])", re.I)
_HTMLISH = re.compile(r"</?(?:p|div|span|a|br|li|ul|ol|table|tr|td|h[1-6]|body|head|script|style"
                      r"|meta|link|img|em|strong|b|i)\b[^<>]{0,500}>", re.I)
# Markdown (all patterns are anchored to a single line and use possessive loops).
_FENCE = re.compile(r" {0,3}(`{3,}+|~{3,}+)(.*)")
_REFDEF = re.compile(r" {0,3}\[[^\]\n]{1,999}\]:[ \t]*\S")
_RULE = re.compile(r" {0,3}(?:([-*_])[ \t]*+(?:\1[ \t]*+){2,}+|=++[ \t]*+)$")
_TABLE_SEP = re.compile(r" {0,3}\|?[ \t]*+:?-++:?[ \t]*+(?:\|[ \t]*+:?-++:?[ \t]*+)++\|?[ \t]*$")
_CONTAINER = re.compile(r"[ \t]{0,3}(?:>[ \t]?|(?:[-*+]|\d{1,9}[.)])(?:[ \t]++|$)(?:\[[ xX]\][ \t]++)?)")
_ATX = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]++|$)")
_MD_SPECIAL = re.compile(r"[\\`*_~\[]|!(?=\[)|<(?=[A-Za-z/!])|&(?=[#A-Za-z])")
_MD_PAIRS = re.compile(r"\\.|[\[\]()]|`++")
_TICKS = re.compile(r"`++")
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*|[^\s<>@]+@[^\s<>@]+)>")
_INLINE_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_MAX_LINK_DEPTH = 16


@dataclass(frozen=True)
class Plain:
    """Visible text and, for every char, its index in the source string.

    ``offsets`` is int64 with ``len(text) + 1`` entries, non-decreasing.  A char
    copied from the source maps to its own index; a char decoded from an entity
    maps to the ``&``; an inserted "\n" (block tag) maps to the tag's ``<``.
    ``offsets[len(text)]`` is the exclusive end of the last mapped source span
    (past the whole entity or tag for those), 0 for empty output.
    """

    text: str
    offsets: np.ndarray


def to_plain(source: str, kind: str) -> Plain:
    """Dispatch on the kind returned by ``sniff_markup``; "plain" is the identity map."""
    if kind == "html":
        return strip_html(source)
    if kind == "markdown":
        return strip_markdown(source)
    if kind == "plain":
        return Plain(source, np.arange(len(source) + 1, dtype=np.int64))
    raise ValueError(f"unknown markup kind {kind!r}")


def sniff_markup(source: str, filename: str | None) -> str:
    """"html" | "markdown" | "plain": by extension first, then by content (HTML only)."""
    ext = os.path.splitext(filename)[1].lower() if filename else ""
    if ext in _HTML_EXT:
        return "html"
    if ext in _MD_EXT:
        return "markdown"
    head = source[:65536].lstrip("\ufeff \t\r\n")
    if _HTML_START.match(head):
        return "html"
    tags = len(_HTMLISH.findall(head))
    return "html" if tags >= 10 or (tags >= 3 and head.startswith("<")) else "plain"


def _build(source: str, segs: list) -> Plain:
    """Segments (start, end, text|None) → Plain; None means source[start:end] verbatim."""
    texts = [source[a:b] if t is None else t for a, b, t in segs]
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.array([s[0] for s in segs], dtype=np.int64)
    verbatim = np.array([s[2] is None for s in segs], dtype=bool)
    total = int(lens.sum())
    first = np.cumsum(lens) - lens
    within = np.arange(total, dtype=np.int64) - np.repeat(first, lens)
    offsets = np.empty(total + 1, dtype=np.int64)
    offsets[:total] = np.repeat(starts, lens) + within * np.repeat(verbatim, lens)
    offsets[total] = segs[-1][1] if segs else 0
    return Plain("".join(texts), offsets)


def _entity(s: str, k: int) -> tuple[str | None, int]:
    """Decode the character reference at ``s[k] == '&'`` → (value, end) or (None, k+1)."""
    m = _ENTITY.match(s, k)
    if m is None:
        return None, k + 1
    hexd, dec, name, semi = m.groups()
    if name is None:
        digits = (hexd or dec).lstrip("0")
        cp = int(digits or "0", 16 if hexd else 10) if len(digits) <= 8 else 0x110000
        if cp == 0 or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
            return "\ufffd", m.end()
        if 0x80 <= cp <= 0x9F:          # HTML5: C1 references mean cp1252
            return bytes([cp]).decode("cp1252", "ignore") or chr(cp), m.end()
        return chr(cp), m.end()
    if semi and name + ";" in _HTML5:
        return _HTML5[name + ";"], m.end()
    for j in range(len(name), 1, -1):   # legacy names without ';' ("&amp", "&nbsp")
        if name[:j] in _HTML5:
            return _HTML5[name[:j]], k + 1 + j
    return None, k + 1


def _tag_end(s: str, j: int) -> int:
    """Index just past the '>' closing a tag whose attributes start at j, or -1.

    A quote only opens a value right after '='; an unterminated quote is taken
    literally.  Once a quote char has no later occurrence it cannot open a
    value again, so the total work stays linear.
    """
    while True:
        m = _TAG_TAIL.search(s, j)
        if m is None:
            return -1
        if m.group(1) is None:
            return m.end()
        q = s.find(m.group(1), m.end())
        j = m.end() if q < 0 else q + 1


def strip_html(source: str) -> Plain:
    """Visible text of an HTML document.

    Tags, comments, doctype, CDATA and processing instructions vanish; the
    content of script/style/noscript/template/svg vanishes too (to the end of
    input when unclosed); every start or end tag of a block element emits one
    "\n"; entities are decoded.  An unterminated tag or comment swallows the
    rest of the input, as in a browser.
    """
    s, n, segs, pos = source, len(source), [], 0
    while pos < n:
        m = _MARKUP.search(s, pos)
        k = m.start() if m else n
        if k > pos:
            segs.append((pos, k, None))
        if m is None:
            break
        if s[k] == "&":
            value, pos = _entity(s, k)
            segs.append((k, pos, value))            # value None: a literal '&'
            continue
        c = s[k + 1]
        if s.startswith("<!--", k):
            if s.startswith(">", k + 4) or s.startswith("->", k + 4):
                pos = k + 4 + (s[k + 4] == "-") + 1
            else:
                e = s.find("-->", k + 4)
                pos = n if e < 0 else e + 3
        elif s.startswith("<![CDATA[", k):
            e = s.find("]]>", k + 9)
            pos = n if e < 0 else e + 3
        elif c in "!?" or (c == "/" and not _ASCII_ALPHA.match(s, k + 2)):
            e = s.find(">", k + 2)                  # doctype, <?xml?>, bogus comments
            pos = n if e < 0 else e + 1
        else:
            pos = _html_tag(s, k, segs)
    return _build(s, segs)


def _html_tag(s: str, k: int, segs: list) -> int:
    """Handle the start or end tag at k; return where scanning resumes."""
    n = len(s)
    m = _TAG_NAME.match(s, k + 1)
    name = m.group(1).lower()
    end = _tag_end(s, m.end())
    if end < 0:
        return n                                    # unterminated tag: drop the rest
    if name in _BLOCK:
        segs.append((k, end, "\n"))
    closing = s[k + 1] == "/"
    if closing or name not in _RAW_CLOSE or (name == "svg" and s[end - 2] == "/"):
        return end
    cm = _RAW_CLOSE[name].search(s, end)
    if cm is None:
        return n                                    # no closing tag: drop to end
    close_end = _tag_end(s, cm.start() + 2 + len(name))
    return n if close_end < 0 else close_end


def strip_markdown(source: str) -> Plain:
    """Visible text of a Markdown document: syntax removed, code content kept."""
    s, n, segs, pos = source, len(source), [], 0
    fence: str | None = None
    while pos < n:
        nl = s.find("\n", pos)
        nl = n if nl < 0 else nl
        e = nl - 1 if nl > pos and s[nl - 1] == "\r" else nl
        fm = _FENCE.match(s, pos, e)
        if fence is not None:
            if fm and fm.group(1)[0] == fence[0] and len(fm.group(1)) >= len(fence) and not fm.group(2).strip():
                fence = None
            elif e > pos:
                segs.append((pos, e, None))
        elif fm and (fm.group(1)[0] == "~" or "`" not in fm.group(2)):
            fence = fm.group(1)
        elif not (_REFDEF.match(s, pos, e) or _RULE.match(s, pos, e) or _TABLE_SEP.match(s, pos, e)):
            _md_line(s, pos, e, segs)
        if nl > e or nl < n:
            segs.append((e, min(nl + 1, n), None))  # keep the line break as is
        pos = nl + 1
    return _build(s, segs)


def _md_line(s: str, a: int, e: int, segs: list) -> None:
    """One line outside code fences: container markers, heading marks, then inlines."""
    while True:
        m = _CONTAINER.match(s, a, e)
        if not m or m.end() == a:
            break
        a = m.end()
    m = _ATX.match(s, a, e)
    if m:
        a = m.end()
        t = e
        while t > a and s[t - 1] in " \t":
            t -= 1
        h = t
        while h > a and s[h - 1] == "#":
            h -= 1
        if h < t and (h == a or s[h - 1] in " \t"):
            e = h                                   # closing "##" sequence
    if _MD_SPECIAL.search(s, a, e):
        segs.extend(_Line(s, a, e).scope(a, e, 0))
    elif e > a:
        segs.append((a, e, None))               # plain prose: nothing inline to parse


class _Line:
    """Inline parser for one line; bracket, paren and backtick matches precomputed in O(n)."""

    def __init__(self, s: str, a: int, e: int) -> None:
        self.s, self.close, self.ticks, self.no_comment_from = s, {}, {}, e
        stacks: dict[str, list[int]] = {"[": [], "(": []}
        runs: list[tuple[int, int]] = []
        for m in _MD_PAIRS.finditer(s, a, e):
            c = m.group()[0]
            if c in "[(":
                stacks[c].append(m.start())
            elif c in "])":
                st = stacks["[" if c == "]" else "("]
                if st:
                    self.close[st.pop()] = m.start()
            elif c == "`":
                runs.append((m.start(), m.end() - m.start()))
        last: dict[int, int] = {}
        for start, length in reversed(runs):       # next run of the same length
            self.ticks[start] = (length, last.get(length))
            last[length] = start

    def scope(self, a: int, e: int, depth: int) -> list:
        """Segments for s[a:e]; emphasis delimiters are paired within this scope only."""
        s, out, openers, dropped = self.s, [], {"*": [], "_": [], "~": []}, set()
        p = a
        while p < e:
            m = _MD_SPECIAL.search(s, p, e)
            k = m.start() if m else e
            if k > p:
                out.append((p, k, None))
            if m is None:
                break
            c, p = s[k], k + 1
            if c == "\\":
                if k + 1 < e and s[k + 1] in _ASCII_PUNCT:
                    out.append((k + 1, k + 2, None))
                    p = k + 2
                elif k + 1 < e:
                    out.append((k, k + 1, None))
            elif c == "`":
                length, nxt = self.ticks.get(k) or (len(_TICKS.match(s, k, e).group()), None)
                if nxt is not None and nxt + length <= e:
                    out.append((k + length, nxt, None))
                    p = nxt + length
                else:
                    out.append((k, k + length, None))
                    p = k + length
            elif c in "*_~":
                p = self._delim(k, e, out, openers, dropped)
            elif c in "[!":
                start = k + 1 if c == "!" else k
                link = self._link(start, e) if depth < _MAX_LINK_DEPTH and s.startswith("[", start) else None
                if link is None:
                    out.append((k, k + 1, None))
                else:
                    out.extend(self.scope(start + 1, link[0], depth + 1))
                    p = link[1]
            elif c == "<":
                p = self._angle(k, e, out)
            else:
                value, p = _entity(s, k)
                out.append((k, p, value))
        return [seg for i, seg in enumerate(out) if i not in dropped] if dropped else out

    def _delim(self, k: int, e: int, out: list, openers: dict, dropped: set) -> int:
        """A run of * _ ~; matched pairs are dropped (by index in out), the rest stays literal."""
        s, c, r = self.s, self.s[k], k
        while r < e and s[r] == c:
            r += 1
        before = s[k - 1] if k > 0 else " "
        after = s[r] if r < e else " "
        b_ws, a_ws = before.isspace(), after.isspace()
        b_p, a_p = not (b_ws or before.isalnum()), not (a_ws or after.isalnum())
        left = not a_ws and (not a_p or b_ws or b_p)
        right = not b_ws and (not b_p or a_ws or a_p)
        if c == "_":
            left, right = left and (not right or b_p), right and (not left or a_p)
        out.append((k, r, None))
        if c == "~" and r - k != 2:
            return r
        if right and openers[c]:
            dropped.add(openers[c].pop())
            dropped.add(len(out) - 1)
        elif left:
            openers[c].append(len(out) - 1)
        return r

    def _link(self, k: int, e: int) -> tuple[int, int] | None:
        """For '[' at k: (end of label, end of link) for [t](url) / [t][id], else None."""
        close = self.close.get(k)
        if close is None or close + 1 >= e or self.s[close + 1] not in "([":
            return None
        end = self.close.get(close + 1)
        return (close, end + 1) if end is not None and end < e else None

    def _angle(self, k: int, e: int, out: list) -> int:
        """'<' in Markdown: autolink → its URL; inline tag or one-line comment → nothing."""
        s = self.s
        m = _AUTOLINK.match(s, k, e)
        if m:
            out.append((m.start(1), m.end(1), None))
            return m.end()
        m = _INLINE_TAG.match(s, k, e)
        if m:
            return m.end()
        if s.startswith("<!--", k) and k < self.no_comment_from:
            c = s.find("-->", k + 4, e)
            if c >= 0:
                return c + 3
            self.no_comment_from = k                # no later comment on this line closes
        out.append((k, k + 1, None))
        return k + 1
