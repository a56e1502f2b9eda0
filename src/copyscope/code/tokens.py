"""Source code → a normalised token stream with exact byte spans.

``tokenize_code(data, language)`` parses ``data`` with the tree-sitter grammar of
``language`` (one of ``languages.SUPPORTED``) and walks the syntax tree once,
iteratively (a ``TreeCursor``; no recursion, so a 10,000-deep expression is as
safe as a flat one). Every leaf becomes one token, except that

* string-like nodes (string/char/rune literals, template and raw strings,
  f-strings, heredocs, regex literals, JSX text ...) become ONE ``KIND_STRING``
  token spanning the whole literal, quotes, prefixes and interpolations included;
* numeric literals are ``KIND_NUMBER``;
* identifiers (any leaf kind whose name contains ``identifier``, plus the few
  name kinds a grammar calls otherwise: PHP ``name``/``variable_name``, Go
  ``label_name``, Kotlin ``label``, Swift ``statement_label``, Rust
  ``metavariable``) are ``KIND_IDENT``;
* comments go to ``CodeTokens.comments`` and never into the token stream;
* opaque leaves (a C preprocessor macro body, an ``ERROR`` leaf) are split by a
  small language-neutral regex lexer so that what they contain still counts.

The normalised form (``norm``) is ``"I"`` / ``"S"`` / ``"N"`` for identifiers,
strings and numbers, and the token's own text for keywords, operators and
punctuation (lower-cased for PHP, whose keywords are case-insensitive).

The per-language node tables below were built by listing each grammar's node
kinds (``Language.node_kind_for_id``) and parsing real samples; a test checks that
every kind named here exists in its grammar.

``language=None`` (or a name tree-sitter does not support) uses Pygments instead:
the lexer is picked by file name (``path``) or name, else ``TextLexer``; Pygments
reports character offsets, which are converted to exact byte offsets.

Offsets are always into the ORIGINAL bytes; ``text`` is
``data[start:end].decode("utf-8", "replace")`` for every token. Invalid UTF-8 and
syntactically broken input never raise: tree-sitter recovers, and
``parse_errors`` counts the ``ERROR`` and ``MISSING`` nodes it made.
"""
from __future__ import annotations

import codecs
import functools
import gc
import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from copyscope.code.languages import SUPPORTED, language_object, parser_for
from copyscope.errors import LimitError

KIND_OTHER, KIND_IDENT, KIND_STRING, KIND_NUMBER = 0, 1, 2, 3
_K_DIRECTIVE = 4    # internal only: a KIND_OTHER token whose norm drops its blanks (``#  if`` -> ``#if``)
_NORM_BY_KIND = ("", "I", "S", "N", "")

MAX_CODE_BYTES = 32 * 1024 * 1024
"""Inputs larger than this are refused with ``LimitError`` (a syntax tree and
token lists of a 32 MiB file already take a few GiB; code that large is
generated or data, see ``copyscope.code.triage``)."""


@dataclass(frozen=True, eq=False)      # eq=False: numpy fields make field-wise == meaningless
class CodeTokens:
    """Tokens of one source file (all arrays read-only, one entry per token)."""

    language: str
    norm: tuple[str, ...]
    text: tuple[str, ...]
    kinds: np.ndarray        # uint8 per token (KIND_*)
    starts: np.ndarray       # int64 byte offsets into the input
    ends: np.ndarray         # int64
    lines: np.ndarray        # int32, 1-based line of the token start
    comments: tuple[tuple[str, int, int, int], ...] = field(default=())   # (text, start, end, line)
    parse_errors: int = 0    # ERROR + MISSING nodes (0 for clean input; always 0 for Pygments)

    def __post_init__(self) -> None:
        for arr in (self.kinds, self.starts, self.ends, self.lines):
            arr.flags.writeable = False

    def __len__(self) -> int:
        return len(self.norm)


# --------------------------------------------------------------------------- #
# Per-language node tables (from the grammars' node kinds; see module docstring)
# --------------------------------------------------------------------------- #

