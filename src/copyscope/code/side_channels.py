"""Side channels: the traces a disguised copy keeps that structure-based peers ignore.

An engineer who renames every identifier of an SDK and reshuffles its files
rarely touches three things, and each is reported as its own explicit evidence
(``Match.extra["side_channels"]``, the HTML report, JSON):

* **identifier spellings** that are the author's own choice: compound names
  (``mRenderQueueLock``, ``decode_frame_hdr``) and non-dictionary words, not
  the short or everyday names (``i``, ``count``, ``result``) and not the
  ubiquitous library API (``println``, ``toString``) that any two files share;
* **unusual constants**: magic numbers (``0x5f3759df``, ``86401``,
  ``0.0174533``), compared by value so ``0x10`` and ``16`` are the same
  constant; small, round and power-of-two numbers are everyone's;
* **typos**: a misspelling (``recieve``, ``lenght``) found on both sides, in an
  identifier, a comment or a string. Two authors rarely make the same one.

These are evidence for a person to weigh, not part of the score: on IR-Plag's
textbook exercises the identifiers a task prescribes are shared by independent
solutions more often than by renamed copies (docs/code-engine.md), so adding
them to the score lowered every level's AUC.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from copyscope.code.tokens import KIND_IDENT, KIND_NUMBER, KIND_STRING, CodeTokens
from copyscope.model import SIDE_CHANNEL_ITEMS

_MIN_IDENT = 5          # shorter names are everyone's (``i``, ``tmp``, ``data``)
_MIN_TYPO = 5           # shorter unknown words are abbreviations (``ctx``, ``init``)

_SUBWORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_WORD = re.compile(r"[A-Za-z]+")

# Names every codebase shares: standard-library API and framework boilerplate
# across the supported languages. Lower-cased; compared case-insensitively.
_COMMON = frozenset("""
println printf print sprintf fprintf snprintf tostring hashcode equals compareto getclass
getinstance getmessage printstacktrace stringbuilder stringbuffer arraylist hashmap hashset
linkedlist treemap treeset linkedhashmap concurrenthashmap arrays collections iterator
parseint parsedouble parselong parsefloat valueof nextint nextline nextdouble nextlong hasnext
hasnextint charat substring indexof lastindexof tolowercase touppercase startswith endswith
isempty length append insert remove contains containskey containsvalue getkey getvalue
entryset keyset values foreach addall removeall clear size getname setname getid setid
system scanner integer double boolean string character object exception runtimeexception
illegalargumentexception illegalstateexception nullpointerexception ioexception
indexoutofboundsexception override deprecated suppresswarnings functionalinterface
actionlistener actionevent addactionlistener actionperformed settext gettext setvisible
jframe jpanel jbutton jlabel jtextfield bufferedreader inputstreamreader readline
printwriter filereader filewriter inputstream outputstream currenttimemillis
nanotime arraycopy sqrt random mathf abs
__init__ __name__ __main__ __str__ __repr__ __eq__ __hash__ __len__ __iter__ __next__
__enter__ __exit__ __getitem__ __setitem__ __call__ isinstance enumerate staticmethod
classmethod property super setup teardown setupclass assertequal asserttrue assertfalse
assertraises
console document window addeventlistener queryselector getelementbyid preventdefault
settimeout setinterval json stringify parse promise resolve reject then catch finally
module exports require undefined prototype constructor
malloc calloc realloc free memcpy memset memmove strlen strcpy strncpy strcmp strncmp
strcat fopen fclose fread fwrite fgets fputs puts getchar putchar scanf sizeof
nullptr size_t uint8_t uint16_t uint32_t uint64_t int8_t int16_t int32_t int64_t
std cout cerr endl vector push_back emplace_back begin end unique_ptr shared_ptr make_shared
make_unique nsstring nsobject nsarray nsdictionary nslog alloc init self
fmt println errorf sprintf make append context
unwrap expect clone into from default debug display vec box option result some none
viewdidload viewwillappear uiviewcontroller uiview
readonly
""".split())

# Programming words the English dictionary does not know: never typos.
_JARGON = frozenset("""
args argv argc async await bool boolean config configs const deque dict enum func impl init
inode iter json kwargs lambda malloc mutex namespace param params printf println regex runtime
scanf stderr stdin stdout struct tuple typedef uint unsigned utils util vars varargs xml yaml
html http https url uri utf ascii stdint stdio stdlib unistd iostream cstdio cstdlib cstring
cmath ctype errno pthread sql tcp udp ipv api apis gui sdk cpu gpu ram enum enums
getter setter getters setters boolean namespace subclass superclass metadata timestamp
username hostname filename filepath dirname pathname localhost
""".split())

_SIDE_KINDS = np.array([KIND_IDENT, KIND_NUMBER, KIND_STRING], dtype=np.uint8)
_TIME_AND_SIZE = frozenset({24, 60, 100, 360, 365, 366, 1000, 3600, 86400, 1000000, 1000000000})


@dataclass(frozen=True)
class Trace:
    """One side-channel item seen in a file: its text and first line."""

    text: str
    line: int


@dataclass(frozen=True)
class SideChannels:
    """The side-channel traces of one file, keyed for intersection."""

    identifiers: dict[str, Trace]    # spelling -> first use
    constants: dict[str, Trace]      # canonical value -> first use (as written)
    words: dict[str, Trace]          # lower-cased word (identifier parts, comments, strings) -> first use

    @classmethod
    def of(cls, tokens: CodeTokens) -> SideChannels:
        # each distinct spelling once, at its first line: a file repeats its names
        first: dict[tuple[int, str], int] = {}
        at = np.flatnonzero(np.isin(tokens.kinds, _SIDE_KINDS))
        for i, kind, line in zip(at.tolist(), tokens.kinds[at].tolist(), tokens.lines[at].tolist()):
            first.setdefault((kind, tokens.text[i]), line)
        identifiers: dict[str, Trace] = {}
        constants: dict[str, Trace] = {}
        words: dict[str, Trace] = {}
        for (kind, t), line in first.items():
            if kind == KIND_IDENT:
                if distinctive_identifier(t):
                    identifiers[t] = Trace(t, line)
                _add_words(words, _SUBWORD.findall(t), line)
            elif kind == KIND_NUMBER:
                value = unusual_constant(t)
                if value is not None and (value not in constants or line < constants[value].line):
                    constants[value] = Trace(t, line)
            elif not t.startswith("<"):                 # a string, but not ``#include <stdint.h>``
                _add_words(words, _WORD.findall(t), line)
        for t, _start, _end, line in tokens.comments:
            for i, part in enumerate(t.splitlines()):
                _add_words(words, _WORD.findall(part), line + i)
        return cls(identifiers, constants, words)

    def without(self, base: list[SideChannels]) -> SideChannels:
        """These traces minus those the base (template) code has: a starter
        project's names are not evidence of copying."""
        def keep(mine: dict[str, Trace], attr: str) -> dict[str, Trace]:
            drop = set().union(*(getattr(b, attr).keys() for b in base))
            return {k: v for k, v in mine.items() if k not in drop}
        return SideChannels(keep(self.identifiers, "identifiers"), keep(self.constants, "constants"),
                            keep(self.words, "words"))


