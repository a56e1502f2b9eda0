"""Durability primitives shared by the stores that must survive a crash."""
from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """fsync a directory, so a file renamed into it survives a power loss
    (the rename is an entry of the directory, not of the file)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