# Walk actions, one per node kind id.
_A_OTHER = 0        # descend; a leaf is a keyword/operator/punctuation token
_A_IDENT = 1        # descend if it has children (e.g. qualified_identifier); a leaf is KIND_IDENT
_A_STRING = 2       # whole span is one KIND_STRING token; children skipped
_A_NUMBER = 3       # whole span is one KIND_NUMBER token; children skipped
_A_COMMENT = 4      # whole span goes to comments; children skipped
_A_IDENT_ATOM = 5   # whole span is one KIND_IDENT token (PHP ``$name``)
_A_OPAQUE = 6       # descend; a leaf is split by the regex sub-lexer (macro bodies, ERROR leaves)
_A_SKIP = 7         # dropped with its subtree (Python's backslash line continuation)
_A_TEXT = 8         # markup text (JSX text, PHP inline HTML): whitespace-trimmed KIND_STRING, dropped if blank
_A_DIRECTIVE = 9    # preprocessor keyword token (``#  define``): KIND_OTHER, norm without the blanks (``#define``)

_ERROR_KIND_ID = 0xFFFF   # ts_builtin_sym_error as Node.kind_id reports it

_COMMENTS = ("comment", "line_comment", "block_comment", "multiline_comment", "html_comment",
             "shebang", "hash_bang_line", "shebang_directive")

_TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "java": {
        "string": ("string_literal", "character_literal", "string_fragment", "multiline_string_fragment"),
        "number": ("decimal_integer_literal", "hex_integer_literal", "octal_integer_literal",
                   "binary_integer_literal", "decimal_floating_point_literal", "hex_floating_point_literal"),
    },
    "kotlin": {
        "string": ("string_literal", "multiline_string_literal", "character_literal", "string_content"),
        "number": ("number_literal", "float_literal"),
        "ident": ("label",),
    },
    "c": {
        "string": ("string_literal", "char_literal", "system_lib_string", "string_content"),
        "number": ("number_literal",),
        "opaque": ("preproc_arg",),
        "directive": ("preproc_directive",),
    },
    "cpp": {
        "string": ("string_literal", "char_literal", "raw_string_literal", "system_lib_string",
                   "string_content", "raw_string_content"),
        "number": ("number_literal",),
        "ident": ("literal_suffix",),
        "opaque": ("preproc_arg",),
        "directive": ("preproc_directive",),
    },
    "objc": {
        "string": ("string_literal", "char_literal", "system_lib_string", "string_content"),
        "number": ("number_literal",),
        "opaque": ("preproc_arg",),
        "directive": ("preproc_directive",),
    },
    "swift": {
        "string": ("line_string_literal", "multi_line_string_literal", "raw_string_literal",
                   "regex_literal", "line_str_text", "multi_line_str_text", "raw_str_part"),
        "number": ("integer_literal", "hex_literal", "oct_literal", "bin_literal", "real_literal"),
        "ident": ("statement_label",),
    },
    "csharp": {
        "string": ("string_literal", "verbatim_string_literal", "raw_string_literal",
                   "interpolated_string_expression", "character_literal", "string_literal_content",
                   "string_content", "raw_string_content"),
        "number": ("integer_literal", "real_literal"),
        "opaque": ("preproc_arg",),
    },
    "go": {
        "string": ("interpreted_string_literal", "raw_string_literal", "rune_literal",
                   "interpreted_string_literal_content", "raw_string_literal_content"),
        "number": ("int_literal", "float_literal", "imaginary_literal"),
        "ident": ("label_name",),
    },
    "rust": {
        "string": ("string_literal", "raw_string_literal", "char_literal", "string_content"),
        "number": ("integer_literal", "float_literal"),
        "ident": ("metavariable",),
    },
    "python": {
        "string": ("string", "string_content"),
        "number": ("integer", "float"),
        "skip": ("line_continuation",),
    },
    "javascript": {
        "string": ("string", "template_string", "regex", "string_fragment"),
        "number": ("number",),
        "text": ("jsx_text",),
    },
    "typescript": {
        "string": ("string", "template_string", "regex", "string_fragment"),
        "number": ("number",),
        "text": ("jsx_text",),
    },
    "tsx": {
        "string": ("string", "template_string", "regex", "string_fragment"),
        "number": ("number",),
        "text": ("jsx_text",),
    },
    "php": {
        "string": ("string", "encapsed_string", "heredoc", "nowdoc", "shell_command_expression",
                   "string_content"),
        "number": ("integer", "float"),
        "ident": ("name",),
        "ident_atom": ("variable_name",),
        "text": ("text",),
    },
}

