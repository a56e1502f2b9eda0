"""The image modality end to end: transformations found, explained and stored."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from copyscope.image import features as F
from copyscope.image import structure as S
from copyscope.image.plugin import EXPLAINED_CAP, ImageModality
from copyscope.model import Artifact


def photo(seed: int, w: int = 720, h: int = 480) -> Image.Image:
    """A textured synthetic picture: smooth colour field plus shapes."""
    r = np.random.default_rng(seed)
    img = Image.fromarray(r.integers(0, 255, (h // 24, w // 24, 3)).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    d = ImageDraw.Draw(img)
    for _ in range(45):
        x, y, s = int(r.integers(0, w)), int(r.integers(0, h)), int(r.integers(12, 70))
        d.ellipse([x, y, x + s, y + s], fill=tuple(int(v) for v in r.integers(0, 255, 3)))
        d.rectangle([x + 15, y + 4, x + s + 25, y + s // 2], outline=tuple(int(v) for v in r.integers(0, 255, 3)), width=3)
    return img


def enc(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def plugin() -> ImageModality:
    return ImageModality()


@pytest.fixture(scope="module")
def original(plugin):
    return plugin.fingerprint(Artifact(enc(photo(1), quality=92), origin="orig.jpg"))


def _verify(plugin, img: Image.Image, ref, fmt="JPEG", **kw):
    q = plugin.fingerprint(Artifact(enc(img, fmt, **kw), origin="q." + fmt.lower()))
    return plugin.verify(q, ref)


def test_mirror_invariant_hash():
    g = np.asarray(photo(4).convert("L"))
    assert F.global_hashes(g)[0] == F.global_hashes(np.ascontiguousarray(g[:, ::-1]))[0]
    other = F.global_hashes(np.asarray(photo(5).convert("L")))[0]
    assert int(np.bitwise_count(np.uint64(F.global_hashes(g)[0]) ^ np.uint64(other))) > 12


@pytest.mark.parametrize("name,edit", [
    ("recompressed", lambda im: im),
    ("resized", lambda im: im.resize((300, 200))),
    ("blurred", lambda im: im.filter(ImageFilter.GaussianBlur(1.5))),
    ("colour", lambda im: Image.eval(im, lambda v: min(255, int(v * 0.8 + 40)))),
])
def test_global_edits_are_copies(plugin, original, name, edit):
    m = _verify(plugin, edit(photo(1)), original, quality=60)
    assert m is not None and m.verdict == "copy", name
    assert m.extra["image"]["transform"]["registered_covered"] > 0.95


def test_crop_reports_the_box(plugin, original):
    m = _verify(plugin, photo(1).crop((100, 60, 500, 400)), original)
    t = m.extra["image"]["transform"]
    assert m.verdict == "copy"
    assert all(abs(a - b) <= 12 for a, b in zip(t["crop_box"], [100, 60, 500, 400])), t["crop_box"]
    assert 0.35 < t["registered_covered"] < 0.45


def test_flip_is_found_and_named(plugin, original):
    m = _verify(plugin, photo(1).transpose(Image.FLIP_LEFT_RIGHT), original, "PNG")
    assert m.verdict == "copy" and m.extra["image"]["transform"]["mirrored"] is True
    qx, qy, rx, ry = m.extra["image"]["keypoints"][0]
    assert abs((720 - qx) - rx) < 8 and abs(qy - ry) < 8       # keypoints in the query's own frame


def test_rotation_and_scale_are_measured(plugin, original):
    img = photo(1).rotate(20, expand=True, fillcolor=(255, 255, 255)).resize((500, 400))
    m = _verify(plugin, img, original)
    t = m.extra["image"]["transform"]
    assert m.verdict == "copy" and abs(abs(t["rotation_degrees"]) - 20) < 2


def test_inset_in_a_larger_picture(plugin, original):
    canvas = photo(50, 1000, 700)
    canvas.paste(photo(1).resize((360, 240)), (520, 380))
    m = _verify(plugin, canvas, original)
    assert m.verdict == "copy"
    assert m.extra["image"]["transform"]["query_covered"] < 0.3


def test_covered_area_shows_as_altered(plugin, original):
    img = photo(1)
    ImageDraw.Draw(img).rectangle([480, 330, 700, 460], fill=(250, 250, 250))   # a "watermark" patch
    m = _verify(plugin, img, original, "PNG")
    boxes = m.extra["image"]["altered_regions"]
    assert m.verdict == "copy" and boxes
    cx = np.mean([x + w / 2 for x, y, w, h in boxes])
    cy = np.mean([y + h / 2 for x, y, w, h in boxes])
    assert 430 < cx < 720 and 290 < cy < 480


def test_unrelated_picture_is_not_a_copy(plugin, original):
    m = _verify(plugin, photo(2), original)
    assert m is None or m.verdict != "copy"


def test_features_round_trip(plugin, original):
    back = plugin.loads(plugin.dumps(original), original.artifact)
    assert np.array_equal(back.desc, original.desc) and np.array_equal(back.index_keys(), original.index_keys())
    assert (back.width, back.height, back.an_size) == (original.width, original.height, original.an_size)


def test_features_stored_by_format_1_still_load(plugin, original):
    import io
    buf = io.BytesIO()          # what copyscope wrote before format 2: an .npz
    np.savez(buf, version=np.int64(1), pts=original.pts, desc=original.desc, hashes=original.hashes,
             thumb=original.thumb, size=np.array([original.width, original.height, *original.an_size], np.int64),
             fmt=np.frombuffer(original.format.encode("ascii"), np.uint8))
    back = plugin.loads(buf.getvalue(), original.artifact)
    assert np.array_equal(back.desc, original.desc) and np.array_equal(back.pts, original.pts)
    assert back.format == original.format and back.an_size == original.an_size


def test_truncated_features_are_refused_not_misread(plugin, original):
    data = plugin.dumps(original)
    with pytest.raises(ValueError):
        plugin.loads(data[: len(data) // 2], original.artifact)


# --- through the CLI ----------------------------------------------------------------

def test_register_check_and_report(cli, tmp_path):
    reg = tmp_path / "reg"
    reg.mkdir()
    for i in range(6):
        photo(100 + i).save(reg / f"art{i}.jpg", quality=90)
    q = tmp_path / "repost.webp"
    photo(103).crop((40, 40, 640, 440)).transpose(Image.FLIP_LEFT_RIGHT).save(q)
    fresh = tmp_path / "fresh.png"
    photo(999).save(fresh)
    assert cli("init")[0] == 0
    rc, out, err = cli("register", str(reg), "--each", "--owner", "Artist", "--license", "CC-BY-4.0")
    assert rc == 0, err
    rc, out, err = cli("check", str(q), str(fresh), "--format", "tsv")
    assert rc == 1, err
    lines = [line.split("\t") for line in out.splitlines()]
    assert len(lines) == 1 and lines[0][0] == str(q) and lines[0][1].endswith("art3.jpg")
    rc, out, err = cli("--json", "check", str(q))
    match = json.loads(out)["matches"][0]
    assert match["modality"] == "image" and match["registered"]["owner"] == "Artist"
    image = match["extra"]["image"]
    assert image["transform"]["mirrored"] and image["media"]["registered"].startswith("data:image/jpeg;base64,")


def test_damaged_feature_store_falls_back_to_the_blob(cli, home, tmp_path):
    photo(7).save(tmp_path / "a.jpg", quality=90)
    photo(7).resize((360, 240)).save(tmp_path / "b.png")
    assert cli("init")[0] == 0
    assert cli("register", str(tmp_path / "a.jpg"), "--owner", "o")[0] == 0
    stored = [p for p in (home / "features" / "image").rglob("*") if p.is_file()]
    assert len(stored) == 1
    stored[0].write_bytes(b"garbage")
    rc, out, err = cli("check", str(tmp_path / "b.png"), "--format", "tsv")
    assert rc == 1 and "a.jpg" in out, err


# --- storage: global codes, the Hamming scan, the feature store ---------------------

def _photo_workspace(tmp_path: Path, seeds: range):
    """A fresh workspace with one registered work per synthetic photo, ``reg/p<i>.jpg``."""
    from copyscope import api
    from copyscope.settings import Settings
    ws = api.init(Settings(home=tmp_path / "ws"))
    reg = tmp_path / "reg"
    reg.mkdir()
    for i, seed in enumerate(seeds):
        photo(seed).save(reg / f"p{i}.jpg", quality=90)
    ws.register([reg], owner="o", each=True)
    return ws, reg

def test_blurred_copy_is_found_by_the_hamming_scan(tmp_path):
    """Heavy blur leaves no keypoints to look up: only the global codes find it."""
    ws, reg = _photo_workspace(tmp_path, range(300, 312))
    q = tmp_path / "blurred.jpg"
    photo(305).filter(ImageFilter.GaussianBlur(6)).save(q, quality=60)
    mod = ws.modalities["image"]
    fp = mod.fingerprint(Artifact(q.read_bytes(), origin=str(q)))
    reader = ws.reader("image")
    assert reader.candidates(fp.query_keys(), common_df=3, max_df=100, limit=3).doc_ids.size <= 3
    params = mod.parameters()
    near = ws._hamming_candidates(mod, fp, ws._global_codes(mod, reader, params), params)
    shas = ws.registry.artifact_sha256(near[:1])
    ref_sha = Artifact((reg / "p5.jpg").read_bytes(), origin="x").sha256
    assert shas[near[0]] == ref_sha
    ids, codes = ws.registry.global_codes("image", 3)
    assert ids.shape == (12,) and codes.shape == (12, 3) and codes.dtype == np.uint64
    assert (codes[:, 2] & S.PRESENT).all()                 # every image has its structure code
    ws.close()


def scene(seed: int, w: int = 720, h: int = 480) -> Image.Image:
    """A picture without straight edges (``photo`` is built on a square grid,
    which is all straight edges): a smooth random colour field and discs."""
    r = np.random.default_rng(seed)
    field = Image.fromarray(r.integers(0, 255, (h // 40, w // 40, 3)).astype(np.uint8))
    img = field.resize((w, h), Image.BILINEAR).filter(ImageFilter.GaussianBlur(18))
    d = ImageDraw.Draw(img)
    for _ in range(60):
        x, y, s = int(r.integers(0, w)), int(r.integers(0, h)), int(r.integers(10, 60))
        d.ellipse([x, y, x + s, y + s * 0.7], fill=tuple(int(v) for v in r.integers(0, 255, 3)))
    return img


def _inset_query(inner: int, outer: int, box=(560, 120, 360, 240)) -> Image.Image:
    canvas = Image.eval(scene(outer, 1000, 700), lambda v: v // 3)     # a dark backdrop
    x, y, w, h = box
    canvas.paste(scene(inner).resize((w, h)), (x, y))
    return canvas


def test_insets_finds_a_pasted_picture():
    img = _inset_query(7, 60)
    gray = np.asarray(img.convert("L").resize((512, 358)))
    k = 512 / 1000
    want = np.array([560 * k, 120 * k, 360 * k, 240 * k])
    found = [np.array(r) for r in F.insets(gray)]
    assert any(np.abs(r - want).max() <= 4 for r in found), (found, want)


def test_an_inset_gets_its_own_row_of_code_distances(plugin):
    """The whole query's hash describes the surroundings; the inset's own hash
    is what sits next to the registered picture's."""
    refs = [plugin.fingerprint(Artifact(enc(scene(400 + i)), origin=f"r{i}.jpg")) for i in range(6)]
    codes = np.stack([plugin.global_codes(r) for r in refs])
    q = plugin.fingerprint(Artifact(enc(_inset_query(403, 61), quality=85), origin="q.jpg"))
    dist = plugin.code_distances(q, codes)
    assert dist.shape[0] >= 3 and dist.shape[1] == 6           # the whole, the layout, the insets
    assert dist[0, 3] > plugin.params.max_region_distance            # not from the whole view
    assert dist[2:, 3].min() <= plugin.params.max_region_distance
    assert int(np.argmin(dist[2:].min(axis=0))) == 3


