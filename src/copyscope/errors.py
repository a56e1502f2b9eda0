"""One error tree for everything copyscope refuses to do.

Every error carries a one-line message meant for the user and the exit code the
CLI returns for it. Code never signals failure with ``None``/``False``/``""``:
it raises one of these.

::

    CopyscopeError (exit 2)
    ├── UsageError        (2)  bad flags, missing arguments, a bad pairs file
    ├── InputError        (2)  an input file we cannot use: binary, empty, undecodable,
    │   └── LimitError    (2)  larger than a documented limit, too many files, symlink loop
    ├── WorkspaceError    (3)  no workspace, workspace from a newer version, locked
    │   └── StorageError  (3)  the registry or index on disk is damaged
    ├── NotFoundError     (4)  a work, artifact or result file that does not exist
    ├── PluginError       (5)  a modality plugin that is missing, duplicated or broken
    └── VerificationFailed (6) a receipt, checkpoint or evidence package failed a named check

Exit codes 0 and 1 are reserved for "no match" and "matches found" (see docs/cli.md).
"""
from __future__ import annotations


class CopyscopeError(Exception):
    """Base class: ``str(err)`` is the user-facing one-line message."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # One line: multi-line messages break the CLI's "error: ..." contract.
        super().__init__(" ".join(message.split()))
        self.hint = hint

    @property
    def message(self) -> str:
        return str(self)

    def diagnostics(self) -> str:
        """Longer text for ``--verbose``: the message plus how to fix it."""
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class UsageError(CopyscopeError):
    exit_code = 2


class InputError(CopyscopeError):
    exit_code = 2


class LimitError(InputError):
    exit_code = 2


class WorkspaceError(CopyscopeError):
    exit_code = 3


class StorageError(WorkspaceError):
    exit_code = 3


class NotFoundError(CopyscopeError):
    exit_code = 4


class PluginError(CopyscopeError):
    exit_code = 5


class VerificationFailed(CopyscopeError):
    """``check`` names the failed check: file-hash, entry-signature, inclusion,
    checkpoint-signature, cosignature, consistency, manifest, receipt or key."""

    exit_code = 6

    def __init__(self, message: str, *, check: str) -> None:
        super().__init__(f"verification failed: {message}")
        self.check = check


EXIT_NO_MATCH = 0
EXIT_MATCH = 1
EXIT_INTERNAL = 70  # an unexpected bug: reported with a traceback hint, never silently
