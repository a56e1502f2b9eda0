"""The code modality: source files in 13 tree-sitter languages (Pygments otherwise).

Signals (see docs/code-engine.md):

* **statement bag**: the source is cut into statements (``;``, braces, and line
  ends outside brackets), each fingerprinted with identifiers normalised and
  literals verbatim, then put in canonical form (loops, increments, modifiers).
  Renaming (L2), moving declarations (L3), extracting methods (L4), reordering
  statements (L5) and rewriting loops (L6) leave most statements intact, so the
  share of the registered file's statement tokens found in the query survives them;
* **side channels**: verbatim string literals — a renamed SDK still prints its
  own error messages — and comments feed the score; distinctive identifier
  spellings, magic numbers and shared typos are reported as explicit evidence
  with their lines (:mod:`copyscope.code.side_channels`);
* **passages**: aligned runs of normalised token k-grams, with line ranges on
  both sides, for the report.

``score = mean(statement containment, literal containment)`` when the registered
file has string literals, else the statement containment alone; statement
containment counts tokens, so a long statement weighs more than ``i++``.
"""
from __future__ import annotations

import copy
import functools
import json
import re
import zlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
import xxhash

from copyscope.code.calibration import likelihood_ratio
from copyscope.code.constants import inline_constants
from copyscope.code.languages import language_for
from copyscope.code.side_channels import SideChannels
from copyscope.code.side_channels import shared as shared_side_channels
from copyscope.code.tokens import KIND_STRING, CodeTokens, tokenize_code
from copyscope.errors import InputError
from copyscope.model import Artifact, Match, Passage, Span
from copyscope.plugins import params_dict
from copyscope.stats import CorpusStats, passage_rarities, weights
from copyscope.text.align import align
from copyscope.text.fingerprint import KGrams, kgrams, winnow
from copyscope.text.normalize import TokenStream

ALGORITHM = "code.segments/v8"
_FEATURES_MAGIC = b"CSCODEF1"
_SEG_SALT = 0x5345_4753_0001
_LIT_SALT = 0x4C49_5453_0002
_OPENERS, _CLOSERS = {"(", "["}, {")", "]"}
# A line that ends in a binary operator (or an opening bracket, a comma) goes
# on; ``:`` does not (a Python header ends in it). ``*`` and ``&`` are left out:
# C's ``char *`` may end a line before its name, and the statement is cut at
# ``;`` there anyway.
_CONTINUES = {"(", ",", "+", "-", "/", "%", "=", "==", "!=", "<", "<=", ">=", "&&", "||", "and", "or",
              "?", "+=", "-=", "*=", "/=", "|", "^", "<<", ">>", ".", "->", "?:", "??"}
# ... and so does the line before one that starts with a member access or a
# boolean operator (``foo\n    .bar()``, ``a\n    && b``): no statement starts so.
_LEADING_CONTINUES = {".", "?.", "&&", "||", "?", "??", "->"}
_HEADERS = {"if", "while", "for", "switch", "catch", "foreach"}   # keywords whose ``( … )`` ends a header


@dataclass(frozen=True)
class CodeParams:
    k: int = 8                  # normalised tokens per k-gram (passages, index)
    window: int = 6             # winnowing window: any shared run of k+w-1 tokens is indexed
    gap: int = 16               # tokens between seeds inside one passage
    min_tokens: int = 16        # smallest passage reported
    min_literals: int = 2       # literal signal used when the registered file has this many
    min_candidate_containment: float = 0.02   # index containment below which a candidate cannot score 0.5
    comment_weight: float = 0.5     # how far shared comments lift the score towards 1
    min_comment_words: int = 8      # shared comment words for full weight
    min_evidence_tokens: int = 48   # matched statement tokens for full weight: a 3-line stub
                                    # contained in a large file is coincidence, not copying
    rarity_df: int = 10             # registered files holding a statement/k-gram before it counts less
                                    # (not `common_df`: that name sets the index candidate cut-off)
    rarity_min_docs: int = 20       # below this corpus size document frequencies mean nothing
    distinct_weight: float = 0.8   # a match of distinct statements only (loop rolled/unrolled) counts this much
    background_percentile: float = 25.0   # compare --all-pairs: the run's typical pair score (relative_to_run)
    max_background: float = 0.75          # ... never more than this: a run of near-identical files keeps some score
    threshold: float = 0.5


