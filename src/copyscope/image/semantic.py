"""Optional semantic image embedding from a local ONNX model the user supplies.

Re-drawn images and the same character in a new scene share no pixels and few
keypoints; a semantic embedding (a CLIP image encoder exported to ONNX, for
instance) still places them close together. copyscope never downloads a model:
``--image-model PATH.onnx`` (or ``$COPYSCOPE_IMAGE_MODEL``) names a file, and
without one the image engine works exactly as before.

The model contract: one input, ``N×3×H×W`` float32 (H and W from the model's
input shape; 224 when they are symbolic), RGB scaled to 0–1 then normalised
with the mean and standard deviation found in the model's metadata
(``mean``/``std``, comma-separated), else CLIP's. The first output, flattened,
is the embedding; it is L2-normalised here. The embedding's 64-bit sign hash
(a fixed random projection) is the candidate code; the cosine similarity is
the evidence.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from copyscope.errors import PluginError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class Embedder:
    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime as ort  # noqa: PLC0415
        except ImportError:
            raise PluginError("--image-model needs onnxruntime (pip install 'copyscope[semantic]')") from None
        path = Path(path)
        if not path.is_file():
            raise PluginError(f"{path}: no such model file (--image-model)")
        try:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own zoo of errors
            raise PluginError(f"{path}: not a usable ONNX model ({str(exc).splitlines()[0][:160]})") from None
        inp = self.session.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4:
            raise PluginError(f"{path}: the model's input must be N×3×H×W, not {shape}")
        self.input = inp.name
        self.size = (shape[3] if isinstance(shape[3], int) else 224, shape[2] if isinstance(shape[2], int) else 224)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.mean = np.array(_floats(meta.get("mean")) or CLIP_MEAN, np.float32).reshape(1, 3, 1, 1)
        self.std = np.array(_floats(meta.get("std")) or CLIP_STD, np.float32).reshape(1, 3, 1, 1)
        # Identifies the model in every match: evidence made with another model is not comparable.
        self.model_id = f"{path.name}:sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        import cv2  # noqa: PLC0415
        x = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        x = (x.transpose(2, 0, 1)[None] - self.mean) / self.std
        out = np.asarray(self.session.run(None, {self.input: x.astype(np.float32)})[0], np.float32).ravel()
        norm = float(np.linalg.norm(out))
        return out / norm if norm > 0 and np.isfinite(norm) else np.zeros_like(out)


def _floats(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        return None
    return vals if len(vals) == 3 else None


@functools.cache
def _projection(dim: int) -> np.ndarray:
    return np.random.default_rng(0x5E3A).standard_normal((dim, 64)).astype(np.float32)


def sign_hash(embedding: np.ndarray) -> int:
    """64-bit SimHash of an embedding: Hamming distance tracks the angle."""
    if embedding.size == 0 or not np.any(embedding):
        return 0
    bits = (embedding @ _projection(embedding.shape[0])) > 0
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])
