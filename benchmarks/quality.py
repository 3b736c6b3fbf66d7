"""Training quality: the default recipes (no search) over actor folds x seeds, every method, 8 and 4 classes.

    uv run python -m benchmarks.quality                                  # demo set + real speech16k: everything
    uv run python -m benchmarks.quality --sets demo --methods gated audio --classes 8
    uv run python -m benchmarks.quality --sets speech16k --folds 4 --seeds 0 1
    uv run python -m benchmarks.quality --sets demo --set lr=3e-3 --set freq_mask=10   # a candidate default
    uv run python -m benchmarks.quality --compare runs/quality/BEFORE.parquet runs/quality/AFTER.parquet
    uv run python -m benchmarks.quality --sets demo --frozen-encoders     # fusion heads over frozen encoders
    uv run python -m benchmarks.quality --sets demo --frozen-encoders --set video_gray=false   # as emo.train_encoders

Two sets: `demo` (the built-in synthetic set, every registered method) and `speech16k` (the real
RAVDESS audio-only speech of actors 01-18 in ../shared/ravdess/speech16k, audio-only ResNet18). Each
run is `emo.train.fit` on fold k of the report's confirmation folds (`TrainConfig.folds`), so its test
actors never chose anything. Per method and class count it prints, and appends to BENCHMARKS.md:
test Macro-F1 and accuracy (mean +- sd over folds x seeds), collapsed runs (the best epoch's test
predictions cover fewer than half the classes), epochs until validation Macro-F1 first reaches 90% of
its best, and seconds per epoch; then where each goal of the training-quality issue stands. Every run
is also a row of a Parquet file (curves included) under runs/quality/.

Runs go to `--workers` processes (default: every usable core) with one torch thread each; seconds
per epoch are measured that way, with the other workers busy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import report, table
from emo.config import FUSIONS, TrainConfig
from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE_COLUMN

ROOT = Path(__file__).resolve().parents[1]
SPEECH16K = ROOT.parent / "shared" / "ravdess" / "speech16k"
SETS = ("demo", "speech16k")


def recipe(set_name: str, speech_root: Path) -> dict:
    """The default recipe of a set, as the sweeps and the report run it with no flags: the demo set's
    fixed settings and epoch budget, or the real-data budget with the guide's --use_resnet_audio."""
    from emo.config import DEMO_TRAIN
    from sweeps.spec import DATA_BUDGET

    if set_name == "demo":
        return dict(DEMO_TRAIN)
    return {"data_root": str(speech_root), "use_resnet_audio": True, "epochs": DATA_BUDGET["max_epochs"]}


def collapsed(pred: list[int], num_classes: int) -> bool:
    """A run whose best-epoch test predictions use fewer than half the classes has collapsed."""
    return len(set(pred)) < num_classes / 2


def epochs_to_90(val_f1: list[float]) -> int:
    """The first epoch (1-based) whose validation Macro-F1 reaches 90% of the run's best."""
    best = max(val_f1)
    return next(i + 1 for i, f in enumerate(val_f1) if f >= 0.9 * best)


def run_one(job: dict) -> dict:
    """One fit in a worker process: the job's config, its test scores and curves."""
    from emo.data import load_data
    from emo.train import fit

    cfg = TrainConfig(**job["config"])
    data = load_data(cfg, progress=False)
    t0 = time.perf_counter()
    res = fit(cfg, data, checkpoint_dir=job.get("checkpoint_dir"))
    hist = res["history"]
    val = [h[EPOCH_VAL_F1] for h in hist]
    rec, pred = np.asarray(res["test/recordings"]), np.asarray(res["test/pred"])
    actor, truth = np.asarray(data.actors)[rec], data.labels(cfg.num_classes)[rec]
    by_actor = {str(a): float((pred[actor == a] == truth[actor == a]).mean()) for a in np.unique(actor)}
    return {
        **{k: job[k] for k in ("set", "method", "num_classes", "fold", "seed")},
        "test_f1": res["test/f1"],
        "test_acc": res["test/acc"],
        "test_acc_by_actor": json.dumps(by_actor),  # {actor: accuracy on that test actor's clips}
        "pred_classes": len(set(res["test/pred"])),
        "collapsed": collapsed(res["test/pred"], cfg.num_classes),
        "epochs_run": res["epochs_run"],
        "best_epoch": res["best_epoch"],
        OBJECTIVE_COLUMN: res[EPOCH_VAL_F1],
        "precision": res["precision"],
        "epochs_to_90": epochs_to_90(val),
        "s_per_epoch": statistics.median(h["time/epoch_s"] for h in hist),
        "val_f1": val,
        "train_loss": [h["train/loss"] for h in hist],
        "seconds": time.perf_counter() - t0,
        "config": json.dumps(cfg.to_dict()),
    }


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --set takes KEY=VALUE, got {item!r}")
        out[key.strip()] = _value(value.strip())
    TrainConfig().replace(**out)  # unknown keys or bad values fail now, naming the valid ones
    return out


