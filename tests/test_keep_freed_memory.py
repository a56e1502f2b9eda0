"""The CLI, the service workers and check workers keep freed memory for reuse:
megabyte arrays allocated per check must not cost fresh pages (page faults) each time."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from copyscope.processes import keep_freed_memory
    keep_freed_memory()

def one_check():
    # A check's pattern: several megabyte arrays alive at once, then all freed,
    # which leaves a free heap top that glibc trims (and the next check faults in).
    arrays = [np.ones((3 << 20) // 8 + 512 * i) for i in range(10)]
    return sum(float(a[-1]) for a in arrays)

for _ in range(3):                       # warm up: the first blocks are new to any allocator
    one_check()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    one_check()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**clean, **env}, timeout=60)
    return int(out.stdout)


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    pages = 20 * 10 * (3 << 20) // 4096                # what 20 checks write
    assert _faults("default") > pages // 4
    assert _faults("tuned") < pages // 50


def test_the_users_own_malloc_settings_win():
    # The user asked for fresh mappings from 128 KiB up: left as asked.
    assert _faults("tuned", MALLOC_MMAP_THRESHOLD_="131072") > 20 * 10 * (3 << 20) // 4096 // 4
