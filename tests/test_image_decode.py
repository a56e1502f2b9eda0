"""Hostile and odd image files: each one decodes to a usable H×W×3 uint8 array or is
refused with a one-line ``InputError``/``LimitError``; none crashes, hangs or allocates
the pixels its header merely promises. Through the CLI a refused file is exactly one
``warning:`` line naming it (exit 2, no traceback), and a directory with a bad file in
it still registers and checks the good ones.

Every fixture image is generated here, small and deterministic. Each bug these
tests found (16-bit and float scaling, colour-key transparency, orientation of
near-square JPEGs, AVIF brands, Pillow's global settings, libtiff writing to
stderr, tiny images that could never match) is fixed in ``copyscope.image``.
"""
from __future__ import annotations

import io
import json
import random
import re
import resource
import struct
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from conftest import assert_clean_failure, stderr_lines
from copyscope.errors import InputError, LimitError
from copyscope.image.decode import ANALYSIS_SIDE, MAX_PIXELS, decode


# --- builders -----------------------------------------------------------------------

def _enc(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _gradient(w: int = 320, h: int = 240) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8))


def _texture(seed: int, w: int = 240, h: int = 180) -> Image.Image:
    """Blocky noise: plenty of ORB keypoints, so a copy of it is found."""
    rng = np.random.default_rng(seed)
    small = (rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)


def _marked(w: int = 80, h: int = 40) -> Image.Image:
    """Landscape: left half red, right half blue, a green 10×10 square top-left."""
    im = Image.new("RGB", (w, h), (255, 0, 0))
    im.paste((0, 0, 255), (w // 2, 0, w, h))
    im.paste((0, 255, 0), (0, 0, 10, 10))
    return im


def _jpeg() -> bytes:
    return _enc(_gradient(), "JPEG", quality=90)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(w: int, h: int) -> bytes:
    """A tiny valid 1-bit PNG whose IHDR is rewritten to claim w×h (CRC fixed)."""
    png = bytearray(_enc(Image.new("1", (8, 8)), "PNG"))
    assert png[12:16] == b"IHDR"
    struct.pack_into(">II", png, 16, w, h)
    struct.pack_into(">I", png, 29, zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def _png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG written by hand (grey for 2-D, RGB for H×W×3)."""
    h, w = arr.shape[:2]
    colour_type = 0 if arr.ndim == 2 else 2
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b""))


def _tiff_rgb16(arr: np.ndarray) -> bytes:
    """A baseline uncompressed 16-bit-per-sample RGB TIFF (Pillow cannot write one)."""
    h, w, _ = arr.shape
    pix = arr.astype("<u2").tobytes()
    n = 10
    bps_off = 8 + 2 + 12 * n + 4
    pix_off = bps_off + 6

    def entry(tag: int, typ: int, count: int, value: int) -> bytes:
        packed = struct.pack("<HH", value, 0) if typ == 3 and count == 1 else struct.pack("<I", value)
        return struct.pack("<HHI", tag, typ, count) + packed

    ifd = [entry(256, 4, 1, w), entry(257, 4, 1, h), entry(258, 3, 3, bps_off), entry(259, 3, 1, 1),
           entry(262, 3, 1, 2), entry(273, 4, 1, pix_off), entry(277, 3, 1, 3), entry(278, 4, 1, h),
           entry(279, 4, 1, len(pix)), entry(284, 3, 1, 1)]
    return (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", n) + b"".join(ifd) + b"\0\0\0\0"
            + struct.pack("<HHH", 16, 16, 16) + pix)


def _with_app1(jpg: bytes, payload: bytes) -> bytes:
    assert jpg[:2] == b"\xff\xd8"
    return jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpg[2:]


def _ifd(*entries: bytes, next_ifd: int = 0) -> bytes:
    """A little-endian TIFF header + one IFD, as found after ``Exif\\0\\0``."""
    return b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", next_ifd)


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", "not a picture at all\n" * 20)
    return buf.getvalue()


def _corrupt_deflate_tiff() -> bytes:
    y, x = np.mgrid[0:64, 0:80]
    im = Image.fromarray(np.stack([x * 3, y * 4, (x + y) % 256], -1).astype(np.uint8))
    data = bytearray(_enc(im, "TIFF", compression="tiff_deflate"))
    data[28:38] = b"\x00" * 10          # inside the deflate stream of the only strip (it starts at 8)
    return bytes(data)


def _refused(data: bytes, origin: str, **kw) -> InputError:
    """decode() raises a one-line InputError that starts with the file's name."""
    with pytest.raises(InputError) as info:
        decode(data, origin, **kw)
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    assert msg.startswith(f"{origin}: "), msg
    assert len(msg) < 300, msg
    return info.value


def _close(pixel, want, tol: int = 12) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, int) - np.asarray(want, int)) <= tol))


