"""Geometric and photometric verification of one (query, registered) image pair.

1. Descriptors are matched both ways with Lowe's ratio test, and the
   correspondences are fitted with a RANSAC homography (MAGSAC++). The inliers
   are the matched keypoints a court exhibit shows.
2. The homography says what was done: which box of the original the query
   shows (a crop), at what scale and rotation, and how much of each side the
   other covers (padding, insets, screenshots).
3. Photometric check: the query is warped onto the original and compared block
   by block (zero-mean normalised cross-correlation, so colour and brightness
   shifts do not count). An edited copy agrees almost everywhere except where
   it was edited; another photograph of the same scene does not agree, because
   parallax, lighting and timing differ even where the geometry fits. The
   blocks that disagree are the altered areas (a removed watermark shows up here).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from copyscope.image.features import _cv2
from copyscope.processes import both

RATIO = 0.8
RANSAC_PX = 6.0              # at the 512-pixel analysis scale
MIN_INLIERS = 8
PROBE = 100                  # registered keypoints looked at first
MAX_HAMMING = 64             # of 256 bits: chance pairs of ORB descriptors sit near 100–128
MIN_PROBE_MATCHES = 6        # 4 let ~20 % more chance candidates on to a full match, for no recall
BLOCK = 8                    # thumbnail pixels per comparison block
MIN_TEXTURED_BLOCKS = 12     # a keypoint-free alignment needs this much texture to judge


@dataclass
class Geometry:
    inliers: int = 0
    matches: int = 0
    homography: np.ndarray | None = None          # query analysis px → registered analysis px
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # qx qy rx ry (inliers)
    mirrored: bool = False


_per_thread = threading.local()


def _faiss():  # noqa: ANN202
    # One query's matrices are small (≤ 1,000 × 500): an OpenMP team costs more
    # than it gives, and its spinning workers would take the core the check's
    # helper thread runs on. The setting is per calling thread in OpenMP.
    faiss = getattr(_per_thread, "faiss", None)
    if faiss is None:
        import faiss  # noqa: PLC0415
        faiss.omp_set_num_threads(1)
        _per_thread.faiss = faiss
    return faiss


def good_matches(q_desc: np.ndarray, r_desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Query/registered index pairs that pass Lowe's ratio test. The two nearest
    descriptors come from faiss's popcount Hamming kernel: the same neighbours
    as OpenCV's ``batchDistance``, 3-5 times faster, and this brute-force
    matching is the largest cost of a query."""
    if q_desc.shape[0] == 0 or r_desc.shape[0] < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    dist, idx = _faiss().knn_hamming(np.ascontiguousarray(q_desc), np.ascontiguousarray(r_desc), 2)
    ok = (dist[:, 0] < RATIO * dist[:, 1]) & (dist[:, 0] <= MAX_HAMMING)
    return np.nonzero(ok)[0], idx[ok, 0].astype(np.int64)


def support_counts(query_desc: np.ndarray, ref_descs: list[np.ndarray], max_hamming: int) -> np.ndarray:
    """For each registered image, how many of its descriptors find their match
    among the query's, in one batched search. The ratio test runs on the
    query's side, where there are many descriptors: a chance neighbour has a
    close runner-up there, a real correspondence does not. This ranks index
    candidates far better than LSH hit counts, whose chance collisions grow
    with the registry, and costs one popcount pass."""
    sizes = [d.shape[0] for d in ref_descs]
    if query_desc.shape[0] < 2 or not sum(sizes):
        return np.zeros(len(ref_descs), np.int64)
    dist = _two_nearest(np.ascontiguousarray(np.vstack([d for d in ref_descs if d.shape[0]])),
                        np.ascontiguousarray(query_desc))
    owner = np.repeat(np.arange(len(ref_descs)), sizes)
    ok = (dist[:, 0] < RATIO * dist[:, 1]) & (dist[:, 0] <= max_hamming)
    return np.bincount(owner[ok], minlength=len(ref_descs))


SPLIT_ROWS = 1024           # a search this large runs half on the check's helper thread