FROZEN = "/frozen"  # the label of a method trained over frozen encoders: "gated/frozen"


def plan(ns, overrides: dict, encoders: Path | None = None) -> list[dict]:
    """Every run. With `encoders` (a folder), two stages: the audio- and video-only runs save their
    checkpoints there, and each fusion method trains a head over the frozen encoders of the audio- and
    video-only runs of its own fold, seed and class count (labelled METHOD/frozen; phase 2)."""
    jobs = []
    for set_name in ns.sets:
        methods = [m for m in ns.methods if set_name == "demo" or m == "audio"]
        base = recipe(set_name, ns.speech_root)
        for method in methods:
            for nc in ns.classes:
                for fold in range(ns.folds):
                    for seed in ns.seeds:
                        cfg = {**base, **overrides, "fusion": method, "num_classes": nc, "folds": ns.folds,
                               "fold": fold, "seed": seed}  # fmt: skip
                        job = dict(set=set_name, method=method, num_classes=nc, fold=fold, seed=seed, config=cfg)
                        if encoders is not None and method in ("audio", "video"):
                            job["checkpoint_dir"] = str(encoders / f"{method}-c{nc}-s{seed}-fold{fold}")
                        elif encoders is not None:
                            job["method"], job["phase"] = method + FROZEN, 2
                            for st in ("audio", "video"):
                                cfg[f"{st}_frontend"] = "own"
                                cfg[f"{st}_encoder"] = str(encoders / f"{st}-c{nc}-s{seed}-{{split}}")
                        TrainConfig(**cfg)
                        jobs.append(job)
    # Longest first (ResNet18 on real speech, then the methods that read video), so the pool ends together.
    cost = {"speech16k": 0, "demo": 1}
    jobs.sort(key=lambda j: (cost[j["set"]], j["method"] == "audio"))
    return jobs


def table_order(set_name: str, method: str, num_classes: int) -> tuple:
    """Where a (set, method, classes) line goes in a table: by set, 8 classes first, methods in registry order."""
    return SETS.index(set_name), -num_classes, method.endswith(FROZEN), FUSIONS.index(method.removesuffix(FROZEN))


def summarize(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["set"], r["method"], r["num_classes"]), []).append(r)
    out = []
    for (set_name, method, nc), rs in groups.items():
        f1 = [r["test_f1"] for r in rs]
        acc = [r["test_acc"] for r in rs]
        sd = statistics.stdev(f1) if len(f1) > 1 else 0.0
        out.append(
            dict(
                set=set_name, method=method, num_classes=nc, runs=len(rs), f1=statistics.mean(f1), f1_sd=sd,
                acc=statistics.mean(acc), acc_sd=statistics.stdev(acc) if len(acc) > 1 else 0.0,
                collapsed=sum(r["collapsed"] for r in rs), to90=statistics.mean(r["epochs_to_90"] for r in rs),
                epochs=statistics.mean(r["epochs_run"] for r in rs),
                s_epoch=statistics.median(r["s_per_epoch"] for r in rs),
            )
        )  # fmt: skip
    return sorted(out, key=lambda s: table_order(s["set"], s["method"], s["num_classes"]))