def _ok(d, w: int, h: int) -> None:
    assert d.rgb.dtype == np.uint8 and d.rgb.ndim == 3 and d.rgb.shape[2] == 3
    assert d.rgb.flags["C_CONTIGUOUS"]
    assert (d.width, d.height) == (w, h)
    assert max(d.rgb.shape[:2]) <= ANALYSIS_SIDE


@pytest.fixture(scope="module")
def anim_gif() -> bytes:
    """10,000 alternating 16×16 frames (red first), about 0.6 MB. Pillow writes a 3-frame
    GIF; its second and third frame blocks are repeated (writing 10,000 frames with Pillow
    takes seconds)."""
    pal = [255, 0, 0, 0, 0, 255] + [0] * 762
    red, blue = Image.new("P", (16, 16), 0), Image.new("P", (16, 16), 1)
    red.putpalette(pal)
    blue.putpalette(pal)
    three = _enc(red, "GIF", save_all=True, append_images=[blue, red], duration=10, loop=0)
    assert three.count(b"\x21\xf9\x04") == 3 and three.endswith(b"\x3b")
    first, second, third = (m.start() for m in re.finditer(b"\x21\xf9\x04", three))
    blue_block, red_block = three[second:third], three[third:-1]
    data = three[:second] + (blue_block + red_block) * 4999 + blue_block + b"\x3b"
    assert data.count(b"\x21\xf9\x04") == 10_000         # one graphic control block per frame
    return data


# --- truncated and garbled JPEGs ------------------------------------------------------