def test_a_plain_picture_has_no_insets_to_look_up(plugin):
    q = plugin.fingerprint(Artifact(enc(photo(9)), origin="q.jpg"))
    codes = np.stack([plugin.global_codes(q)])
    assert plugin.code_distances(q, codes).shape[0] == 2 + q.inset_hashes.shape[0]
    assert len(plugin.code_row_limits(q)) == 2


def test_heavy_blur_is_aligned_without_keypoints(plugin, original):
    """No keypoint survives a blur this strong; the global hashes say which views
    correspond, correlation refines the fit, and the textured blocks agree."""
    m = _verify(plugin, photo(1).filter(ImageFilter.GaussianBlur(16)), original, quality=70)
    ev = m.extra["image"]
    assert ev["inliers"] < 8 and ev["alignment"] == "global"
    assert ev["photometric_agreement"] >= 0.5 and ev["homography"] is not None
    assert ev["transform"]["registered_covered"] > 0.9


def test_mirrored_blur_is_aligned_the_right_way_round(plugin, original):
    img = photo(1).transpose(Image.FLIP_LEFT_RIGHT).filter(ImageFilter.GaussianBlur(16))
    ev = _verify(plugin, img, original, quality=70).extra["image"]
    assert ev["alignment"] == "global" and ev["transform"]["mirrored"] is True