def by_actor(rows: list[dict]) -> dict[str, tuple[list[str], list[list]]]:
    """Per set: test accuracy on each test actor's clips, per method and class count, the mean over
    the runs that tested that actor (its fold's seeds). Where a method fails, this says on whom."""
    groups: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:
        per = groups.setdefault((r["set"], r["method"], r["num_classes"]), {})
        for a, acc in json.loads(r["test_acc_by_actor"]).items():
            per.setdefault(a, []).append(acc)
    tables = {}
    for set_name in sorted({g[0] for g in groups}, key=SETS.index):
        keys = sorted((g for g in groups if g[0] == set_name), key=lambda g: table_order(*g))
        actors = sorted({a for g in keys for a in groups[g]}, key=int)
        body = [
            [g[1], g[2], *(f"{statistics.mean(groups[g][a]):.2f}" if a in groups[g] else "-" for a in actors)]
            for g in keys
        ]
        tables[set_name] = (["method", "classes", *(f"actor {a}" for a in actors)], body)
    return tables


def goals(summary: list[dict]) -> list[list[str]]:
    """The training-quality issue's goals that these rows can speak to: goal, value, met."""
    by = {(s["set"], s["method"], s["num_classes"]): s for s in summary}
    rows = []

    def add(goal: str, value: str, met: bool) -> None:
        rows.append([goal, value, "met" if met else "not met"])

    for nc in (8, 4):
        # (the goals are the end-to-end methods'; METHOD/frozen rows stand beside them)
        demo = {m: s for (st, m, c), s in by.items() if st == "demo" and c == nc and not m.endswith(FROZEN)}
        if "gated" in demo:
            add(f"demo {nc} classes: gated >= 0.85", f"{demo['gated']['f1']:.3f}", demo["gated"]["f1"] >= 0.85)
        if demo:
            n = sum(s["collapsed"] for s in demo.values())
            add(f"demo {nc} classes: 0 collapsed runs", f"{n} of {sum(s['runs'] for s in demo.values())}", n == 0)
        if nc != 8:
            continue
        for m in ("audio", "video"):
            if m in demo:
                add(f"demo 8: {m}-only >= 0.42", f"{demo[m]['f1']:.3f}", demo[m]["f1"] >= 0.42)
        if "audio" in demo and "video" in demo:
            floor = max(demo["audio"]["f1"], demo["video"]["f1"]) + 0.20
            for m in ("late", "concat", "gated", "xattn"):
                if m in demo:
                    add(f"demo 8: {m} >= better single stream + 0.20 ({floor:.3f})", f"{demo[m]['f1']:.3f}",
                        demo[m]["f1"] >= floor)  # fmt: skip
        if "xattn" in demo and "gated" in demo:
            gap = demo["gated"]["f1"] - demo["xattn"]["f1"]
            add("demo 8: xattn within 0.05 of gated", f"{gap:+.3f} below gated", gap <= 0.05)
        if demo:
            worst = max(demo.values(), key=lambda s: s["f1_sd"])
            add("demo 8: sd over folds x seeds <= 0.06, every method", f"{worst['f1_sd']:.3f} ({worst['method']})",
                worst["f1_sd"] <= 0.06)  # fmt: skip
    sp = by.get(("speech16k", "audio", 8))
    if sp:
        add("speech16k audio-only 8 classes >= 0.58", f"{sp['f1']:.3f}", sp["f1"] >= 0.58)
    return rows


KEY = ("set", "method", "num_classes", "fold", "seed")