def _h(text: str, salt: int) -> int:
    return xxhash.xxh64_intdigest(text.encode("utf-8", "surrogatepass"), seed=salt)


class CodeDoc:
    """One analysed source file (the code plugin's Fingerprints).

    A registered file loaded from the feature store (``bags``) starts with its
    statement, comment and literal bags only: they are all a candidate's cheap
    score needs. Its tokens and k-grams are rebuilt from the blob on first use,
    which only a verified candidate reaches."""

    modality = "code"

    def __init__(self, artifact: Artifact, params: CodeParams, language: str | None, *,
                 bags: tuple[str, Counter[str], Counter[str], Counter[str]] | None = None) -> None:
        self.artifact = artifact
        self.params = params
        self.requested_language = language       # what tokenize_code was asked for
        if bags is not None:
            self.language, self.segments, self.comments, self.literals = bags
            return
        self.tokens = tokenize_code(artifact.data, language, path=artifact.origin)
        self.language = self.tokens.language
        # Statements and literals read named constants as their literals.
        self.literals: Counter[str] = Counter()
        self.segments: Counter[str] = _segments(inline_constants(self.tokens), self.literals)
        self.comments: Counter[str] = _comment_lines(self.tokens)

    @functools.cached_property
    def tokens(self) -> CodeTokens:   # only reached for a document loaded from its bags
        return tokenize_code(self.artifact.data, self.requested_language, path=self.artifact.origin)

    @functools.cached_property
    def grams(self) -> KGrams:
        hashes = np.fromiter((_h(t, 0) for t in self.tokens.norm), dtype=np.uint64, count=len(self.tokens))
        return kgrams(TokenStream("word", hashes, self.tokens.starts, self.tokens.ends), self.params.k)

    def dumps(self) -> bytes:
        """The bags, for the feature store: JSON (ASCII, so any decoded text
        survives) compressed; tagged with the algorithm, whose statement
        normalisation made them."""
        payload = json.dumps([ALGORITHM, self.requested_language, self.language, list(self.segments.items()),
                              list(self.comments.items()), list(self.literals.items())], separators=(",", ":"))
        return _FEATURES_MAGIC + zlib.compress(payload.encode("ascii"), 1)

    @classmethod
    def loads(cls, data: bytes, artifact: Artifact, params: CodeParams) -> "CodeDoc":
        """Raises ``ValueError`` for anything but this algorithm's own bags: the
        caller then analyses the file again."""
        if not data.startswith(_FEATURES_MAGIC):
            raise ValueError("not code features")
        try:
            algorithm, requested, language, segs, coms, lits = json.loads(zlib.decompress(data[len(_FEATURES_MAGIC):]))
            bags = (str(language), Counter(dict(segs)), Counter(dict(coms)), Counter(dict(lits)))
        except (zlib.error, ValueError, TypeError) as exc:
            raise ValueError(f"damaged code features: {exc}") from None
        if algorithm != ALGORITHM:
            raise ValueError(f"code features of {algorithm}, not {ALGORITHM}")
        return cls(artifact, params, requested, bags=bags)

    @property
    def media_type(self) -> str:
        return f"text/x-{self.language}"

    @functools.cached_property
    def side_channels(self) -> SideChannels:
        """Identifier spellings, magic numbers and words for typo evidence (only
        a verified match needs them, so they are built on first use)."""
        return SideChannels.of(self.tokens)

    @functools.cached_property
    def segment_keys(self) -> np.ndarray:
        """Index keys of ``segments``, in the bag's order (one per distinct statement)."""
        return np.fromiter((_h(s, _SEG_SALT) for s in self.segments), dtype=np.uint64, count=len(self.segments))

    @functools.cached_property
    def _index_keys(self) -> np.ndarray:
        winnowed = self.grams.hashes[winnow(self.grams.hashes, self.params.window)]
        return np.unique(np.concatenate([winnowed, self.segment_keys]))

    def index_keys(self) -> np.ndarray:
        """Winnowed k-grams plus statement fingerprints: the second, order-insensitive
        candidate source, so reordered code is still found in the index."""
        return self._index_keys

    @functools.cached_property
    def _query_keys(self) -> np.ndarray:
        return np.unique(np.concatenate([self.grams.hashes, self.segment_keys]))

    def query_keys(self) -> np.ndarray:
        return self._query_keys

    def stat_keys(self) -> np.ndarray:
        return np.fromiter(sorted({_h(s, _LIT_SALT) for s in self.literals}), dtype=np.uint64)

    def is_empty(self) -> bool:
        return len(self.tokens) == 0