def test_keypoint_free_alignment_needs_agreeing_texture(plugin, original):
    """Another picture whose blurred layout is similar is not aligned: its
    textured blocks do not correlate."""
    m = _verify(plugin, photo(2).filter(ImageFilter.GaussianBlur(16)), original, quality=70)
    assert m is None or (m.extra["image"]["alignment"] is None and m.verdict != "copy")


def test_overlaid_text_does_not_hide_the_picture_from_the_probe(plugin, original):
    """Big overlaid text owns the strongest corners of the query; the probe looks
    at keypoints spread over the picture, so the copied content is still matched."""
    from PIL import ImageFont
    img = photo(1)
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=48)
    for row in (0, 4, 8):
        d.text((5, 5 + row * 52), "SALE TODAY 2026 FREE", fill=(255, 255, 255), font=font, stroke_width=3,
               stroke_fill=(0, 0, 0))
    q = plugin.fingerprint(Artifact(enc(img, quality=85), origin="q.jpg"))
    m = plugin.verify(q, original)
    assert m is not None and m.extra["image"]["alignment"] == "keypoints" and m.extra["image"]["inliers"] >= 8


def test_a_small_inset_is_matched_at_its_own_scale(plugin):
    """A picture pasted at a quarter of the query's width keeps few keypoints at
    the query's scale; its inset, enlarged and matched on its own, keeps many."""
    from copyscope.image.geometry import match
    ref = plugin.fingerprint(Artifact(enc(scene(31), "PNG"), origin="orig.png"))
    img = _inset_query(31, 62, box=(80, 400, 250, 167))
    q = plugin.fingerprint(Artifact(enc(img, quality=90), origin="q.jpg"))
    assert q.insets and q.inset_features
    whole = match(*q.query_features, ref.pts, ref.desc).inliers
    m = plugin.verify(q, ref)
    ev = m.extra["image"]
    assert m.verdict == "copy" and ev["inliers"] > max(2 * whole, 20), (ev["inliers"], whole)
    assert ev["transform"]["query_covered"] < 0.15


