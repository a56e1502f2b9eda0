"""Licence of a registered work, when the registrant does not state one.

From ``SPDX-License-Identifier:`` headers (the most frequent one wins) and from
the text of ``LICENSE``/``COPYING`` files, recognised by the distinctive
sentences of the common licences. Anything unrecognised stays unknown: guessing
a licence would be worse than saying nothing.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

_SPDX = re.compile(rb"SPDX-License-Identifier:\s*([A-Za-z0-9.\-+ ()]+?)\s*(?:\*/|-->|$)", re.M)
_LICENSE_FILE = re.compile(r"(^|/)(LICEN[CS]E|COPYING|UNLICENSE)([.-][\w.]+)?$", re.I)

# (SPDX id, phrases that must all appear, case-insensitive, whitespace-folded)
_TEXTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AGPL-3.0", ("gnu affero general public license", "version 3")),
    ("LGPL-3.0", ("gnu lesser general public license", "version 3")),
    ("LGPL-2.1", ("gnu lesser general public license", "version 2.1")),
    ("GPL-3.0", ("gnu general public license", "version 3")),
    ("GPL-2.0", ("gnu general public license", "version 2")),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
    ("MIT", ("permission is hereby granted, free of charge", "the above copyright notice")),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("CC0-1.0", ("creative commons", "cc0")),
)


def _fold(data: bytes) -> str:
    return " ".join(data[:200_000].decode("utf-8", "replace").lower().split())


def from_license_text(data: bytes) -> str | None:
    text = _fold(data)
    for spdx, phrases in _TEXTS:
        if all(p in text for p in phrases):
            return spdx
    return None


def detect_license(files: Iterable[tuple[str, bytes]]) -> str | None:
    """SPDX id for a work's files (relative path, bytes), or None when unknown.

    A LICENSE/COPYING file at the top level decides; otherwise the most frequent
    SPDX header among the files.
    """
    headers: Counter[str] = Counter()
    top_level: list[tuple[int, str]] = []
    for rel, data in files:
        if _LICENSE_FILE.search(rel):
            found = from_license_text(data)
            if found:
                top_level.append((rel.count("/"), found))
        for m in _SPDX.finditer(data[:4096]):
            headers[m.group(1).decode("ascii", "replace").strip()] += 1
    if top_level:
        return min(top_level)[1]
    if headers:
        return sorted(headers.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return None