_LOWERCASE_KEYWORDS = frozenset({"php"})       # case-insensitive keywords: norm lower-cased
_C_COMMENT_LANGUAGES = frozenset({"c", "cpp", "objc", "csharp"})   # macro bodies may hold // and /* */

_ACTION_OF_GROUP = {"string": _A_STRING, "number": _A_NUMBER, "ident": _A_IDENT,
                    "ident_atom": _A_IDENT_ATOM, "opaque": _A_OPAQUE, "skip": _A_SKIP,
                    "text": _A_TEXT, "comment": _A_COMMENT, "directive": _A_DIRECTIVE}


def table_kinds(language: str) -> dict[str, tuple[str, ...]]:
    """The named node kinds configured for ``language``, by group (for tests/docs)."""
    groups = dict(_TABLES[language])
    groups["comment"] = tuple(k for k in _COMMENTS if _has_named_kind(language, k))
    return groups


def _has_named_kind(language: str, kind: str) -> bool:
    lang = language_object(language)
    return lang.id_for_node_kind(kind, True) is not None


@functools.lru_cache(maxsize=None)
def _action_table(language: str) -> bytes:
    """Action per node kind id, as a bytes object indexable by ``Node.kind_id``
    (65536 entries so that the ERROR id 0xFFFF is a plain index too)."""
    lang = language_object(language)
    by_name: dict[str, int] = {}
    for group, kinds in _TABLES[language].items():
        for kind in kinds:
            by_name[kind] = _ACTION_OF_GROUP[group]
    for kind in _COMMENTS:
        by_name[kind] = _A_COMMENT
    table = bytearray(0x10000)
    for kid in range(lang.node_kind_count):
        name = lang.node_kind_for_id(kid)
        if name is None:
            continue
        if not lang.node_kind_is_named(kid):
            # Anonymous kinds are keywords/punctuation (TS's ``string`` keyword too: it is
            # not the named ``string`` literal). Two exceptions found in the C grammars:
            # the newline that ends a preprocessor line, and ``#if``-style keywords whose
            # text may contain blanks (``#  if``).
            if name.strip() == "":
                table[kid] = _A_SKIP
            elif name.startswith("#") and name[1:].isalpha():
                table[kid] = _A_DIRECTIVE
            continue
        action = by_name.get(name)
        if action is None and "identifier" in name:
            action = _A_IDENT
        if action is not None:
            table[kid] = action
    table[_ERROR_KIND_ID] = _A_OPAQUE
    return bytes(table)


# --------------------------------------------------------------------------- #
# Regex sub-lexer for opaque spans (macro bodies, ERROR leaves, Pygments text)
# --------------------------------------------------------------------------- #

_SUBLEX_TOKENS = (
    rb"""
    | (?P<s>"(?:[^"\\\r\n]|\\.)*"|'(?:[^'\\\r\n]|\\.)*'|`[^`]*`) # quoted string on one line
    | (?P<n>(?:0[xX][0-9A-Fa-f_]+|0[bB][01_]+
             |(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?)
            [A-Za-z0-9_]*)                                       # number with suffix
    | (?P<i>[$@]{0,2}[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*)  # identifier (UTF-8 bytes included)
    | (?P<o>>>>=|<<=|>>=|\.\.\.|\.\.|->|=>|::|\+\+|--|&&|\|\||\?\?|[=!<>]=|[-+*/%&|^]=|<<|>>
            |[^\s\x1c-\x1f])                                    # any other non-blank byte
    """
)
_SUBLEX = re.compile(rb"(?P<c>//[^\r\n]*|/\*.*?(?:\*/|\Z))  # C-style comment" + b"\n" + _SUBLEX_TOKENS,
                     re.X | re.S)
