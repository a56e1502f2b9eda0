"""The layout channel (copyscope.image.structure): re-drawn copies keep where
their edges run, and that is what finds them when no pixel survives."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from copyscope.image import structure as S
from copyscope.image.calibration import structure_ceiling, structure_score
from copyscope.image.plugin import ImageDoc, ImageModality
from copyscope.model import Artifact
from test_image_plugin import _photo_workspace, enc, scene


def _thumb(img: Image.Image) -> np.ndarray:
    g = np.asarray(img.convert("L"))
    k = 128 / max(g.shape)
    return cv2.resize(g, (round(g.shape[1] * k), round(g.shape[0] * k)), interpolation=cv2.INTER_AREA)


def stylize(img: Image.Image) -> Image.Image:
    """OpenCV's watercolour stylisation: every pixel new, the layout kept."""
    a = cv2.cvtColor(np.asarray(img.convert("RGB")), cv2.COLOR_RGB2BGR)
    return Image.fromarray(cv2.cvtColor(cv2.stylization(a, sigma_s=60, sigma_r=0.45), cv2.COLOR_BGR2RGB))


def oil(img: Image.Image) -> Image.Image:
    """A large median and a poster palette."""
    a = cv2.medianBlur(np.asarray(img.convert("RGB")), 9)
    return Image.fromarray((a // 32) * 32 + 16)


def cartoon(img: Image.Image) -> Image.Image:
    a = cv2.cvtColor(np.asarray(img.convert("RGB")), cv2.COLOR_RGB2BGR)
    for _ in range(3):
        a = cv2.bilateralFilter(a, 9, 60, 7)
    q = (a // 64) * 64 + 32
    return Image.fromarray(cv2.cvtColor(q.astype(np.uint8), cv2.COLOR_BGR2RGB))


def test_a_mirrored_picture_has_the_mirrored_field():
    t = _thumb(scene(3))
    f, f_flip = S.field(t), S.field(np.ascontiguousarray(t[:, ::-1]))
    assert S.similarity(S.mirrored(f), f_flip) > 0.999
    assert S.distance(S.code(S.mirrored(f)), S.code(f_flip)) == 0
    assert S.similarity(f, f_flip) < 0.5          # the layout is not mirror-symmetric


def test_codes_always_carry_the_present_bit_and_a_missing_code_is_far():
    c = S.code(S.field(_thumb(scene(4))))
    assert c & S.PRESENT
    assert S.distance(c, c) == 0
    assert S.distance(c, 0) == 64 and S.distance(0, 0) == 64


def test_projection_is_fixed():
    """Stored codes must stay valid across library versions: the projection is
    built from integers, not a random number generator's stream."""
    p = S._projection()
    assert p.shape == (2 * S.COARSE ** 2, S.CODE_BITS) and set(np.unique(p)) == {-1.0, 1.0}
    assert abs(float(p.mean())) < 0.05
    # pinned: a change here would silently invalidate every stored code
    f = np.sin(np.arange(2 * S.GRID * S.GRID, dtype=np.float32).reshape(2, S.GRID, S.GRID) * 0.37)
    assert int(S.code(f)) == 15877770797653278739


@pytest.mark.parametrize("redraw", [stylize, oil, cartoon])
def test_a_redrawn_picture_keeps_its_layout_and_others_do_not(redraw):
    orig = S.field(_thumb(scene(11)))
    drawn = S.field(_thumb(redraw(scene(11))))
    others = [S.field(_thumb(scene(s))) for s in range(20, 26)]
    sim = S.similarity(drawn, orig)
    assert sim > 0.6, sim
    assert all(S.similarity(drawn, o) < sim - 0.3 for o in others)
    assert S.distance(S.code(drawn), S.code(orig)) <= ImageModality().params.max_structure_distance


def test_the_structure_score_rises_with_similarity_and_is_capped():
    assert structure_score(0.9, 0.9) > structure_score(0.6, 0.9) > structure_score(0.2, 0.9)
    assert structure_score(0.9, 0.9) > structure_score(0.9, 0.1)     # another palette: less likely
    assert structure_ceiling() == structure_score(1.0, 1.0) < 0.9    # never as sure as pixels


def test_the_structure_code_is_stored_with_the_features():
    plugin = ImageModality()
    doc = plugin.fingerprint(Artifact(enc(scene(5)), origin="a.jpg"))
    back = ImageDoc.loads(doc.dumps(), doc.artifact)
    assert back._structure_code == int(doc.structure_code)
    assert plugin.global_codes(back)[-1] == doc.structure_code


def line_art(img: Image.Image) -> Image.Image:
    """A colouring-book re-drawing: dark outlines where the edges were, soft
    colour fields between them. No keypoint or pixel block survives."""
    a = np.asarray(img.convert("RGB"))
    edges = cv2.dilate(cv2.Canny(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), 60, 150), np.ones((3, 3), np.uint8))
    fill = (cv2.GaussianBlur(a, (0, 0), 12).astype(np.float32) * 0.6 + 100).clip(0, 255)
    return Image.fromarray(np.where(edges[..., None] > 0, 30, fill).astype(np.uint8))


def test_a_line_art_redrawing_is_found_by_its_layout(tmp_path):
    from copyscope import api
    from copyscope.settings import Settings
    reg = tmp_path / "reg"
    reg.mkdir()
    for i in range(10):
        scene(500 + i).save(reg / f"s{i}.jpg", quality=90)
    with api.init(Settings(home=tmp_path / "ws")) as ws:
        ws.register([reg], owner="o", each=True)
    q = tmp_path / "redrawn.png"
    line_art(scene(505)).save(q)
    with api.open_workspace(Settings(home=tmp_path / "ws", threshold=1e-6)) as ws:
        result = ws.check([q], media=False)
    assert result.matches, "the re-drawing was not found"
    best = max(result.matches, key=lambda m: m.score)
    assert best.registered_path.endswith("s5.jpg")
    ev = best.extra["image"]
    assert ev["kind"] == "structure" and ev["structure"]["similarity"] > 0.6, ev["structure"]
    assert best.coverage_registered > 0.9
    assert 0.05 < best.score < structure_ceiling()
    assert best.signals["pixel_score"] < best.score        # the layout, not the pixels, carried it
    with api.open_workspace(Settings(home=tmp_path / "ws")) as ws:      # the default threshold
        assert not ws.check([q], media=False).matches     # a lead to look at, not a copy


def test_gc_fills_the_codes_an_older_version_did_not_write(tmp_path):
    ws, reg = _photo_workspace(tmp_path, range(520, 526))
    ids, codes = ws.registry.global_codes("image", 3)
    # as an older version stored them: the two DCT hashes only
    ws.registry.set_codes([(int(i), c[:2].astype("<u8").tobytes()) for i, c in zip(ids, codes)])
    assert len(ws.registry.codes_to_fill("image", 3)) == 6
    assert ws.fill_codes() == 6
    again_ids, again = ws.registry.global_codes("image", 3)
    assert (again == codes).all() and (again_ids == ids).all()
    assert ws.fill_codes() == 0
    ws.close()


def test_a_registered_image_without_a_layout_code_is_not_compared_by_layout():
    """Registered before layout codes and not yet filled by ``gc --compact``: no
    layout comparison (rather than computing its code at every check)."""
    plugin = ImageModality()
    stored = plugin.fingerprint(Artifact(enc(scene(505), quality=90), origin="r.jpg"))
    q = plugin.fingerprint(Artifact(enc(line_art(scene(505)), "PNG"), origin="q.png"))

    def registered(codes_row):
        ref = ImageDoc.loads(stored.dumps(), stored.artifact)
        ref._structure_code = None                  # a feature file from before layout codes
        plugin.adopt_codes(ref, np.array(codes_row, np.uint64))
        return plugin.verify(q, ref)

    filled = registered([1, 2, int(stored.structure_code)])
    assert filled.extra["image"]["kind"] == "structure"
    unfilled = registered([1, 2, 0])
    assert unfilled is None or unfilled.extra["image"]["structure"] is None