# ``T x = e`` with any type prefix (``int``, ``java.util.Scanner``, ``List<String>``,
# ``const``, ``val``): what comes before the declared name holds no ``=`` or ``(``.
# Each prefix token is matched whole up to its blank, so matching stays linear (a
# pattern that could split a word several ways backtracked exponentially).
_DECLARATION = re.compile(r"^((?:(?:[\w$]+|[<>\[\],?*&.]) )+?)I = (.+)$")
_MODIFIERS = re.compile(r"\b(?:public|private|protected|internal|static|final|readonly|this \.|self \.) ")
_C_FOR = re.compile(r"^for \( (?:(.*?) )?; (?:(.*?) )?; (?:(.*?) )?\)$")   # any part may be empty
_INCREMENT = re.compile(r"^(?:I \+\+|\+\+ I|I \+= N|I = I \+ N)$")
_DECREMENT = re.compile(r"^(?:I --|-- I|I -= N|I = I - N)$")


def _canonical(statement: str) -> list[str]:
    """One statement in its canonical forms, so that control-structure rewrites
    (L6) and moved code (L4, L5) keep their statements:

    * modifiers and ``this.``/``self.`` are dropped (moving a local into a field,
      or a method into a static helper, changes neither);
    * a C-style ``for (init; cond; update)`` becomes ``init``, ``loop (cond)`` and
      ``update``, and ``while (cond)`` becomes ``loop (cond)``: a for loop rewritten
      as a while loop is the same statements. Any part may be empty: ``for (; i < n;
      i++)`` keeps its loop, and ``for (;;)`` is ``loop ( true )``;
    * ``i++``, ``++i``, ``i += n`` and ``i = i + n`` are one increment.
    * a declaration with an initialiser, ``T x = e``, also counts as the bare
      declaration ``T x``, so splitting the two (IR-Plag L3, "changing
      declarations") keeps the declaration. The initialised form stays whole:
      declaring and initialising in one statement is an author's habit, and
      splitting it into ``T x`` and ``x = e`` made independent solutions look
      like copies (IR-Plag precision 0.99 reached at recall 0.49, not 0.62).

    Qualified names are kept as written: ``java.util.Scanner`` against an import is
    a trace of the author's habits, and collapsing it made independent solutions
    look like copies (IR-Plag AUC 0.85 → 0.79)."""
    s = _MODIFIERS.sub("", statement)
    m = _C_FOR.match(s)
    if m:
        parts = [m.group(1) or "", f"loop ( {m.group(2) or 'true'} )", m.group(3) or ""]
    elif s.startswith("while "):
        parts = ["loop" + s[5:]]
    else:
        parts = [s]
    out = []
    for part in parts:
        if not part.strip():
            continue
        if _INCREMENT.match(part):
            part = "I ++"
        elif _DECREMENT.match(part):
            part = "I --"
        out.append(part)
        m = _DECLARATION.match(part)
        if m and not m.group(1).endswith(". "):          # ``a.b = e`` assigns a field
            out.append(f"{m.group(1)}I")
    return out


