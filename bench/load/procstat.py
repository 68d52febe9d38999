"""CPU and memory of server processes, read from Linux /proc (the benchmark never imports them).

`sample_proc(pid)` reads a process's CPU time (utime + stime of /proc/<pid>/stat, all
threads, and of each thread) and its resident set (VmRSS, the high-water mark VmHWM,
RssAnon, RssFile of /proc/<pid>/status). `combine` folds the samples of the members of one
cluster into one: CPU seconds add up (the cluster's cost), the RSS figures are those of the
largest member (comparable to a single-member run), and the per-thread times are kept side
by side (thread IDs are unique across processes), so the busiest thread of any member shows.

`reset_peak_rss(pid)` writes 5 to /proc/<pid>/clear_refs, which resets VmHWM to the current
RSS (Linux >= 4.0): the peak of one phase (a snapshot being sent) can then be read alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_s: float
    rss_bytes: int
    rss_peak_bytes: int
    # RSS split: anonymous memory (heap: Python objects, indexes) vs file-backed pages
    # (mmap'd files such as LMDB's data file, which the kernel can drop and re-read).
    rss_anon_bytes: int = 0
    rss_file_bytes: int = 0
    # CPU seconds of each thread (tid -> s): the busiest thread bounds a server whose hot
    # path is serial (one event loop), however many cores the machine has.
    thread_cpu_s: tuple[tuple[int, float], ...] = ()


def _stat_cpu_s(path: str) -> float:
    with open(path, "rb") as f:
        stat = f.read().decode()
    # The command name (field 2) may contain spaces; the fields after its ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


def busiest_thread_cpu_s(before: ProcSample, after: ProcSample) -> float:
    """The largest CPU time one thread used between two samples."""
    old = dict(before.thread_cpu_s)
    return max((cpu - old.get(tid, 0.0) for tid, cpu in after.thread_cpu_s), default=0.0)


def sample_proc(pid: int) -> ProcSample:
    """CPU seconds so far (whole process and per thread) and RSS of `pid` (Linux /proc)."""
    cpu_s = _stat_cpu_s(f"/proc/{pid}/stat")
    threads = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            threads.append((int(tid), _stat_cpu_s(f"/proc/{pid}/task/{tid}/stat")))
        except FileNotFoundError:  # the thread ended between listdir and open
            continue
    fields_kib = {"VmRSS": 0, "VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in fields_kib:
                fields_kib[name] = int(rest.split()[0])
    return ProcSample(
        cpu_s=cpu_s, rss_bytes=fields_kib["VmRSS"] * 1024,
        rss_peak_bytes=fields_kib["VmHWM"] * 1024,
        rss_anon_bytes=fields_kib["RssAnon"] * 1024, rss_file_bytes=fields_kib["RssFile"] * 1024,
        thread_cpu_s=tuple(threads),
    )


def sample_procs(pids: Sequence[int]) -> ProcSample | None:
    """One combined sample of all `pids` (None when there are none)."""
    return combine([sample_proc(pid) for pid in pids]) if pids else None


def combine(samples: Sequence[ProcSample]) -> ProcSample:
    """CPU summed over the processes; RSS figures of the largest process."""
    if len(samples) == 1:
        return samples[0]
    return ProcSample(
        cpu_s=sum(s.cpu_s for s in samples),
        rss_bytes=max(s.rss_bytes for s in samples),
        rss_peak_bytes=max(s.rss_peak_bytes for s in samples),
        rss_anon_bytes=max(s.rss_anon_bytes for s in samples),
        rss_file_bytes=max(s.rss_file_bytes for s in samples),
        thread_cpu_s=tuple(t for s in samples for t in s.thread_cpu_s),
    )


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM of `pid` to its current RSS; False where the kernel does not allow it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True