def test_a_small_inset_agrees_block_by_block_with_its_original(plugin):
    """The photometric check warps a sharper rendering of the query when the copy
    fills a small part of it: a 200-pixel inset is 26 pixels of the query's
    thumbnail, and blown up to the original's thumbnail it blurred every block
    (agreement 0.66 before; a copy must agree with its own original)."""
    ref = plugin.fingerprint(Artifact(enc(scene(5), "PNG"), origin="orig.png"))
    ref = plugin.loads(plugin.dumps(ref), ref.artifact)
    q = plugin.fingerprint(Artifact(enc(_inset_query(5, 62, box=(100, 100, 200, 133)), quality=90), origin="q.jpg"))
    m = plugin.verify(q, ref)
    assert m.verdict == "copy" and m.extra["image"]["photometric_agreement"] >= 0.9, m.extra["image"]
    assert m.score > 0.9


def test_chance_candidates_verified_first_leave_the_inset_tries_to_the_source(plugin):
    """A query looked up in the index matches its insets against a few
    candidates only; candidates the cheap probe turns away do not spend those
    tries, so the true source, verified after them, still gets its inset match."""
    ref = plugin.fingerprint(Artifact(enc(scene(31), "PNG"), origin="orig.png"))
    ref = plugin.loads(plugin.dumps(ref), ref.artifact)
    q = plugin.fingerprint(Artifact(enc(_inset_query(31, 62, box=(80, 400, 250, 167)), quality=90), origin="q.jpg"))
    q.query_keys()                                     # as a registry check does: tries are counted
    for seed in range(200, 206):
        r = np.random.default_rng(seed)      # unrelated: grain the probe finds nothing in
        grain = Image.fromarray(r.integers(0, 255, (480, 720, 3)).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
        other = plugin.fingerprint(Artifact(enc(grain, "PNG"), origin=f"o{seed}.png"))
        m = plugin.verify(q, plugin.loads(plugin.dumps(other), other.artifact))
        assert m is None or m.verdict != "copy"
    m = plugin.verify(q, ref)
    assert m.verdict == "copy" and m.extra["image"]["inliers"] >= 20, m.extra["image"]["inliers"]


def test_a_symmetric_subject_does_not_hide_the_mirror(plugin):
    """A mirror-symmetric object in the middle of a flipped copy fits a few
    keypoints the wrong way round; the disagreeing surroundings send the check
    on to the mirror, which fits the whole picture."""
    img = photo(21)
    half = photo(22).crop((0, 0, 120, 240))
    badge = Image.new("RGB", (240, 240))
    badge.paste(half, (0, 0))
    badge.paste(half.transpose(Image.FLIP_LEFT_RIGHT), (120, 0))
    img.paste(badge, (240, 120))
    ref = plugin.fingerprint(Artifact(enc(img, "PNG"), origin="orig.png"))
    m = _verify(plugin, img.transpose(Image.FLIP_LEFT_RIGHT), ref, quality=90)
    ev = m.extra["image"]
    assert m.verdict == "copy" and ev["transform"]["mirrored"] is True
    assert ev["photometric_agreement"] > 0.8 and ev["transform"]["registered_covered"] > 0.9


def test_a_pre_image_workspace_is_migrated(cli, home, tmp_path):
    """A registry at schema 0002 (before artifact codes) opens and keeps working."""
    import sqlite3
    (tmp_path / "a.txt").write_text(" ".join(f"sentence {i} tells of harbour {i * 7} and lantern {i * 13}." for i in range(80)))
    assert cli("init")[0] == 0
    assert cli("register", str(tmp_path / "a.txt"), "--owner", "o")[0] == 0
    con = sqlite3.connect(home / "registry.db")
    con.execute("ALTER TABLE artifacts DROP COLUMN codes")
    con.execute("UPDATE alembic_version SET version_num = '0002_ledger'")
    con.commit()
    con.close()
    photo(9).save(tmp_path / "p.jpg", quality=90)
    rc, out, err = cli("register", str(tmp_path / "p.jpg"), "--owner", "o")
    assert rc == 0, err
    con = sqlite3.connect(home / "registry.db")
    assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0003_artifact_codes"
    assert con.execute("SELECT COUNT(*) FROM artifacts WHERE codes IS NOT NULL").fetchone()[0] == 1
    con.close()
    rc, out, err = cli("check", str(tmp_path / "a.txt"), "--format", "tsv")
    assert rc == 1 and "a.txt" in out


def test_gc_removes_orphan_feature_files(cli, home, tmp_path):
    photo(11).save(tmp_path / "a.jpg", quality=90)
    assert cli("init")[0] == 0
    assert cli("register", str(tmp_path / "a.jpg"), "--owner", "o")[0] == 0
    stray = home / "features" / "image" / "ff" / ("ff" * 32)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"left by a crashed registration")
    rc, out, err = cli("--json", "gc")
    assert rc == 0 and json.loads(out)["blobs"] >= 1
    assert not stray.exists()
    assert len([p for p in (home / "features" / "image").rglob("*") if p.is_file()]) == 1


