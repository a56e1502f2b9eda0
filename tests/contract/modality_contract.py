"""The contract every modality plugin must honour, as a reusable pytest base class.

A new modality (code, image, audio...) gets the whole contract by subclassing::

    from contract.modality_contract import ModalityContract, Sample, SampleSet

    class TestImageModality(ModalityContract):
        def make_plugin(self):
            return ImageModality()

        def sample_pairs(self):
            return [SampleSet("png", copy=(query, registered), unrelated=(other, registered))]

``ModalityContract`` has no ``Test`` prefix, so pytest never collects it on its
own; only concrete subclasses run. Every test that takes ``case`` runs once per
:class:`SampleSet` returned by ``sample_pairs()`` (see ``pytest_generate_tests``).

Hooks a subclass may override:

* ``make_plugin()``            (required) a fresh plugin instance;
* ``sample_pairs()``           (required) list of :class:`SampleSet`;
* ``junk_samples()``           binary inputs the plugin must refuse (default: NUL-laden junk);
* ``document_text(plugin, fp)`` the text a passage's ``[start:end]`` indexes into.
"""
from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass

import numpy as np
import pytest

from copyscope.model import Artifact, Match
from copyscope.plugins import Modality


@dataclass(frozen=True)
class Sample:
    """One input file: its name (extension matters for sniffing) and raw bytes."""

    name: str
    data: bytes

    def artifact(self) -> Artifact:
        return Artifact(self.data, origin=self.name)


@dataclass(frozen=True)
class SampleSet:
    """A labelled group of samples for one language / format.

    ``copy`` is (query, registered) where the query copies the registered work;
    ``unrelated`` is (query, registered) where the two are independent.
    """

    label: str
    copy: tuple[Sample, Sample]
    unrelated: tuple[Sample, Sample]

    @property
    def samples(self) -> list[Sample]:
        seen: dict[tuple[str, bytes], Sample] = {}
        for s in (*self.copy, *self.unrelated):
            seen.setdefault((s.name, s.data), s)
        return list(seen.values())


def _junk_with_nuls(seed: int, n: int = 4096) -> bytes:
    """Random bytes with NULs scattered over both byte parities (so never UTF-16/32-like)."""
    rnd = random.Random(seed)
    buf = bytearray(rnd.randbytes(n))
    for i in range(0, n, 5):
        buf[i] = 0
    return bytes(buf)


VERSION_RE = r"^{name}\.[a-z0-9][a-z0-9_-]*/v[0-9]+$"


