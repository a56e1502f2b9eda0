"""Image bytes → one RGB array, safely.

Hostile and odd files are normal input here: truncated JPEGs, decompression
bombs, 10,000-frame animations, CMYK and 16-bit images, broken EXIF or ICC data,
and non-images with image extensions. Each one either decodes to a usable RGB
array or raises a one-line ``InputError``/``LimitError``; none crashes or hangs.

* The pixel limit is checked from the header, before any pixel is decoded.
* Only the first frame of an animation is decoded (frames are never counted:
  counting walks the whole file).
* JPEG is decoded at reduced scale (``draft``), which is both the fastest path
  and the one that never allocates the full-size image.
* EXIF orientation is applied; a broken EXIF block is ignored, not fatal.
* Colour: CMYK, 16-bit, palette, greyscale and alpha all become 8-bit RGB
  (alpha composited onto white, as a viewer shows it).
"""
from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass

import numpy as np

from copyscope.errors import InputError, LimitError

MAX_PIXELS = 64_000_000          # 8000 × 8000: a 50,000² PNG is refused from its header
ANALYSIS_SIDE = 512              # longest side the features are computed at

# magic numbers → format name; everything else is not an image we read
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
    (b"WEBP", 8, "webp"),
    (b"ftypheic", 4, "heic"),
    (b"ftypheix", 4, "heic"),
    (b"ftypmif1", 4, "heic"),
    (b"ftypmsf1", 4, "heic"),
    (b"ftyphevc", 4, "heic"),
    (b"ftypheim", 4, "heic"),
    (b"ftypheis", 4, "heic"),
    (b"ftyphevx", 4, "heic"),
    (b"ftypavif", 4, "avif"),
    (b"ftypavis", 4, "avif"),
)


def sniff(data: bytes) -> str | None:
    """The image format from the magic number, or None (extensions lie)."""
    for magic, offset, name in _MAGIC:
        if data[offset:offset + len(magic)] == magic:
            if name == "webp" and data[:4] != b"RIFF":
                continue
            return name
    return None


@dataclass(frozen=True)
class Decoded:
    rgb: np.ndarray          # H × W × 3 uint8, longest side ≤ ANALYSIS_SIDE
    width: int               # original size, after EXIF orientation
    height: int
    format: str
    notes: tuple[str, ...] = ()   # what was repaired or ignored (broken EXIF, extra frames)


@functools.cache
def _heif_opener(fmt: str) -> bool:
    """Whether ``fmt`` (heic/avif) can be opened; registers pillow-heif once."""
    if fmt == "avif":
        from PIL import features  # noqa: PLC0415
        if features.check("avif"):
            return True                      # Pillow ≥ 11 decodes AVIF itself
    try:
        import pillow_heif  # noqa: PLC0415
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    if fmt == "avif" and hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
    return True


_ORIENTATION_SWAPS = {5, 6, 7, 8}       # EXIF orientations that exchange width and height


class _QuietStderr:
    """libtiff prints its diagnostics straight to file descriptor 2; the user must
    see one warning line from us instead."""

    def __enter__(self) -> None:
        import os  # noqa: PLC0415
        import sys  # noqa: PLC0415
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            self.saved = None

    def __exit__(self, *exc: object) -> None:
        import os  # noqa: PLC0415
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)


class _PillowLimits:
    """Pillow's own bomb check is process-wide state; we check pixels ourselves
    from the header, and restore Pillow's settings for whoever else uses it."""

    def __enter__(self) -> None:
        from PIL import Image, ImageFile  # noqa: PLC0415
        self.saved = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
        Image.MAX_IMAGE_PIXELS = None
        ImageFile.LOAD_TRUNCATED_IMAGES = False

    def __exit__(self, *exc: object) -> None:
        from PIL import Image, ImageFile  # noqa: PLC0415
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = self.saved


def decode(data: bytes, origin: str, *, side: int = ANALYSIS_SIDE, max_pixels: int = MAX_PIXELS) -> Decoded:
    from PIL import Image, ImageOps, UnidentifiedImageError  # noqa: PLC0415

    fmt = sniff(data)
    if fmt is None:
        raise InputError(f"{origin}: not an image (unknown file signature)")
    if fmt in ("heic", "avif") and not _heif_opener(fmt):
        raise InputError(f"{origin}: {fmt.upper()} images need the pillow-heif package")
    notes: list[str] = []
    try:
        with warnings.catch_warnings(), _PillowLimits():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w <= 0 or h <= 0:
                raise InputError(f"{origin}: image has no pixels ({w}×{h})")
            if w * h > max_pixels:
                raise LimitError(f"{origin}: {w}×{h} pixels is over the {max_pixels:,}-pixel limit "
                                 "(a decompression bomb?)")
            if getattr(img, "is_animated", False):
                notes.append("animated: first frame used")
            if img.format == "JPEG":
                img.draft("RGB", (side, side))       # DCT scaling: decode at ≥ side, never full size
            try:
                if fmt == "tiff":
                    with _QuietStderr():
                        img.load()
                else:
                    img.load()
            except OSError as exc:
                raise InputError(f"{origin}: truncated or corrupt {fmt.upper()} ({_first_line(exc)})") from None
            width, height = w, h
            try:
                orientation = int(img.getexif().get(0x0112) or 1)
                img = ImageOps.exif_transpose(img)
                if orientation in _ORIENTATION_SWAPS:
                    width, height = h, w
            except Exception:  # noqa: BLE001 - EXIF parsers fail in many ways; orientation is optional
                notes.append("EXIF unreadable: orientation not applied")
            img = _to_rgb(img)
            if max(img.size) > side:
                img.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
            rgb = np.asarray(img, dtype=np.uint8)
    except (InputError, LimitError):
        raise
    except UnidentifiedImageError:
        raise InputError(f"{origin}: not a readable image (the {fmt.upper()} header is damaged)") from None
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError,
            MemoryError, ZeroDivisionError, OverflowError) as exc:
        raise InputError(f"{origin}: cannot decode {fmt.upper()} ({_first_line(exc)})") from None
    if min(width, height) < 8:
        raise InputError(f"{origin}: image too small to analyse ({width}×{height} pixels)")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise InputError(f"{origin}: image too thin to analyse ({width}×{height} pixels)")
    return Decoded(np.ascontiguousarray(rgb), width, height, fmt, tuple(notes))


def _to_rgb(img):  # noqa: ANN001, ANN202
    from PIL import Image  # noqa: PLC0415

    mode = img.mode
    key = img.info.get("transparency")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.float64)
        alpha = _key_alpha(arr, key)
        img = Image.fromarray(np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8), "L")   # by bit depth
        if alpha is not None:
            img.putalpha(alpha)
    elif mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        top = float(arr.max())
        scale = 255.0 / top if top > 255 else 1.0      # 32-bit integers: range unknown, fit it
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        if arr.min() >= 0.0 and arr.max() <= 1.0:
            arr = arr * 255.0                           # the usual convention: 0–1
        img = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "L")
    elif key is not None and img.mode in ("L", "RGB"):
        img = img.convert("RGBA")                       # a tRNS colour key is transparency too
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")             # CMYK, YCbCr, L, 1, P, LAB …
    return img


def _key_alpha(arr: np.ndarray, key: object):  # noqa: ANN202
    from PIL import Image  # noqa: PLC0415
    if not isinstance(key, int):
        return None
    return Image.fromarray(np.where(arr == key, 0, 255).astype(np.uint8), "L")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]