def test_gc_compact_merges_segments_and_keeps_every_match(cli, home, tmp_path):
    for i in range(3):
        photo(400 + i).save(tmp_path / f"a{i}.jpg", quality=90)
    assert cli("init")[0] == 0
    for i in range(3):                                  # three registrations: three segments
        assert cli("register", str(tmp_path / f"a{i}.jpg"), "--owner", "o")[0] == 0
    assert len(list((home / "index" / "image").glob("seg-*"))) == 3
    rc, out, err = cli("--json", "gc", "--compact")
    assert rc == 0 and json.loads(out)["merged_segments"] == 3, err
    assert len(list((home / "index" / "image").glob("seg-*"))) == 1
    photo(401).resize((300, 200)).save(tmp_path / "q.png")
    rc, out, err = cli("check", str(tmp_path / "q.png"), "--format", "tsv")
    assert rc == 1 and out.split("\t")[1].endswith("a1.jpg"), (out, err)


def test_gc_compact_writes_the_sketch_rows_a_workspace_lacks(cli, home, tmp_path):
    """A workspace registered before sketches (or one whose sketch file was lost)
    gets every row back from its feature files, so no check pays that fallback."""
    from copyscope import api
    for i in range(3):
        photo(420 + i).save(tmp_path / f"a{i}.jpg", quality=90)
    assert cli("init")[0] == 0
    assert cli("register", "--each", *[str(tmp_path / f"a{i}.jpg") for i in range(3)], "--owner", "o")[0] == 0
    sketch_file, = (home / "sketches").glob("image-*.bin")
    sketch_file.unlink()
    rc, out, err = cli("--json", "gc", "--compact")
    assert rc == 0 and json.loads(out)["sketch_rows"] == 3, err
    with api.open_workspace(api.Settings.resolve(home)) as ws:
        shas = dict(ws.registry.artifact_shas("image"))
        assert len(shas) == 3 and set(ws.sketches["image"].get_many(shas)) == set(shas)
    rc, out, err = cli("--json", "gc", "--compact")
    assert rc == 0 and json.loads(out)["sketch_rows"] == 0, err       # nothing left to write


