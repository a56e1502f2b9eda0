"""Shared fixtures for the end-to-end CLI tests.

``cli(*args, home=...)`` runs ``copyscope [--home HOME] ARGS...`` and returns
``(rc, stdout, stderr)``. By default it calls ``copyscope.cli.main(argv)``
in-process and captures output with ``capsys``; ``subprocess=True`` runs the
installed binary instead (for anything that could hang, or that needs a real
process). In-process, an exception escaping ``main`` is turned into what the
interpreter would do with it (traceback on stderr, exit status 1), so the "no
traceback" assertions mean the same thing in both modes.
"""
from __future__ import annotations

import os
import shutil
import subprocess as sp
import sys
import traceback
from pathlib import Path
from typing import Callable

import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "copyscope" / "samples" / "text"

_DEFAULT = object()      # "use the home fixture" (``home=None`` means: pass no --home)


def copyscope_command() -> list[str]:
    """The installed ``copyscope`` script next to this interpreter, else ``python -m``."""
    exe = Path(sys.executable).with_name("copyscope")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("copyscope")
    return [found] if found else [sys.executable, "-m", "copyscope.cli"]


@pytest.fixture
def clean_env(tmp_path_factory, monkeypatch) -> None:
    """A predictable environment: no inherited workspace, a throw-away $HOME, no
    forced colour, and a fixed console width. The width is wide (250 columns) because
    copyscope's Rich stderr console hard-wraps long ``warning:`` lines at the console
    width (80 columns when nothing sets it); that bug has its own test
    (test_bad_input.py::test_long_path_warning_is_wrapped, which sets 80) and must not
    mask what the other tests check."""
    monkeypatch.delenv("COPYSCOPE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("user-home")))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("LINES", "25")
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8")


@pytest.fixture
def home(tmp_path, clean_env) -> Path:
    """Workspace directory for this test (not created: ``init`` does that)."""
    return tmp_path / "ws"


@pytest.fixture
def samples() -> Path:
    """The sample corpus shipped with copyscope (read-only: copy before editing)."""
    assert (SAMPLES / "MANIFEST.tsv").is_file(), SAMPLES
    return SAMPLES


@pytest.fixture
def cli(capsys, home, clean_env) -> Callable[..., tuple[int, str, str]]:
    fixture_home = home

    def run(*args: object, home: object = _DEFAULT, subprocess: bool = False,
            timeout: float = 120, cwd: Path | None = None) -> tuple[int, str, str]:
        chosen = fixture_home if home is _DEFAULT else home
        argv = ([] if chosen is None else ["--home", str(chosen)]) + [str(a) for a in args]
        if subprocess:
            proc = sp.run(copyscope_command() + argv, capture_output=True, timeout=timeout,
                          cwd=cwd, env=dict(os.environ), stdin=sp.DEVNULL)
            return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
                    proc.stderr.decode("utf-8", "replace"))
        assert cwd is None, "in-process runs use monkeypatch.chdir for the working directory"
        from copyscope.cli import main
        capsys.readouterr()
        try:
            rc = main(argv)
        except SystemExit as exc:              # what the interpreter would do
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:                  # noqa: BLE001 - an escaped exception is a crash
            sys.stderr.write(traceback.format_exc())
            rc = 1
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture
def registered_home(cli, home, samples) -> Path:
    """A workspace with the four sample works registered one per file."""
    rc, _, err = cli("init")
    assert rc == 0, err
    rc, out, err = cli("register", samples / "registered", "--each", "--owner", "Ann Writer",
                       "--license", "CC-BY-4.0")
    assert rc == 0, err
    assert len(out.splitlines()) == 4, out
    return home


# --- stderr contract (cli.main: every failure is one line on stderr) -------------

def stderr_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def assert_clean_failure(err: str, *, want: str | None = None) -> list[str]:
    """stderr is exactly one ``error:`` line (plus an optional ``hint:`` line), or
    only ``warning:`` lines; never a traceback. ``want`` picks which of the two.
    Returns the error/warning lines."""
    assert "Traceback" not in err, err
    lines = stderr_lines(err)
    assert lines, "expected an error or warning on stderr, got nothing"
    errors = [ln for ln in lines if ln.startswith("error: ")]
    hints = [ln for ln in lines if ln.startswith("hint: ")]
    warnings = [ln for ln in lines if ln.startswith("warning: ")]
    stray = [ln for ln in lines if ln not in errors + hints + warnings]
    assert not stray, f"stderr lines that are not error:/hint:/warning: {stray!r}\n--- stderr ---\n{err}"
    if errors:
        assert len(errors) == 1 and len(hints) <= 1 and not warnings, lines
        assert lines[0].startswith("error: "), lines
        kind = "error"
    else:
        assert warnings and not hints, lines
        kind = "warning"
    if want is not None:
        assert kind == want, lines
    return errors or warnings


def read_manifest(samples: Path) -> list[dict[str, str]]:
    """Rows of samples/text/MANIFEST.tsv as dicts (suspect, source, expected, kind)."""
    lines = (samples / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, ln.split("\t"))) for ln in lines[1:] if ln.strip()]


# --- PostgreSQL (tests/pgserver.py: a real server per xdist worker) ------------------

@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL server (tests/pgserver.py); skips when none is installed."""
    from pgserver import start_server
    server = start_server()
    if isinstance(server, str):
        pytest.skip(server)
    yield server
    server.stop()


@pytest.fixture
def pg_database_url(postgres_server) -> Callable[[], str]:
    """Each call: the ``postgresql://`` URL of a new, empty database (dropped after the test)."""
    made: list[str] = []

    def new() -> str:
        made.append(postgres_server.create_database())
        return postgres_server.url(made[-1])

    yield new
    for name in made:
        postgres_server.drop_database(name)


@pytest.fixture
def pg_schema_url(pg_database_url) -> Callable[[], tuple[str, str]]:
    """Each call: ``(url, schema)``, a new schema name (not created yet) in one
    database shared by the calls of this test: two calls are two tenants."""
    url: list[str] = []
    names = iter(range(1, 1_000_000))

    def new() -> tuple[str, str]:
        if not url:
            url.append(pg_database_url())
        return url[0], f"tenant_{next(names)}"

    return new
