"""Shared by the scale benchmarks: the CLI next to this Python, timestamped log
lines, what ``/usr/bin/time -v`` measured, and disk use."""
from __future__ import annotations

import os
import re
import resource
import sys
import time
from pathlib import Path

def copyscope_bin() -> str:
    exe = Path(sys.executable).with_name("copyscope")
    if not exe.exists():
        raise SystemExit(f"copyscope CLI not found next to {sys.executable}")
    return str(exe)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


_TIME_V = (("user_s", r"User time \(seconds\): ([\d.]+)"),
           ("sys_s", r"System time \(seconds\): ([\d.]+)"),
           ("cpu_pct", r"Percent of CPU this job got: (\d+)%"),
           ("fs_outputs", r"File system outputs: (\d+)"),
           ("vol_ctx_switches", r"Voluntary context switches: (\d+)"))


def time_v(tv: Path | None) -> dict:
    """Peak RSS (MiB), CPU times and a few counters from a ``time -v -o`` file; without
    one, the peak RSS of this process's children."""
    if tv is None or not tv.exists():
        return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    txt = tv.read_text()
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", txt)
    res: dict = {"peak_rss_mib": int(m.group(1)) / 1024 if m else None}
    for key, pat in _TIME_V:
        m = re.search(pat, txt)
        res[key] = float(m.group(1)) if m else None
    return res


def du(path: Path) -> int:
    """Bytes allocated under ``path`` (blocks, as ``du`` counts them)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total
