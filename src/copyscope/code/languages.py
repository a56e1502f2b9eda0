"""Which source language a file is, and a cached tree-sitter parser for it.

Only the grammar wheels pinned in the environment are used (one Python package
per grammar, imported lazily on first use). Nothing is ever downloaded: the
all-in-one ``tree-sitter-language-pack`` fetches parsers at run time and must
not be used here.

``language_for`` decides by file extension alone, except for ``.h``, which is
ambiguous between C, C++ and Objective-C and is settled by looking for markers
in the content. ``None`` means "not a language we parse with tree-sitter"; the
caller then uses the Pygments fallback of ``copyscope.code.tokens``.
"""
from __future__ import annotations

import functools
import importlib
import os
import re

import tree_sitter

SUPPORTED: tuple[str, ...] = (
    "java", "kotlin", "c", "cpp", "objc", "swift", "csharp", "go", "rust",
    "python", "javascript", "typescript", "tsx", "php",
)

# language -> (grammar module, function returning the TSLanguage capsule)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "java": ("tree_sitter_java", "language"),
    "kotlin": ("tree_sitter_kotlin", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "objc": ("tree_sitter_objc", "language"),
    "swift": ("tree_sitter_swift", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "php": ("tree_sitter_php", "language_php"),
}

EXTENSIONS: dict[str, str] = {
    ".java": "java",
    ".kt": "kotlin", ".kts": "kotlin",
    ".c": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp",
    ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp", ".h++": "cpp",
    ".m": "objc", ".mm": "objc",
    ".swift": "swift",
    ".cs": "csharp",
    ".go": "go",
    ".rs": "rust",
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx",
    ".php": "php",
}

# Content markers that settle a ``.h`` header. Objective-C first (its headers are
# otherwise C), then C++. Matched on bytes, anywhere in the file (a regex scan in
# C: fast even on large headers).
_OBJC_MARKERS = re.compile(rb"^[ \t]*(?:@interface|@protocol|@implementation|@class|#import)\b", re.M)
_CPP_MARKERS = re.compile(
    rb"\bclass[ \t]+\w+[^;{]*\{"        # class Foo { / class Foo : public Bar {
    rb"|\btemplate[ \t\r\n]*<"           # template <...>
    rb"|\bnamespace\b"                  # namespace foo { / using namespace std;
    rb"|\w::|::\w"                       # std::string, ::global
    rb"|^[ \t]*(?:public|private|protected)[ \t]*:",  # access specifiers
    re.M,
)


def language_for(path: str, data: bytes | None = None) -> str | None:
    """The language of ``path`` by its extension (case-insensitive), or ``None``.

    ``.h`` is Objective-C if it contains Objective-C directives (``@interface``,
    ``@protocol``, ``#import`` ...), C++ if it contains C++ markers (``class X {``,
    ``template <``, ``namespace``, ``::``), otherwise (and when ``data`` is not
    given) C.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext == ".h":
        if data:
            if _OBJC_MARKERS.search(data):
                return "objc"
            if _CPP_MARKERS.search(data):
                return "cpp"
        return "c"
    return EXTENSIONS.get(ext)


@functools.lru_cache(maxsize=None)
def language_object(language: str) -> tree_sitter.Language:
    """The ``tree_sitter.Language`` of a supported language (grammar imported lazily)."""
    try:
        module_name, func_name = _GRAMMARS[language]
    except KeyError:
        raise ValueError(f"unsupported language {language!r}; expected one of {', '.join(SUPPORTED)}") from None
    module = importlib.import_module(module_name)
    return tree_sitter.Language(getattr(module, func_name)())


@functools.lru_cache(maxsize=None)
def parser_for(language: str) -> tree_sitter.Parser:
    """A ``tree_sitter.Parser`` for ``language``, created once per process.

    Parsers are not thread-safe: share one per thread, not across threads.
    """
    return tree_sitter.Parser(language_object(language))
