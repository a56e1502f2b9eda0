"""What an image is reduced to: global hashes for candidates, local features for
the decision and the evidence, and a small thumbnail for the photometric check.

* **Global hashes** (64-bit, DCT of a 32×32 grey thumbnail) of the full image
  and of a centre crop. They are **mirror-invariant**: a horizontal mirror flips
  the sign of every DCT coefficient with an odd horizontal frequency, so only
  even horizontal frequencies are used, and the signs are taken against the
  median. A flipped repost hashes like its original.
* **Local features**: ORB keypoints and 256-bit descriptors on the image scaled
  to 512 pixels, strongest first. They survive crops, padding, insets, overlays
  and rotation, and give the matched keypoints a court exhibit shows.
* **Index keys**: four 16-bit bands of each global hash (a Hamming distance of
  3 or less always shares a band), and locality-sensitive keys of the strongest
  descriptors (20 sampled bits, two tables: at 100,000 images a key names ~15 images, so
  a lookup gathers few postings, and the index stays under 4 KB an image), so a candidate search is a lookup in
  the workspace's inverted index, linear in the query's keys, not in images.
"""
from __future__ import annotations

import functools

import numpy as np

N_FEATURES = 500             # ORB keypoints per image
N_STORED = 300               # kept for verification (strongest first)
N_QUERY = 1000               # keypoints of a query (never stored)
N_LOOKUP = 500               # of which the strongest are looked up in the index
N_LOOKUP_MIRRORED = 300      # and of the mirrored query's
N_QUERY_MIRRORED = 500       # keypoints of the mirrored query
N_INDEXED = 150              # descriptors that get index keys at registration
THUMB_SIDE = 128             # grey thumbnail for the photometric check
LSH_BITS = 20
LSH_TABLES = 2

_SALT_HASH = np.uint64(0x4948_0000_0000_0000)
_SALT_LSH = np.uint64(0x4C53_0000_0000_0000)


def _cv2():  # noqa: ANN202
    import cv2  # noqa: PLC0415
    cv2.setNumThreads(1)
    return cv2


@functools.cache
def _dct_matrix(n: int = 32) -> np.ndarray:
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


# 64 coefficients: vertical frequencies 1..8, even horizontal frequencies 0..14 (skip DC)
_ROWS, _COLS = np.meshgrid(np.arange(0, 8), np.arange(0, 16, 2), indexing="ij")
_SEL = (_ROWS.ravel() + 1, _COLS.ravel())


def dct_hash(gray32: np.ndarray) -> int:
    """Mirror-invariant 64-bit perceptual hash of a 32×32 grey image."""
    d = _dct_matrix()
    coeffs = d @ gray32.astype(np.float64) @ d.T
    sel = coeffs[_SEL]
    bits = (sel > np.median(sel)).astype(np.uint8)
    return int(np.packbits(bits).view(">u8")[0])


def global_hashes(gray: np.ndarray) -> np.ndarray:
    """Hashes of the full image and its centre 70 %: crops keep one of them close."""
    cv2 = _cv2()
    h, w = gray.shape
    views = [gray]
    dy, dx = int(h * 0.15), int(w * 0.15)
    if min(h - 2 * dy, w - 2 * dx) >= 16:
        views.append(gray[dy:h - dy, dx:w - dx])
    out = [dct_hash(cv2.resize(v, (32, 32), interpolation=cv2.INTER_AREA)) for v in views]
    return np.array(out, dtype=np.uint64)