def _two_nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances of each row of ``a`` to its two nearest rows of ``b``."""
    if a.shape[0] < SPLIT_ROWS:
        return _faiss().knn_hamming(a, b, 2)[0]
    half = a.shape[0] // 2
    return np.vstack(both(lambda: _faiss().knn_hamming(a[:half], b, 2)[0],
                          lambda: _faiss().knn_hamming(a[half:], b, 2)[0]))


def plausible(q_desc: np.ndarray, r_desc: np.ndarray, probe: int = PROBE) -> bool:
    """Cheap first look: do the registered image's strongest keypoints have
    ratio-test matches among the query's probe set? Most candidates stop here.
    A query with fewer keypoints than the probe (a smooth picture, a small crop)
    is always matched in full: that costs no more than the probe, and six
    chance-free matches out of a few dozen keypoints is too much to ask."""
    if q_desc.shape[0] < probe:
        return True
    return good_matches(q_desc[:5 * probe], r_desc[:probe])[0].shape[0] >= MIN_PROBE_MATCHES


def match(q_pts: np.ndarray, q_desc: np.ndarray, r_pts: np.ndarray, r_desc: np.ndarray) -> Geometry:
    if q_desc.shape[0] < 4 or r_desc.shape[0] < 4:
        return Geometry()
    cv2 = _cv2()
    qi, ri = good_matches(q_desc, r_desc)
    if qi.shape[0] < MIN_INLIERS // 2:
        return Geometry(matches=int(qi.shape[0]))
    src = q_pts[qi].astype(np.float32)
    dst = r_pts[ri].astype(np.float32)
    H, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, RANSAC_PX, maxIters=2000, confidence=0.995)
    if H is None or mask is None or not _sane(H):
        return Geometry(matches=int(qi.shape[0]))
    keep = mask.ravel().astype(bool)
    # One registered keypoint matched by many query points is one piece of evidence.
    _, first = np.unique(dst[keep].round(1), axis=0, return_index=True)
    pairs = np.hstack([src[keep], dst[keep]])[np.sort(first)]
    return Geometry(inliers=int(pairs.shape[0]), matches=int(qi.shape[0]), homography=H, pairs=pairs)


def _sane(H: np.ndarray) -> bool:
    """Reject degenerate fits: a collapsed, mirrored-by-accident or wildly
    projective homography is RANSAC fitting noise."""
    if not np.all(np.isfinite(H)) or abs(H[2, 2]) < 1e-9:
        return False
    H = H / H[2, 2]
    det = H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]
    if det <= 0.0025 or det > 400:             # area scale between 1/400 and 400
        return False
    return abs(H[2, 0]) < 0.004 and abs(H[2, 1]) < 0.004


def describe(H: np.ndarray, q_size: tuple[int, int], r_size: tuple[int, int],
             q_scale: float, r_scale: float, mirrored: bool) -> dict:
    """The transformation, in original pixels of each side.

    ``q_size``/``r_size`` are analysis sizes (w, h); ``*_scale`` converts analysis
    pixels to original pixels."""
    cv2 = _cv2()
    qw, qh = q_size
    rw, rh = r_size
    corners = np.float32([[0, 0], [qw, 0], [qw, qh], [0, qh]]).reshape(-1, 1, 2)
    quad = cv2.perspectiveTransform(corners, H).reshape(-1, 2)
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    box = [max(0.0, x0), max(0.0, y0), min(float(rw), x1), min(float(rh), y1)]
    Hn = H / H[2, 2]
    a = Hn[:2, :2]
    scale_an = math.sqrt(abs(float(np.linalg.det(a))))           # registered px per query px
    rotation = math.degrees(math.atan2(float(a[1, 0]), float(a[0, 0])))
    inv = np.linalg.inv(Hn)
    r_corners = np.float32([[0, 0], [rw, 0], [rw, rh], [0, rh]]).reshape(-1, 1, 2)
    r_quad = cv2.perspectiveTransform(r_corners, inv).reshape(-1, 2)
    cov_r = _quad_cover(quad, rw, rh)
    cov_q = _quad_cover(r_quad, qw, qh)
    return {
        "crop_box": [round(v * r_scale) for v in box],              # region of the original shown
        # query pixels per pixel of the original (0.5: the copy is half size)
        "scale": round(q_scale / (scale_an * r_scale), 4) if scale_an else 0.0,
        "rotation_degrees": round(((rotation + 180) % 360) - 180, 2),
        "mirrored": mirrored,
        "registered_covered": round(cov_r, 4),
        "query_covered": round(cov_q, 4),
        "query_quad_on_registered": [[round(float(x) * r_scale, 1), round(float(y) * r_scale, 1)] for x, y in quad],
    }


def _quad_cover(quad: np.ndarray, w: int, h: int) -> float:
    """Share of a w×h rectangle covered by a quadrilateral (rasterised at ≤ 64 px)."""
    cv2 = _cv2()
    s = 64.0 / max(w, h)
    mask = np.zeros((max(1, round(h * s)), max(1, round(w * s))), np.uint8)
    cv2.fillConvexPoly(mask, np.round(quad * s).astype(np.int32), 1)
    return float(mask.mean())


@dataclass
class Photometric:
    agreement: float             # share of comparable blocks that agree
    blocks: int                  # comparable blocks
    altered: list[list[int]]     # [x, y, w, h] boxes in registered original pixels that disagree


def photometric(q_thumb: np.ndarray, r_thumb: np.ndarray, H: np.ndarray,
                q_an: tuple[int, int], r_an: tuple[int, int], r_scale: float, mirrored: bool,
                ncc_min: float = 0.5, regions: bool = True, textured_only: bool = False) -> Photometric:
    """Warp the query thumbnail onto the registered one and compare blocks.
    ``textured_only``: blocks flat on both sides are not compared (two skies
    agree with each other; without keypoints to anchor the fit, that proves nothing)."""
    cv2 = _cv2()
    rh_t, rw_t = r_thumb.shape
    sq, sr = _thumb_scales(q_thumb, r_thumb, q_an, r_an)
    Ht = sr @ H @ np.linalg.inv(sq)
    src = q_thumb[:, ::-1] if mirrored else q_thumb
    warped = cv2.warpPerspective(src.astype(np.float32), Ht, (rw_t, rh_t), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    ref = r_thumb.astype(np.float32)
    ny, nx = rh_t // BLOCK, rw_t // BLOCK
    if ny == 0 or nx == 0:
        return Photometric(0.0, 0, [])

    def blocks(img: np.ndarray) -> np.ndarray:        # ny × nx × BLOCK²
        return img[:ny * BLOCK, :nx * BLOCK].reshape(ny, BLOCK, nx, BLOCK).transpose(0, 2, 1, 3).reshape(ny, nx, -1)

    a, b = blocks(warped), blocks(ref)
    comparable = (a >= 0).mean(axis=2) >= 0.9
    a = np.where(a >= 0, a, 0.0)
    # Each block's mean and deviations once, for its spread and the correlation
    # (the same float32 reductions as ``std`` and ``mean``, so the same bits).
    n = a.shape[2]
    ma, mb = a.sum(axis=2, keepdims=True) / n, b.sum(axis=2, keepdims=True) / n
    da, db = a - ma, b - mb
    sa, sb = np.sqrt((da * da).sum(axis=2) / n), np.sqrt((db * db).sum(axis=2) / n)
    ncc = (da * db).sum(axis=2) / n / np.maximum(sa * sb, 1e-6)
    flat_a, flat_b = sa < 3.0, sb < 3.0
    same_tone = np.abs(ma[..., 0] - mb[..., 0]) < 40
    # flat on both sides: the same tone is all we can ask; texture on one side only: altered
    ok = np.where(flat_a & flat_b, same_tone, np.where(flat_a | flat_b, False, ncc >= ncc_min))
    if textured_only:
        comparable &= ~(flat_a & flat_b)
        if comparable.sum() < MIN_TEXTURED_BLOCKS:
            return Photometric(0.0, int(comparable.sum()), [])
    total = int(comparable.sum())
    agree = int((ok & comparable).sum())
    if not regions:
        return Photometric(agree / total if total else 0.0, total, [])
    k = r_scale * r_an[0] / rw_t
    # Rounded in numpy (half to even, as Python's round): an unrelated pair has
    # most of its ~256 blocks altered, and a Python loop over them cost four
    # times the comparison itself.
    ys, xs = np.nonzero(comparable & ~ok)
    side = round(BLOCK * k)
    corners = np.round(np.stack([xs, ys], axis=1) * (BLOCK * k)).astype(np.int64).tolist()
    altered = [[x, y, side, side] for x, y in corners]
    return Photometric(agree / total if total else 0.0, total, altered)


def _thumb_scales(q_img: np.ndarray, r_img: np.ndarray, q_an: tuple[int, int],
                  r_an: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Analysis pixels → pixels of the given images (thumbnails or full), each side."""
    return (np.diag([q_img.shape[1] / q_an[0], q_img.shape[0] / q_an[1], 1.0]),
            np.diag([r_img.shape[1] / r_an[0], r_img.shape[0] / r_an[1], 1.0]))