class ModalityContract:
    """Inherit this (``class TestXModality(ModalityContract)``) to run the contract."""

    # -- hooks -------------------------------------------------------------------
    def make_plugin(self) -> Modality:
        raise NotImplementedError("a modality contract test must define make_plugin()")

    def sample_pairs(self) -> list[SampleSet]:
        raise NotImplementedError("a modality contract test must define sample_pairs()")

    def junk_samples(self) -> list[Sample]:
        rnd = random.Random(7)
        return [
            Sample("random_with_nuls.bin", _junk_with_nuls(1)),
            Sample("random_with_nuls.txt", _junk_with_nuls(2, 20000)),   # a text-like name must not fool it
            Sample("png_header.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rnd.randbytes(2000)),
            Sample("elf_header", b"\x7fELF\x02\x01\x01\x00" + bytes(56) + rnd.randbytes(1000)),
            Sample("all_byte_values.dat", bytes(range(256)) * 8),
        ]

    def document_text(self, plugin: Modality, fp) -> str:  # noqa: ANN001
        """The string that passage spans index into (default: UTF-8 of the artifact)."""
        return fp.artifact.data.decode("utf-8")

    # -- parametrisation -----------------------------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "case" in metafunc.fixturenames:
            cases = self.sample_pairs()
            metafunc.parametrize("case", cases, ids=[c.label for c in cases])
        if "junk" in metafunc.fixturenames:
            junk = self.junk_samples()
            metafunc.parametrize("junk", junk, ids=[j.name for j in junk])

    @pytest.fixture
    def plugin(self) -> Modality:
        return self.make_plugin()

    def _threshold(self, plugin: Modality) -> float:
        return float(plugin.parameters().get("threshold", 0.5))

    # -- identity ------------------------------------------------------------------
    def test_implements_the_modality_protocol(self, plugin):
        assert isinstance(plugin, Modality)

    def test_name_and_version_are_nonempty_strings(self, plugin):
        assert isinstance(plugin.name, str) and plugin.name.strip() == plugin.name and plugin.name
        assert isinstance(plugin.version, str) and plugin.version

    def test_version_looks_like_modality_algo_vN(self, plugin):
        assert re.match(VERSION_RE.format(name=re.escape(plugin.name)), plugin.version), plugin.version

    def test_parameters_is_a_json_serialisable_dict(self, plugin):
        params = plugin.parameters()
        assert isinstance(params, dict) and params
        assert all(isinstance(k, str) for k in params)
        # round-trips exactly: no NaN, no tuples silently becoming lists, no objects
        assert json.loads(json.dumps(params, allow_nan=False, sort_keys=True)) == params

    def test_parameters_are_stable_across_instances(self, plugin):
        assert self.make_plugin().parameters() == plugin.parameters()

    def test_parameters_are_a_fresh_dict_each_call(self, plugin):
        # They are cached per parameters object; a caller (a run's report, a
        # threshold override) may write into what it got.
        first = plugin.parameters()
        first["threshold"] = -1.0
        first["algorithm"] = "changed"
        again = plugin.parameters()
        assert again["threshold"] != -1.0 and again["algorithm"] == plugin.version

    # -- accepts -------------------------------------------------------------------
    def test_accepts_every_sample(self, plugin, case):
        for s in case.samples:
            assert plugin.accepts(s.artifact()) is True, s.name

    def test_refuses_binary_junk(self, plugin, junk):
        assert b"\x00" in junk.data or junk.name.startswith("all_byte")
        assert plugin.accepts(junk.artifact()) is False

    # -- fingerprints ----------------------------------------------------------------
    def test_fingerprint_keys_are_uint64_and_deterministic(self, plugin, case):
        other = self.make_plugin()
        for s in case.samples:
            a = plugin.fingerprint(s.artifact())
            b = other.fingerprint(Artifact(bytes(s.data), origin=s.name))
            assert a.is_empty() is False
            for method in ("index_keys", "query_keys", "stat_keys"):
                ka, kb = getattr(a, method)(), getattr(b, method)()
                assert isinstance(ka, np.ndarray) and ka.dtype == np.uint64, (s.name, method, ka.dtype)
                assert ka.ndim == 1 and ka.shape[0] > 0, (s.name, method)
                np.testing.assert_array_equal(ka, kb, err_msg=f"{s.name}.{method} not deterministic")

    def test_fingerprint_carries_the_artifact(self, plugin, case):
        s = case.copy[0]
        fp = plugin.fingerprint(s.artifact())
        assert fp.modality == plugin.name
        assert fp.artifact.sha256 == s.artifact().sha256

    def test_index_keys_are_a_subset_of_query_keys(self, plugin, case):
        for s in case.samples:
            fp = plugin.fingerprint(s.artifact())
            idx, qry = fp.index_keys(), fp.query_keys()
            missing = np.setdiff1d(idx, qry)
            assert missing.shape[0] == 0, f"{s.name}: {missing.shape[0]} index keys never queried"
            assert idx.shape[0] <= qry.shape[0]

    def test_copy_pair_shares_index_keys(self, plugin, case):
        q, r = (plugin.fingerprint(s.artifact()) for s in case.copy)
        assert np.intersect1d(q.query_keys(), r.index_keys()).shape[0] > 0

    # -- verify ----------------------------------------------------------------------
    def _verify_copy(self, plugin, case) -> tuple[Match, object, object]:  # noqa: ANN001
        q, r = (plugin.fingerprint(s.artifact()) for s in case.copy)
        m = plugin.verify(q, r)
        assert isinstance(m, Match), f"{case.label}: copy pair not matched"
        return m, q, r

    def test_verify_copy_pair_is_a_copy(self, plugin, case):
        m, q, r = self._verify_copy(plugin, case)
        assert 0.0 <= m.score <= 1.0 and not math.isnan(m.score)
        assert m.score >= self._threshold(plugin)
        assert m.verdict == "copy"
        assert m.modality == plugin.name
        assert m.algorithm == plugin.version
        assert m.query_sha256 == q.artifact.sha256 and m.registered_sha256 == r.artifact.sha256
        assert 0.0 <= m.coverage_query <= 1.0 and 0.0 <= m.coverage_registered <= 1.0
        assert len(m.passages) >= 1

    def test_verify_copy_passages_point_into_both_documents(self, plugin, case):
        m, q, r = self._verify_copy(plugin, case)
        for side, fp in (("query", q), ("registered", r)):
            doc = self.document_text(plugin, fp)
            n_bytes = len(fp.artifact.data)
            for p in m.passages:
                span = getattr(p, side)
                assert 0 <= span.start < span.end <= len(doc), (side, span.start, span.end, len(doc))
                assert 0 <= span.byte_start < span.byte_end <= n_bytes, (side, span.byte_start, span.byte_end)
                assert 1 <= span.line_start <= span.line_end
                assert span.text == doc[span.start:span.end], side
                assert span.before == doc[max(0, span.start - len(span.before)):span.start]
                assert span.after == doc[span.end:span.end + len(span.after)]
                for a, b in span.matched:
                    assert 0 <= a < b <= span.end - span.start, (side, a, b)
                assert p.tokens > 0

    def test_verify_unrelated_pair_is_not_a_copy(self, plugin, case):
        q, r = (plugin.fingerprint(s.artifact()) for s in case.unrelated)
        m = plugin.verify(q, r)
        if m is not None:
            assert m.verdict == "below-threshold"
            assert 0.0 <= m.score < self._threshold(plugin)

    def test_verify_is_deterministic(self, plugin, case):
        m1, _, _ = self._verify_copy(plugin, case)
        q, r = (self.make_plugin().fingerprint(Artifact(bytes(s.data), origin=s.name)) for s in case.copy)
        m2 = self.make_plugin().verify(q, r)
        assert m2 is not None
        assert json.dumps(m1.to_json(), sort_keys=True) == json.dumps(m2.to_json(), sort_keys=True)
        assert m1.score == m2.score

    def test_match_to_json_is_json_serialisable(self, plugin, case):
        m, _, _ = self._verify_copy(plugin, case)
        doc = m.to_json()
        text = json.dumps(doc, allow_nan=False, ensure_ascii=False)
        back = json.loads(text)
        assert back == doc
        assert back["verdict"] == "copy" and back["modality"] == plugin.name
        assert len(back["passages"]) == len(m.passages)
