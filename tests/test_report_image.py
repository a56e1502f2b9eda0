"""The HTML report shows image matches as visual evidence (SVG figure + transformation table)."""
from __future__ import annotations

import base64
import copy
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image, ImageDraw

from copyscope.report import render_html
from copyscope.report.html import MAX_IMAGE_LINES, _data_uri

from test_report_html import _bundle as _text_bundle

SHA_Q = "1" * 64
SHA_R = "2" * 64
# A real (1x1) PNG and JPEG header-only payload: only the URI's shape is checked.
PNG_URI = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
JPEG_URI = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 20).decode()

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Doc(HTMLParser):
    """Collects elements and checks that non-void tags nest and close properly."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()

    def all(self, tag: str, cls: str | None = None) -> list[dict]:
        return [a for t, a in self.elements
                if t == tag and (cls is None or cls in (a.get("class") or "").split())]


def _parse(html: str) -> _Doc:
    doc = _Doc()
    doc.feed(html)
    doc.close()
    assert not doc.errors, doc.errors[:5]
    assert doc.stack == [], doc.stack
    return doc


def _image_match(**over) -> dict:
    ev = {
        "transform": {"crop_box": [100, 50, 500, 350], "scale": 0.5, "rotation_degrees": 12.5,
                      "mirrored": True, "registered_covered": 0.56, "query_covered": 1.0,
                      "query_quad_on_registered": [[100, 50], [500, 60], [490, 350], [110, 340]]},
        "inliers": 95, "tentative_matches": 140, "photometric_agreement": 0.9, "compared_blocks": 180,
        "altered_regions": [[120, 60, 40, 40], [200, 200, 40, 40], [300, 100, 40, 40]],
        "hash_distance": 20,
        "homography": [[0.5, 0, 100], [0, 0.5, 50], [0, 0, 1]],
        "keypoints": [[10 * i, 5 * i, 100 + 20 * i, 50 + 10 * i] for i in range(12)],
        "query_size": [200, 150], "registered_size": [640, 480],
        "media": {"query": JPEG_URI, "registered": PNG_URI},
    }
    ev.update(over)
    return {"modality": "image", "algorithm": "image.orb-dct/v1", "score": 0.98, "verdict": "copy",
            "passages": [], "query": {"path": "suspects/photo.jpg", "sha256": SHA_Q},
            "registered": {"path": "registered/orig.png", "sha256": SHA_R, "work_id": "w_img",
                           "title": "Harbour at dawn", "owner": "Pat Photographer", "license": "CC-BY-4.0"},
            "coverage": {"registered": 0.56, "query": 1.0},
            "signals": {"inliers": 95.0, "photometric": 0.9, "hash_distance": 20.0},
            "extra": {"image": ev}}


def _wrap(*matches) -> dict:
    return {"schema": "copyscope.evidence/v1", "operation": "check", "matches": list(matches)}


def _hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


# --- figure -------------------------------------------------------------------

def test_image_match_figure_elements_and_counts():
    m = _image_match()
    html = render_html(_wrap(m))
    doc = _parse(html)
    assert "img-src data:" in html  # pictures are allowed by the CSP, and only as data: URIs
    images = doc.all("image")
    assert [a["href"] for a in images] == [JPEG_URI, PNG_URI]  # query left, registered right
    # each panel's viewBox is in ORIGINAL pixels
    panels = doc.all("svg", "panel")
    assert [p["viewbox"] for p in panels] == ["0 0 200 150", "0 0 640 480"]
    assert float(panels[1]["x"]) > float(panels[0]["x"]) + float(panels[0]["width"])  # side by side
    assert float(panels[0]["height"]) == float(panels[1]["height"])  # common display height
    assert len(doc.all("line", "kp")) == 12
    assert len(doc.all("rect", "alt")) == 3
    assert len(doc.all("polygon")) == 1
    assert doc.all("polygon")[0]["points"] == "100,50 500,60 490,350 110,340"
    # a keypoint line starts on the query panel and ends on the registered one
    first = doc.all("line", "kp")[1]
    sq = float(panels[0]["width"]) / 200
    assert float(first["x1"]) == pytest.approx(10 * sq, abs=0.01)
    assert float(first["x2"]) == pytest.approx(float(panels[1]["x"]) + 120 * float(panels[1]["width"]) / 640, abs=0.01)
    # legend and the transformation in words
    assert "Areas that differ (overlays, removed watermark, retouching)" in html
    for text in ("x 100–500, y 50–350 (400 × 300 px of the original&#39;s 640 × 480 px)",
                 "0.5 (the copy is 50% of the original&#39;s size)", "12.5°",
                 "yes (the copy is flipped left–right)", "original 56% · query 100%",
                 "95 of 140 tentative matches", "90% of 180 compared blocks agree",
                 "20 of 64 bits differ", "Harbour at dawn"):
        assert text in html, text
    assert "No passages are recorded" not in html  # images have no passages; the figure stands in
    assert "http" not in html.replace('<meta http-equiv="Content-Security-Policy"', "")
    assert "<script" not in html.lower()
    assert all(h.startswith("#") or h in (JPEG_URI, PNG_URI) for h in _hrefs(html))


def test_keypoint_lines_capped():
    kps = [[i % 200, i % 150, i % 640, i % 480] for i in range(250)]
    html = render_html(_wrap(_image_match(keypoints=kps)))
    doc = _parse(html)
    assert len(doc.all("line", "kp")) == MAX_IMAGE_LINES == 200
    assert "first 200 of 250 drawn" in html


def test_no_media_still_shows_geometry_and_table():
    html = render_html(_wrap(_image_match(media=None)))
    doc = _parse(html)
    assert "The images are not embedded in this bundle" in html
    assert doc.all("image") == []
    assert len(doc.all("rect", "blank")) == 2
    assert len(doc.all("line", "kp")) == 12 and len(doc.all("polygon")) == 1
    assert "img-src" not in html  # nothing to allow
    assert "Matched keypoints" in html and "Hash distance" in html
    one = render_html(_wrap(_image_match(media={"query": JPEG_URI})))
    assert "The registered image is not embedded" in one and "img-src data:" in one


def test_transform_null_global_hash_only():
    html = render_html(_wrap(_image_match(transform=None, keypoints=[], altered_regions=[], homography=None,
                                          inliers=0, photometric_agreement=0.0, hash_distance=3)))
    doc = _parse(html)
    assert "Matched on global hash only" in html
    assert doc.all("polygon") == [] and doc.all("line", "kp") == [] and doc.all("rect", "alt") == []
    assert "3 of 64 bits differ" in html
    assert "Region of the original shown" not in html and "Mirrored" not in html
    assert "Coverage" in html and "none recorded" in html


def test_missing_sizes_and_empty_evidence():
    html = render_html(_wrap(_image_match(query_size=None)))
    doc = _parse(html)
    assert "no figure can be drawn" in html
    assert doc.all("svg") == [] and "Scale" in html  # the table still renders
    html = render_html(_wrap({"modality": "image", "score": 0.7}, {"modality": "image", "extra": {"image": "x"}}))
    _parse(html)
    assert html.count("No image evidence is recorded for this match.") == 2


def test_extreme_aspect_ratio_stays_bounded():
    m = _image_match(query_size=[100_000, 10], registered_size=[10, 100_000],
                     keypoints=[[99_999, 9, 9, 99_999]], altered_regions=[[0, 99_000, 10, 2000]])
    doc = _parse(render_html(_wrap(m)))
    svg = doc.all("svg", "imgpair")[0]
    assert float(svg["width"]) <= 2 * 600 + 100 and float(svg["height"]) <= 400
    rect = doc.all("rect", "alt")[0]
    assert float(rect["y"]) + float(rect["height"]) == 100_000  # clipped to the image


# --- the real plugin ----------------------------------------------------------

def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_real_plugin_match_renders():
    from copyscope.image.plugin import ImageModality
    from copyscope.model import Artifact

    rng = np.random.default_rng(7)
    orig = Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).resize((640, 480), Image.NEAREST)
    draw = ImageDraw.Draw(orig)
    for _ in range(40):
        x, y = int(rng.integers(0, 600)), int(rng.integers(0, 440))
        draw.ellipse([x, y, x + int(rng.integers(10, 60)), y + int(rng.integers(10, 60))],
                     fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    copy_ = orig.crop((100, 60, 500, 400)).transpose(Image.FLIP_LEFT_RIGHT)
    ImageDraw.Draw(copy_).rectangle([20, 20, 140, 80], fill=(255, 255, 255))  # a pasted-over block

    mod = ImageModality()
    query = mod.fingerprint(Artifact(data=_jpeg(copy_), origin="a.jpg"))
    ref = mod.fingerprint(Artifact(data=_jpeg(orig), origin="b.jpg"))
    match = mod.verify(query, ref)
    assert match is not None
    match = mod.evidence_media(match, query, ref)
    mj = match.to_json()
    ev = mj["extra"]["image"]
    html = render_html({"format": "copyscope.evidence/v1", "operation": "check", "matches": [mj]})
    doc = _parse(html)

    assert len(doc.all("image")) == 2
    assert all(a["href"].startswith("data:image/jpeg;base64,") for a in doc.all("image"))
    assert [p["viewbox"] for p in doc.all("svg", "panel")] == ["0 0 400 340", "0 0 640 480"]
    assert len(doc.all("line", "kp")) == len(ev["keypoints"]) > 0
    assert len(doc.all("rect", "alt")) == len(ev["altered_regions"]) > 0
    assert len(doc.all("polygon")) == 1
    assert "yes (the copy is flipped left–right)" in html
    assert f"{ev['inliers']} of {ev['tentative_matches']} tentative matches" in html


# --- hostile bundles ----------------------------------------------------------

@pytest.mark.parametrize("uri", [
    "javascript:alert(1)",
    "data:image/svg+xml;base64,PHN2Zz48c2NyaXB0PmFsZXJ0KDEpPC9zY3JpcHQ+PC9zdmc+",
    "data:text/html;base64,PHNjcmlwdD4=",
    'data:image/png;base64,AAAA" onload="alert(1)',
    "data:image/png;base64,AAAA\n",
    "data:image/png;base64,",
    " data:image/png;base64,AAAA",
    "DATA:IMAGE/PNG;BASE64,AAAA",
    "https://example.com/x.png",
    "data:image/jpeg,rawbytes",
    123, None, ["data:image/png;base64,AAAA"],
])
def test_data_uri_validation_rejects(uri):
    assert _data_uri(uri) is None


def test_data_uri_validation_accepts():
    assert _data_uri(PNG_URI) == PNG_URI and _data_uri(JPEG_URI) == JPEG_URI
    assert _data_uri("data:image/png;base64,ab+/Cd==") is not None


def test_hostile_image_bundle_is_neutralised():
    nan, inf = float("nan"), float("inf")
    evil = '</script><script>alert(1)</script>"><svg onload=alert(2)>'
    m = _image_match(
        media={"query": "javascript:alert(3)", "registered": 'data:image/png;base64,AA" onload="alert(4)'},
        query_size=[200, 150], registered_size=[640, nan],
        keypoints=[[nan, 1, 2, 3], ["1", 2, 3, 4], [1, 2, 3], [True, 2, 3, 4], [10 ** 400, 1, 2, 3], "x",
                   [1, 2, 3, inf], [5, 5, 5, 5]],
        altered_regions=[[0, 0, nan, 5], [0, 0, -5, 5], ["0", 0, 5, 5], [0, 0, 5, 5]],
        transform={"crop_box": [0, 0, "</script>", 1], "scale": nan, "rotation_degrees": "90",
                   "mirrored": "yes", "query_quad_on_registered": [[0, 0], [1, nan], [2, 2], [3, 3]],
                   "registered_covered": inf},
        inliers="<b>many</b>", tentative_matches=nan, photometric_agreement=10 ** 400,
        hash_distance=evil, homography=[[nan, 0, 0], [0, 1, 0], [0, 0, 1]],
    )
    m["query"]["path"] = evil
    m["registered"]["title"] = evil
    m["signals"] = {"inliers": nan, "<i>x</i>": "</script>"}
    html = render_html(_wrap(m))
    doc = _parse(html)
    low = html.lower()
    assert "<script" not in low and "javascript:" not in low
    assert "<svg onload" not in low and "<b>many" not in low
    assert not [k for _, attrs in doc.elements for k in attrs if k.startswith("on")]  # no event handlers
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html  # escaped, still visible
    assert doc.all("image") == []  # both URIs dropped
    assert "img-src" not in html
    # the registered size is NaN: no figure, but nothing crashes and the table explains
    assert doc.all("svg") == [] and "no figure can be drawn" in html
    # no NaN/inf ever reaches an SVG attribute or the transformation table
    table = html.split('class="imgev"')[1]
    assert not re.search(r"\b(nan|inf|infinity)\b", table, re.IGNORECASE)
    for label in ("Region of the original shown", "Scale", "Rotation", "Mirrored", "Matched keypoints",
                  "Photometric agreement", "Hash distance", "Homography"):
        assert f"<th>{label}</th>" not in table, label

    # with valid sizes, the invalid pairs/boxes/quad are dropped and the valid ones drawn
    m["extra"]["image"]["registered_size"] = [640, 480]
    html = render_html(_wrap(m))
    doc = _parse(html)
    assert len(doc.all("line", "kp")) == 1  # only [5, 5, 5, 5]
    assert len(doc.all("rect", "alt")) == 1  # only [0, 0, 5, 5]
    assert doc.all("polygon") == []  # one corner was NaN
    numeric = re.compile(r"-?\d+(\.\d+)?")
    for tag in ("line", "rect", "svg"):
        for attrs in doc.all(tag):
            for k in ("x", "y", "x1", "y1", "x2", "y2", "width", "height"):
                if k in attrs:
                    assert numeric.fullmatch(attrs[k]), (tag, k, attrs[k])
    assert all(h.startswith("#") for h in _hrefs(html))


def test_hostile_structure_never_crashes():
    ev_variants = [None, [], "x", 5, {"transform": "x", "keypoints": {"a": 1}, "altered_regions": "abc",
                                      "media": ["x"], "query_size": "200x150", "homography": [[1]]},
                   {"transform": {"crop_box": None, "query_quad_on_registered": [[1, 2]] * 5}},
                   {"query_size": [0, 0], "registered_size": [-1, 5]},
                   {"query_size": [1e300, 5], "registered_size": [5, 5], "keypoints": [[1e300] * 4]}]
    for ev in ev_variants:
        m = _image_match()
        m["extra"]["image"] = ev
        _parse(render_html(_wrap(m)))
    _parse(render_html(_wrap({"modality": "image", "score": 10 ** 400, "coverage": {"registered": 10 ** 400}})))


# --- text reports stay as they were ------------------------------------------

def test_text_reports_untouched():
    html = render_html(_text_bundle())
    assert "<svg" not in html and "img-src" not in html and "imgev" not in html and ".imgpair" not in html
    assert "content=\"default-src 'none'; style-src 'unsafe-inline'\"" in html
    assert "For images" not in html


def test_mixed_bundle_keeps_text_sections():
    text = _text_bundle()
    mixed = copy.deepcopy(text)
    mixed["matches"].append(_image_match())
    a, b = render_html(text), render_html(mixed)
    doc = _parse(b)
    for anchor in ("match-1", "match-2"):
        sa = a.split(f'<section class="match" id="{anchor}">')[1].split("</section>")[0]
        sb = b.split(f'<section class="match" id="{anchor}">')[1].split("</section>")[0]
        assert sa.replace("of 2 ·", "of 3 ·") == sb
    assert len(doc.all("svg", "imgpair")) == 1
    assert "For images, the query is drawn on the left" in b
    # the summary table shows passages for text and a dash for images
    rows = b.split('id="summary"')[1].split("<tbody>")[1].split("</tbody>")[0]
    assert rows.count('<td class="n">1</td>') == 2 and '<td class="n">—</td>' in rows


def test_provenance_section_lists_record_drafts_and_ledger_entries():
    from copyscope.report.html import render_html
    bundle = {"schema": "copyscope.evidence/v1", "operation": "check", "matches": [],
              "provenance": {"W0000007": {
                  "record_sha256": "ab" * 32,
                  "record": {"title": "Lantern",
                             "generation": {"prompt": "a lantern on still water <script>alert(1)</script>",
                                            "models": [{"name": "sdxl", "sha256": "cd" * 32}], "seed": 3141592653},
                             "drafts": [{"sha256": "ef" * 32, "time": "2024-03-09T20:12:44+08:00", "selected": True}]},
                  "ledger": [{"index": 3, "kind": "register", "time": "2024-03-10T01:00:00Z", "sha256": "12" * 32},
                             {"index": 9, "kind": "draft", "time": "2024-03-09T12:00:00Z", "sha256": "ef" * 32,
                              "note": "seed 3141592653"}]},
                  "W0000008": "not a dict", "W0000009": {"ledger": "nope", "record": [1, 2]}}}
    html = render_html(bundle)
    assert "Provenance of the matched works" in html and "W0000007" in html
    assert "seed 3141592653" in html and "ef" * 32 in html and "2024-03-09T20:12:44+08:00" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "cd" * 32 in html and "Lantern" in html
    assert render_html({"matches": []}).count("Provenance of the matched works") == 0


def test_a_match_explained_by_a_better_fit_says_so():
    m = _image_match(explained_by={"registered_sha256": "3" * 64, "registered_path": "registered/<source>.png",
                                   "score": 0.993, "score_alone": 0.989})
    html = render_html(_wrap(m))
    _parse(html)
    assert "Explained by a better fit" in html and "registered/&lt;source&gt;.png" in html and "0.989" in html
    # malformed evidence (a hand-edited bundle) is left out, not rendered or raised on
    assert "Explained by" not in render_html(_wrap(_image_match(explained_by={"score": "x"})))
