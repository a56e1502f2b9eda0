"""Named constants read as the literals they name.

Moving a literal into a named constant is a declaration change (IR-Plag's L3):
``println("Welcome to Java")`` five times, and ``String teks = "Welcome to
Java";`` followed by ``println(teks)`` five times, are the same program. Before
statements are compared, a name that is assigned a string or number literal
exactly once, and is never assigned, incremented or rebound again, is replaced
at each use by its literal. A magic number pulled into ``static final int N =
10`` reads as ``10`` again. The declaration itself stays: it is still a
statement both files may share (dropping it lost evidence in short programs
and changed nothing on IR-Plag).

The statement and literal bags read this view; k-grams, spans, comments and
side channels keep the tokens as written.
"""
from __future__ import annotations

from copyscope.code.tokens import KIND_IDENT, KIND_NUMBER, KIND_STRING, CodeTokens

_MUTATES_AFTER = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "|=", "&=", "^=", "<<=", ">>=", ">>>=", "??=",
                            "**=", "//=", ":=", "++", "--", "in", "of"})
_MUTATES_BEFORE = frozenset({"++", "--", "&", "for", "as", "import", "def", "function", "class", "struct", "enum"})
_MEMBER = frozenset({".", "->", "::", "?."})


def inline_constants(tokens: CodeTokens) -> CodeTokens:
    """``tokens`` with single-assignment literal constants inlined (module docstring)."""
    norm, text, kinds, lines = tokens.norm, tokens.text, tokens.kinds.tolist(), tokens.lines.tolist()
    n = len(norm)
    uses: dict[str, list[int]] = {}
    for i, k in enumerate(kinds):
        if k == KIND_IDENT:
            uses.setdefault(text[i], []).append(i)
    value: dict[int, tuple[str, str, int]] = {}
    for name, at in uses.items():
        decl = [i for i in at if _declares(norm, kinds, lines, i, n)]
        if len(decl) != 1:
            continue
        d = decl[0]
        rest = [j for j in at if j != d and (j == 0 or norm[j - 1] not in _MEMBER)]
        if not rest or any(_mutated(norm, j, n) for j in rest):
            continue
        for j in rest:
            value[j] = (norm[d + 2], text[d + 2], kinds[d + 2])
    if not value:
        return tokens
    new_norm = tuple(value[i][0] if i in value else norm[i] for i in range(n))
    new_text = tuple(value[i][1] if i in value else text[i] for i in range(n))
    new_kinds = tokens.kinds.copy()
    for i, (_, _, kind) in value.items():
        new_kinds[i] = kind
    return CodeTokens(tokens.language, new_norm, new_text, new_kinds, tokens.starts.copy(), tokens.ends.copy(),
                      tokens.lines.copy(), tokens.comments, tokens.parse_errors)


def _declares(norm: tuple[str, ...], kinds: list[int], lines: list[int], i: int, n: int) -> bool:
    """``name = literal`` ending its statement (``;`` or the line's end), not a member."""
    if i + 2 >= n or norm[i + 1] != "=" or kinds[i + 2] not in (KIND_STRING, KIND_NUMBER):
        return False
    if i > 0 and norm[i - 1] in _MEMBER:
        return False
    return i + 3 == n or norm[i + 3] == ";" or lines[i + 3] != lines[i + 2]


def _mutated(norm: tuple[str, ...], j: int, n: int) -> bool:
    """Whether this occurrence assigns, increments or rebinds the name (a loop
    variable, an import alias, a definition, a C address taken), so it is no
    constant."""
    return (j + 1 < n and norm[j + 1] in _MUTATES_AFTER) or (j > 0 and norm[j - 1] in _MUTATES_BEFORE)