def _segments(tokens: CodeTokens, literals: Counter[str] | None = None) -> Counter[str]:
    """Statements, language-agnostically: cut at ``;``/``{``/``}`` and at line ends
    outside brackets (Python, Go, Kotlin, Swift need no semicolons), declaration
    lists split (:func:`_declaration_parts`), then put in canonical form
    (:func:`_canonical`). Each string literal, as the statements read it, is
    also counted into ``literals`` when it is given (the literal bag)."""
    out: Counter[str] = Counter()
    for statement, n in _statements(tokens, literals).items():
        for declared in (_declaration_parts(statement) if " , " in statement else (statement,)):
            for form in _canonical(declared):
                out[form] += n
    return out


def _statements(tokens: CodeTokens, literals: Counter[str] | None = None) -> Counter[str]:
    """The statements as normalised token strings. A control header (``if (c)``,
    ``while (c)``, ``for (...)``, ``else``) is a statement of its own whether its
    body has braces or not: ``if (c) x = 1;`` and ``if (c) { x = 1; }`` are the
    same two statements (adding or dropping braces is a formatting change,
    IR-Plag's L1/L2)."""
    out: Counter[str] = Counter()
    cur: list[str] = []
    depth = 0
    last_line = -1
    in_header = False
    headers = _HEADERS if tokens.language != "python" else ()   # a Python body follows a colon
    for norm, text, kind, line in zip(tokens.norm, tokens.text, tokens.kinds.tolist(), tokens.lines.tolist()):
        if depth == 0 and cur and line != last_line and cur[-1] not in _CONTINUES and norm not in _LEADING_CONTINUES:
            out[" ".join(cur)] += 1
            cur = []
        last_line = line
        if depth == 0 and norm in (";", "{", "}"):
            if cur:
                out[" ".join(cur)] += 1
                cur = []
            continue
        if headers and depth == 0 and cur == ["else"] and norm != "if":
            out["else"] += 1              # ``else stmt;``: the body is a statement of its own
            cur = []
        if kind == KIND_STRING:
            literal = _literal(text)
            cur.append(literal)
            if literals is not None:
                literals[literal] += 1
        else:
            cur.append(norm)
        if norm in _OPENERS:
            if depth == 0 and len(cur) >= 2 and cur[-2] in headers and cur[:-2] in ([], ["else"]):
                in_header = True
            depth += 1
        elif norm in _CLOSERS:
            depth = max(0, depth - 1)
            if in_header and depth == 0:   # the header's condition is closed: the body follows
                in_header = False
                out[" ".join(cur)] += 1
                cur = []
    if cur:
        out[" ".join(cur)] += 1
    return out


# What may end a declaration's type: a (normalised) type name, a primitive, or
# the close of ``List<T>``, ``int[]``, ``char *``, ``T &``.
_TYPE_ENDS = frozenset({"I", ">", "]", "*", "&", "int", "long", "short", "char", "byte", "float", "double",
                        "boolean", "bool", "unsigned", "signed", "var", "let", "const", "val", "auto",
                        "string", "object", "decimal", "uint", "ulong", "ushort", "sbyte", "dynamic"})
# Words that can precede ``a, b`` without declaring them.
_NOT_TYPES = frozenset({"return", "throw", "yield", "print", "echo", "delete", "case", "goto", "await",
                        "new", "else", "do", "in", "is", "as", "global", "del", "assert", "import", "from"})
_NESTS = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}