def _add_words(out: dict[str, Trace], words: Iterable[str], line: int) -> None:
    for w in words:
        if len(w) >= _MIN_TYPO and w.isalpha():
            key = w.lower()
            if key not in out or line < out[key].line:     # comments are read after the code
                out[key] = Trace(w, line)


@functools.lru_cache(maxsize=1 << 16)
def distinctive_identifier(name: str) -> bool:
    """An identifier an author chose, as opposed to one every file has: at least
    five characters, not common API, and a compound (two or more parts) or a word
    the dictionary does not know."""
    if len(name) < _MIN_IDENT or name.lower() in _COMMON or name.isupper() and len(name) < 8:
        return False
    parts = [p for p in _SUBWORD.findall(name) if not p.isdigit()]
    if len(parts) >= 2:
        return True
    return bool(parts) and parts[0].lower() not in _english() and parts[0].lower() not in _JARGON


@functools.lru_cache(maxsize=1 << 16)
def unusual_constant(text: str) -> str | None:
    """The canonical value of a numeric literal if it is a magic number, else None.

    Common numbers are excluded: integers up to 16, powers of two and ten and
    their neighbours below (``255``, ``0xFFFF``), round time and size units, and
    numbers with fewer than three significant digits (``42``, ``3000``, ``0.5``)."""
    value = _parse_number(text)
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    a = abs(value)
    if a == int(a) and a < 2 ** 64:
        n = int(a)
        if n <= 16 or n in _TIME_AND_SIZE or _power_of(n, 2) or _power_of(n + 1, 2) or _power_of(n, 10):
            return None
        digits = str(n).rstrip("0")
        return None if len(digits) < 3 else str(int(value))
    digits = f"{a:.12g}".replace(".", "").lstrip("0").rstrip("0")
    if "e" in digits or len(digits) < 3 or f"{a:.12g}" in ("3.14", "2.71", "1.41", "1.73"):
        return None
    return f"{value:.12g}"


