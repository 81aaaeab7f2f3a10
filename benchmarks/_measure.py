"""Measuring helpers shared by the benchmark scripts: peak RSS (``/proc/self/status``),
CPU used by other processes during a section (the machine is shared), best-of timing and
table formatting.  Imported by the scripts and by their child processes, which run the
script file itself (so this folder is on ``sys.path``)."""

from __future__ import annotations

import math
import os
import time


def _status_kib(key: str) -> int:
    """A ``/proc/self/status`` field (``VmRSS``, ``VmHWM``) in KiB, -1 if absent."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") <= _status_kib("VmRSS") + 64


class _Foreign:
    """CPU time used by *other* processes (and stolen by the hypervisor) during a section:
    busy jiffies of ``/proc/stat`` minus this process's (and its waited-for children's)
    own CPU time.  The machine is shared, so every section reports it."""

    def __init__(self):
        self.ncpu = os.cpu_count() or 1
        self.start = self._sample()

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as fh:
                vals = [int(v) for v in fh.readline().split()[1:9]]
            busy = (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            busy = math.nan
        ot = os.times()
        own = ot.user + ot.system + ot.children_user + ot.children_system
        return time.perf_counter(), busy, own

    def stop(self) -> float:
        """Fraction of all CPUs used by others since construction."""
        t1, b1, o1 = self._sample()
        t0, b0, o0 = self.start
        wall = max(t1 - t0, 1e-9)
        return max(0.0, (b1 - b0) - (o1 - o0)) / (wall * self.ncpu)


def _best_of(fn, repeats: int):
    """Wall times of ``repeats`` calls of ``fn`` (its result is dropped before the next)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out
    return min(times), times


def _fmt_times(times) -> str:
    return "[" + ", ".join(f"{t:.3f}" for t in times) + "]"


def _verdict(ok) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")