def _declaration_parts(statement: str) -> list[str]:
    """``T a, b = e, c`` as ``T a``, ``T b = e`` and ``T c``; any other statement
    as itself. Declaring several names in one statement is layout, and a copier
    who gathers scattered declarations into one list (IR-Plag L3) keeps every
    one of them."""
    comma = statement.find(" , ")
    if comma < 0:
        return [statement]
    # The first declared name comes before the first comma: only that head is
    # read token by token (literal tokens may hold blanks; none can be in it
    # before the name). The name is the first ``I`` after a type and before
    # ``,``, ``=`` or ``[``.
    toks = statement[:comma].split(" ")
    toks.append(",")
    for i, tok in enumerate(toks[:-1]):
        if tok in ("(", "=", "{", ";") or tok in _NOT_TYPES:
            return [statement]
        if tok == "I" and i > 0 and toks[i + 1] in (",", "=", "[") and toks[i - 1] in _TYPE_ENDS:
            break
    else:
        return [statement]
    while i > 1 and toks[i - 1] in ("*", "&"):      # ``char *p, *q``: the star is the declarator's
        i -= 1
    prefix = " ".join(toks[:i]) + " "
    parts: list[str] = []
    part: list[str] = []
    depth = 0
    for tok in statement[len(prefix):].split(" "):
        depth += _NESTS.get(tok, 0)
        if tok == "," and depth == 0:
            parts.append(" ".join(part))
            part = []
        else:
            part.append(tok)
    parts.append(" ".join(part))
    if len(parts) < 2 or not all(p.startswith(("I", "*", "&")) for p in parts):
        return [statement]
    return [prefix + p for p in parts]


_WORD = re.compile(r"\w+")
_SPACE_BEFORE_PUNCT = re.compile(r" (?=[:;,.!?])")   # no group to substitute: 4x faster


def _literal(text: str) -> str:
    """A string literal with its whitespace runs as one space, and none just
    inside its quotes: ``"Enter  weight: "``, ``"Enter weight:\t"`` and ``"Enter
    weight:"`` are one literal, because a copier re-spaces messages (IR-Plag:
    every level's AUC rose by ~0.005; trimming lifted L2 0.964 → 0.974). Case is
    kept: independent solutions of one exercise differ in it more often than
    copies do, and folding it lowered every level (L6 0.81 → 0.68)."""
    text = " ".join(text.split())
    if " " in text:
        text = _SPACE_BEFORE_PUNCT.sub("", text)
    quote = text[:1]
    if len(text) >= 2 and quote in ("\"", "'", "`") and text.endswith(quote):
        return quote + text[1:-1].strip() + quote
    return text


# IDE templates and licence headers are shared by unrelated files of one shop or tool.
_TEMPLATE_COMMENT = re.compile(r"licen[sc]e|template|copyright|author|todo|fixme|generated|change this|spdx")


def _comment_lines(tokens: CodeTokens) -> Counter[str]:
    """Comment lines as lowercase words (3 words or more; templates and licence
    headers left out): identifiers get renamed, comments are often kept."""
    out: Counter[str] = Counter()
    for text, *_ in tokens.comments:
        for line in text.splitlines():
            words = _WORD.findall(line.lower())
            if len(words) >= 3:
                joined = " ".join(words)
                if not _TEMPLATE_COMMENT.search(joined):
                    out[joined] += 1
    return out


def _comment_evidence(ref: Counter[str], query: Counter[str], p: CodeParams) -> float:
    """Share of the registered file's comment lines found in the query, at full
    weight once ``min_comment_words`` words are shared."""
    lines, words = _overlap(ref, query)
    total = sum(ref.values())
    return (lines / total if total else 0.0) * min(1.0, words / p.min_comment_words)


def _base_score(query: CodeDoc, ref: CodeDoc, weight: dict[str, float], use_lit: bool, p: CodeParams,
                distinct: bool) -> tuple[float, float, float | None]:
    """The statement (and literal) score before comments: ``(score, statement
    containment, literal containment)``.

    Share of the registered statement *tokens* found in the query: a 40-token
    statement is more evidence than ``i++``. Against a corpus, a statement many
    registered files hold (``import os``, ``return None``) counts less.
    ``distinct`` counts each statement and literal once: rolling five copied
    ``println`` calls into a loop (IR-Plag L6) keeps every distinct statement but
    not their number. That reading is discounted (``distinct_weight``), as one
    ``println`` where the original has five is weaker evidence than five."""
    segs = ref.segments
    have = query.segments
    if distinct:
        matched = sum(_tokens(seg) * weight.get(seg, 1.0) for seg in segs if seg in have)
        total = sum(_tokens(seg) * weight.get(seg, 1.0) for seg in segs)
    else:
        matched = sum(min(n, have[seg]) * _tokens(seg) * weight.get(seg, 1.0) for seg, n in segs.items() if seg in have)
        total = sum(n * _tokens(seg) * weight.get(seg, 1.0) for seg, n in segs.items())
    s_seg = matched / total if total else 0.0
    s_lit = None
    if use_lit:
        s_lit = (sum(1 for x in ref.literals if x in query.literals) / len(ref.literals) if distinct
                 else _containment(ref.literals, query.literals))
    score = s_seg if s_lit is None else (s_seg + s_lit) / 2
    score *= min(1.0, matched / p.min_evidence_tokens)
    if distinct:
        score *= p.distinct_weight
    return score, s_seg, s_lit


