"""A check's helper thread: present on a multi-core machine, off in ``check
--jobs`` workers, fresh after a fork; and an image check gives the same
matches with it as without it, whichever thread fits which candidate."""
from __future__ import annotations

import threading
import pytest
from PIL import ImageFilter, ImageOps

from copyscope import processes
from copyscope.image import geometry

from test_image_plugin import _photo_workspace, photo


@pytest.fixture
def helper_state(monkeypatch):
    """Two cores as far as the helper is concerned; the module state restored after."""
    monkeypatch.setattr(processes, "auto_jobs", lambda: 2)
    monkeypatch.setattr(processes, "_helper", None)
    monkeypatch.setattr(processes, "_helper_off", False)


def test_one_helper_per_process_and_none_when_turned_off(helper_state, monkeypatch):
    first = processes.helper_thread()
    assert first is not None and processes.helper_thread() is first
    # a forked child inherits the parent's pool object but not its thread
    monkeypatch.setattr(processes, "_helper", (-1, first))
    assert processes.helper_thread() not in (None, first)
    processes.no_helper_thread()
    assert processes.helper_thread() is None


def test_no_helper_on_one_core(monkeypatch):
    monkeypatch.setattr(processes, "auto_jobs", lambda: 1)
    monkeypatch.setattr(processes, "_helper", None)
    monkeypatch.setattr(processes, "_helper_off", False)
    assert processes.helper_thread() is None


def test_faiss_runs_one_openmp_thread_on_every_thread():
    """OpenMP's thread count is per calling thread: set only on the main thread,
    the helper's searches started a spinning team that took the main thread's core."""
    seen = []

    def probe() -> None:
        faiss = geometry._faiss()
        seen.append(faiss.omp_get_max_threads())

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert seen == [1]


def _matches(ws, queries):
    out = []
    for q in queries:
        res = ws.check([str(q)], media=False)
        out.append(sorted((m.registered_path, round(m.score, 6), m.extra["image"]["inliers"],
                           m.extra["image"]["photometric_agreement"], m.verdict) for m in res.matches))
    return out


def test_image_check_is_the_same_with_the_helper_as_without(helper_state, tmp_path, monkeypatch):
    ws, reg = _photo_workspace(tmp_path, range(400, 412))
    queries = []
    edits = {"crop": lambda im: im.crop((60, 40, 600, 420)), "mirror": ImageOps.mirror,
             "blur": lambda im: im.filter(ImageFilter.GaussianBlur(2)), "other": lambda im: photo(999)}
    for i, (name, edit) in enumerate(edits.items()):
        q = tmp_path / f"q-{name}.jpg"
        edit(photo(400 + i)).save(q, quality=80)
        queries.append(q)
    with_helper = _matches(ws, queries)
    assert processes.helper_thread() is not None
    assert all(found for found in with_helper[:3])           # the copies are found ...
    # ... and the candidates did reach the helper: more than one was verified
    refs = []
    original = ws.modalities["image"].prefetch

    def counting(query, candidates):
        refs.append(len(candidates))
        return original(query, candidates)

    monkeypatch.setattr(ws.modalities["image"], "prefetch", counting)
    assert _matches(ws, queries) == with_helper and max(refs) >= 2

    # A helper kept busy: every fit is taken back and computed on the checking thread.
    gate = threading.Event()
    busy = processes.helper_thread().submit(gate.wait, 30)
    try:
        assert _matches(ws, queries) == with_helper
    finally:
        gate.set()
        busy.result()
    processes.no_helper_thread()
    assert _matches(ws, queries) == with_helper
    ws.close()