def orb(gray: np.ndarray, n: int = N_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N×2 float32, x/y) and descriptors (N×32 uint8), strongest first."""
    cv2 = _cv2()
    det = cv2.ORB_create(nfeatures=n, scaleFactor=1.2, nlevels=8, edgeThreshold=15, patchSize=31,
                         fastThreshold=10)
    kps, desc = det.detectAndCompute(gray, None)
    if desc is None or not kps:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    order = np.argsort([-k.response for k in kps], kind="stable")
    pts = np.array([kps[i].pt for i in order], dtype=np.float32)
    return pts, desc[order]


def spread(pts: np.ndarray, n: int, size: tuple[int, int], grid: int = 6) -> np.ndarray:
    """Indices of ``n`` keypoints (given strongest first) spread over a grid×grid
    layout: round-robin over the cells, strongest first in each, so a crop or an
    inset of any part of the picture has keypoints to be found by."""
    if pts.shape[0] <= n:
        return np.arange(pts.shape[0])
    w, h = size
    cell = (np.minimum(grid - 1, (pts[:, 1] * grid / max(h, 1)).astype(int)) * grid
            + np.minimum(grid - 1, (pts[:, 0] * grid / max(w, 1)).astype(int)))
    # rank of each keypoint within its cell (input is strongest first)
    order = np.argsort(cell, kind="stable")
    first = np.searchsorted(cell[order], np.arange(grid * grid))
    rank = np.empty(pts.shape[0], np.int64)
    rank[order] = np.arange(pts.shape[0]) - first[cell[order]]
    pick = np.lexsort((np.arange(pts.shape[0]), rank))[:n]
    return np.sort(pick)


@functools.cache
def _lsh_bits() -> np.ndarray:
    rng = np.random.default_rng(20261121)                  # fixed: keys must never change
    return np.stack([rng.choice(256, LSH_BITS, replace=False) for _ in range(LSH_TABLES)])


def lsh_keys(desc: np.ndarray) -> np.ndarray:
    if desc.shape[0] == 0:
        return np.zeros(0, np.uint64)
    bits = np.unpackbits(desc, axis=1)                     # N × 256
    weights = (1 << np.arange(LSH_BITS, dtype=np.uint64))
    out = []
    for t, sel in enumerate(_lsh_bits()):
        code = (bits[:, sel].astype(np.uint64) * weights).sum(axis=1)
        out.append(code | (np.uint64(t + 1) << np.uint64(40)) | _SALT_LSH)
    return np.concatenate(out)


def hash_keys(hashes: np.ndarray) -> np.ndarray:
    out = []
    for band in range(4):
        part = (hashes >> np.uint64(16 * band)) & np.uint64(0xFFFF)
        out.append(part | (np.uint64(band + 1) << np.uint64(40)) | _SALT_HASH)
    return np.concatenate(out) if out else np.zeros(0, np.uint64)


def thumbnail(gray: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    cv2 = _cv2()
    h, w = gray.shape
    s = side / max(h, w)
    if s >= 1:
        return gray.copy()
    return cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


INSET_MAX = 6                # rectangles looked up per query
_EDGE_STEP = 16              # grey levels across 3 pixels that make an edge (blur-tolerant)
_SIDE_SUPPORT = 0.5          # share of a side's length that must be edge
_RUN_DIV = 10                # straight runs shorter than 1/10 of the picture are texture


def insets(gray: np.ndarray, n: int = INSET_MAX) -> list[tuple[int, int, int, int]]:
    """Axis-aligned rectangles ``(x, y, w, h)`` whose sides are long straight edges:
    a picture pasted into a larger one, the content area of a screenshot, a frame.

    Their global hashes are looked up on their own, because the whole query's
    hash describes mostly the surroundings and the descriptor index ranks small
    insets poorly. A side may be the picture's own border (an inset in a corner),
    but at least two sides must be edges inside the picture."""
    cv2 = _cv2()
    h, w = gray.shape
    if min(h, w) < 48:
        return []
    g = cv2.GaussianBlur(gray, (3, 3), 0).astype(np.int16)
    edge_h = np.zeros((h - 1, w), np.uint8)              # between rows y and y + 1
    edge_v = np.zeros((h, w - 1), np.uint8)
    edge_h[1:-1] = np.abs(g[3:] - g[:-3]) >= _EDGE_STEP
    edge_v[:, 1:-1] = np.abs(g[:, 3:] - g[:, :-3]) >= _EDGE_STEP
    run_h, run_v = max(12, w // _RUN_DIV), max(12, h // _RUN_DIV)
    # keep only straight runs (closing bridges small gaps where both sides share a tone)
    edge_h = cv2.morphologyEx(cv2.morphologyEx(edge_h, cv2.MORPH_CLOSE, np.ones((1, 5), np.uint8)),
                              cv2.MORPH_OPEN, np.ones((1, run_h), np.uint8))
    edge_v = cv2.morphologyEx(cv2.morphologyEx(edge_v, cv2.MORPH_CLOSE, np.ones((5, 1), np.uint8)),
                              cv2.MORPH_OPEN, np.ones((run_v, 1), np.uint8))
    rows = _strongest_lines(edge_h.sum(axis=1), 2 * run_h)
    cols = _strongest_lines(edge_v.sum(axis=0), 2 * run_v)
    if not rows and not cols:
        return []
    sum_h = np.pad(np.cumsum(edge_h, axis=1, dtype=np.int32), ((0, 0), (1, 0)))
    sum_v = np.pad(np.cumsum(edge_v, axis=0, dtype=np.int32), ((1, 0), (0, 0)))
    # Every rectangle of candidate lines at once; -1 and the last pixel are the borders.
    ys, xs = np.array([-1, *rows, h - 1]), np.array([-1, *cols, w - 1])
    inner_y, inner_x = np.ones(ys.shape, bool), np.ones(xs.shape, bool)
    inner_y[[0, -1]] = inner_x[[0, -1]] = False
    y0s, x0s = np.maximum(ys, 0), np.maximum(xs, 0)
    rows_at = sum_h[np.clip(ys, 0, h - 2)]                               # ny × (w + 1)
    # side[i, p, q]: share of line i between positions p < q that is edge
    horiz = (rows_at[:, xs + 1][:, None, :] - rows_at[:, x0s + 1][:, :, None]) / np.maximum(1, xs[None, :] - x0s[:, None])[None]
    cols_at = sum_v[:, np.clip(xs, 0, w - 2)]                            # (h + 1) × nx
    vert = (cols_at[ys + 1][None, :, :] - cols_at[y0s + 1][:, None, :]) / np.maximum(1, ys[None, :] - y0s[:, None])[:, :, None]
    vert = vert.transpose(2, 0, 1)                                       # [j, s, t]
    top = horiz[:, None, :, :]                                           # axes: s, t, p, q
    bottom = horiz[None, :, :, :]
    left = vert.transpose(1, 2, 0)[:, :, :, None]
    right = vert.transpose(1, 2, 0)[:, :, None, :]
    inner = [inner_y[:, None, None, None], inner_y[None, :, None, None],
             inner_x[None, None, :, None], inner_x[None, None, None, :]]
    sides = [np.broadcast_to(v, (ys.size, ys.size, xs.size, xs.size)) for v in (top, bottom, left, right)]
    n_inner = sum(np.broadcast_to(m, sides[0].shape).astype(np.int8) for m in inner)
    weakest = np.minimum.reduce([np.where(m, v, 1.0) for v, m in zip(sides, inner)])
    strength = sum(np.where(m, v, 0.0) for v, m in zip(sides, inner))
    hh = (ys[None, :] - ys[:, None])[:, :, None, None]
    ww = (xs[None, :] - xs[:, None])[None, None, :, :]
    ok = ((hh >= 0.15 * h) & (ww >= 0.15 * w) & (hh * ww >= 0.06 * w * h) & (hh * ww <= 0.9 * w * h)
          & (n_inner >= 2) & (weakest >= _SIDE_SUPPORT))
    s_i, t_i, p_i, q_i = np.nonzero(ok)
    order = np.argsort(-strength[s_i, t_i, p_i, q_i], kind="stable")
    out: list[tuple[int, int, int, int]] = []
    near = 0.04 * max(w, h)
    for k in order.tolist():
        r = (int(xs[p_i[k]]) + 1, int(ys[s_i[k]]) + 1, int(xs[q_i[k]] - xs[p_i[k]]), int(ys[t_i[k]] - ys[s_i[k]]))
        if all(max(abs(r[i] - o[i]) for i in range(4)) > near for o in out):
            out.append(r)
            if len(out) == n:
                break
    return out


def _strongest_lines(profile: np.ndarray, min_len: int, limit: int = 16) -> list[int]:
    """Positions with a long edge run, strongest first, one per 4 pixels."""
    pos = np.flatnonzero(profile >= min_len)
    out: list[int] = []
    for p in pos[np.argsort(-profile[pos], kind="stable")].tolist():
        if all(abs(p - q) > 3 for q in out):
            out.append(p)
            if len(out) == limit:
                break
    return sorted(out)


def region_hashes(gray: np.ndarray, rects: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Global hash of each rectangle ``(x, y, w, h)`` of ``gray`` (see :func:`insets`)."""
    cv2 = _cv2()
    out = [dct_hash(cv2.resize(gray[y:y + h, x:x + w], (32, 32), interpolation=cv2.INTER_AREA))
           for x, y, w, h in rects]
    return np.array(out, dtype=np.uint64)