def test_all_pairs_finds_a_mirrored_copy_however_many_pairs_come_first(cli, tmp_path):
    """The mirrored attempt is budgeted for ranked index candidates only; a direct
    comparison of many pairs must try every pair mirrored too."""
    d = tmp_path / "set"
    d.mkdir()
    photo(500).save(d / "a0.png")
    for i in range(1, 6):
        photo(500 + i).save(d / f"a{i}.png")
    photo(500).transpose(Image.FLIP_LEFT_RIGHT).crop((60, 40, 660, 440)).save(d / "a9.png")
    rc, out, err = cli("compare", "--all-pairs", str(d), "--format", "tsv")
    rows = {tuple(Path(x).name for x in line.split("\t")[:2]): float(line.split("\t")[2])
            for line in out.splitlines() if line}
    assert rows[("a0.png", "a9.png")] >= 0.5, (rows, err)


def test_candidates_are_decided_from_stored_features_without_reading_blobs(tmp_path):
    """Only a candidate that gets as far as the fine photometric check (a copy)
    reads its registered file; the others are decided from stored features."""
    from copyscope.model import StoredArtifact
    ws, _ = _photo_workspace(tmp_path, range(400, 412))
    reads: list[str] = []
    real_get = ws.blobs.get
    ws.blobs.get = lambda sha: reads.append(sha) or real_get(sha)
    unrelated = tmp_path / "unrelated.jpg"
    photo(999).save(unrelated, quality=85)
    assert ws.check([str(unrelated)], media=False).matches == []
    assert reads == []
    copy = tmp_path / "copy.jpg"
    photo(405).crop((40, 30, 600, 420)).save(copy, quality=80)
    found = ws.check([str(copy)], media=False).matches
    assert [m.registered_path.rsplit("/", 1)[-1] for m in found] == ["p5.jpg"]
    assert reads == [found[0].registered_sha256]          # the copy's file, once, for the fine check
    ws.close()
    calls = []
    art = StoredArtifact(lambda: calls.append(1) or b"abc", origin="x", sha256="0" * 64)
    assert calls == [] and art.size == 3 and art.data == b"abc" and calls == [1]


