"""K-grams common across the registry (site banners, legal footers) must not make a copy."""
from __future__ import annotations

import random

from copyscope import api
from copyscope.model import Artifact
from copyscope.settings import Settings

BANNER = ("Copyright 2024 Example Media Group. All rights reserved. No part of this site may be "
          "reproduced without the written permission of the publisher. Subscribe to our newsletter "
          "for the latest headlines, weather and traffic updates delivered every morning.")
WORDS = ("river harbour engine lantern orchard meadow copper violin glacier pepper saddle quartz "
         "thunder walnut ember falcon basalt cedar dune fjord gravel hazel iris juniper kelp").split()


def _article(rng: random.Random, n: int = 220) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(n))


def test_shared_banner_alone_is_not_a_copy(tmp_path):
    rng = random.Random(7)
    reg = tmp_path / "registered"
    reg.mkdir()
    for i in range(40):
        (reg / f"a{i:02d}.txt").write_text(f"{_article(rng)}\n\n{BANNER}\n", encoding="utf-8")
    query = tmp_path / "query.txt"
    query.write_text(f"{_article(rng)}\n\n{BANNER}\n", encoding="utf-8")
    copied = tmp_path / "copied.txt"
    copied.write_text((reg / "a05.txt").read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings(home=tmp_path / "home")
    with api.init(settings) as ws:
        ws.register([reg], owner="o", license="CC0-1.0", each=True)
        only_banner = ws.check([query])
        real_copy = ws.check([copied])
    assert only_banner.copies == [], [m.registered_path for m in only_banner.copies]
    assert [m.registered_path.endswith("a05.txt") for m in real_copy.copies] == [True]


def test_banner_passage_is_reported_as_common(tmp_path):
    """Shared boilerplate may still align, but its rarity shows it is common."""
    rng = random.Random(11)
    reg = tmp_path / "registered"
    reg.mkdir()
    for i in range(30):
        (reg / f"b{i:02d}.txt").write_text(f"{BANNER}\n{_article(rng)}\n", encoding="utf-8")
    settings = Settings(home=tmp_path / "home")
    with api.init(settings) as ws:
        ws.register([reg], owner="o", license="CC0-1.0", each=True)
        reader = ws.reader("text")
        modality = ws.modalities["text"]
        q = modality.fingerprint(Artifact(data=f"{BANNER}\n{_article(rng)}".encode(), origin="q.txt"))
        ref = modality.fingerprint(Artifact(data=(reg / "b00.txt").read_bytes(), origin="b00.txt"))
        match = modality.verify(q, ref, reader)
    assert match is not None and match.passages
    assert max(p.rarity for p in match.passages) <= 0.25
    assert match.score < 0.5