_SUBLEX_NO_COMMENTS = re.compile(rb"(?P<c>(?!))" + _SUBLEX_TOKENS, re.X | re.S)
_SUBLEX_KIND = {"s": KIND_STRING, "n": KIND_NUMBER, "i": KIND_IDENT, "o": KIND_OTHER}


def _sublex(data: bytes, start: int, end: int, spans: list, kinds: list, comments: list | None) -> None:
    """Split ``data[start:end]`` into tokens appended to ``spans`` ((start, end)
    tuples) and ``kinds``; C-style comments go to ``comments`` (a list of
    (start, end)) when it is given, otherwise they are not recognised."""
    pattern = _SUBLEX if comments is not None else _SUBLEX_NO_COMMENTS
    for m in pattern.finditer(data, start, end):
        group = m.lastgroup
        if group == "c":
            comments.append(m.span())
        else:
            spans.append(m.span())
            kinds.append(_SUBLEX_KIND[group])


# --------------------------------------------------------------------------- #
# Assembling CodeTokens from spans
# --------------------------------------------------------------------------- #

def _texts(data: bytes, spans: list[tuple[int, int]], flat: np.ndarray | None = None) -> list[str]:
    """``data[s:e].decode("utf-8", "replace")`` for every span, sliced from one
    decoded string when that is provably identical (ASCII, or valid UTF-8 with all
    spans on character boundaries)."""
    if data.isascii():
        txt = data.decode("ascii")
        return [txt[s:e] for s, e in spans]
    try:
        txt = data.decode("utf-8")
    except UnicodeDecodeError:
        return [data[s:e].decode("utf-8", "replace") for s, e in spans]
    if not spans:
        return []
    buf = np.frombuffer(data, dtype=np.uint8)
    is_char_start = np.append((buf & 0xC0) != 0x80, True)     # offset len(data) is a boundary too
    char_of = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum(is_char_start[:-1], out=char_of[1:])
    if flat is None:
        flat = _flat(spans)
    if not is_char_start[flat].all():
        return [data[s:e].decode("utf-8", "replace") for s, e in spans]
    chars = char_of[flat].tolist()
    return [txt[chars[i]:chars[i + 1]] for i in range(0, len(chars), 2)]


def _flat(spans: list[tuple[int, int]]) -> np.ndarray:
    """[(s0, e0), (s1, e1), ...] -> int64 array [s0, e0, s1, e1, ...]."""
    return np.fromiter(itertools.chain.from_iterable(spans), dtype=np.int64, count=2 * len(spans))