def test_truncated_jpeg_is_a_one_line_input_error():
    jpg = _jpeg()
    err = _refused(jpg[: len(jpg) // 2], "half.jpg")
    assert not isinstance(err, LimitError)
    assert "truncated" in str(err) and "JPEG" in str(err)


def test_jpeg_cut_anywhere_is_refused_or_decoded_never_a_crash():
    jpg = _jpeg()
    for cut in range(0, len(jpg), max(1, len(jpg) // 60)):
        try:
            d = decode(jpg[:cut], f"cut{cut}.jpg")
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"cut{cut}.jpg: ")
        else:
            _ok(d, 320, 240)


def test_jpeg_with_garbage_right_after_the_header_is_refused():
    rng = random.Random(1)
    garbage = bytes(rng.randrange(256) for _ in range(5000))
    _refused(_jpeg()[:20] + garbage, "garbage.jpg")                # SOI + JFIF, then noise
    _refused(b"\xff\xd8\xff\xe0" + garbage, "garbage2.jpg")        # SOI + a bogus segment


@pytest.mark.parametrize("seed", range(4))
def test_jpeg_with_garbage_scan_data_is_refused_or_decoded(seed):
    """Intact headers (through SOS), random entropy-coded data: libjpeg may decode junk
    pixels; either that or a clean refusal, at the header's size."""
    jpg = _jpeg()
    sos = jpg.find(b"\xff\xda")
    header = jpg[: sos + 2 + struct.unpack(">H", jpg[sos + 2: sos + 4])[0]]
    rng = random.Random(seed)
    for name, body in ((f"scan{seed}.jpg", bytes(rng.randrange(255) for _ in range(6000)) + b"\xff\xd9"),
                       (f"scanff{seed}.jpg", bytes(rng.randrange(256) for _ in range(3000)))):
        try:
            d = decode(header + body, name)
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"{name}: ")
        else:
            _ok(d, 320, 240)


def test_jpeg_with_trailing_garbage_decodes_like_the_original():
    jpg = _jpeg()
    a = decode(jpg, "a.jpg")
    b = decode(jpg + b"trailing junk \x00\xff" * 500, "b.jpg")
    assert np.array_equal(a.rgb, b.rgb)


# --- decompression bombs -------------------------------------------------------------

def test_png_bomb_is_refused_from_its_header_quickly():
    data = _png_claiming(50_000, 50_000)
    assert len(data) < 200
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    err = _refused(data, "bomb.png")
    elapsed = time.perf_counter() - t0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    assert isinstance(err, LimitError)
    assert "50000×50000" in str(err) and "limit" in str(err)
    assert elapsed < 5.0, f"{elapsed:.2f}s (expected well under 1 s)"
    kib = 1 if sys.platform != "darwin" else 1024        # ru_maxrss: KiB on Linux, bytes on macOS
    assert grown < 256 * 1024 * kib, f"peak memory grew by {grown // kib} KiB"


def _jpeg_claiming(w: int, h: int) -> bytes:
    jpg = bytearray(_enc(Image.new("RGB", (16, 16)), "JPEG"))
    sof = jpg.find(b"\xff\xc0")
    struct.pack_into(">HH", jpg, sof + 5, h, w)
    return bytes(jpg)


def _gif_claiming(w: int, h: int, *, screen: bool) -> bytes:
    gif = bytearray(_enc(Image.new("P", (16, 16)), "GIF"))
    if screen:
        struct.pack_into("<HH", gif, 6, w, h)
    desc = gif.find(b"\x2c\x00\x00\x00\x00\x10\x00\x10\x00")
    struct.pack_into("<HH", gif, desc + 5, w, h)
    return bytes(gif)


def _bmp_claiming(w: int, h: int) -> bytes:
    bmp = bytearray(_enc(Image.new("RGB", (16, 16)), "BMP"))
    struct.pack_into("<ii", bmp, 18, w, h)
    return bytes(bmp)


def _tiff_claiming(w: int, h: int) -> bytes:
    tif = bytearray(_enc(Image.new("L", (16, 16)), "TIFF"))
    off = struct.unpack("<I", tif[4:8])[0]
    for k in range(struct.unpack("<H", tif[off: off + 2])[0]):
        e = off + 2 + 12 * k
        tag, typ = struct.unpack("<HH", tif[e: e + 4])
        if tag in (256, 257):
            struct.pack_into("<H" if typ == 3 else "<I", tif, e + 8, w if tag == 256 else h)
    return bytes(tif)


@pytest.mark.parametrize("name, build", [
    ("bomb.jpg", lambda: _jpeg_claiming(65_000, 65_000)),
    ("bomb9k.jpg", lambda: _jpeg_claiming(9_000, 9_000)),
    ("bomb.gif", lambda: _gif_claiming(65_000, 65_000, screen=True)),
    ("framebomb.gif", lambda: _gif_claiming(65_000, 65_000, screen=False)),
    ("bomb.bmp", lambda: _bmp_claiming(50_000, 50_000)),
    ("topdown.bmp", lambda: _bmp_claiming(50_000, -50_000)),
    ("bomb.tif", lambda: _tiff_claiming(50_000, 50_000)),
])
def test_bomb_headers_in_other_formats_are_limit_errors(name, build):
    t0 = time.perf_counter()
    err = _refused(build(), name)
    assert isinstance(err, LimitError), err
    assert f"{MAX_PIXELS:,}-pixel limit" in str(err)
    assert time.perf_counter() - t0 < 5.0


def test_max_pixels_is_the_exact_bound():
    data = _enc(_gradient(100, 80), "PNG")
    _ok(decode(data, "a.png", max_pixels=8000), 100, 80)
    err = _refused(data, "a.png", max_pixels=7999)
    assert isinstance(err, LimitError) and "100×80" in str(err)


# --- animations ----------------------------------------------------------------------

def test_gif_with_10000_frames_decodes_the_first_frame_quickly(anim_gif):
    assert len(anim_gif) < 3 * 1024 * 1024
    t0 = time.perf_counter()
    d = decode(anim_gif, "anim.gif")
    assert time.perf_counter() - t0 < 5.0
    _ok(d, 16, 16)
    assert d.format == "gif"
    assert (d.rgb == np.array([255, 0, 0], np.uint8)).all()        # the first frame is red
    assert any("animat" in n for n in d.notes), d.notes
    with Image.open(io.BytesIO(anim_gif)) as im:                   # the file really has 10,000 frames
        assert im.n_frames == 10_000


def test_gif_whose_second_frame_is_a_bomb_decodes_the_first():
    pal = [255, 0, 0, 0, 0, 255] + [0] * 762
    a, b = Image.new("P", (16, 16), 0), Image.new("P", (16, 16), 1)
    a.putpalette(pal)
    b.putpalette(pal)
    gif = bytearray(_enc(a, "GIF", save_all=True, append_images=[b]))
    second = gif.rfind(b"\x2c\x00\x00\x00\x00\x10\x00\x10\x00")
    struct.pack_into("<HH", gif, second + 5, 65_000, 65_000)
    d = decode(bytes(gif), "late-bomb.gif")
    assert _close(d.rgb[8, 8], (255, 0, 0), 0)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_other_animations_use_the_first_frame(fmt):
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = _enc(frames[0], fmt, save_all=True, append_images=frames[1:], **({"lossless": True} if fmt == "WEBP" else {}))
    d = decode(data, f"anim.{fmt.lower()}")
    _ok(d, 32, 32)
    assert _close(d.rgb[16, 16], (255, 0, 0), 3)
    assert any("animat" in n for n in d.notes), d.notes


# --- colour modes and bit depths -------------------------------------------------------

def _two_halves(mode: str, left, right, size=(64, 48)) -> Image.Image:
    im = Image.new(mode, size, left)
    im.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return im


def _pal_png() -> bytes:
    im = Image.new("P", (64, 48), 0)
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    im.paste(1, (32, 0, 64, 48))
    im.paste(2, (0, 40, 64, 48))
    # index 0 fully transparent, index 2 half transparent (a multi-entry tRNS chunk)
    return _enc(im, "PNG", transparency=bytes([0, 255, 128]))


def _rgba(fmt: str, **kw) -> bytes:
    im = Image.new("RGBA", (64, 48), (0, 0, 255, 0))                    # transparent → white
    im.paste((0, 0, 255, 255), (0, 0, 32, 48))
    im.paste((255, 0, 0, 128), (32, 0, 48, 48))
    return _enc(im, fmt, **kw)


COLOUR_CASES = {
    # name: (bytes builder, [(y, x, expected rgb, tolerance), ...])
    "cmyk.jpg": (lambda: _enc(_two_halves("CMYK", (0, 255, 255, 0), (0, 0, 0, 0)), "JPEG", quality=95),
                 [(10, 10, (255, 0, 0), 12), (10, 50, (255, 255, 255), 12)]),
    "cmyk.tif": (lambda: _enc(_two_halves("CMYK", (0, 255, 255, 0), (0, 0, 0, 255)), "TIFF"),
                 [(10, 10, (255, 0, 0), 2), (10, 50, (0, 0, 0), 2)]),
    "white16.png": (lambda: _enc(Image.fromarray(np.full((48, 64), 65535, np.uint16)), "PNG"),
                    [(10, 10, (255, 255, 255), 2)]),
    "black-white16.png": (lambda: _png16(np.hstack([np.zeros((48, 32), np.uint16),
                                                    np.full((48, 32), 65535, np.uint16)])),
                          [(10, 10, (0, 0, 0), 2), (10, 50, (255, 255, 255), 2)]),
    "white16.tif": (lambda: _enc(Image.fromarray(np.full((48, 64), 65535, np.uint16)), "TIFF"),
                    [(10, 10, (255, 255, 255), 2)]),
    "rgb16.png": (lambda: _png16(np.array(_two_halves("RGB", (255, 0, 0), (0, 128, 255))).astype(np.uint16) * 257),
                  [(10, 10, (255, 0, 0), 2), (10, 50, (0, 128, 255), 2)]),
    "rgb16.tif": (lambda: _tiff_rgb16(np.array(_two_halves("RGB", (255, 0, 0), (0, 128, 255))).astype(np.uint16) * 257),
                  [(10, 10, (255, 0, 0), 2), (10, 50, (0, 128, 255), 2)]),
    "palette-trns.png": (lambda: _pal_png(),
                         [(10, 10, (255, 255, 255), 2), (10, 50, (0, 255, 0), 2), (44, 10, (127, 127, 255), 3)]),
    "la.png": (lambda: _enc(_two_halves("LA", (0, 255), (0, 0)), "PNG"),
               [(10, 10, (0, 0, 0), 2), (10, 50, (255, 255, 255), 2)]),
    "rgba.png": (lambda: _rgba("PNG"),
                 [(10, 10, (0, 0, 255), 2), (10, 40, (255, 127, 127), 3), (10, 60, (255, 255, 255), 2)]),
    "rgba.webp": (lambda: _rgba("WEBP", lossless=True),
                  [(10, 10, (0, 0, 255), 4), (10, 40, (255, 127, 127), 4), (10, 60, (255, 255, 255), 4)]),
    "onebit.png": (lambda: _enc(_two_halves("1", 0, 1), "PNG"),
                   [(10, 10, (0, 0, 0), 0), (10, 50, (255, 255, 255), 0)]),
    "grey.jpg": (lambda: _enc(_two_halves("L", 30, 220), "JPEG", quality=95),
                 [(10, 10, (30, 30, 30), 6), (10, 50, (220, 220, 220), 6)]),
}


@pytest.mark.parametrize("name", list(COLOUR_CASES))
def test_colour_modes_become_8bit_rgb(name):
    build, probes = COLOUR_CASES[name]
    data = build()
    d = decode(data, name)
    _ok(d, 64, 48)
    for y, x, want, tol in probes:
        assert _close(d.rgb[y, x], want, tol), (name, (y, x), d.rgb[y, x].tolist(), want)


def test_pillow_reads_the_handmade_16bit_files_as_16bit():
    """Guard for the builders above: the files really are 16 bits per sample."""
    arr = np.zeros((8, 8, 3), np.uint16)
    assert Image.open(io.BytesIO(_png16(arr[..., 0]))).mode == "I;16"
    assert struct.unpack("<HHH", _tiff_rgb16(arr)[8 + 2 + 12 * 10 + 4:][:6]) == (16, 16, 16)
    with Image.open(io.BytesIO(_png16(arr))) as im:
        assert im.size == (8, 8)


def test_16bit_grey_gradient_keeps_its_order():
    ramp = (np.arange(64)[None, :] * 1040).astype(np.uint16).repeat(48, 0)   # 0 … 65520
    d = decode(_png16(ramp), "ramp16.png")
    row = d.rgb[10, :, 0].astype(int)
    assert row[0] <= 2 and row[-1] >= 250
    assert (np.diff(row) >= 0).all()


def test_16bit_grey_decodes_like_its_8bit_version():
    y, x = np.mgrid[0:48, 0:64]
    dark8 = (x * 100 // 64).astype(np.uint8)                      # a dark picture, 0 … 98
    d8 = decode(_enc(Image.fromarray(dark8), "PNG"), "dark8.png")
    d16 = decode(_png16(dark8.astype(np.uint16) * 257), "dark16.png")
    assert np.abs(d16.rgb.astype(int) - d8.rgb.astype(int)).max() <= 1, (d8.rgb[0, ::8, 0], d16.rgb[0, ::8, 0])
    uniform = decode(_png16(np.full((48, 64), 1000, np.uint16)), "uniform16.png")
    assert uniform.rgb.max() <= 8                                   # 1000/65535 is near-black


def test_float_tiff_keeps_its_grey_levels():
    halves = np.zeros((48, 64), np.float32)
    halves[:, :32], halves[:, 32:] = 0.25, 0.5
    d = decode(_enc(Image.fromarray(halves, "F"), "TIFF"), "float.tif")
    assert _close(d.rgb[10, 10], (64, 64, 64), 4) and _close(d.rgb[10, 50], (128, 128, 128), 4)
    white = decode(_enc(Image.fromarray(np.ones((48, 64), np.float32), "F"), "TIFF"), "white-float.tif")
    assert white.rgb.min() >= 250


@pytest.mark.parametrize("mode, key, left", [("L", 0, 0), ("RGB", (0, 0, 0), (0, 0, 0))])
def test_colour_key_transparency_is_composited_onto_white(mode, key, left):
    right = 128 if mode == "L" else (255, 0, 0)
    data = _enc(_two_halves(mode, left, right), "PNG", transparency=key)
    assert "transparency" in Image.open(io.BytesIO(data)).info
    d = decode(data, "keyed.png")
    assert _close(d.rgb[10, 10], (255, 255, 255), 2), d.rgb[10, 10]


# --- broken metadata ---------------------------------------------------------------------

BROKEN_EXIF = {
    "garbage": b"Exif\x00\x00" + bytes(range(256)) * 2,
    "offset-past-end": b"Exif\x00\x00II*\x00" + struct.pack("<I", 0xFFFFFF00),
    "bad-entries": b"Exif\x00\x00" + _ifd(struct.pack("<HHII", 0x8769, 4, 1, 0x7FFFFFFF),
                                           struct.pack("<HHII", 0x010F, 2, 1000, 0xFFFF)),
    "orientation-99": b"Exif\x00\x00" + _ifd(struct.pack("<HHII", 0x0112, 3, 1, 99)),
    "orientation-as-text": b"Exif\x00\x00" + _ifd(struct.pack("<HHI4s", 0x0112, 2, 4, b"abc\x00")),
    "ifd-loops-to-itself": b"Exif\x00\x00" + _ifd(struct.pack("<HHII", 0x0131, 2, 4, 0), next_ifd=8),
    "header-only": b"Exif\x00\x00II",
    "big-endian-junk": b"Exif\x00\x00MM\x00*\xff\xff\xff\xff",
    "not-exif": b"XMP? no" + bytes(200),
}


@pytest.mark.parametrize("name", list(BROKEN_EXIF))
def test_broken_exif_in_jpeg_is_ignored(name):
    data = _with_app1(_enc(_marked(), "JPEG", quality=95), BROKEN_EXIF[name])
    d = decode(data, f"exif-{name}.jpg")
    _ok(d, 80, 40)                                    # no valid orientation: stays landscape
    assert _close(d.rgb[2, 2], (0, 255, 0), 40) and _close(d.rgb[20, 60], (0, 0, 255), 30)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
@pytest.mark.parametrize("payload", [b"Exif\x00\x00" + bytes(range(256)), b"garbage"], ids=["junk-ifd", "no-header"])
def test_broken_exif_in_png_and_webp_is_ignored(fmt, payload):
    d = decode(_enc(_marked(), fmt, exif=payload, **({"lossless": True} if fmt == "WEBP" else {})), "x")
    _ok(d, 80, 40)
    assert _close(d.rgb[20, 60], (0, 0, 255), 4)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_broken_icc_profile_is_ignored(fmt):
    data = _enc(_marked(), fmt, icc_profile=b"definitely not an ICC profile " * 20)
    assert "icc_profile" in Image.open(io.BytesIO(data)).info        # the junk really is in the file
    d = decode(data, f"icc.{fmt.lower()}")
    _ok(d, 80, 40)
    assert _close(d.rgb[20, 20], (255, 0, 0), 12) and _close(d.rgb[20, 60], (0, 0, 255), 12)


# --- EXIF orientation -------------------------------------------------------------------

ORIENTATIONS = {
    # orientation: (portrait?, corner holding the green mark, colour of the top edge's middle)
    2: (False, "TR", None),
    3: (False, "BR", None),
    6: (True, "TR", (255, 0, 0)),          # rotate 90° clockwise: the left (red) half goes on top
    8: (True, "BL", (0, 0, 255)),          # rotate 90° counter-clockwise: the right (blue) half on top
}


def _corner(rgb: np.ndarray, which: str) -> np.ndarray:
    y = 2 if which[0] == "T" else rgb.shape[0] - 3
    x = 2 if which[1] == "L" else rgb.shape[1] - 3
    return rgb[y, x]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_exif_orientation_is_applied(fmt, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    kw = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    data = _enc(_marked(), fmt, exif=exif.tobytes() if fmt != "TIFF" else exif, **kw)
    d = decode(data, f"o{orientation}.{fmt.lower()}")
    portrait, corner, top = ORIENTATIONS[orientation]
    _ok(d, *((40, 80) if portrait else (80, 40)))
    assert d.rgb.shape[:2] == ((80, 40) if portrait else (40, 80))
    assert _close(_corner(d.rgb, corner), (0, 255, 0), 40), _corner(d.rgb, corner)
    if top is not None:
        assert _close(d.rgb[2, 20], top, 30) and _close(d.rgb[-3, 20], top[::-1], 30)
    assert not d.notes


def test_exif_orientation_on_a_large_jpeg_decoded_at_reduced_scale():
    exif = Image.Exif()
    exif[0x0112] = 6
    big = _marked().resize((2000, 1000), Image.Resampling.NEAREST)
    d = decode(_enc(big, "JPEG", quality=80, exif=exif.tobytes()), "big.jpg")
    assert (d.width, d.height) == (1000, 2000)
    assert d.rgb.shape == (ANALYSIS_SIDE, ANALYSIS_SIDE // 2, 3)
    assert _close(_corner(d.rgb, "TR"), (0, 255, 0), 40)


def test_orientation_swaps_the_reported_size_of_a_nearly_square_jpeg():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _enc(Image.new("RGB", (4000, 3997), (200, 100, 50)), "JPEG", quality=30, exif=exif.tobytes())
    d = decode(data, "square-ish.jpg")
    assert (d.width, d.height) == (3997, 4000)


# --- not images at all -------------------------------------------------------------------

NOT_IMAGES = {
    "photo.jpg": b"This is just text, not a photo.\n" * 10,
    "a.png": bytes(random.Random("a.png").randrange(256) for _ in range(4096)),
    "magic-then-noise.png": b"\x89PNG\r\n\x1a\n" + bytes(random.Random("n").randrange(256) for _ in range(4096)),
    "empty.webp": b"",
    "header-only.webp": b"RIFF\x00\x00\x00\x00WEBP",
    "bad-chunk.webp": b"RIFF\x10\x00\x00\x00WEBPVP8 \x00\x00\x00\x00garbage!",
    "archive.gif": _zip_bytes(),
    "header-only.gif": b"GIF89a",
    "screen-only.gif": b"GIF89a\x10\x00\x10\x00\x80\x00\x00",
    "empty.png": b"",
    "html.jpeg": b"<!doctype html><html><body>404 Not Found</body></html>",
}


@pytest.mark.parametrize("name", list(NOT_IMAGES))
def test_non_images_with_image_extensions_are_one_line_input_errors(name):
    err = _refused(NOT_IMAGES[name], name)
    assert not isinstance(err, LimitError)


@pytest.mark.parametrize("size", [1, 4, 7])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_tiny_images_are_refused(size, fmt):
    err = _refused(_enc(Image.new("RGB", (size, size), (10, 20, 30)), fmt), f"tiny.{fmt.lower()}")
    assert "too small" in str(err) and f"{size}×{size}" in str(err)


def test_eight_pixels_is_enough():
    d = decode(_enc(Image.new("RGB", (8, 8), (10, 20, 30)), "PNG"), "eight.png")
    _ok(d, 8, 8)
    assert (d.rgb == np.array([10, 20, 30], np.uint8)).all()


def test_long_thin_strip_is_decoded_or_refused_with_its_real_size():
    data = _enc(Image.new("RGB", (4000, 8), (1, 2, 3)), "PNG")
    try:
        d = decode(data, "strip.png")
    except InputError as exc:
        assert "4000×8" in str(exc), str(exc)
    else:
        assert (d.width, d.height) == (4000, 8) and min(d.rgb.shape[:2]) >= 1


# --- HEIC / AVIF -----------------------------------------------------------------------

def test_heic_decodes():
    pillow_heif = pytest.importorskip("pillow_heif")
    buf = io.BytesIO()
    try:
        pillow_heif.from_pillow(_two_halves("RGB", (200, 30, 40), (20, 40, 220))).save(buf, quality=90)
    except Exception as exc:  # noqa: BLE001 - no HEVC encoder in this build
        pytest.skip(f"pillow_heif cannot write HEIC here: {exc}")
    data = buf.getvalue()
    d = decode(data, "x.heic")
    _ok(d, 64, 48)
    assert d.format == "heic"
    assert _close(d.rgb[10, 10], (200, 30, 40), 16) and _close(d.rgb[10, 50], (20, 40, 220), 16)
    _refused(data[: len(data) // 2], "half.heic")


def _avif(frames: int = 1) -> bytes:
    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    ims = [Image.new("RGB", (64, 48), c) for c in ((200, 30, 40), (20, 40, 220))[:frames]]
    try:
        return _enc(ims[0], "AVIF", save_all=frames > 1, append_images=ims[1:])
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Pillow cannot write AVIF here: {exc}")


def test_avif_decodes():
    d = decode(_avif(), "x.avif")
    _ok(d, 64, 48)
    assert d.format == "avif" and _close(d.rgb[10, 10], (200, 30, 40), 16)


def test_animated_avif_decodes_its_first_frame():
    data = _avif(frames=2)
    assert data[4:12] == b"ftypavis"
    d = decode(data, "anim.avif")
    assert _close(d.rgb[10, 10], (200, 30, 40), 16)


def test_avif_without_pillow_heif_uses_pillows_own_decoder(monkeypatch):
    data = _avif()
    monkeypatch.setitem(sys.modules, "pillow_heif", None)          # import pillow_heif → ImportError
    d = decode(data, "x.avif")
    assert _close(d.rgb[10, 10], (200, 30, 40), 16)


# --- process-wide side effects, fuzzing -------------------------------------------------------

def test_decode_leaves_pillows_global_settings_alone(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 12_345_678)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    decode(_enc(_gradient(64, 48), "PNG"), "a.png")
    with pytest.raises(InputError):
        decode(_png_claiming(50_000, 50_000), "bomb.png")
    assert Image.MAX_IMAGE_PIXELS == 12_345_678
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_mutated_files_are_refused_or_decoded_never_a_crash():
    """A small deterministic fuzz: truncations, byte flips and spliced noise in every format."""
    y, x = np.mgrid[0:48, 0:64]
    im = Image.fromarray(np.stack([x * 4, y * 5, (x * y) % 256], -1).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    seeds = {"jpg": _enc(im, "JPEG", exif=exif.tobytes()), "pjpg": _enc(im, "JPEG", progressive=True),
             "png": _enc(im, "PNG"), "gif": _enc(im.convert("P"), "GIF"), "bmp": _enc(im, "BMP"),
             "tif": _enc(im, "TIFF"), "webp": _enc(im, "WEBP"), "cmyk": _enc(im.convert("CMYK"), "JPEG"),
             "apng": _enc(im, "PNG", save_all=True, append_images=[im.transpose(Image.Transpose.ROTATE_180)])}
    rng = random.Random(20240607)
    for name, data in seeds.items():
        for trial in range(60):
            d = bytearray(data)
            if trial % 3 == 0:
                d = d[: rng.randrange(len(d))]
            elif trial % 3 == 1:
                for _ in range(rng.randrange(1, 6)):
                    d[rng.randrange(len(d))] = rng.randrange(256)
            else:
                p = rng.randrange(len(d))
                d[p: p + rng.randrange(1, 40)] = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
            origin = f"{name}-{trial}"
            try:
                out = decode(bytes(d), origin)
            except InputError as exc:
                assert "\n" not in str(exc) and str(exc).startswith(f"{origin}: "), str(exc)
            else:
                assert out.rgb.dtype == np.uint8 and out.rgb.ndim == 3 and out.rgb.shape[2] == 3


# --- through the CLI -------------------------------------------------------------------------

@pytest.fixture
def ws(cli, home, tmp_path, monkeypatch) -> Path:
    """An initialised, empty workspace; cwd is a scratch directory."""
    rc, _, err = cli("init")
    assert rc == 0, err
    work = tmp_path / "in"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


def _works(cli) -> list[str]:
    rc, out, err = cli("works")
    assert rc == 0, err
    return out.splitlines()


CLI_REFUSALS = {
    "half.jpg": lambda: _jpeg()[: len(_jpeg()) // 2],
    "garbage.jpg": lambda: _jpeg()[:20] + bytes(random.Random(1).randrange(256) for _ in range(5000)),
    "bomb.png": lambda: _png_claiming(50_000, 50_000),
    "photo.jpg": lambda: NOT_IMAGES["photo.jpg"],
    "a.png": lambda: NOT_IMAGES["a.png"],
    "empty.webp": lambda: b"",
    "archive.gif": _zip_bytes,
    "tiny1.png": lambda: _enc(Image.new("RGB", (1, 1)), "PNG"),
    "tiny4.jpg": lambda: _enc(Image.new("RGB", (4, 4)), "JPEG"),
    "zero.png": lambda: b"",
}


@pytest.mark.parametrize("name", list(CLI_REFUSALS))
def test_cli_refuses_hostile_image_with_one_warning(cli, ws, name):
    Path(name).write_bytes(CLI_REFUSALS[name]())
    rc, out, err = cli("check", name)
    assert rc == 2, (out, err)
    (line,) = assert_clean_failure(err, want="warning")
    assert name in line
    if name == "bomb.png":
        assert "50000×50000" in line
    rc, out, err = cli("--quiet", "register", name, "--owner", "o")
    assert rc == 2, (out, err)
    (line,) = assert_clean_failure(err, want="warning")
    assert name in line
    assert out == ""
    assert _works(cli) == []                     # nothing was registered


def test_cli_batch_skips_the_bad_files_and_registers_the_good(cli, ws):
    d = Path("batch")
    (d / "sub").mkdir(parents=True)
    good = {"a.png": _enc(_texture(1), "PNG"), "b.jpg": _enc(_texture(2), "JPEG", quality=92),
            "sub/c.webp": _enc(_texture(3), "WEBP", quality=90)}
    bad = {"half.jpg": CLI_REFUSALS["half.jpg"](), "bomb.png": _png_claiming(50_000, 50_000),
           "sub/photo.jpg": NOT_IMAGES["photo.jpg"]}
    for rel, data in {**good, **bad}.items():
        (d / rel).write_bytes(data)

    rc, out, err = cli("--json", "register", d, "--owner", "o")
    assert rc == 2, err
    (work,) = json.loads(out)["works"]
    assert work["files"] == len(good)
    lines = assert_clean_failure(err, want="warning")
    assert len(lines) == len(bad), lines
    for rel in bad:
        assert sum(str(d / rel) in ln for ln in lines) == 1, (rel, lines)
    assert not any(str(d / rel) in ln for rel in good for ln in lines)

    rc, out, err = cli("check", d, "-f", "tsv")                    # check goes on past the bad ones too
    assert rc == 2, err
    assert {ln.split("\t")[0] for ln in out.splitlines()} == {str(d / rel) for rel in good}
    for ln in out.splitlines():
        assert float(ln.split("\t")[2]) >= 0.5, ln
    lines = assert_clean_failure(err, want="warning")
    assert len(lines) == len(bad), lines

    rc, out, err = cli("--quiet", "register", d, "--each", "--owner", "o")
    assert rc == 2, err
    assert sorted(ln.split("\t")[2] for ln in out.splitlines()) == sorted(str(d / rel) for rel in good)
    assert len(assert_clean_failure(err, want="warning")) == len(bad)


def test_cli_registers_and_matches_odd_but_valid_images(cli, ws, anim_gif):
    d = Path("odd")
    d.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    grey16 = (np.asarray(_texture(5).convert("L")).astype(np.uint16) * 257)
    files = {
        "cmyk.jpg": _enc(_texture(4).convert("CMYK"), "JPEG", quality=92),
        "grey16.png": _png16(grey16),
        "palette.png": _enc(_texture(6).convert("P"), "PNG", transparency=3),
        "rotated.jpg": _enc(_texture(7), "JPEG", quality=92, exif=exif.tobytes()),
        "rgb16.tif": _tiff_rgb16(np.asarray(_texture(8)).astype(np.uint16) * 257),
        "broken-exif.jpg": _with_app1(_enc(_texture(9), "JPEG", quality=92), BROKEN_EXIF["garbage"]),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    rc, out, err = cli("--quiet", "register", d, "--each", "--owner", "o")
    assert rc == 0, err
    assert "Traceback" not in err and not stderr_lines(err), err
    assert len(out.splitlines()) == len(files)
    rc, out, err = cli("check", d, "-f", "tsv")
    assert rc == 1, err
    hits = {ln.split("\t")[0]: ln.split("\t")[1] for ln in out.splitlines()}
    for name in files:
        assert hits.get(str(d / name)) == str(d / name), (name, out)

    Path("anim.gif").write_bytes(anim_gif)                           # 10,000 frames: no hang
    t0 = time.perf_counter()
    rc, out, err = cli("--quiet", "register", "anim.gif", "--owner", "o")
    # 16×16 frames are below the matcher's 32-pixel minimum: refused at once, one clear line
    assert rc == 2 and "too small to match reliably (16×16 pixels" in err, err
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("side", [16, 32])
def test_small_accepted_image_is_found_again_or_refused(cli, ws, side):
    Path("small.png").write_bytes(_enc(_texture(11, side * 4, side * 4).resize((side, side)), "PNG"))
    rc, out, err = cli("--quiet", "register", "small.png", "--owner", "o")
    if rc == 2:                                                     # refused: must say so clearly
        (line,) = assert_clean_failure(err, want="warning")
        assert "small.png" in line
        return
    assert rc == 0, err
    rc, out, err = cli("check", "small.png", "-f", "tsv")
    assert rc == 1, (out, err)


def test_cli_corrupt_compressed_tiff_is_one_warning_line(cli, ws):
    data = _corrupt_deflate_tiff()
    _refused(data, "z.tif")
    Path("z.tif").write_bytes(data)
    rc, out, err = cli("check", "z.tif", subprocess=True, timeout=60)      # libtiff writes to the real fd 2
    assert rc == 2, err
    (line,) = assert_clean_failure(err, want="warning")
    assert "z.tif" in line