def _tokens(statement: str) -> int:
    return statement.count(" ") + 1


def _containment(ref: Counter[str], query: Counter[str]) -> float:
    total = sum(ref.values())
    return sum((ref & query).values()) / total if total else 0.0


def _overlap(ref: Counter[str], query: Counter[str]) -> tuple[int, int]:
    """Items and tokens of the registered bag that the query also has (multiset)."""
    shared = ref & query
    return sum(shared.values()), sum(n * _tokens(s) for s, n in shared.items())


class CodeModality:
    """Modality plugin for source code (entry point ``copyscope.modalities: code``)."""

    name = "code"
    version = ALGORITHM
    source_code = True          # triaged as source: generated and minified files are reported apart

    def __init__(self, params: CodeParams | None = None) -> None:
        self.params = params or CodeParams()

    def accepts(self, artifact: Artifact) -> bool:
        if b"\0" in artifact.data[:8192]:
            return False
        return language_for(artifact.origin, artifact.data[:4096]) is not None

    def fingerprint(self, artifact: Artifact) -> CodeDoc:
        lang = language_for(artifact.origin, artifact.data[:4096])
        if lang is None:
            raise InputError(f"{artifact.origin}: not a recognised source file")
        return CodeDoc(artifact, self.params, lang)

    def parameters(self) -> dict:
        return params_dict(ALGORITHM, self.params)

    def dumps(self, doc: CodeDoc) -> bytes:
        return doc.dumps()

    def loads(self, data: bytes, artifact: Artifact) -> CodeDoc:
        return CodeDoc.loads(data, artifact, self.params)

    def without_base(self, doc: CodeDoc, base: list[CodeDoc]) -> CodeDoc:
        """``doc`` minus what the base (template, starter) code contains: its
        statements, literals and k-grams can no longer match anything."""
        if not base:
            return doc
        base_segs = set().union(*(b.segments for b in base))
        base_lits = set().union(*(b.literals for b in base))
        base_comments = set().union(*(b.comments for b in base))
        hashes = doc.grams.hashes.copy()
        base_grams = np.unique(np.concatenate([b.grams.hashes for b in base]))
        hashes[np.isin(hashes, base_grams)] = np.uint64(0)     # 0: a k-gram no document has
        out = copy.copy(doc)
        for cached in ("_index_keys", "_query_keys", "segment_keys"):   # derived from what changes here
            out.__dict__.pop(cached, None)
        out.side_channels = doc.side_channels.without([b.side_channels for b in base])
        out.segments = Counter({s: n for s, n in doc.segments.items() if s not in base_segs})
        out.literals = Counter({s: n for s, n in doc.literals.items() if s not in base_lits})
        out.comments = Counter({s: n for s, n in doc.comments.items() if s not in base_comments})
        out.grams = KGrams(doc.grams.kind, doc.grams.k, hashes, doc.grams.tokens)
        return out

    def _usable(self, stats: CorpusStats | None) -> CorpusStats | None:
        return stats if stats is not None and stats.n_docs >= self.params.rarity_min_docs else None

    def _statement_weights(self, ref: CodeDoc, stats: CorpusStats | None) -> dict[str, float]:
        """Per registered statement, ``min(1, rarity_df / df)`` over the corpus's
        statement keys; empty (all 1) without a corpus large enough to say."""
        stats = self._usable(stats)
        if stats is None or not ref.segments:
            return {}
        w = weights(stats.key_df(ref.segment_keys), self.params.rarity_df)
        return {seg: float(x) for seg, x in zip(ref.segments, w.tolist()) if x < 1.0}

    def relative_to_run(self, scores: np.ndarray) -> np.ndarray:
        """An all-pairs run's scores (one per unit pair) relative to what the run's
        pairs typically share: ``(s - b) / (1 - b)``, floored at 0, where the
        background ``b`` is the ``background_percentile``-th percentile of the
        run's scores. Solutions to one exercise share its prompts and its obvious
        statements; that similarity is the task's, not copying (IR-Plag: the
        independent solutions of one task score 0.02-0.12 against its original,
        of another 0.35-0.96). A low percentile, not the median, because in a
        run where many pairs are copies the median is a copy's score. Runs of
        fewer than ``rarity_min_docs`` units keep their scores: too few pairs to
        say what is typical. The background is capped at ``max_background``: in
        a run where nearly every pair is alike, similarity is not discounted
        away entirely."""
        p = self.params
        if len(scores) == 0 or len(scores) < p.rarity_min_docs * (p.rarity_min_docs - 1) // 2:
            return scores
        b = min(float(np.percentile(scores, p.background_percentile)), p.max_background)
        if b <= 0.0:
            return scores
        return np.clip((scores - b) / (1.0 - b), 0.0, 1.0)

    def batch_scores(self, queries: list[CodeDoc], refs: list[CodeDoc]) -> np.ndarray:
        """All-pairs scores at once (``compare --all-pairs``): see :func:`score_matrix`."""
        return score_matrix(queries, refs, self.params)

    def verify(self, query: CodeDoc, ref: CodeDoc, stats: CorpusStats | None = None) -> Match | None:
        p = self.params
        weight = self._statement_weights(ref, stats)
        use_lit = sum(ref.literals.values()) >= p.min_literals
        score, s_seg, s_lit = max((_base_score(query, ref, weight, use_lit, p, distinct=d) for d in (False, True)),
                                  key=lambda r: r[0])
        s_com = _comment_evidence(ref.comments, query.comments, p) if ref.comments else None
        if s_com:
            score += (1.0 - score) * p.comment_weight * s_com
        raws = align(query.grams, ref.grams, gap=p.gap, min_tokens=p.min_tokens) if len(query.grams) and len(ref.grams) else []
        if score == 0 and not raws:
            return None
        rarities = passage_rarities(raws, ref.grams.hashes, ref.index_keys(), self._usable(stats), p.rarity_df)
        passages = tuple(Passage(_span(query, rp.q_first, rp.q_last, rp.q_seeds),
                                 _span(ref, rp.r_first, rp.r_last, rp.r_seeds),
                                 stream="code", tokens=int(rp.r_tokens), rarity=rarity)
                         for rp, rarity in zip(raws, rarities))
        cov_r = sum(rp.r_tokens for rp in raws) / max(1, len(ref.tokens))
        cov_q = sum(rp.q_tokens for rp in raws) / max(1, len(query.tokens))
        shared = sorted((ref.literals & query.literals).elements())
        return Match(
            modality="code", algorithm=ALGORITHM, score=score,
            verdict="copy" if score >= p.threshold else "below-threshold",
            coverage_registered=min(1.0, cov_r), coverage_query=min(1.0, cov_q),
            signals={"statements": s_seg, "literals": s_lit, "comments": s_com},
            passages=passages, query_sha256=query.artifact.sha256, registered_sha256=ref.artifact.sha256,
            query_path=query.artifact.origin, registered_path=ref.artifact.origin,
            extra={"shared_literals": shared[:200], "language": ref.language,
                   "shared_comments": sorted((ref.comments & query.comments).elements())[:200],
                   # identifier spellings, magic numbers, typos: evidence, not score
                   "side_channels": shared_side_channels(query.side_channels, ref.side_channels),
                   # strength of evidence, independent of the case's base rate (docs/code-engine.md)
                   "likelihood_ratio": likelihood_ratio(score)},
        )