def view_homography(q_rect: tuple[float, float, float, float], r_rect: tuple[float, float, float, float]) -> np.ndarray:
    """The homography (analysis pixels) that lays one rectangle ``(x, y, w, h)`` of
    the query onto one of the registered image: what two equal global hashes of
    those views say about the geometry."""
    qx, qy, qw, qh = q_rect
    rx, ry, rw, rh = r_rect
    sx, sy = rw / max(qw, 1e-6), rh / max(qh, 1e-6)
    return np.array([[sx, 0.0, rx - sx * qx], [0.0, sy, ry - sy * qy], [0.0, 0.0, 1.0]])


def refine(q_thumb: np.ndarray, r_thumb: np.ndarray, H: np.ndarray, q_an: tuple[int, int],
           r_an: tuple[int, int], mirrored: bool) -> np.ndarray:
    """Refine a hypothesised alignment by maximising the correlation of the
    thumbnails (ECC, affine): for blurred or smooth pictures whose keypoints did
    not survive, but whose global hashes say where the views lie. Returns ``H``
    unchanged when ECC does not converge."""
    cv2 = _cv2()
    sq, sr = _thumb_scales(q_thumb, r_thumb, q_an, r_an)
    Ht = sr @ H @ np.linalg.inv(sq)
    src = np.ascontiguousarray(q_thumb[:, ::-1] if mirrored else q_thumb).astype(np.float32)
    warp = np.linalg.inv(Ht)[:2].astype(np.float32)          # registered thumb → query thumb
    try:
        _, warp = cv2.findTransformECC(r_thumb.astype(np.float32), src, warp, cv2.MOTION_AFFINE,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4), None, 3)
    except cv2.error:
        return H
    Ht_new = np.linalg.inv(np.vstack([warp.astype(np.float64), [0.0, 0.0, 1.0]]))
    H_new = np.linalg.inv(sr) @ Ht_new @ sq
    return H_new if _sane(H_new) else H
