"""Helpers for tests that watch a real process (a sweep driver, a Ray head) as it runs."""

from __future__ import annotations

import threading
import time


class Lines:
    """Collects a subprocess's output lines in a thread, so the test can wait for one."""

    def __init__(self, proc):
        self.lines: list[str] = []
        self.proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pred, timeout: float) -> list[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred(self.lines):
                return self.lines
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError("never happened; output:\n" + "".join(self.lines[-60:]))


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), read from /proc (Linux)."""
    from pathlib import Path

    parent_of = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, ...
        except OSError:  # the process ended meanwhile
            continue
        parent_of[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, pp in parent_of.items() if pp in frontier]
        found += children
        frontier = children
    return found
