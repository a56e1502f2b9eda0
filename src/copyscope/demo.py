"""The built-in demo: register the sample articles, check the suspects, write a report.

The samples (``copyscope/samples/text``, CC0) are original English and Chinese
articles with copies derived the ways copies appear in the wild: reposted inside
a blog page, lightly edited, pasted in part, converted to traditional
characters, saved as GB18030, mixed into a bilingual page, plus two innocent
articles on the same topics that must *not* match.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from copyscope.evidence import Result, write_bundle
from copyscope.progress import Progress
from copyscope.settings import Settings
from copyscope.workspace import RegisterOutcome, Workspace


@dataclass(frozen=True)
class DemoOutcome:
    registered: RegisterOutcome
    result: Result
    report: Path
    bundle: Path
    samples: Path


def samples_dir() -> Path:
    return Path(str(resources.files("copyscope").joinpath("samples/text")))


def run_demo(out_dir: Path, *, progress: Progress | None = None) -> DemoOutcome:
    """Fresh workspace in ``out_dir/workspace``; the report lands in ``out_dir``."""
    from copyscope.api import write_report  # noqa: PLC0415

    out_dir.mkdir(parents=True, exist_ok=True)
    home = out_dir / "workspace"
    if home.exists():
        shutil.rmtree(home)
    # Copy the samples next to the report so paths in the evidence are short and real.
    samples = out_dir / "samples"
    if samples.exists():
        shutil.rmtree(samples)
    shutil.copytree(samples_dir(), samples)
    settings = Settings(home=home)
    with Workspace.init(settings) as ws:
        registered = ws.register([samples / "registered"], owner="Demo Writer 演示作者",
                                 license="CC-BY-4.0", each=True, progress=progress)
        result = ws.check([samples / "suspects"], progress=progress)
    bundle = out_dir / "evidence.json"
    write_bundle(result.bundle(), bundle)
    report = write_report(result.bundle(), out_dir / "report.html")
    return DemoOutcome(registered, result, report, bundle, samples)