def test_candidates_past_the_index_top_are_reranked_by_descriptor_support(tmp_path):
    """With no room for the index's own ranking, a copy is found only through the
    re-ranked pool; its sketch row is what was read, and a lost sketch file is
    rebuilt from the feature store by the next check."""
    from dataclasses import replace

    ws, reg = _photo_workspace(tmp_path, range(400, 408))
    mod = ws.modalities["image"]
    mod.params = replace(mod.params, candidate_limit=0, hash_candidates=0, region_candidates=0, rerank_keep=1)
    q = tmp_path / "q.jpg"
    photo(403).crop((40, 30, 640, 450)).rotate(8, expand=True).save(q, quality=80)
    store = ws.sketches["image"]
    assert store.path.stat().st_size == 9 * store.row             # artifact ids 1-8, each at its own offset

    def found() -> list[str]:
        return [Path(m.registered_path).name for m in ws.check([q], media=False).matches]

    assert found() == ["p3.jpg"]
    fp = mod.fingerprint(Artifact(q.read_bytes(), origin=str(q)))
    ids = ws.registry.artifact_sha256(list(range(1, 9)))
    rows = store.get_many(ids)
    support = mod.rerank(fp, [rows[i] for i in sorted(ids)])
    best = sorted(ids)[int(np.argmax(support))]
    assert ids[best] == Artifact((reg / "p3.jpg").read_bytes(), origin="x").sha256
    assert support.max() >= 3 * np.sort(support)[-2]                # far above every unrelated picture
    store.path.unlink()
    assert found() == ["p3.jpg"] and len(store.get_many(ids)) >= 1  # fell back, wrote rows back
    ws.close()


def _stored_with_reads(plugin, original, reads: list, tag: int):  # noqa: ANN202
    from copyscope.model import StoredArtifact
    data = original.artifact.data
    return plugin.loads(plugin.dumps(original),
                        StoredArtifact(lambda: reads.append(tag) or data, origin="orig.jpg", sha256="0" * 64))


def test_the_shipped_score_never_decodes_the_registered_file(plugin, original):
    """The monotone fit gives the fine agreement no weight, so a check decides
    from the stored features alone and never reads the registered file."""
    from copyscope.image import calibration
    assert not calibration.uses_fine()
    assert all(w >= 0 for w in calibration._model()["weights"])
    reads: list = []
    copy = plugin.fingerprint(Artifact(enc(photo(1).crop((30, 20, 650, 440)), quality=85), origin="q.jpg"))
    m = plugin.verify(copy, _stored_with_reads(plugin, original, reads, 1))
    assert m.verdict == "copy" and m.score > 0.9 and m.signals["fine_photometric"] == 0.0 and reads == []


def test_the_calibration_run_still_measures_the_fine_agreement(plugin, original, monkeypatch):
    """A refit must see the 512-pixel agreement's real values, or the shipped
    model's zero weight would decide its own refit."""
    from copyscope.image import calibration
    monkeypatch.setenv(calibration.FINE_PASS_ENV, "1")
    reads: list = []
    copy = plugin.fingerprint(Artifact(enc(photo(1).crop((30, 20, 650, 440)), quality=85), origin="q.jpg"))
    m = plugin.verify(copy, _stored_with_reads(plugin, original, reads, 1))
    assert m.signals["fine_photometric"] > 0.5 and reads == [1]


def test_a_fit_that_cannot_reach_the_report_floor_skips_the_fine_check(plugin, original, monkeypatch):
    """With a model that weights the fine agreement: a check reports nothing
    under its threshold, so a fit whose score stays under it whatever the fine
    check says does not decode the registered file."""
    from copyscope.image import calibration
    model = {**calibration._model(), "weights": [0.1, 7.4, 0.9, 3.1, 0.5, 0.5]}
    monkeypatch.setattr(calibration, "_model", lambda: model)
    reads: list = []
    copy = plugin.fingerprint(Artifact(enc(photo(1).crop((30, 20, 650, 440)), quality=85), origin="q.jpg"))
    exact = plugin.verify(copy, _stored_with_reads(plugin, original, reads, 1))
    assert exact.signals["fine_photometric"] > 0.5 and reads == [1]
    copy.report_floor = 1.01                  # no score reaches it
    floored = plugin.verify(copy, _stored_with_reads(plugin, original, reads, 2))
    assert floored.signals["fine_photometric"] == 0.0 and floored.score < copy.report_floor and reads == [1]


