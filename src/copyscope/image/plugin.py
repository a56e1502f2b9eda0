"""The image modality: JPEG, PNG, WebP, GIF (first frame), TIFF, BMP, and HEIC/AVIF
when pillow-heif is installed.

Pipeline (docs/image-engine.md): safe decode → global mirror-invariant hashes and
ORB features → index keys (hash bands + descriptor LSH) → candidates from the
workspace's inverted index → RANSAC homography on the original and the mirrored
query → photometric block check → a calibrated score with the transformation
and the matched keypoints as evidence.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import math
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace

import numpy as np

from copyscope.errors import InputError
from copyscope.image import features as F
from copyscope.image import structure as S
from copyscope.image.calibration import calibrating, score_of, structure_ceiling, structure_score, uses_fine
from copyscope.image.decode import ANALYSIS_SIDE, decode, sniff
from copyscope.image.geometry import (MIN_INLIERS, Geometry, Photometric, describe, match, photometric, plausible,
                                      refine, support_counts, view_homography)
from copyscope.image.semantic import Embedder, sign_hash
from copyscope.model import Artifact, Match
from copyscope.plugins import params_dict
from copyscope.processes import both, helper_thread
from copyscope.stats import CorpusStats

ALGORITHM = "image.orb-dct/v1"
EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp",
              ".heic", ".heif", ".avif")
_FORMAT_VERSION = 2
_MAGIC = b"CSIMGF2\0"
CODE_WIDTH = 2                 # global codes per image: full view, centre crop
MIN_SIDE = 32                  # smaller images carry too little to match (icons, spacers)
MIRROR_TRIES = 4
MIRROR_IF_BELOW = 0.5            # thumbnail agreement under which the mirror is tried too
# Thumbnail agreement a fit needs before the registered file is decoded for the
# fine check. Under 0.15 a keypoint fit scores at most 0.12 whatever the fine
# check says (a chance fit of 8 inliers between unrelated pictures); a global
# alignment is only trusted from 0.5.
FINE_IF = {"keypoints": 0.15, "global": 0.5}
N_LOOKUP_INSET = 200            # of an inset's keypoints looked up in the index
INSET_VIEWS = 2                 # strongest insets of a query matched on their own
INSET_IF_FEWER = 20             # keypoint inliers under which the insets are tried
INSET_TRIES = 3                 # candidates per looked-up query matched against its insets
ALIGN_TRIES = 3                 # keypoint-free alignments per query looked up in the index
PROBE_QUERY = 500               # query descriptors the probe looks at
RERANK_DESCRIPTORS = 64         # a candidate's strongest stored descriptors the re-ranking matches
RERANK_MAX_HAMMING = 50         # of 256 bits; stricter than verification: this only ranks
SKETCH_WIDTH = 1 + 32 * RERANK_DESCRIPTORS   # a count byte, then the descriptors
THUMB_STEP = 64                  # sharper query renderings are cached in these steps of side


@dataclass(frozen=True)
class ImageParams:
    threshold: float = 0.5
    max_pixels: int = 64_000_000
    candidate_limit: int = 3            # top of the keypoint index's own ranking, verified as it ranks
    rerank_pool: int = 40               # further index candidates re-ranked by descriptor support ...
    rerank_keep: int = 5                # ... of which the best are verified,
    rerank_min_support: int = 6         # if this many of their descriptors match the query's (4 let
                                        # chance candidates through: docs/image-engine.md)
    common_df: int = 3
    hash_candidates: int = 5            # plus the nearest global codes by Hamming distance
    max_hash_distance: int = 20         # of 64 bits; farther codes are not candidates
    max_align_distance: int = 14        # no keypoint fit: align by the matching global views up to this
    region_candidates: int = 2          # nearest codes per inset of the query
    max_region_distance: int = 12       # an inset is a smaller view: stricter, chance is likelier
    structure_candidates: int = 1       # nearest layout code (image.structure), either orientation
    max_structure_distance: int = 16    # of 63 bits; a re-drawing keeps its layout within this
    code_width: int = CODE_WIDTH + 1    # the DCT hashes, then the structure code


def _analysis_gray(rgb: np.ndarray) -> np.ndarray:
    """The grey image features are computed on; small images are enlarged
    (keypoint detectors need room), so registration and re-decoding agree."""
    import cv2  # noqa: PLC0415
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if max(gray.shape) < ANALYSIS_SIDE // 2:
        k = (ANALYSIS_SIDE // 2) / max(gray.shape)
        gray = cv2.resize(gray, (round(gray.shape[1] * k), round(gray.shape[0] * k)), interpolation=cv2.INTER_CUBIC)
    return gray


class ImageDoc:
    """One analysed image (the image plugin's Fingerprints)."""

    modality = "image"

    def __init__(self, artifact: Artifact, *, width: int, height: int, fmt: str, an_size: tuple[int, int],
                 pts: np.ndarray | None, desc: np.ndarray | None, hashes: np.ndarray, thumb: np.ndarray,
                 gray: np.ndarray | None = None, notes: tuple[str, ...] = (),
                 embedding: np.ndarray | None = None, structure_code: int | None = None,
                 palette: np.ndarray | None = None) -> None:
        self.artifact = artifact
        self.width, self.height, self.format = width, height, fmt
        self.an_size = an_size
        self._local = None if pts is None or desc is None else (pts, desc)
        self.hashes, self.thumb = hashes, thumb
        self._gray = gray                      # kept for queries (mirrored features), not stored
        self._sharper: dict[int, np.ndarray] = {}   # query renderings by side (thumb_for)
        self.notes = notes
        self.embedding = embedding             # semantic embedding (optional model), L2-normalised
        self._structure_code = structure_code  # stored with the features; else computed on first use
        self.palette = palette                 # colour layout (structure.palette); None if stored before it
        self.layout_unknown = False            # registered before layout codes, not yet filled (adopt_codes)
        # Candidates also tried mirrored: unlimited for a direct comparison; a query
        # looked up in the index (query_keys) gets ranked candidates, and a
        # mirrored copy is among the first few of them.
        self.mirror_tries: int | None = None
        self.align_tries: int | None = None     # keypoint-free alignments, likewise (ALIGN_TRIES)
        self.inset_tries: int | None = None     # candidates matched against the query's insets (INSET_TRIES)
        # A check reports nothing under its threshold: a fit that cannot reach it
        # whatever the fine check says skips that check (and decoding the file).
        self.report_floor = 0.0
        # direct fits of registered images, under way or done (ImageModality.prefetch)
        self.prefetched: dict[str, tuple[ImageDoc, Future]] = {}

    @classmethod
    def analyse(cls, artifact: Artifact, params: ImageParams, embedder: Embedder | None = None) -> "ImageDoc":
        d = decode(artifact.data, artifact.origin, side=ANALYSIS_SIDE, max_pixels=params.max_pixels)
        if min(d.width, d.height) < MIN_SIDE:
            raise InputError(f"{artifact.origin}: image too small to match reliably ({d.width}×{d.height} "
                             f"pixels; at least {MIN_SIDE} on each side)")
        gray = _analysis_gray(d.rgb)
        # Keypoints are computed on first use: a registration needs the stored set,
        # a query only its larger query set (one ORB run either way).
        return cls(artifact, width=d.width, height=d.height, fmt=d.format,
                   an_size=(gray.shape[1], gray.shape[0]), pts=None, desc=None,
                   hashes=F.global_hashes(gray), thumb=F.thumbnail(gray), gray=gray, notes=d.notes,
                   embedding=None if embedder is None else embedder.embed(d.rgb), palette=S.palette(d.rgb))

    @property
    def pts(self) -> np.ndarray:
        return self._stored()[0]

    @property
    def desc(self) -> np.ndarray:
        return self._stored()[1]

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        if self._local is None:
            if self._gray is None:
                self._local = (np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
            else:
                pts, desc = F.orb(self._gray)
                self._local = (pts[:F.N_STORED], desc[:F.N_STORED])
        return self._local

    # -- Fingerprints protocol ---------------------------------------------------
    @property
    def media_type(self) -> str:
        return {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "bmp": "image/bmp",
                "tiff": "image/tiff", "webp": "image/webp", "heic": "image/heic", "avif": "image/avif"
                }.get(self.format, "application/octet-stream")

    @functools.cached_property
    def _index_keys(self) -> np.ndarray:
        pick = F.spread(self.pts, F.N_INDEXED, self.an_size)
        return np.unique(np.concatenate([F.hash_keys(self.hashes), F.lsh_keys(self.desc[pick])]))

    def index_keys(self) -> np.ndarray:
        return self._index_keys

    @functools.cached_property
    def gray(self) -> np.ndarray | None:
        """The analysis-size grey image; a stored registered image decodes its blob
        again, only when a candidate passed the geometric check."""
        if self._gray is not None:
            return self._gray
        if not self.artifact.data:
            return None
        try:
            g = _analysis_gray(decode(self.artifact.data, self.artifact.origin, side=ANALYSIS_SIDE).rgb)
        except InputError:
            return None
        return g if (g.shape[1], g.shape[0]) == self.an_size else None

    @functools.cached_property
    def query_features(self) -> tuple[np.ndarray, np.ndarray]:
        """More keypoints for a query than are stored for a registered image: a copy
        pasted into a larger picture or a screenshot owns only part of them."""
        if self._gray is None:
            return self.pts, self.desc
        return F.orb(self._gray, F.N_QUERY)

    @functools.cached_property
    def mirrored(self) -> tuple[np.ndarray, np.ndarray]:
        """Features of the horizontally mirrored image (queries only): ORB is not
        mirror-invariant, and a flipped repost is a classic evasion."""
        if self._gray is None:
            return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
        return F.orb(np.ascontiguousarray(self._gray[:, ::-1]), F.N_QUERY_MIRRORED)

    @functools.cached_property
    def probe_features(self) -> tuple[np.ndarray, np.ndarray]:
        """The query descriptors the cheap probe looks at: spread over the picture,
        not the strongest, because overlaid text or a logo owns the strongest
        corners of a picture and would leave none for the copied content."""
        return _probe_set(*self.query_features, self.an_size)

    @functools.cached_property
    def insets(self) -> list[tuple[int, int, int, int]]:
        """Rectangles inside a query (insets, screenshot content), analysis
        pixels; none for a registered image."""
        return [] if self._gray is None else F.insets(self._gray)

    @functools.cached_property
    def inset_features(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Keypoints (in query analysis pixels), descriptors and probe set of the
        strongest insets, each analysed enlarged to the analysis size: a picture
        pasted at a third of the query's width keeps few keypoints at the
        query's scale, and ORB's pyramid does not reach down that far."""
        cv2 = F._cv2()
        out = []
        for x, y, w, h in self.insets[:INSET_VIEWS]:
            k = ANALYSIS_SIDE / max(w, h)
            crop = cv2.resize(self._gray[y:y + h, x:x + w], (round(w * k), round(h * k)),
                              interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
            pts, desc = F.orb(crop, F.N_STORED)
            probe = _probe_set(pts, desc, (crop.shape[1], crop.shape[0]))
            out.append(((pts / k + np.float32([x, y])).astype(np.float32), desc, probe))
        return out

    @functools.cached_property
    def inset_hashes(self) -> np.ndarray:
        """Global hash of each of :attr:`insets`."""
        if not self.insets:
            return np.zeros(0, np.uint64)
        return F.region_hashes(self._gray, self.insets)

    @functools.cached_property
    def structure(self) -> np.ndarray:
        """The layout's orientation field (``structure.field`` of the thumbnail)."""
        return S.field(self.thumb)

    @property
    def structure_code(self) -> np.uint64:
        if self._structure_code is None:
            self._structure_code = int(S.code(self.structure))
        return np.uint64(self._structure_code)

    @functools.cached_property
    def mirrored_structure(self) -> np.ndarray:
        return S.mirrored(self.structure)

    @functools.cached_property
    def structure_codes(self) -> tuple[np.uint64, np.uint64]:
        """The query's structure code and its mirror's (a flipped re-drawing)."""
        return self.structure_code, S.code(self.mirrored_structure)

    def thumb_for(self, H: np.ndarray, ref: "ImageDoc") -> np.ndarray:
        """The query picture the photometric check warps onto ``ref``'s thumbnail:
        the thumbnail, or, when the copy fills only part of the query (an inset,
        a screenshot), a sharper rendering with as many pixels on the copy as the
        registered thumbnail has. Upsampling a 40-pixel inset of the thumbnail
        blurs every block, and a copy would not agree with its own original."""
        if self._gray is None:
            return self.thumb
        a = H[:2, :2] / H[2, 2]
        # registered thumbnail px per query thumbnail px
        k = math.sqrt(abs(float(np.linalg.det(a)))) * (ref.thumb.shape[1] / ref.an_size[0]) \
            / (self.thumb.shape[1] / self.an_size[0])
        side = min(max(self.an_size), THUMB_STEP * math.ceil(max(self.thumb.shape) * k / THUMB_STEP))
        if k < 1.25 or side <= max(self.thumb.shape):
            return self.thumb
        if side not in self._sharper:
            self._sharper[side] = F.thumbnail(self._gray, side)
        return self._sharper[side]

    @functools.cached_property
    def mirrored_probe(self) -> np.ndarray:
        return _probe_set(*self.mirrored, self.an_size)

    def query_keys(self) -> np.ndarray:
        self.mirror_tries, self.align_tries, self.inset_tries = MIRROR_TRIES, ALIGN_TRIES, INSET_TRIES
        if self._gray is not None:
            # Three independent ORB runs (the query, its mirror, its insets): the
            # mirror and the insets on the helper thread, the query's own here.
            both(lambda: self.query_features, lambda: (self.mirrored, self.inset_features))
        # The strongest half of the query's descriptors rank candidates better than
        # all of them (weak keypoints add chance hits); all are used to verify.
        return np.unique(np.concatenate([F.hash_keys(self.hashes), *(F.lsh_keys(d) for _, d in self._lookup_sets)]))

    @functools.cached_property
    def lookup_descriptors(self) -> np.ndarray:
        """Every descriptor of the query (whole, mirrored, insets at their own
        scale): what a candidate's stored descriptors are matched against when
        candidates are re-ranked."""
        return np.vstack([d for _, d in self._lookup_sets] or [np.zeros((0, 32), np.uint8)])

    @functools.cached_property
    def _lookup_sets(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(points, descriptors) of the query that are looked up in the index: the
        strongest, spread over the picture, of the whole query, its mirror and
        each inset at its own scale."""
        views = [(*self.query_features, F.N_LOOKUP), (*self.mirrored, F.N_LOOKUP_MIRRORED),
                 *((p, d, N_LOOKUP_INSET) for p, d, _ in self.inset_features)]
        out = []
        for pts, desc, n in views:
            if desc.shape[0]:
                pick = F.spread(pts, n, self.an_size)
                out.append((pts[pick], desc[pick]))
        return out

    def stat_keys(self) -> np.ndarray:
        return np.zeros(0, np.uint64)

    def is_empty(self) -> bool:
        return False

    # -- persistence (the workspace keeps features so a check never re-decodes) --
    def dumps(self) -> bytes:
        """Stored features (docs/formats.md): ``CSIMGF2\\0``, a little-endian u32
        header length, a JSON header naming each array's dtype, shape and offset,
        then the raw little-endian arrays. Read back without a zip parser: at
        100,000 images a check loads ~11 of these, and ``np.load`` of an .npz cost
        0.8 ms each."""
        arrays = {"pts": self.pts, "desc": self.desc, "hashes": self.hashes, "thumb": self.thumb,
                  "structure": np.array([self.structure_code], np.uint64)}
        if self.palette is not None:
            arrays["palette"] = self.palette
        if self.embedding is not None:
            arrays["embedding"] = self.embedding.astype(np.float16)
        entries, chunks, offset = [], [], 0
        for name, a in arrays.items():
            a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype)
            raw = a.tobytes()
            entries.append([name, a.dtype.str, list(a.shape), offset, len(raw)])
            pad = -len(raw) % 8
            chunks.append(raw + bytes(pad))
            offset += len(raw) + pad
        header = json.dumps({"version": _FORMAT_VERSION, "size": [self.width, self.height, *self.an_size],
                             "fmt": self.format, "arrays": entries}, separators=(",", ":")).encode()
        header += b" " * (-(len(_MAGIC) + 4 + len(header)) % 8)
        return _MAGIC + len(header).to_bytes(4, "little") + header + b"".join(chunks)

    @classmethod
    def loads(cls, data: bytes, artifact: Artifact) -> "ImageDoc":
        if not data.startswith(_MAGIC):
            return cls._loads_npz(data, artifact)
        n = int.from_bytes(data[len(_MAGIC):len(_MAGIC) + 4], "little")
        start = len(_MAGIC) + 4 + n
        head = json.loads(data[len(_MAGIC) + 4:start])
        if head.get("version") != _FORMAT_VERSION:
            raise ValueError("stored image features have another format version")
        arrays = {}
        for name, dtype, shape, offset, nbytes in head["arrays"]:
            dt = np.dtype(dtype)
            if start + offset + nbytes > len(data) or nbytes != dt.itemsize * int(np.prod(shape, dtype=np.int64)):
                raise ValueError("stored image features are truncated")
            arrays[name] = np.frombuffer(data, dt, nbytes // dt.itemsize, start + offset).reshape(shape)
        w, h, aw, ah = (int(v) for v in head["size"])
        emb = arrays["embedding"].astype(np.float32) if "embedding" in arrays else None
        # (features stored before structure codes existed compute theirs from the thumbnail)
        code = int(arrays["structure"][0]) if "structure" in arrays and arrays["structure"].size else None
        return cls(artifact, width=w, height=h, fmt=str(head["fmt"]), an_size=(aw, ah), pts=arrays["pts"],
                   desc=arrays["desc"], hashes=arrays["hashes"], thumb=arrays["thumb"], embedding=emb,
                   structure_code=code, palette=arrays.get("palette"))

    @classmethod
    def _loads_npz(cls, data: bytes, artifact: Artifact) -> "ImageDoc":
        """Features stored by copyscope before format 2 (an .npz)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if int(z["version"]) != 1:
                raise ValueError("stored image features have another format version")
            w, h, aw, ah = (int(v) for v in z["size"])
            emb = z["embedding"].astype(np.float32) if "embedding" in z.files else None
            return cls(artifact, width=w, height=h, fmt=bytes(z["fmt"]).decode("ascii"), an_size=(aw, ah),
                       pts=z["pts"], desc=z["desc"], hashes=z["hashes"], thumb=z["thumb"], embedding=emb)

    @property
    def scale(self) -> float:
        """Original pixels per analysis pixel."""
        return self.width / self.an_size[0]


class ImageModality:
    """Modality plugin for images (entry point ``copyscope.modalities: image``)."""

    name = "image"
    version = ALGORITHM
    needs_stats = False              # scores do not depend on corpus statistics

    def __init__(self, params: ImageParams | None = None) -> None:
        self.params = params or ImageParams()
        self.embedder: Embedder | None = None

    def configure(self, settings) -> None:  # noqa: ANN001 - copyscope.settings.Settings
        """``--image-model``: a local ONNX image encoder for semantic matching."""
        if getattr(settings, "image_model", None):
            self.embedder = Embedder(settings.image_model)

    def accepts(self, artifact: Artifact) -> bool:
        if sniff(artifact.data[:64]) is not None:
            return True
        # An image extension on non-image bytes is claimed, so the user hears
        # "not an image" instead of having it read as text.
        return artifact.origin.lower().endswith(EXTENSIONS)

    def fingerprint(self, artifact: Artifact) -> ImageDoc:
        return ImageDoc.analyse(artifact, self.params, self.embedder)

    def parameters(self) -> dict:
        out = params_dict(ALGORITHM, self.params)
        if self.embedder is not None:
            out.update(code_width=self._code_width(), semantic_model=self.embedder.model_id)
        return out

    def _code_width(self) -> int:
        """Global codes per image (``parameters()["code_width"]``); the last is the layout's."""
        return CODE_WIDTH + 2 if self.embedder is not None else self.params.code_width

    def global_codes(self, doc: ImageDoc) -> np.ndarray:
        """Global descriptors stored with the artifact: two mirror-invariant DCT
        hashes (16 bytes), the embedding's sign hash with a model, and last the
        layout's structure code (8 bytes; rows stored before it read as 0)."""
        codes = np.resize(doc.hashes, CODE_WIDTH).astype(np.uint64)
        if doc.embedding is not None:
            codes = np.append(codes, np.uint64(sign_hash(doc.embedding)))
        return np.append(codes, doc.structure_code)

    def code_distances(self, doc: ImageDoc, codes: np.ndarray) -> np.ndarray:
        """Distances of the query to every stored row, one row per view of the query.

        Row 0, the whole query: the nearest DCT hash pair, or the embedding's sign
        hash when both sides have one. Row 1, the layout: the structure code of
        the query or of its mirror (a re-drawn copy). Then one row per inset
        found in the query (a picture pasted into another, a screenshot's
        content), against the registered images' full-view hash. The workspace
        takes the nearest of each row as :meth:`code_row_limits` says."""
        # One column and one query hash at a time: with the codes column-major (the
        # workspace keeps them so) that is 20× faster than one broadcast at 100,000 rows.
        dist = None
        for h in doc.hashes.astype(np.uint64).tolist():
            for col in range(min(CODE_WIDTH, codes.shape[1])):
                d = np.bitwise_count(codes[:, col] ^ np.uint64(h))
                dist = d if dist is None else np.minimum(dist, d, out=dist)
        if dist is None:
            dist = np.full(codes.shape[0], 64, np.uint8)
        if doc.embedding is not None and codes.shape[1] > CODE_WIDTH:
            sem = codes[:, CODE_WIDTH]
            d_sem = np.bitwise_count(np.uint64(sign_hash(doc.embedding)) ^ sem)
            dist = np.where(sem != 0, np.minimum(dist, d_sem), dist)
        rows = [dist[None, :], self._structure_distances(doc, codes)[None, :]]
        rows += [np.bitwise_count(codes[:, 0] ^ np.uint64(h))[None, :] for h in doc.inset_hashes.tolist()]
        return np.vstack(rows)

    def code_row_limits(self, doc: ImageDoc) -> list[tuple[int, int]]:
        """(how many nearest, within what distance) for each row of
        :meth:`code_distances`: the whole query's hashes, its structure code, then
        each inset."""
        p = self.params
        return ([(p.hash_candidates, p.max_hash_distance), (p.structure_candidates, p.max_structure_distance)]
                + [(p.region_candidates, p.max_region_distance)] * int(doc.inset_hashes.shape[0]))

    def adopt_codes(self, doc: ImageDoc, row: np.ndarray) -> None:
        """Take a registered image's layout code from its stored global codes when
        its feature file predates it. An image registered before layout codes,
        whose codes ``gc --compact`` has not filled yet, is not compared by layout
        (computing its code from the thumbnail at every check would cost each
        query ~0.2 ms a candidate)."""
        if doc._structure_code is not None:
            return
        if row.shape[0] == self._code_width() and int(row[-1]) & int(S.PRESENT):
            doc._structure_code = int(row[-1])
        else:
            doc.layout_unknown = True

    def _structure_distances(self, doc: ImageDoc, codes: np.ndarray) -> np.ndarray:
        """Distance of the query's structure code, or its mirror's, to each row's
        (the last column); 64 for rows that have none."""
        col = self._code_width() - 1
        if codes.shape[1] <= col:
            return np.full(codes.shape[0], 64, np.uint8)
        stored = codes[:, col]
        plain, mirror = doc.structure_codes
        d = np.minimum(np.bitwise_count(stored ^ plain), np.bitwise_count(stored ^ mirror))
        return np.where(stored & S.PRESENT, d, np.uint8(64)).astype(np.uint8)

    sketch_width = SKETCH_WIDTH

    def sketch(self, doc: ImageDoc) -> bytes:
        """What re-ranking reads of a registered image: its strongest descriptors."""
        d = doc.desc[:RERANK_DESCRIPTORS]
        return bytes([d.shape[0]]) + d.tobytes()

    def rerank(self, query: ImageDoc, sketches: list[bytes]) -> np.ndarray:
        """Support of each candidate (see :meth:`sketch`), higher first: the
        workspace verifies the ``rerank_keep`` best of the index's ``rerank_pool``."""
        descs = []
        for s in sketches:
            n = min(s[0], RERANK_DESCRIPTORS, (len(s) - 1) // 32) if s else 0
            descs.append(np.frombuffer(s, np.uint8, 32 * n, 1).reshape(n, 32))
        return support_counts(query.lookup_descriptors, descs, RERANK_MAX_HAMMING)

    def dumps(self, doc: ImageDoc) -> bytes:
        return doc.dumps()

    def loads(self, data: bytes, artifact: Artifact) -> ImageDoc:
        return ImageDoc.loads(data, artifact)

    def evidence_media(self, m: Match, query: ImageDoc, ref: ImageDoc) -> Match:
        """Attach small renderings of both images (``extra.image.media``) so the
        evidence bundle and its HTML report stand alone. Called for reported
        matches only: it decodes both files again."""
        media = {"query": _data_uri(query.artifact.data, query.artifact.origin),
                 "registered": _data_uri(ref.artifact.data, ref.artifact.origin)}
        return replace(m, extra={**m.extra, "image": {**m.extra["image"], "media": media}})

    def explain_away(self, matches: list[Match]) -> list[Match]:
        """One query's matches, each weighed against the stronger ones.

        A registry holds variants of one picture: sibling portraits drawn on one
        template, a clock face with other hands, two photographs of one scene,
        and also the same picture registered twice at other crops or sizes. A
        copy of one of them matches the others too, over the same part of the
        query, at scores that can pass 0.98. When a stronger match (another
        registered file) covers at least half of the same query region and fits
        it measurably better (higher agreement, fewer altered blocks, or far
        more inliers), the weaker match is capped at even odds
        (``EXPLAINED_CAP``, 0.5) and its evidence names the better fit
        (``explained_by``). Even odds, not zero: from the query alone a sibling
        variant (the query is not its copy) and the same picture registered
        again (the query is its copy too) look alike. Among 99,432 registered
        images, 27 of 163 sampled copies had a second registration of their
        picture that fitted better; discounting to zero lost them all. Two
        encodings that fit alike keep their scores, and so do a collage's
        matches, which cover different regions (public bench μAP
        0.919 → 0.924, seed 11 0.898 → 0.900)."""
        if len(matches) < 2:
            return matches
        order = sorted(range(len(matches)), key=lambda i: -matches[i].score)
        out = list(matches)
        for rank, i in enumerate(order):
            weaker = matches[i]
            if weaker.score <= EXPLAINED_CAP:
                continue
            by = next((matches[j] for j in order[:rank]          # stronger ones: ``order`` is by score
                       if matches[j].registered_sha256 != weaker.registered_sha256 and _explains(matches[j], weaker)),
                      None)
            if by is None:
                continue
            score = EXPLAINED_CAP
            evidence = {**weaker.extra["image"], "explained_by": {
                "registered_sha256": by.registered_sha256, "registered_path": by.registered_path,
                "score": round(by.score, 4), "score_alone": round(weaker.score, 4)}}
            out[i] = replace(weaker, score=score, extra={**weaker.extra, "image": evidence},
                             verdict="copy" if score >= self.params.threshold else "below-threshold")
        return out

    @staticmethod
    def _photometric(query: ImageDoc, ref: ImageDoc, g: Geometry) -> Photometric:
        """Thumbnail block agreement under a keypoint fit (nothing without one)."""
        if g.homography is None or g.inliers < MIN_INLIERS:
            return Photometric(0.0, 0, [])
        return photometric(query.thumb_for(g.homography, ref), ref.thumb, g.homography, query.an_size, ref.an_size,
                           ref.scale, g.mirrored)

    def _direct_fit(self, query: ImageDoc, ref: ImageDoc) -> tuple[Geometry, Photometric]:
        """The keypoint fit of the query as given, and its thumbnail agreement: the
        part of :meth:`verify` that no try budget decides, so it can run ahead.
        Doing more ahead measured no faster, or slower: fitting the mirror
        whatever its try budget says, aligning keypoint-free (capped at its try
        budget or not), decoding the registered file for the fine check."""
        qp, qd = query.query_features
        best = match(qp, qd, ref.pts, ref.desc) if plausible(query.probe_features, ref.desc) else Geometry()
        return best, self._photometric(query, ref, best)

    @contextlib.contextmanager
    def prefetch(self, query: ImageDoc, refs: list[ImageDoc]) -> Iterator[None]:
        """While :meth:`verify` runs over ``refs`` in order, the helper thread fits
        the candidates after the current one (:meth:`_direct_fit`): verify takes
        a fit that is ready or under way, and computes one that has not started
        itself. The results are the same as without it; only the order of the
        work changes. The first candidate is this thread's, so both start at once."""
        helper = helper_thread()
        if helper is None or len(refs) < 2:
            yield
            return
        query.query_features, query.probe_features  # noqa: B018 - computed here, not raced for
        for ref in refs:
            ref.pts, ref.desc  # noqa: B018 - a registered image loaded without keypoints computes them now
        query.prefetched = {ref.artifact.sha256: (ref, helper.submit(self._direct_fit, query, ref))
                            for ref in refs[1:]}
        try:
            yield
        finally:
            for _, pending in query.prefetched.values():
                pending.cancel()
            query.prefetched = {}

    def _taken_fit(self, query: ImageDoc, ref: ImageDoc) -> tuple[Geometry, Photometric]:
        """``ref``'s direct fit: prefetched, or computed here when the helper has
        not started it. While the helper is still on it, this thread fits later
        candidates the helper has not reached, instead of waiting idle."""
        _, pending = query.prefetched.pop(ref.artifact.sha256, (None, None))
        if pending is None or pending.cancel():
            return self._direct_fit(query, ref)
        for sha, (later, ahead) in list(query.prefetched.items()):
            if pending.done():
                break
            if ahead.cancel():
                fitted: Future = Future()
                fitted.set_result(self._direct_fit(query, later))
                query.prefetched[sha] = (later, fitted)
        return pending.result()

    def verify(self, query: ImageDoc, ref: ImageDoc, stats: CorpusStats | None = None) -> Match | None:
        hd = int(np.bitwise_count(query.hashes[:, None] ^ ref.hashes[None, :]).min())
        if query.inset_hashes.shape[0] and ref.hashes.shape[0]:
            # an inset of the query that hashes like the whole registered image
            hd = min(hd, int(np.bitwise_count(query.inset_hashes ^ ref.hashes[0]).min()))
        best, ph = self._taken_fit(query, ref)
        # A picture with a symmetric subject fits a few keypoints the wrong way
        # round: the mirror is tried too when the fit is missing or disagrees.
        # A try is spent only on a full match: the probe that turns most candidates
        # away is cheap, and a budget spent on chance candidates verified first
        # would leave none for the true source found by its global hash.
        if (best.inliers < MIN_INLIERS or ph.agreement < MIRROR_IF_BELOW) and query.mirror_tries != 0:
            mp, md = query.mirrored
            if plausible(query.mirrored_probe, ref.desc):
                if query.mirror_tries is not None:
                    query.mirror_tries -= 1
                flipped = match(mp, md, ref.pts, ref.desc)
                flipped.mirrored = True
                ph_flipped = self._photometric(query, ref, flipped)
                if (score_of(flipped.inliers, ph_flipped.agreement, hd)
                        > score_of(best.inliers, ph.agreement, hd)) and flipped.inliers >= MIN_INLIERS:
                    best, ph = flipped, ph_flipped
        if ((best.inliers < INSET_IF_FEWER or ph.agreement < MIRROR_IF_BELOW) and query.inset_tries != 0
                and query.insets):
            # The copy may be an inset of the query: match each inset on its own.
            spent = False
            for pts, desc, probe in query.inset_features:
                if not plausible(probe, ref.desc):
                    continue
                if not spent and query.inset_tries is not None:
                    query.inset_tries -= 1
                spent = True
                g = match(pts, desc, ref.pts, ref.desc)
                ph_g = self._photometric(query, ref, g)
                if g.inliers >= MIN_INLIERS and score_of(g.inliers, ph_g.agreement, hd) > score_of(best.inliers, ph.agreement, hd):
                    best, ph = g, ph_g
        agreement, blocks, altered, transform, fine = ph.agreement, ph.blocks, ph.altered, None, 0.0
        H, mirrored, alignment = best.homography, best.mirrored, "keypoints"
        if best.inliers < MIN_INLIERS:
            H, mirrored, alignment = None, False, None
            if hd <= self.params.max_align_distance and query.align_tries != 0:
                if query.align_tries is not None:
                    query.align_tries -= 1
                H, mirrored, agreement, blocks, altered = _global_alignment(query, ref)
                alignment = "global" if H is not None else None
        if H is not None:
            transform = describe(H, query.an_size, ref.an_size, query.scale, ref.scale, mirrored)
            # (the score is linear in the fine agreement: its two ends bound it)
            if (uses_fine() and query.gray is not None and agreement >= FINE_IF[alignment]
                    and max(score_of(best.inliers, agreement, hd, f) for f in (0.0, 1.0)) >= query.report_floor
                    and ref.gray is not None):
                # Same pixels, or another photograph of the same scene? At full analysis
                # resolution, parallax and a different exposure no longer line up.
                fine = photometric(query.gray, ref.gray, H, query.an_size, ref.an_size, ref.scale, mirrored,
                                   ncc_min=0.6, regions=False, textured_only=alignment == "global").agreement
        score = pixel_score = score_of(best.inliers, agreement, hd, fine)
        kind = "pixels"
        layout = self._layout(query, ref, score)
        if layout is not None and layout["score"] > score:
            score, kind = layout["score"], "structure"   # re-drawn: the layout kept, the pixels new
        semantic = None
        if query.embedding is not None and ref.embedding is not None and query.embedding.shape == ref.embedding.shape:
            semantic = float(np.dot(query.embedding, ref.embedding))
            s_sem = semantic_score(semantic)
            if s_sem > score:
                score, kind = s_sem, "semantic"   # re-drawn or re-posed: similar content, not the same pixels
        if query.artifact.sha256 == ref.artifact.sha256:
            score, kind = 1.0, "pixels"   # the very same file: nothing to calibrate
        if score <= 1e-6 and best.inliers < MIN_INLIERS and not (layout is not None and calibrating()):
            return None         # (a calibration run keeps every layout it compared)
        whole = hd <= 8 or kind == "structure"     # no fit, but the whole picture agrees
        cov_r = transform["registered_covered"] if transform else (1.0 if whole else 0.0)
        cov_q = transform["query_covered"] if transform else (1.0 if whole else 0.0)
        evidence = {
            "kind": kind,
            "transform": transform,
            "inliers": best.inliers,
            "tentative_matches": best.matches,
            "photometric_agreement": round(agreement, 4),
            "fine_agreement": round(fine, 4),
            "compared_blocks": blocks,
            "altered_regions": altered[:400],
            "hash_distance": hd,
            "alignment": alignment,
            "homography": None if H is None else _to_original(H, query, ref, mirrored),
            "keypoints": _keypoints(best, query, ref),
            "structure": None if layout is None else {k: v for k, v in layout.items() if k != "score"},
            "semantic": None if semantic is None else {
                "similarity": round(semantic, 4),
                "model": self.embedder.model_id if self.embedder else None},
            "query_size": [query.width, query.height],
            "registered_size": [ref.width, ref.height],
        }
        return Match(
            modality="image", algorithm=ALGORITHM, score=score,
            verdict="copy" if score >= self.params.threshold else "below-threshold",
            coverage_registered=float(min(1.0, cov_r)), coverage_query=float(min(1.0, cov_q)),
            signals={"inliers": float(best.inliers), "photometric": agreement, "fine_photometric": fine,
                     "hash_distance": float(hd), "pixel_score": pixel_score,
                     **({} if layout is None else {"structure": layout["similarity"],
                                                   "structure_distance": float(layout["code_distance"]),
                                                   "colour_agreement": layout["colour_agreement"]})},
            passages=(), query_sha256=query.artifact.sha256, registered_sha256=ref.artifact.sha256,
            query_path=query.artifact.origin, registered_path=ref.artifact.origin,
            extra={"image": evidence},
        )

    def _layout(self, query: ImageDoc, ref: ImageDoc, score: float) -> dict | None:
        """The layout comparison (``image.structure``) of a pair whose structure
        codes are near, when it could raise ``score``: ``{similarity,
        code_distance, colour_agreement, mirrored, score}``, else None."""
        if (score >= structure_ceiling() and not calibrating()) or ref.layout_unknown:
            return None
        plain, mirror = query.structure_codes
        d_plain, d_mirror = S.distance(plain, ref.structure_code), S.distance(mirror, ref.structure_code)
        d = min(d_plain, d_mirror)
        if d > self.params.max_structure_distance:
            return None
        sim = S.similarity(query.structure, ref.structure)
        sim_m = S.similarity(query.mirrored_structure, ref.structure) if d_mirror <= d_plain + 4 else -1.0
        mirrored = sim_m > sim
        best = max(sim, sim_m)
        colour = S.colour_agreement(query.palette, ref.palette, mirrored)
        return {"similarity": round(best, 4), "code_distance": d, "colour_agreement": round(colour, 4),
                "mirrored": mirrored, "score": structure_score(best, colour)}


def _views(doc: ImageDoc) -> list[tuple[float, float, float, float]]:
    """The rectangles (analysis pixels) that ``doc.hashes`` describe: the whole
    picture and its centre 70 % (``features.global_hashes``)."""
    w, h = doc.an_size
    return [(0.0, 0.0, float(w), float(h)), (0.15 * w, 0.15 * h, 0.7 * w, 0.7 * h)][:doc.hashes.shape[0]]


def _global_alignment(query: ImageDoc, ref: ImageDoc):  # noqa: ANN202
    """For a pair whose keypoints did not survive (heavy blur, a smooth picture)
    but whose global hashes agree: lay the matching views onto each other, refine
    by correlation (ECC), and judge the textured blocks. The hash is
    mirror-invariant, so both orientations are tried.

    Returns ``(H, mirrored, agreement, blocks, altered)``; ``H`` is None when the
    thumbnails do not line up."""
    q_views = list(zip(query.hashes.tolist(), _views(query))) + list(zip(query.inset_hashes.tolist(), query.insets))
    r_views = list(zip(ref.hashes.tolist(), _views(ref)))
    if not q_views or not r_views:
        return None, False, 0.0, 0, []
    _, q_rect, r_rect = min(((int(np.bitwise_count(np.uint64(qh) ^ np.uint64(rh))), qr, rr)
                             for qh, qr in q_views for rh, rr in r_views), key=lambda t: t[0])
    def judge(H: np.ndarray, mirrored: bool, regions: bool = False):  # noqa: ANN202
        return photometric(query.thumb, ref.thumb, H, query.an_size, ref.an_size, ref.scale, mirrored,
                           regions=regions, textured_only=True)

    x, y, w, h = q_rect
    tries = [(view_homography(q_rect, r_rect), False),
             (view_homography((query.an_size[0] - x - w, y, w, h), r_rect), True)]
    first, H, mirrored = max(((judge(*t).agreement, *t) for t in tries), key=lambda t: t[0])
    if first < MIN_ROUGH_AGREEMENT:
        # Most pairs with merely similar hashes stop here, before the costly refinement.
        return None, False, 0.0, 0, []
    refined = refine(query.thumb, ref.thumb, H, query.an_size, ref.an_size, mirrored)
    if judge(refined, mirrored).agreement > first:   # ECC can also slide off a good start
        H = refined
    ph = judge(H, mirrored, regions=True)
    if ph.agreement < MIN_GLOBAL_AGREEMENT:
        return None, False, 0.0, 0, []
    return H, mirrored, ph.agreement, ph.blocks, ph.altered


MIN_ROUGH_AGREEMENT = 0.3        # textured blocks agreeing before refinement is worth its cost
MIN_GLOBAL_AGREEMENT = 0.5       # textured blocks agreeing before a keypoint-free alignment counts


def _probe_set(pts: np.ndarray, desc: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Descriptors for :func:`plausible`: all of them when there are few (a smooth
    picture keeps a few dozen keypoints, and matching them all costs little),
    else ``PROBE_QUERY`` spread over a grid."""
    if pts.shape[0] <= PROBE_QUERY:
        return desc
    return desc[F.spread(pts, PROBE_QUERY, size)]


SEMANTIC_FLOOR = 0.80           # cosine similarity where semantic evidence starts to count
SEMANTIC_FULL = 0.97            # and where it alone reaches score 1


def semantic_score(cosine: float) -> float:
    """Uncalibrated: how far a cosine similarity is between the floor and full
    marks. Depends on the user's model; docs/image-engine.md says how to set a
    threshold for it."""
    return float(min(1.0, max(0.0, (cosine - SEMANTIC_FLOOR) / (SEMANTIC_FULL - SEMANTIC_FLOOR))))


def _data_uri(data: bytes, origin: str, side: int = 480) -> str | None:
    """A small JPEG of an image, for the self-contained HTML report."""
    import base64  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415
    try:
        d = decode(data, origin, side=side)
    except InputError:
        return None
    buf = io.BytesIO()
    Image.fromarray(d.rgb).save(buf, "JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _to_original(H: np.ndarray, q: ImageDoc, r: ImageDoc, mirrored: bool) -> list[list[float]]:
    """The homography in original pixels: query (as given, before any mirror) → registered."""
    s_q = np.diag([1.0 / q.scale, 1.0 / q.scale, 1.0])
    if mirrored:
        s_q = np.array([[-1.0, 0, q.an_size[0]], [0, 1.0, 0], [0, 0, 1.0]]) @ s_q
    out = np.diag([r.scale, r.scale, 1.0]) @ H @ s_q
    out = out / out[2, 2]
    return [[round(float(v), 6) for v in row] for row in out]


EXPLAINED_CAP = 0.5              # even odds: a better fit explains the match, or the picture is registered twice
EXPLAIN_MIN_OVERLAP = 0.5       # of the smaller query region, for one match to explain another
EXPLAIN_AGREEMENT_GAP = 0.02     # agreement by which the stronger match must fit better …
EXPLAIN_ALTERED_GAP = 3          # … or altered blocks by which the weaker must fit worse …
EXPLAIN_INLIER_RATIO = 0.7       # … or the share of the stronger's inliers the weaker stays under


def _query_region(m: Match) -> tuple[float, float, float, float]:
    """The part of the query a match covers: its inliers' bounding box, else
    (a keypoint-free alignment, a hash match) the whole query."""
    ev = m.extra["image"]
    kp = ev.get("keypoints") or []
    if ev.get("alignment") == "keypoints" and len(kp) >= 3:
        xs, ys = [p[0] for p in kp], [p[1] for p in kp]
        return min(xs), min(ys), max(xs), max(ys)
    w, h = ev.get("query_size") or (1, 1)
    return 0.0, 0.0, float(w), float(h)


def _explains(stronger: Match, weaker: Match) -> bool:
    """Whether ``stronger`` covers the query region of ``weaker`` and fits it
    measurably better (see :meth:`ImageModality.explain_away`)."""
    a, b = _query_region(stronger), _query_region(weaker)
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = max(1e-9, min((r[2] - r[0]) * (r[3] - r[1]) for r in (a, b)))
    if inter / smaller < EXPLAIN_MIN_OVERLAP:
        return False
    s, w = stronger.extra["image"], weaker.extra["image"]
    return (s["photometric_agreement"] - w["photometric_agreement"] > EXPLAIN_AGREEMENT_GAP
            or len(w["altered_regions"]) > len(s["altered_regions"]) + EXPLAIN_ALTERED_GAP
            or w["inliers"] < EXPLAIN_INLIER_RATIO * s["inliers"])


def _keypoints(g: Geometry, q: ImageDoc, r: ImageDoc) -> list[list[float]]:
    """Inlier pairs in original pixels: [query x, query y, registered x, registered y]."""
    pairs = g.pairs[:200].astype(np.float64)
    if g.mirrored:
        pairs[:, 0] = q.an_size[0] - pairs[:, 0]
    return np.round(pairs * np.array([q.scale, q.scale, r.scale, r.scale]), 1).tolist()
