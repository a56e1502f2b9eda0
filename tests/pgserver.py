"""A real, throw-away PostgreSQL server for the tests.

The fixtures below live in ``tests/conftest.py``; any test can ask for them:

``postgres_server`` (session)
    A :class:`PgServer` started once per pytest(-xdist) worker: ``initdb`` in a
    fresh temporary directory, listening on a free loopback TCP port and on a
    unix socket in that directory, ``fsync=off``; stopped at the end of the
    session (``pg_ctl stop -m immediate``) and its directory removed. Tests that
    use it are **skipped** when no ``initdb``/``pg_ctl`` is found on ``PATH`` or
    in ``/usr/lib/postgresql/*/bin`` (CI installs the ``postgresql`` package,
    scripts/apt-packages.txt). Run as root, the server runs as ``nobody``
    (initdb refuses root).

``pg_database_url`` (function) -> ``Callable[[], str]``
    Each call creates a new, empty database and returns its URL,
    ``postgresql://postgres@127.0.0.1:PORT/NAME`` (trust authentication, no
    password). The databases are dropped when the test ends.

``pg_schema_url`` (function) -> ``Callable[[], tuple[str, str]]``
    Each call returns ``(url, schema)``: a new schema name, not created yet
    (``make_engine(url, schema=...)`` creates it), in one database private to
    the test, so two calls are two tenants of the same database.

Example::

    def test_tenant(pg_schema_url, tmp_path):
        url, schema = pg_schema_url()
        settings = Settings(home=tmp_path / "home", db_url=url, db_schema=schema)
        with api.init(settings) as ws:
            ...

The server's databases use an ICU ``en-US`` default collation when the server
has ICU (Debian's does): text then sorts unlike SQLite's byte order, so code
that leans on SQL ``ORDER BY`` of text shows up in tests.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

UNPRIVILEGED = "nobody"


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: from PATH, else the newest
    ``/usr/lib/postgresql/<version>/bin``; None when there is none."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(os.path.realpath(initdb)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    for candidate in reversed(found):
        d = Path(candidate).parent
        if (d / "pg_ctl").exists():
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServerError(RuntimeError):
    pass


class PgServer:
    """One PostgreSQL cluster in a temporary directory (see the module docstring)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        root = os.geteuid() == 0
        # initdb refuses root: the cluster then belongs to an unprivileged user, in a
        # directory that user can reach (/tmp, not a root-only $TMPDIR).
        self.as_user: list[str] = self._drop_privileges_prefix() if root else []
        self.root = Path(tempfile.mkdtemp(prefix="copyscope-pg-", dir="/tmp" if root else None))
        if root:
            pw = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._admin = None

    # -- life cycle -------------------------------------------------------------------
    @staticmethod
    def _drop_privileges_prefix() -> list[str]:
        try:
            pw = pwd.getpwnam(UNPRIVILEGED)
        except KeyError:
            raise PgServerError(f"running as root and there is no user {UNPRIVILEGED!r} to run PostgreSQL as") from None
        if shutil.which("setpriv"):
            return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
        if shutil.which("runuser"):
            return ["runuser", "-u", UNPRIVILEGED, "--"]
        raise PgServerError("running as root and neither setpriv nor runuser is available to drop privileges")

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        env.pop("PGDATA", None)
        return subprocess.run([*self.as_user, *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, cwd=self.root, timeout=120)

    def _initdb(self) -> None:
        base = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        attempts = (["--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US"],
                    ["--locale=C.UTF-8"], ["--no-locale"])
        for extra in attempts:
            proc = self._run(*base, *extra)
            if proc.returncode == 0:
                return
            shutil.rmtree(self.data, ignore_errors=True)
        raise PgServerError(f"initdb failed: {proc.stderr.strip()[-2000:]}")

    def start(self) -> "PgServer":
        self._initdb()
        conf = self.data / "postgresql.conf"
        base_conf = conf.read_text(encoding="utf-8")
        for _ in range(5):          # a port taken between choosing and binding: choose again
            self.port = _free_port()
            conf.write_text(base_conf + "\n".join([
                "listen_addresses = '127.0.0.1'",
                f"port = {self.port}",
                f"unix_socket_directories = '{self.root}'",
                "fsync = off", "synchronous_commit = off", "full_page_writes = off",
                "shared_buffers = 32MB", "max_connections = 100",
            ]) + "\n", encoding="utf-8")
            proc = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                             "-w", "-t", "60", "start")
            if proc.returncode == 0:
                return self
        log = self.log.read_text(encoding="utf-8", errors="replace")[-2000:] if self.log.exists() else ""
        raise PgServerError(f"pg_ctl start failed: {proc.stdout.strip()} {proc.stderr.strip()}\n{log}")

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases --------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self):  # noqa: ANN201 - a psycopg connection
        if self._admin is None:
            import psycopg  # noqa: PLC0415
            self._admin = psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                          autocommit=True)
        return self._admin

    def create_database(self) -> str:
        """A new, empty database; returns its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.admin().execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.admin().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server() -> PgServer | str:
    """A started server, or the reason there cannot be one (for ``pytest.skip``)."""
    bindir = find_bindir()
    if bindir is None:
        return "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin)"
    server = PgServer(bindir)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise
