"""Data benchmark: feature extraction speed (1 core vs all cores) and cache load time / memory
on a RAVDESS-size set: 24 actors x 60 recordings = 1,440 clips, 1280x720 at 29.97 fps, 48 kHz audio.

    uv run python -m benchmarks.data                 # full size (generation ~once, then cached)
    uv run python -m benchmarks.data --actors 2      # a quick look
    uv run python -m benchmarks.data --stamp         # cache load with vs without its .verified stamp

The set is written once by the demo generator (`emo.data.synth`) at real RAVDESS sizes and kept in
the cache folder. Appends its table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report, table
from emo.config import FeatureConfig
from emo.data.cache import prepare
from emo.data.synth import generate
from emo.parallel import usable_cores
from emo.paths import cache_root

# Run in a fresh interpreter so the timing includes imports and a cold process, as a trial sees it.
_LOAD_SNIPPET = """
import json, sys, time
def peak_mib():  # VmHWM: this process's own peak (ru_maxrss would carry over the forking parent's peak)
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
from emo.data.cache import prepare
fs = prepare(sys.argv[1], cache_dir=sys.argv[2] if len(sys.argv) > 2 else None, progress=False)
t_load = time.perf_counter() - t0
rss_load = peak_mib()
t1 = time.perf_counter()
checksum = float(fs.audio.sum()) + float(fs.video[:, :, ::8, ::8].sum())  # touch every page once
t_touch = time.perf_counter() - t1
print(json.dumps({"from_cache": fs.from_cache, "load_s": t_load, "touch_s": t_touch, "rss_load_mib": rss_load,
                  "rss_after_touch_mib": peak_mib(), "clips": len(fs), "bytes": fs.path.stat().st_size}))
"""


def load_once(root: Path, cache_dir: Path | None) -> dict:
    """Load the cache of `root` in a fresh interpreter, as a sweep trial's process would."""
    cmd = [sys.executable, "-c", _LOAD_SNIPPET, str(root)] + ([str(cache_dir)] if cache_dir else [])
    load = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    assert load["from_cache"], "the load run rebuilt the cache"
    return load


def load_rows(root: Path, cache_dir: Path | None) -> list[list]:
    load = load_once(root, cache_dir)
    return [
        [
            f"load cache ({load['bytes'] / 2**20:.0f} MiB, fresh process, imports included)",
            f"{load['load_s']:.2f} s",
            f"peak RSS {load['rss_load_mib']:.0f} MiB",
        ],
        [
            "first pass over every array page after load",
            f"{load['touch_s']:.2f} s",
            f"peak RSS {load['rss_after_touch_mib']:.0f} MiB",
        ],
    ]


def checksum_rows(root: Path) -> list[list]:
    """What a whole-file checksum would add to every load (RELIABILITY.md: a silent bit flip in the
    cache is not detected): crc32 and BLAKE2b over the mapped cache file, once from the page cache."""
    import hashlib
    import mmap
    import zlib

    path = prepare(root, progress=False).path
    rows = []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        view = memoryview(m)
        for name, fn in (
            ("crc32 (zlib)", lambda: zlib.crc32(view)),
            ("BLAKE2b (hashlib)", lambda: hashlib.blake2b(view).digest()),
        ):
            fn()  # the first pass pulls the file into the page cache
            t = time.perf_counter()
            fn()
            sec = time.perf_counter() - t
            rows.append([f"checksum the cache file, {name}", f"{sec:.2f} s", f"{len(m) / 2**20 / sec:.0f} MiB/s"])
        view.release()
    return rows


def stamp_rows(actors: int, repeats: int) -> list[list]:
    """Cache load with its `.verified` stamp in place (no crc32 pass) vs. without it (the crc32 of
    every feature byte is read, as after a change on disk), each in a fresh process, `repeats` times.
    The cache's size and layout depend only on the clip count and `FeatureConfig()`, not on the
    source media, so the sources here are the demo generator's small files (minutes to write, where
    the 1280x720 set takes half an hour); the cache is the same 1440 x (16 x 112 x 112 x 3 + 64 mels)."""
    from emo.data.cache import stamp_path

    root = cache_root() / f"bench-cache-size-{actors}"
    generate(root, actors=actors, seconds=3.5, modalities=(1, 3))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fs = prepare(root, FeatureConfig(), cache_dir=Path(tmp), progress=True, rebuild=True)
        path, mib = fs.path, fs.path.stat().st_size / 2**20
        del fs
        for label, drop_stamp in (("stamp matches: no crc32 pass", False), ("no stamp: crc32 of every byte", True)):
            secs, rss = [], []
            for _ in range(repeats):
                if drop_stamp:
                    stamp_path(path).unlink(missing_ok=True)
                load = load_once(root, Path(tmp))
                secs.append(load["load_s"])
                rss.append(load["rss_load_mib"])
            rows.append(
                [
                    f"load cache ({mib:.0f} MiB, fresh process, imports included), {label}",
                    f"{min(secs):.2f}-{max(secs):.2f} s",
                    f"{repeats} loads: " + ", ".join(f"{s:.2f}" for s in secs) + f" s; peak RSS <= {max(rss):.0f} MiB",
                ]
            )
    return rows


