"""Build or load the feature cache of a RAVDESS folder and print what is in it.

    python -m emo.data prepare --data_root /path/to/RAVDESS       # real data, `ravdess` preset
    python -m emo.data prepare                                    # the built-in synthetic demo set
    python -m emo.data prepare --data_root DIR --n_mels 128 --num_frames 8 --workers 2

The summary lists clips per class, actor and modality, every skipped file with its reason, the cache
file and its size, and the seconds taken. A second run with the same files and settings loads the
cache and decodes nothing.
"""

from __future__ import annotations

import json
import sys

from emo.cli import Parser, add_feature_flags, add_flag, fail, given
from emo.config import FEATURE_PRESETS, feature_preset
from emo.data.cache import FeatureSet, prepare
from emo.data.catalog import DataRootError


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def format_summary(fs: FeatureSet) -> str:
    s = fs.summary()
    how = "loaded from cache (nothing decoded)" if fs.from_cache else "built"
    lines = [f"{s['clips']} clips from {fs.root} ({how} in {s['seconds']:.2f} s)"]
    lines.append("  per class:    " + ", ".join(f"{k} {v}" for k, v in s["per_class"].items()))
    lines.append("  per actor:    " + ", ".join(f"{k}: {v}" for k, v in s["per_actor"].items()))
    lines.append("  per modality: " + ", ".join(f"{k} {v}" for k, v in s["per_modality"].items()))
    if s["crop"]:
        lines.append("  video crop:   " + ", ".join(f"{k} {v}" for k, v in s["crop"].items()))
    lines.append(f"  skipped files: {len(s['skipped'])}")
    lines += [f"    {x['path']}: {x['reason']}" for x in s["skipped"]]
    if s["notes"]:
        lines.append(f"  notes: {len(s['notes'])}")
        lines += [f"    {x['path']}: {x['note']}" for x in s["notes"]]
    lines.append(f"  cache: {s['cache_path']} ({_size(s['cache_bytes'])})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m emo.data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="build or load the feature cache and print a summary")
    add_flag(p, "data_root", help="RAVDESS folder (searched recursively); default: the built-in demo set")
    add_flag(
        p,
        "preset",
        choices=list(FEATURE_PRESETS),
        help="feature settings (default: ravdess; demo without --data_root)",
    )
    add_flag(
        p,
        "cache_dir",
        help="where feature caches live (default: $EMO_CACHE_DIR/features or ~/.cache/emo-sweeps/features)",
    )
    add_flag(p, "workers", type=int, help="extraction processes (default: every usable core)")
    add_flag(p, "rebuild", action="store_true", help="extract again even if the cache matches")
    add_flag(p, "quiet", action="store_true", help="no progress bar")
    add_flag(p, "json", action="store_true", help="print the summary as JSON instead")
    fields = add_feature_flags(p)
    args = parser.parse_args(argv)

    try:
        if args.data_root is None:
            from emo.data.synth import demo_root

            data_root, preset = demo_root(progress=not args.quiet), args.preset or "demo"
        else:
            data_root, preset = args.data_root, args.preset or "ravdess"
        cfg = feature_preset(preset).replace(**given(args, fields))
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        fs = prepare(
            data_root,
            cfg,
            cache_dir=args.cache_dir,
            workers=args.workers,
            progress=not args.quiet,
            rebuild=args.rebuild,
        )
    except (DataRootError, ValueError) as e:  # (a cache folder that cannot be written is a ValueError too)
        fail(str(e))
    except OSError as e:  # anything else the filesystem refused, e.g. while removing a stale cache
        fail(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
    print(json.dumps(fs.summary(), indent=2) if args.json else format_summary(fs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
