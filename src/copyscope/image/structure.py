"""Layout structure: what a re-drawn image keeps when none of its pixels survive.

A cartoon filter, a pencil sketch, an oil or watercolour stylisation, or an
img2img pass regenerates every pixel (no ORB keypoint matches, the DCT hash
drifts) but keeps the layout: where the edges run and which way. This module
reduces a grey thumbnail to that **orientation field**:

* the gradient at every pixel of a 128 × 128 rendering, as a doubled angle
  (``cos 2θ, sin 2θ``), so an edge counts the same whichever side is darker (a
  pencil sketch draws dark lines where the photograph had a light-to-dark step);
* weighted by a soft edge strength, so flat areas and noise weigh little;
* averaged over a 32 × 32 grid.

Two pictures are compared by the cosine of their fields, the best over shifts of
up to one cell (a re-drawing warps a little). The field of a mirrored picture is
the field mirrored with its ``sin 2θ`` negated, so flips cost nothing.

For candidates, the field averaged to 8 × 8 is reduced to a 63-bit sign hash
(random ±1 projections, so its Hamming distance follows the cosine); bit 63 is
always set, so a stored zero means "no structure code" (images registered before
this existed).

Layout alone cannot tell apart two pictures of the same simple layout (flags
with three bands, icons on white, portraits from one template), so the pair's
**palette** (the colour of an 8 × 8 grid) is compared too: a re-drawing keeps
its colours, two flags do not. The score is calibrated on its own
(``calibration-v1.json``, ``structure``) and stays below what pixel evidence
reaches. A re-drawing that also changes every colour, or a pencil sketch of a
smooth picture (nearly blank), is out of its reach.
"""
from __future__ import annotations

import functools

import numpy as np

FIELD_SIDE = 128            # rendering the gradients are taken on
GRID = 32                   # cells per side of the compared field
COARSE = 8                  # cells per side of the field the code hashes
CODE_BITS = 63
PRESENT = np.uint64(1 << 63)   # set in every code: a stored 0 means "none"
SHIFT = 1                   # cells a field may move against the other


def _cv2():  # noqa: ANN202
    import cv2  # noqa: PLC0415
    cv2.setNumThreads(1)
    return cv2


def field(thumb: np.ndarray) -> np.ndarray:
    """The orientation field (2 × GRID × GRID, float32) of a grey thumbnail."""
    cv2 = _cv2()
    a = cv2.resize(thumb, (FIELD_SIDE, FIELD_SIDE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    a = cv2.GaussianBlur(a, (0, 0), 1.0)
    gx = cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=3)
    m2 = gx * gx + gy * gy
    m = np.sqrt(m2)
    # unit doubled-angle vector × soft edge strength (half weight at the median gradient)
    w = m / ((m + float(np.median(m)) + 1e-6) * (m2 + 1e-6))
    c = (gx * gx - gy * gy) * w
    s = 2.0 * gx * gy * w
    return np.stack([cv2.resize(c, (GRID, GRID), interpolation=cv2.INTER_AREA),
                     cv2.resize(s, (GRID, GRID), interpolation=cv2.INTER_AREA)])


def mirrored(f: np.ndarray) -> np.ndarray:
    """The field of the horizontally mirrored picture."""
    return np.stack([f[0, :, ::-1], -f[1, :, ::-1]])


@functools.cache
def _projection() -> np.ndarray:
    """2·COARSE² × CODE_BITS of ±1, from a fixed integer mix (not a library RNG,
    whose streams may change between versions: stored codes must stay valid)."""
    i = np.arange(2 * COARSE * COARSE * CODE_BITS, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (i + np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    signs = np.where((z >> np.uint64(40)) & np.uint64(1), 1.0, -1.0).astype(np.float32)
    return signs.reshape(2 * COARSE * COARSE, CODE_BITS)


def code(f: np.ndarray) -> np.uint64:
    """The 63-bit sign hash of the field averaged to COARSE × COARSE, bit 63 set."""
    k = GRID // COARSE
    v = f.reshape(2, COARSE, k, COARSE, k).mean(axis=(2, 4)).ravel()
    v = v - v.mean()
    bits = (v @ _projection()) > 0
    return np.uint64(int(np.dot(bits.astype(np.uint64), np.uint64(1) << np.arange(CODE_BITS, dtype=np.uint64)))) | PRESENT


def similarity(q: np.ndarray, r: np.ndarray) -> float:
    """Cosine of two fields, the best over shifts of up to SHIFT cells."""
    best = -1.0
    g = q.shape[1]
    for dy in range(-SHIFT, SHIFT + 1):
        for dx in range(-SHIFT, SHIFT + 1):
            a = q[:, max(dy, 0):g + min(dy, 0), max(dx, 0):g + min(dx, 0)]
            b = r[:, max(-dy, 0):g + min(-dy, 0), max(-dx, 0):g + min(-dx, 0)]
            den = float(np.sqrt(float(np.vdot(a, a)) * float(np.vdot(b, b))))
            if den > 0:
                best = max(best, float(np.vdot(a, b)) / den)
    return best


PALETTE = 8                 # cells per side of the colour layout


def palette(rgb: np.ndarray) -> np.ndarray:
    """The colour layout: the CIELAB a, b of PALETTE × PALETTE cells (uint8, 128 =
    grey). A re-drawing keeps its palette; two flags or icons of one layout do not."""
    cv2 = _cv2()
    small = cv2.resize(rgb, (PALETTE, PALETTE), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(cv2.cvtColor(small, cv2.COLOR_RGB2LAB)[..., 1:])


def colour_agreement(q: np.ndarray | None, r: np.ndarray | None, mirrored: bool) -> float:
    """1 for the same palette, 0 from a mean a/b difference of 32 (a different
    hue everywhere); 0.5, undecided, when either side has none (features stored
    before palettes existed)."""
    if q is None or r is None:
        return 0.5
    if mirrored:
        q = q[:, ::-1]
    diff = float(np.abs(q.astype(np.int16) - r.astype(np.int16)).mean())
    return max(0.0, 1.0 - diff / 32.0)


def distance(a: np.uint64 | int, b: np.uint64 | int) -> int:
    """Hamming distance of two structure codes (64 when either is missing)."""
    a, b = np.uint64(a), np.uint64(b)
    if not (a & PRESENT) or not (b & PRESENT):
        return 64
    return int(np.bitwise_count(a ^ b))
