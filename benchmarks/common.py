"""What every benchmark shares: a description of the machine and appending results to BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores{mem}, Python {platform.python_version()}, {platform.system()}"


def command() -> str:
    return "uv run python -m " + " ".join(
        [sys.modules["__main__"].__spec__.name] + [shlex.quote(a) for a in sys.argv[1:]]
    )


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(title: str, body: str, notes: str = "") -> None:
    """Print the result and append it, with command, machine and date, to BENCHMARKS.md."""
    section = (
        f"\n### {title}\n\n"
        f"- command: `{command()}`\n"
        f"- machine: {machine()}\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}\n\n"
        f"{body}\n" + (f"\n{notes}\n" if notes else "")
    )
    print(section)
    if not BENCHMARKS_MD.exists():
        BENCHMARKS_MD.write_text("# Benchmarks\n\nEvery figure here was measured by the command above it.\n")
    with BENCHMARKS_MD.open("a") as f:
        f.write(section)