def _line_numbers(newlines: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return (np.searchsorted(newlines, starts, side="left") + 1).astype(np.int32)


def _clean_order(starts: np.ndarray, ends: np.ndarray) -> list[int]:
    """Indices of the tokens to keep, in start order, so that spans are non-empty,
    sorted and non-overlapping (zero-width MISSING leaves are the usual reason;
    a grammar's error recovery could in principle produce out-of-order leaves)."""
    order = np.lexsort((-ends, starts)).tolist()
    keep: list[int] = []
    last_end = -1
    s_list, e_list = starts.tolist(), ends.tolist()
    for i in order:
        if e_list[i] > s_list[i] and s_list[i] >= last_end:
            keep.append(i)
            last_end = e_list[i]
    return keep


def _build(language: str, data: bytes, spans: list[tuple[int, int]], kinds: list[int],
           comment_spans: list[tuple[int, int]], parse_errors: int, lowercase: bool = False) -> CodeTokens:
    flat = _flat(spans)
    starts = flat[0::2]
    ends = flat[1::2]
    if not ((ends > starts).all() and (starts[1:] >= ends[:-1]).all()):
        keep = _clean_order(starts, ends)
        spans = [spans[i] for i in keep]
        kinds = [kinds[i] for i in keep]
        flat = _flat(spans)
        starts = flat[0::2]
        ends = flat[1::2]
    text = _texts(data, spans, flat)
    if lowercase:
        norm = [_NORM_BY_KIND[k] or t.lower() for t, k in zip(text, kinds)]
    else:
        norm = [_NORM_BY_KIND[k] or t for t, k in zip(text, kinds)]
    kind_arr = np.frombuffer(bytes(kinds), dtype=np.uint8).copy()
    directives = np.flatnonzero(kind_arr == _K_DIRECTIVE)
    if len(directives):
        for i in directives.tolist():
            norm[i] = "".join(norm[i].split())
        kind_arr[directives] = KIND_OTHER
    starts = starts.copy()
    ends = ends.copy()
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    comment_spans.sort()
    c_texts = _texts(data, comment_spans)
    c_flat = _flat(comment_spans)
    c_lines = _line_numbers(newlines, c_flat[0::2]).tolist()
    comments = tuple((t, s, e, line) for t, (s, e), line in zip(c_texts, comment_spans, c_lines))
    return CodeTokens(
        language=language,
        norm=tuple(norm),
        text=tuple(text),
        kinds=kind_arr,
        starts=starts,
        ends=ends,
        lines=_line_numbers(newlines, starts),
        comments=comments,
        parse_errors=parse_errors,
    )


# --------------------------------------------------------------------------- #
# tree-sitter path
# --------------------------------------------------------------------------- #

def _walk(tree, data: bytes, act: bytes, c_comments: bool):
    """One pre-order pass over the tree with a cursor (no recursion). Returns the
    token spans, their kinds and the comment spans.

    This loop is the hot path (about a node per 200 ns): one ``cursor.node``, one
    ``kind_id`` and one table lookup per node, ``byte_range`` only where a token
    is emitted."""
    spans: list[tuple[int, int]] = []
    kinds: list[int] = []
    comments: list[tuple[int, int]] = []
    span, kind = spans.append, kinds.append
    cur = tree.walk()
    first_child, next_sibling, parent = cur.goto_first_child, cur.goto_next_sibling, cur.goto_parent
    while True:
        node = cur.node
        a = act[node.kind_id]
        if a < 2:                                   # _A_OTHER / _A_IDENT: descend, or emit a leaf
            if first_child():
                continue
            span(node.byte_range)                   # zero-width (MISSING) leaves are dropped in _build
            kind(a)
        elif a < 4:                                 # _A_STRING / _A_NUMBER: one token, children skipped
            span(node.byte_range)
            kind(a)
        elif a == _A_COMMENT:
            r = node.byte_range
            if r[0] != r[1]:
                comments.append(r)
        elif a == _A_IDENT_ATOM:
            r = node.byte_range
            if r[0] != r[1]:
                span(r); kind(KIND_IDENT)
        elif a == _A_OPAQUE:
            if first_child():
                continue
            s, e = node.byte_range
            _sublex(data, s, e, spans, kinds, comments if c_comments else None)
        elif a == _A_TEXT:
            s, e = node.byte_range
            chunk = data[s:e]
            stripped = chunk.strip()
            if stripped:
                s += len(chunk) - len(chunk.lstrip())
                span((s, s + len(stripped))); kind(KIND_STRING)
        elif a == _A_DIRECTIVE:
            if first_child():
                continue
            span(node.byte_range)
            kind(_K_DIRECTIVE)
        # _A_SKIP: nothing
        while not next_sibling():
            if not parent():
                return spans, kinds, comments


def _count_errors(tree) -> int:
    """Number of ERROR and MISSING nodes (descending only into subtrees that have one)."""
    root = tree.root_node
    if not root.has_error:
        return 0
    count = 0
    cur = tree.walk()
    while True:
        node = cur.node
        if node.is_error or node.is_missing:
            count += 1
        if node.has_error and cur.goto_first_child():
            continue
        while not cur.goto_next_sibling():
            if not cur.goto_parent():
                return count


_BLANK = re.compile(rb"[\s\x1c-\x1f]")      # what str.isspace() calls blank, in ASCII


def _sanitize(data: bytes, spans: list[tuple[int, int]], kinds: list[int]):
    """After error recovery a fragment leaf can surface outside its literal (a C
    ``character`` holding ``\r``, say). Re-lex keyword/punctuation tokens that
    contain blanks; only run for trees with errors, so clean input pays nothing."""
    out_spans: list[tuple[int, int]] = []
    out_kinds: list[int] = []
    search = _BLANK.search
    for (s, e), k in zip(spans, kinds):
        if k == KIND_OTHER and search(data, s, e):
            _sublex(data, s, e, out_spans, out_kinds, None)
        else:
            out_spans.append((s, e))
            out_kinds.append(k)
    return out_spans, out_kinds


def _tokenize_tree_sitter(data: bytes, language: str) -> CodeTokens:
    act = _action_table(language)
    parse_data = data
    if data.startswith(codecs.BOM_UTF8):
        parse_data = b"   " + data[3:]             # same length: offsets stay exact
    tree = parser_for(language).parse(parse_data)
    gc_was_enabled = gc.isenabled()
    gc.disable()                                    # the walk allocates millions of short-lived objects
    try:
        spans, kinds, comments = _walk(tree, parse_data, act, language in _C_COMMENT_LANGUAGES)
        parse_errors = _count_errors(tree)
        if parse_errors:
            spans, kinds = _sanitize(data, spans, kinds)
        return _build(language, data, spans, kinds, comments, parse_errors,
                      lowercase=language in _LOWERCASE_KEYWORDS)
    finally:
        if gc_was_enabled:
            gc.enable()


# --------------------------------------------------------------------------- #
# Pygments fallback
# --------------------------------------------------------------------------- #

_P_SKIP, _P_COMMENT, _P_IDENT, _P_STRING, _P_NUMBER, _P_WORD, _P_SUB = range(7)


@functools.lru_cache(maxsize=None)
def _pygments_category(ttype) -> int:
    from pygments.token import Comment, Error, Literal, Name, Number, Other, String, Text, Whitespace
    if ttype in Whitespace:
        return _P_SKIP
    if ttype in Comment.Preproc or ttype in Comment.PreprocFile:
        return _P_SUB                     # ``#include <x.h>`` is code, not a comment
    if ttype in Comment:
        return _P_COMMENT
    if ttype in Name:
        return _P_IDENT
    if ttype in String:
        return _P_STRING
    if ttype in Number:
        return _P_NUMBER
    if ttype in Text or ttype in Error or ttype in Other or ttype in Literal:
        return _P_SUB
    return _P_WORD                        # keywords, operators, punctuation


def _pygments_lexer(path: str, language: str | None, sample: str):
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
    from pygments.lexers.special import TextLexer
    from pygments.util import ClassNotFound
    if language:
        try:
            return get_lexer_by_name(language)
        except ClassNotFound:
            pass
    if path:
        try:
            return get_lexer_for_filename(path, code=sample)
        except (ClassNotFound, Exception):   # a lexer's analyse_text may misbehave on odd input
            pass
    return TextLexer()


_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*[?!]?")


def _strip_span(data: bytes, s: int, e: int) -> tuple[int, int]:
    chunk = data[s:e]
    stripped = chunk.strip()
    if not stripped:
        return s, s
    s += len(chunk) - len(chunk.lstrip())
    return s, s + len(stripped)


def _tokenize_pygments(data: bytes, language: str | None, path: str) -> CodeTokens:
    text = data.decode("utf-8", "surrogateescape")   # one char per invalid byte: offsets stay mappable
    lex_text = " " + text[1:] if text.startswith("\ufeff") else text   # BOM: same length, not a token
    lexer = _pygments_lexer(path, language, lex_text[:16384])
    label = "pygments:" + (lexer.aliases[0] if lexer.aliases else lexer.name.lower())

    # 1. Pygments tokens as char spans, adjacent string (or comment) pieces merged.
    spans: list[list[int]] = []        # [char_start, char_end, category]
    try:
        for index, ttype, value in lexer.get_tokens_unprocessed(lex_text):
            if not value:
                continue
            cat = _pygments_category(ttype)
            if cat == _P_SKIP or value.isspace():
                continue
            end = index + len(value)
            if spans and cat in (_P_STRING, _P_COMMENT) and spans[-1][2] == cat and spans[-1][1] == index:
                spans[-1][1] = end
            else:
                spans.append([index, end, cat])
    except Exception:                    # a lexer bug must not lose the file: regex-lex it all
        spans = [[0, len(text), _P_SUB]]

    # 2. Char offsets -> byte offsets.
    if data.isascii():
        b_spans = [(s, e, c) for s, e, c in spans]
    else:
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        escaped = (codes >= 0xDC80) & (codes <= 0xDCFF)      # surrogateescape: one raw byte each
        nbytes = (1 + (codes >= 0x80).astype(np.int64) + (codes >= 0x800) + (codes >= 0x10000))
        nbytes[escaped] = 1
        byte_of = np.zeros(len(codes) + 1, dtype=np.int64)
        np.cumsum(nbytes, out=byte_of[1:])
        if spans:
            arr = np.array(spans, dtype=np.int64)
            bs = byte_of[arr[:, 0]].tolist()
            be = byte_of[arr[:, 1]].tolist()
            b_spans = list(zip(bs, be, arr[:, 2].tolist()))
        else:
            b_spans = []

    # 3. Tokens (whitespace-trimmed), with regex sub-lexing of free text and of
    #    punctuation runs (some lexers emit "):" or "{}" as one token).
    spans_out: list[tuple[int, int]] = []
    kinds: list[int] = []
    comments: list[tuple[int, int]] = []
    kind_of = {_P_IDENT: KIND_IDENT, _P_STRING: KIND_STRING, _P_NUMBER: KIND_NUMBER, _P_WORD: KIND_OTHER}
    for s, e, cat in b_spans:
        s, e = _strip_span(data, s, e)
        if s == e:
            continue
        if cat == _P_COMMENT:
            comments.append((s, e))
        elif cat == _P_SUB or (cat == _P_WORD and not _WORD.fullmatch(data, s, e)):
            _sublex(data, s, e, spans_out, kinds, None)
        else:
            spans_out.append((s, e))
            kinds.append(kind_of[cat])
    return _build(label, data, spans_out, kinds, comments, 0)


# --------------------------------------------------------------------------- #
# Public entry point
# --------------------------------------------------------------------------- #

def tokenize_code(data: bytes, language: str | None, *, path: str = "",
                  max_bytes: int = MAX_CODE_BYTES) -> CodeTokens:
    """Tokenize source ``data`` (raw bytes) of ``language`` (see ``SUPPORTED``).

    ``language=None`` or a language tree-sitter does not support uses the Pygments
    fallback (lexer by name, else by ``path``, else plain text). Inputs over
    ``max_bytes`` raise ``LimitError``; anything else, including invalid UTF-8 and
    code that does not parse, returns tokens (``parse_errors`` > 0 when broken).
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if len(data) > max_bytes:
        raise LimitError(f"{path or 'source file'}: {len(data)} bytes is over the "
                         f"{max_bytes}-byte limit for code tokenization")
    if language in SUPPORTED:
        return _tokenize_tree_sitter(data, language)
    return _tokenize_pygments(data, language, path)