def _variant(seed: int) -> Image.Image:
    """``photo(seed)`` with a new subject drawn over a quarter of it: a sibling
    of the original made on the same template (the clock with other hands)."""
    img = photo(seed)
    d = ImageDraw.Draw(img)
    r = np.random.default_rng(seed + 1000)
    for _ in range(12):
        x, y, s = int(r.integers(380, 660)), int(r.integers(20, 200)), int(r.integers(20, 60))
        d.ellipse([x, y, x + s, y + s], fill=tuple(int(v) for v in r.integers(0, 255, 3)))
    return img


def test_a_registered_variant_is_explained_away_by_the_better_fit(plugin, original):
    """A copy of the original also matches a sibling variant over the same region;
    the sibling's score is capped at even odds and names the original."""
    variant = plugin.fingerprint(Artifact(enc(_variant(1), quality=92), origin="variant.jpg"))
    q = plugin.fingerprint(Artifact(enc(photo(1), quality=70), origin="q.jpg"))
    to_original, to_variant = plugin.verify(q, original), plugin.verify(q, variant)
    assert to_original.score > 0.9 and to_variant.score > 0.5        # alone, both look like sources
    weighed = plugin.explain_away([to_variant, to_original])
    assert weighed[1] is to_original                                  # the best fit is untouched
    assert weighed[0].score == EXPLAINED_CAP < to_variant.score                # even odds, still reported
    by = weighed[0].extra["image"]["explained_by"]
    assert by["registered_sha256"] == original.artifact.sha256 and by["score_alone"] == round(to_variant.score, 4)


def test_equal_fits_and_disjoint_regions_are_not_explained_away(plugin, original):
    """Two encodings of one picture fit alike: both stay. Two pictures pasted side
    by side cover different regions: both stay."""
    q = plugin.fingerprint(Artifact(enc(photo(1), quality=70), origin="q.jpg"))
    twin = plugin.fingerprint(Artifact(enc(photo(1), "PNG"), origin="twin.png"))
    a, b = plugin.verify(q, original), plugin.verify(q, twin)
    assert [m.score for m in plugin.explain_away([a, b])] == [a.score, b.score]
    left, right = photo(1).resize((480, 320)), photo(2).resize((480, 320))
    collage = Image.new("RGB", (960, 320))
    collage.paste(left, (0, 0))
    collage.paste(right, (480, 0))
    other = plugin.fingerprint(Artifact(enc(photo(2), quality=92), origin="other.jpg"))
    qc = plugin.fingerprint(Artifact(enc(collage, quality=90), origin="collage.jpg"))
    found = [m for m in (plugin.verify(qc, original), plugin.verify(qc, other)) if m is not None]
    assert len(found) == 2 and [m.score for m in plugin.explain_away(found)] == [m.score for m in found]


def test_check_reports_the_source_above_its_registered_variant(tmp_path):
    """Through the workspace: the variant is reported at even odds, below the
    source, and names it."""
    from copyscope import api
    from copyscope.settings import Settings
    ws = api.init(Settings(home=tmp_path / "ws"))
    reg = tmp_path / "reg"
    reg.mkdir()
    photo(1).save(reg / "source.jpg", quality=92)
    _variant(1).save(reg / "variant.jpg", quality=92)
    for seed in range(40, 44):
        photo(seed).save(reg / f"p{seed}.jpg", quality=90)
    ws.register([reg], owner="o", each=True)
    q = tmp_path / "copy.jpg"
    photo(1).save(q, quality=60)
    matches = ws.check([q], media=False).matches
    by_name = {Path(m.registered_path).name: m for m in matches}
    assert by_name["source.jpg"].score > 0.9
    v = by_name["variant.jpg"]
    assert v.score == EXPLAINED_CAP and Path(v.extra["image"]["explained_by"]["registered_path"]).name == "source.jpg"
    ws.close()