def _power_of(n: int, base: int) -> bool:
    while n > 1 and n % base == 0:
        n //= base
    return n == 1


_INT_SUFFIX = re.compile(r"(?:[uU]?[lL]{0,2}|[lL]{0,2}[uU]?|[iu](?:8|16|32|64|128|size)|n)$")
_NUMBER_SUFFIX = re.compile(r"(?:[uU]?[lL]{0,2}|[lL]{0,2}[uU]?|[fFdDmM]|[iu](?:8|16|32|64|128|size)|f32|f64|n)$")


def _parse_number(text: str) -> float | None:
    t = text.strip().replace("_", "").replace("'", "")
    low = t.lower()
    try:
        if low.startswith(("0x", "0b", "0o")) and "." not in low and "p" not in low:
            base = {"x": 16, "b": 2, "o": 8}[low[1]]
            body = _INT_SUFFIX.sub("", t[2:])
            return float(int(body, base))
        body = _NUMBER_SUFFIX.sub("", t) or t
        if re.fullmatch(r"0[0-7]+", body):          # C-style octal
            return float(int(body, 8))
        return float(body)
    except (ValueError, KeyError, IndexError, OverflowError):
        return None


@functools.cache
def _english() -> frozenset[str]:
    """The English word list shipped in ``pyspellchecker`` (no download)."""
    return frozenset(_speller().word_frequency.dictionary)


@functools.cache
def _speller():  # noqa: ANN202 - third-party type
    from spellchecker import SpellChecker
    return SpellChecker(language="en", distance=1)


@functools.lru_cache(maxsize=1 << 16)
def likely_typo(word: str) -> str | None:
    """The word ``word`` most likely misspells, or None if it is not a typo: an
    unknown word of five letters or more, not programming jargon, one edit away
    from a dictionary word (the likeliest, preferring those with its first letter)."""
    w = word.lower()
    if len(w) < _MIN_TYPO or w in _english() or w in _JARGON or w in _COMMON or _variant(w):
        return None
    speller = _speller()
    cands = [c for c in speller.candidates(w) or () if c != w and c in _english()]
    # a typo rarely hits the first letter: "adress" is "address", not "dress"
    cands = [c for c in cands if c[0] == w[0]] or cands
    return max(cands, key=lambda c: (speller.word_usage_frequency(c), c), default=None)


_VARIANTS = (("our", "or"), ("ise", "ize"), ("ised", "ized"), ("ising", "izing"), ("isation", "ization"),
             ("tre", "ter"), ("ogue", "og"), ("lled", "led"), ("lling", "ling"))


def _variant(word: str) -> bool:
    """A British spelling of a known word (``colour``, ``initialise``) is a
    spelling habit, not a typo."""
    return any(word.endswith(a) and word[: -len(a)] + b in _english() for a, b in _VARIANTS) \
        or ("our" in word and word.replace("our", "or") in _english())


def shared(query: SideChannels, ref: SideChannels) -> dict:
    """The side-channel evidence of one pair, bounded per channel; each item names
    its first line on both sides."""
    def item(q: dict[str, Trace], r: dict[str, Trace], k: str) -> dict:
        return {"text": r[k].text, "query_text": q[k].text, "query_line": q[k].line, "registered_line": r[k].line}

    idents = sorted(ref.identifiers.keys() & query.identifiers.keys(), key=lambda k: (-len(k), k))
    consts = sorted(ref.constants.keys() & query.constants.keys(),
                    key=lambda k: (-len(k.lstrip("-").replace(".", "")), k))
    typos = [(k, t) for k in sorted(ref.words.keys() & query.words.keys()) if (t := likely_typo(k)) is not None]
    return {"identifiers": [item(query.identifiers, ref.identifiers, k) for k in idents[:SIDE_CHANNEL_ITEMS]],
            "constants": [item(query.constants, ref.constants, k) for k in consts[:SIDE_CHANNEL_ITEMS]],
            "typos": [item(query.words, ref.words, k) | {"intended": t} for k, t in typos[:SIDE_CHANNEL_ITEMS]]}
