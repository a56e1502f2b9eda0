"""Licence detection for works registered without --license."""
from __future__ import annotations

import pytest

from copyscope import api
from copyscope.licenses import detect_license, from_license_text

MIT = b"""MIT License\n\nCopyright (c) 2024 Ann\n\nPermission is hereby granted, free of charge, to any person
obtaining a copy of this software ... The above copyright notice and this permission notice shall be included"""
APACHE = b"                                 Apache License\n                           Version 2.0, January 2004\n"
GPL3 = b"GNU GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007\n"


@pytest.mark.parametrize("text, spdx", [(MIT, "MIT"), (APACHE, "Apache-2.0"), (GPL3, "GPL-3.0"),
                                        (b"some custom terms", None)])
def test_licence_texts(text, spdx):
    assert from_license_text(text) == spdx


def test_top_level_licence_file_beats_headers_and_headers_are_counted():
    files = [("LICENSE", MIT), ("src/a.c", b"// SPDX-License-Identifier: GPL-2.0-only\nint a;"),
             ("vendor/x/LICENSE", APACHE)]
    assert detect_license(files) == "MIT"
    headers = [("a.py", b"# SPDX-License-Identifier: Apache-2.0\n"), ("b.py", b"# SPDX-License-Identifier: Apache-2.0\n"),
               ("c.py", b"/* SPDX-License-Identifier: MIT */\n")]
    assert detect_license(headers) == "Apache-2.0"
    assert detect_license([("a.py", b"print(1)\n")]) is None


def test_register_directory_without_license_detects_it(tmp_path):
    src = tmp_path / "sdk"
    src.mkdir()
    (src / "LICENSE").write_bytes(APACHE)
    (src / "Main.java").write_text("class Main { void f() { System.out.println(\"sdk error 42\"); } }\n")
    other = tmp_path / "note.txt"
    other.write_text("A plain note with enough words to fingerprint it properly here.\n")
    with api.init(api.Settings(home=tmp_path / "ws")) as ws:
        ws.register([src, other], owner="Vendor")
        licences = {w.title: w.license for w in ws.works()}
    assert licences == {"sdk": "Apache-2.0", "note.txt": "All-Rights-Reserved"}
