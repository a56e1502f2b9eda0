"""The optional semantic embedding: a local ONNX model, built here by the test
itself (no weights are downloaded, ever)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402
from test_image_plugin import photo  # noqa: E402


def tiny_encoder(path: Path) -> Path:
    """3×64×64 → 16×16 average pooling → 48-d coarse colour layout. Crude, but a
    real encoder in the only sense that matters here: it survives re-drawing
    (blur, posterising, warping) and tells unrelated pictures apart."""
    nodes = [
        helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[16, 16], strides=[16, 16]),
        helper.make_node("Flatten", ["p"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {"mean": "0.5,0.5,0.5", "std": "0.25,0.25,0.25"})
    onnx.save(model, path)
    return path


def redraw(img: Image.Image) -> Image.Image:
    """A crude 're-drawing' that keeps only the composition: smoothed,
    posterised, and every cell of a 4 × 4 grid painted upside down. The colour
    layout survives; the keypoints, the global hashes and the thumbnail's
    texture do not (a plain blur, by contrast, is found by pixels)."""
    a = np.asarray(ImageOps.posterize(img.filter(ImageFilter.GaussianBlur(12)), 4)).copy()
    ch, cw = a.shape[0] // 4, a.shape[1] // 4
    for y in range(0, 4 * ch, ch):
        for x in range(0, 4 * cw, cw):
            a[y:y + ch, x:x + cw] = a[y:y + ch, x:x + cw][::-1, ::-1]
    return Image.fromarray(a)


@pytest.fixture
def model(tmp_path) -> Path:
    return tiny_encoder(tmp_path / "tiny.onnx")


def _setup(cli, tmp_path, *extra):
    reg = tmp_path / "reg"
    reg.mkdir()
    for i in range(8):
        photo(700 + i * 37).save(reg / f"w{i}.png")
    assert cli(*extra, "init")[0] == 0
    rc, out, err = cli(*extra, "register", str(reg), "--each", "--owner", "Studio")
    assert rc == 0, err
    q = tmp_path / "redrawn.png"
    redraw(photo(700 + 3 * 37)).save(q)
    return q


def test_redrawn_image_is_found_only_with_the_model(cli, tmp_path, model):
    q = _setup(cli, tmp_path, "--image-model", str(model))
    rc, out, err = cli("--image-model", str(model), "--json", "check", str(q))
    assert rc == 1, err
    m = json.loads(out)["matches"][0]
    assert m["registered"]["path"].endswith("w3.png")
    sem = m["extra"]["image"]["semantic"]
    assert m["extra"]["image"]["kind"] == "semantic" and sem["similarity"] > 0.85
    assert sem["model"].startswith("tiny.onnx:sha256:")
    assert json.loads(out)["parameters"]["image"]["semantic_model"] == sem["model"]


def test_without_the_model_the_redrawing_is_not_claimed(cli, tmp_path):
    q = _setup(cli, tmp_path)
    rc, out, err = cli("check", str(q), "--format", "tsv")
    assert rc == 0, (out, err)


def test_a_broken_model_file_is_one_clear_error(cli, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    rc, out, err = cli("--image-model", str(bad), "init")
    assert rc == 5 and "not a usable ONNX model" in err and "Traceback" not in err
    rc, out, err = cli("--image-model", str(tmp_path / "missing.onnx"), "init")
    assert rc == 5 and "no such model file" in err