def _span(doc: CodeDoc, first: int, last: int, seeds: np.ndarray) -> Span:
    """Byte spans from the tokenizer, reported also as character offsets into the
    decoded file; ``matched`` merges the seed k-grams, as for text."""
    b_start, b_end = doc.grams.span(first, last)
    data = doc.artifact.data
    chars = lambda b: len(data[:b].decode("utf-8", "replace"))  # noqa: E731
    start = chars(b_start)
    text = data[b_start:b_end].decode("utf-8", "replace")
    lines = doc.tokens.lines
    t_last = min(last + doc.grams.k - 1, len(lines) - 1)
    merged: list[list[int]] = []
    for s in np.unique(seeds).tolist():
        a = doc.tokens.starts[s] - b_start
        e = doc.tokens.ends[min(s + doc.grams.k - 1, len(lines) - 1)] - b_start
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([int(a), int(e)])
    rel = lambda b: len(data[b_start:b_start + b].decode("utf-8", "replace"))  # noqa: E731
    return Span(start=start, end=start + len(text), byte_start=b_start, byte_end=b_end,
                line_start=int(lines[first]), line_end=int(lines[t_last]), text=text,
                matched=tuple((rel(a), rel(e)) for a, e in merged))


def _occurrence_matrix(bags: list[Counter[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows: documents; columns: (item, k-th occurrence). With occurrences as
    distinct features, multiset intersection Σ min(a, b) is a dot product.
    Also returns each column's length in tokens (for the evidence mass), and
    which columns are first occurrences: those alone give set intersection
    (the distinct reading)."""
    ids: dict[tuple[str, int], int] = {}
    rows, cols = [], []
    for r, bag in enumerate(bags):
        for item, count in bag.items():
            for k in range(count):
                cols.append(ids.setdefault((item, k), len(ids)))
                rows.append(r)
    x = np.zeros((len(bags), max(1, len(ids))), dtype=np.float32)
    x[rows, cols] = 1.0
    lengths = np.ones(max(1, len(ids)), dtype=np.float32)
    first = np.ones(max(1, len(ids)), dtype=bool)
    for (item, k), col in ids.items():
        lengths[col] = item.count(" ") + 1
        first[col] = k == 0
    return x, lengths, first


def score_matrix(queries: list[CodeDoc], refs: list[CodeDoc], params: CodeParams) -> np.ndarray:
    """``S[i, j]`` = ``verify(queries[i], refs[j]).score``, for all pairs at once."""
    n = len(queries)

    def contain(x: np.ndarray, lengths: np.ndarray, by_mass: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xq, xr = x[:n], x[n:]
        totals = xr.sum(axis=1)
        mass = (xq * lengths[None, :]) @ xr.T          # matched tokens
        if by_mass:
            return mass / np.maximum(xr @ lengths, 1)[None, :], totals, mass
        return (xq @ xr.T) / np.maximum(totals, 1)[None, :], totals, mass
    segs, lits = (_occurrence_matrix([getattr(d, attr) for d in queries + refs]) for attr in ("segments", "literals"))
    use_lit = np.array([sum(d.literals.values()) >= params.min_literals for d in refs])[None, :]
    score = None
    for distinct in (False, True):
        (sx, sl, s_first), (lx, ll, l_first) = segs, lits
        if distinct:
            sx, sl, lx, ll = sx[:, s_first], sl[s_first], lx[:, l_first], ll[l_first]
        seg, _, mass = contain(sx, sl, True)
        lit, _, _ = contain(lx, ll, False)
        base = np.where(use_lit, (seg + lit) / 2, seg) * np.minimum(1.0, mass / params.min_evidence_tokens)
        score = base if score is None else np.maximum(score, params.distinct_weight * base)
    cx, cl, _ = _occurrence_matrix([d.comments for d in queries + refs])
    com, com_totals, com_words = contain(cx, cl, False)
    com = np.where((com_totals > 0)[None, :], com * np.minimum(1.0, com_words / params.min_comment_words), 0.0)
    return score + (1.0 - score) * params.comment_weight * com