def compare(before: Path, after: Path) -> None:
    """Two runs' per-run rows paired by set, method, classes, fold and seed: per method, the mean
    difference after - before with its sd over the pairs, how many pairs rose, and the mean difference
    per fold (where a change of recipe or arithmetic moved the scores)."""
    import pyarrow.parquet as pq

    def rows(path: Path) -> dict:
        if not path.is_file():
            raise SystemExit(f"error: --compare: {path} is not a file (per-run rows are in runs/quality/)")
        # A head over frozen encoders pairs with the same method trained end to end: "gated/frozen" is
        # compared as "gated" (a file holding both cannot be paired that way).
        out = {}
        for r in pq.read_table(path).to_pylist():
            key = tuple(r[k].removesuffix(FROZEN) if k == "method" else r[k] for k in KEY)
            if key in out:
                raise SystemExit(f"error: --compare: {path} holds {key[1]} both end to end and over frozen encoders")
            out[key] = r
        return out

    a, b = rows(before), rows(after)
    pairs = sorted(set(a) & set(b))
    if not pairs:
        raise SystemExit(f"error: --compare: {before} and {after} share no (set, method, classes, fold, seed)")
    groups: dict[tuple, list[tuple]] = {}
    for k in pairs:
        groups.setdefault(k[:3], []).append(k)
    folds = sorted({k[3] for k in pairs})
    out = []
    for g in sorted(groups, key=lambda g: table_order(*g)):
        diff = {k: b[k]["test_f1"] - a[k]["test_f1"] for k in groups[g]}
        d = list(diff.values())
        per_fold = []
        for f in folds:
            df = [v for k, v in diff.items() if k[3] == f]
            per_fold.append(f"{statistics.mean(df):+.3f}" if df else "-")
        sd = statistics.stdev(d) if len(d) > 1 else 0.0
        mean_a = statistics.mean(a[k]["test_f1"] for k in groups[g])
        mean_b = statistics.mean(b[k]["test_f1"] for k in groups[g])
        out.append([*g, len(d), f"{mean_a:.3f}", f"{mean_b:.3f}", f"{statistics.mean(d):+.3f} +- {sd:.3f}",
                    f"{sum(x > 0 for x in d)}/{len(d)}", *per_fold])  # fmt: skip
    body = table(
        [
            "set",
            "method",
            "classes",
            "pairs",
            "before",
            "after",
            "after - before",
            "rose",
            *(f"fold {f}" for f in folds),
        ],
        out,
    )
    shown = [
        p.relative_to(ROOT) if p.resolve().is_relative_to(ROOT) else p for p in (before.resolve(), after.resolve())
    ]
    notes = (
        f"Test Macro-F1 of `{shown[1]}` (after) against `{shown[0]}` (before), paired by set, method, classes, fold "
        "and seed; mean over the pairs, sd of the paired differences; fold columns: mean difference over that "
        f"fold's seeds. Unpaired rows left out: {len(a) - len(pairs)} before, {len(b) - len(pairs)} after."
    )
    report(f"Training quality compared, run by run: {after.name} against {before.name}", body, notes)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    p.add_argument("--methods", nargs="+", default=list(FUSIONS), choices=FUSIONS,
                   help="methods on the demo set (speech16k is audio-only)")  # fmt: skip
    p.add_argument("--classes", nargs="+", type=int, default=[8, 4], choices=[8, 4])
    p.add_argument("--folds", type=int, default=4, help="the report's confirmation folds over actors")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a TrainConfig field for every run (a candidate default)")  # fmt: skip
    p.add_argument("--workers", type=int, default=0, help="processes, one torch thread each (default: every core)")
    p.add_argument("--frozen-encoders", action="store_true",
                   help="two stages: the fusion methods train heads over the frozen encoders of that fold's "
                        "audio- and video-only runs (METHOD/frozen rows)")  # fmt: skip
    p.add_argument("--speech-root", type=Path, default=SPEECH16K)
    p.add_argument("--out", type=Path, default=None, help="per-run Parquet (default: runs/quality/STAMP.parquet)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                   help="train nothing: pair two runs' per-run rows by fold and seed, show the change")  # fmt: skip
    ns = p.parse_args(argv)
    if ns.compare:
        compare(*ns.compare)
        return
    overrides = parse_overrides(ns.overrides)
    if "speech16k" in ns.sets and not ns.speech_root.is_dir():
        print(f"skipping speech16k: {ns.speech_root} not found (the real RAVDESS speech set beside the checkout)")
        ns.sets = [s for s in ns.sets if s != "speech16k"]
    if not ns.sets:
        raise SystemExit("error: nothing to run")

    import pyarrow as pa
    import pyarrow.parquet as pq

    from emo.data import load_data
    from emo.parallel import one_thread, process_pool, usable_cores

    stamp = time.strftime("%Y%m%d-%H%M%S")
    encoders = ROOT / "runs" / "quality" / f"encoders-{stamp}" if ns.frozen_encoders else None
    if encoders is not None and not {"audio", "video"} <= set(ns.methods):
        raise SystemExit("error: --frozen-encoders trains the audio and video runs first: keep both in --methods")
    jobs = plan(ns, overrides, encoders)
    # Build or check the caches (the features, and the embeddings of a front end given by --set) once,
    # before the workers read them.
    for set_name in ns.sets:
        load_data(TrainConfig(**{**recipe(set_name, ns.speech_root), **overrides}), progress=True)
    workers = ns.workers or usable_cores()
    print(f"{len(jobs)} runs on {workers} worker(s)", flush=True)
    rows, t0 = [], time.perf_counter()
    from concurrent.futures import as_completed

    def finished(pool):  # phase 1, then phase 2 (heads over the encoders phase 1 saved)
        for phase in (1, 2):
            yield from as_completed([pool.submit(run_one, j) for j in jobs if j.get("phase", 1) == phase])

    with process_pool(workers, initializer=one_thread) as pool:
        for fut in finished(pool):
            r = fut.result()
            rows.append(r)
            el = time.perf_counter() - t0
            print(
                f"[{len(rows)}/{len(jobs)} {el / 60:.1f} min] {r['set']} {r['method']} {r['num_classes']} classes "
                f"fold {r['fold']} seed {r['seed']}: test Macro-F1 {r['test_f1']:.3f} acc {r['test_acc']:.3f}"
                f"{' COLLAPSED' if r['collapsed'] else ''} (best epoch {r['best_epoch']}/{r['epochs_run']}, "
                f"{r['s_per_epoch']:.1f} s/epoch)",
                flush=True,
            )
    wall = time.perf_counter() - t0
    out = ns.out or ROOT / "runs" / "quality" / f"{stamp}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out)

    summary = summarize(rows)
    body = table(
        ["set", "method", "classes", "runs", "test Macro-F1", "test acc", "collapsed", "epochs to 90% (of run)",
         "s / epoch"],
        [[s["set"], s["method"], s["num_classes"], s["runs"], f"{s['f1']:.3f} +- {s['f1_sd']:.3f}",
          f"{s['acc']:.3f} +- {s['acc_sd']:.3f}", s["collapsed"], f"{s['to90']:.1f} / {s['epochs']:.1f}",
          f"{s['s_epoch']:.1f}"] for s in summary],
    )  # fmt: skip
    g = goals(summary)
    if g:
        body += "\n\n" + table(["goal", "measured", ""], g)
    for set_name, (head, lines) in by_actor(rows).items():
        body += f"\n\nTest accuracy by test actor ({set_name}):\n\n" + table(head, lines)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    recipes = "; ".join(f"{s}: {json.dumps(recipe(s, ns.speech_root))}" for s in ns.sets)
    notes = (
        f"Recipes (TrainConfig defaults plus): {recipes}"
        + (f"; changed for this run: {json.dumps(overrides)}" if overrides else "")
        + f". {ns.folds} confirmation folds over actors x seeds {ns.seeds}; {len(rows)} runs on {workers} "
        f"worker(s) with one torch thread each, {wall / 60:.1f} min in all. Collapsed: the best epoch's test "
        "predictions use fewer than half the classes. Epochs to 90%: the first epoch whose validation "
        f"Macro-F1 reached 90% of the run's best (mean), of the epochs run (mean). Per-run rows: `{shown}`."
    )
    if encoders is not None:
        notes += (
            f" METHOD{FROZEN}: the method's head (and a projection per stream) trained over the frozen encoders "
            "of the audio- and video-only runs of the same fold, seed and class count, at their best validation "
            "epoch (`--audio_frontend own --video_frontend own`)."
        )
    what = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "the default recipes"
    what += " and heads over frozen encoders" if encoders is not None else ""
    report(f"Training quality: {what} ({', '.join(ns.sets)})", body, notes)


if __name__ == "__main__":
    main()