def ravdess_size_set(actors: int) -> Path:
    """The synthetic set at real RAVDESS sizes with `actors` x 60 recordings (written once, then reused)."""
    root = cache_root() / f"bench-ravdess-size-{actors}"
    generate(root, actors=actors, width=1280, height=720, fps=29.97, sample_rate=48_000, channels=2, seconds=3.5,
             modalities=(1, 3))  # fmt: skip
    return root


def ravdess_size_features(actors: int):
    """The feature set of the `actors`-actor RAVDESS-size set, writing the set first when it is missing."""
    root = cache_root() / f"bench-ravdess-size-{actors}"
    if not root.is_dir():
        print(f"writing the {actors}-actor RAVDESS-size set into {root} (once)", flush=True)
        ravdess_size_set(actors)
    return prepare(root, progress=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--actors", type=int, default=24)
    p.add_argument("--subset-actors", type=int, default=4, help="actors in the 1-core vs all-cores comparison")
    p.add_argument("--load-only", action="store_true", help="only time loading the set's cache in the default folder")
    p.add_argument("--checksum", action="store_true", help="with --load-only: also time checksumming the cache")
    p.add_argument(
        "--stamp",
        action="store_true",
        help="only time cache loads with and without the .verified stamp (small source media)",
    )
    p.add_argument("--repeats", type=int, default=3, help="with --stamp: loads of each kind")
    args = p.parse_args()
    if args.stamp:
        rows = stamp_rows(args.actors, args.repeats)
        report(
            f"Data: cache load with and without its verified stamp, {args.actors * 60} clips",
            table(["what", "time", "detail"], rows),
        )
        return
    if args.load_only:
        root = cache_root() / f"bench-ravdess-size-{args.actors}"
        rows = load_rows(root, None) + (checksum_rows(root) if args.checksum else [])
        body = table(["what", "speed / time", "detail"], rows)
        title = "Data: cache load" + (" and checksum cost" if args.checksum else "")
        report(f"{title}, {args.actors * 60} clips at RAVDESS size", body)
        return

    t0 = time.perf_counter()
    root = ravdess_size_set(args.actors)
    gen_s = time.perf_counter() - t0
    cfg = FeatureConfig()  # the real-data preset: 16 frames at 112 px, 64 mels over 3.5 s
    cores = usable_cores()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # 1 core vs all cores on the same subset (a ratio from one run: this machine is noisy)
        sub = Path(tmp) / "subset"
        for a in range(1, min(args.subset_actors, args.actors) + 1):
            (sub / f"Actor_{a:02d}").mkdir(parents=True)
            for f in (root / f"Actor_{a:02d}").iterdir():
                (sub / f"Actor_{a:02d}" / f.name).symlink_to(f)
        speeds = {}
        for workers in (1, cores):
            t = time.perf_counter()
            fs = prepare(sub, cfg, cache_dir=Path(tmp) / f"c{workers}", workers=workers, rebuild=True)
            speeds[workers] = len(fs) / (time.perf_counter() - t)
            rows.append(
                [
                    f"extract {len(fs)} clips, {workers} process(es)",
                    f"{speeds[workers]:.2f} clips/s",
                    f"{len(fs) / speeds[workers]:.1f} s",
                ]
            )
        # the full set with every core, then load its cache in a fresh process
        t = time.perf_counter()
        fs = prepare(root, cfg, cache_dir=Path(tmp) / "full", workers=cores, rebuild=True)
        full_s = time.perf_counter() - t
        rows.append(
            [
                f"extract all {len(fs)} clips, {cores} processes",
                f"{len(fs) / full_s:.2f} clips/s",
                f"{full_s:.1f} s",
            ]
        )
        del fs
        rows += load_rows(root, Path(tmp) / "full")
    ratio = speeds[cores] / speeds[1]
    body = table(["what", "speed / time", "detail"], rows)
    notes = (
        f"{cores} processes extract {ratio:.2f}x as fast as 1. Generating the {args.actors}-actor set "
        f"(once; reused after) took {gen_s:.0f} s. Settings: `FeatureConfig()` (16 frames, 112 px, "
        "Haar face crop, 64 mels, 3.5 s)."
    )
    report(f"Data: extraction and cache load, {args.actors * 60} clips at RAVDESS size", body, notes)


if __name__ == "__main__":
    main()
