"""Sweep benchmarks: what a sweep costs on this machine, and what ASHA + TPE save against FIFO + random.

    python -m benchmarks.sweep demo                     # the README's demo sweep: wall time, overhead, W&B
    python -m benchmarks.sweep fresh                    # the README's first command on a clean clone, caches empty
    python -m benchmarks.sweep efficiency --seeds 0 1 2  # ASHA + TPE vs FIFO + random, same trial budget
    python -m benchmarks.sweep efficiency --arms asha+tpe asha+random   # also ASHA alone, same configs as FIFO
    python -m benchmarks.sweep efficiency --arms --seeds 0 1 2 3         # FIFO only; ASHA replayed on its curves
    python -m benchmarks.sweep study --repeats 2        # the Optuna journal's cost: 32-trial sweeps with and without

Each sweep runs as `python -m sweeps.run` in its own process (its own local Ray instance), as a user
runs it; the figures come from its results.parquet. Nothing else heavy should run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from benchmarks.common import report, table
from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE, OBJECTIVE_COLUMN
from sweeps.spec import DEFAULTS, DEMO_BUDGET

ROOT = Path(__file__).resolve().parents[1]


def sweep(
    args: list[str], storage: Path, name: str, env: dict | None = None, entry: tuple[str, ...] = ("-m", "sweeps.run")
) -> tuple[pd.DataFrame, float]:
    """Run one sweep; returns its results table and the command's wall seconds (Ray start included)."""
    cmd = [sys.executable, *entry, *args, "--storage-path", str(storage), "--name", name]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    print(res.stdout.strip().splitlines()[-1], f"({wall:.0f} s)", flush=True)
    df = pd.read_parquet(storage / name / "results.parquet")
    # The settings the sweep ran with (flags and defaults resolved), as sweeps.run recorded them.
    df.attrs["sweep"] = json.loads(pq.read_schema(storage / name / "results.parquet").metadata[b"emo.sweep"])["sweep"]
    return df, wall


def fresh(ns) -> None:
    """The README's first command as on a new machine: a clean clone of this commit, pip installing uv
    into a new virtual environment, then `uv run python -m sweeps.run gated` with empty uv and feature
    caches (so it downloads every package, writes the demo set and extracts its features)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        repo, venv = tmp / "repo", tmp / "venv"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "EMO_"))}
        env |= {"UV_CACHE_DIR": str(tmp / "uv-cache"), "EMO_CACHE_DIR": str(tmp / "emo-cache"),
                "PATH": f"{venv / 'bin'}:{env['PATH']}"}  # fmt: skip
        steps = [
            ("pip install uv", [sys.executable, "-m", "venv", str(venv)], ["pip", "install", "-q", "uv"]),
            ("uv run python -m sweeps.run gated", ["uv", "run", "python", "-m", "sweeps.run", "gated", *ns.extra]),
        ]
        rows, total = [], 0.0
        for label, *cmds in steps:
            t0 = time.perf_counter()
            for cmd in cmds:
                res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
                if res.returncode != 0:
                    raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
            took = time.perf_counter() - t0
            total += took
            rows.append([f"`{label}`", f"{took:.0f}"])
            print(f"{label}: {took:.0f} s", flush=True)
        (found,) = (repo / "runs").glob("*/results.parquet")
        best = pd.read_parquet(found)[OBJECTIVE_COLUMN].max()
    rows.append(["total", f"{total:.0f}"])
    notes = (
        f"A clean clone of {commit.stdout.strip()}, a new virtual environment for pip, empty `UV_CACHE_DIR` and "
        f"`EMO_CACHE_DIR`: uv downloads every package (PyTorch's CUDA wheels included), the sweep writes the demo "
        f"set and its feature cache, starts Ray and runs its default budget. Best val Macro-F1: {best:.3f}. "
        "Download speed is this machine's link to PyPI."
    )
    report("Fresh machine: install and the demo sweep of gated", table(["step", "s"], rows), notes)


def _spread(col: pd.Series) -> str:
    col = col.dropna()
    return f"{col.median():.2f} / {col.max():.2f}" if len(col) else "-"


def demo(ns) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, label, extra, env in (
            ("plain", "gated, no W&B", [], {}),
            ("wandb", "gated, --wandb (offline)", ["--wandb"], {"WANDB_MODE": "offline"}),
        ):
            df, wall = sweep(["gated", *extra, *ns.extra], Path(tmp), name, env)
            trained = df["wall_s"].sum()
            rows.append(
                [
                    label,
                    f"{wall:.0f}",
                    len(df),
                    int(df["epochs"].sum()),
                    f"{(df['status'] == 'pruned').sum()}",
                    f"{df[OBJECTIVE_COLUMN].max():.3f}",
                    _spread(df["start_overhead_s"]),
                    _spread(df["setup_s"]),
                    f"{trained:.0f}",
                ]
            )
    body = table(
        [
            "sweep",
            "wall s (incl. Ray start)",
            "trials",
            "epochs",
            "pruned",
            "best val F1",
            "trial start -> 1st epoch s (median / max)",
            "in-trial setup s (median / max)",
            "sum of trial wall s",
        ],
        rows,
    )
    notes = (
        "`python -m sweeps.run gated` with its demo defaults (8 trials x up to 6 epochs, ASHA + TPE, as many at once "
        "as the CPUs hold). *trial start -> 1st epoch*: from Tune starting the trial (driver clock) to its first "
        "epoch starting: worker start or reuse, data to the device, model build. *in-trial setup*: the same inside "
        "the trial function only. The sum of trial wall seconds exceeds the sweep's wall time because trials run "
        "two at a time."
    )
    report("Demo sweep: wall time and per-trial overhead", body, notes)


def _early_vs_final(df: pd.DataFrame, epochs: list[int]) -> dict[int, tuple[float, int]]:
    """For trials that all ran every epoch (FIFO): at each epoch in `epochs`, the rank correlation of
    the best val Macro-F1 so far with the final one, and where the finally best trial ranked then.
    This is what ASHA bets on at a rung of that many epochs."""
    curves = []
    for path in df["path"]:
        lines = Path(path, "result.json").read_text().splitlines()
        curves.append([json.loads(line)[OBJECTIVE] for line in lines])
    final = pd.Series([c[-1] for c in curves])
    out = {}
    for e in epochs:
        at = pd.Series([c[min(e, len(c)) - 1] for c in curves])
        out[e] = (float(at.corr(final, method="spearman")), int(at.rank(ascending=False, method="min")[final.idxmax()]))
    return out


BASELINE = "fifo+random"
# What ASHA could compare at a rung, each computed from a trial's per-epoch results (result.json).
SIGNALS = {
    "val/f1 (the epoch's)": lambda rows: [r[EPOCH_VAL_F1] for r in rows],
    "best/val_f1 (best so far)": lambda rows: [r[OBJECTIVE] for r in rows],
    "val/f1, mean of last 2": lambda rows: _trailing_mean([r[EPOCH_VAL_F1] for r in rows], 2),
    "-val/loss": lambda rows: [-r["val/loss"] for r in rows],
}


def _trailing_mean(xs: list[float], n: int) -> list[float]:
    return [sum(xs[max(0, i - n + 1) : i + 1]) / len(xs[max(0, i - n + 1) : i + 1]) for i in range(len(xs))]


def replay_asha(curves: list[list[float]], grace: int, rf: int, max_t: int) -> list[int]:
    """Ray's own ASHA bracket (`_Bracket`, the rule ASHAScheduler applies) replayed on complete
    per-epoch curves, the trials arriving one after another in their start order (concurrency 1; with
    more trials at once, arrival order shifts the cutoffs a little). Returns the epochs each trial
    would have run before ASHA stopped it (max_t: never stopped)."""
    from types import SimpleNamespace

    from ray.tune.schedulers.async_hyperband import _Bracket

    bracket = _Bracket(grace, max_t, rf, 0)
    ran = []
    for i, curve in enumerate(curves):
        trial = SimpleNamespace(trial_id=str(i))
        stop = next((t for t in range(1, len(curve) + 1) if bracket.on_result(trial, t, curve[t - 1]) == "STOP"), None)
        ran.append(stop or len(curve))
    return ran


def trial_curves(df: pd.DataFrame) -> list[list[dict]]:
    """Every trial's per-epoch results (its result.json), in the order the trials started."""
    runs = [[json.loads(x) for x in Path(p, "result.json").read_text().splitlines()] for p in df["path"]]
    return sorted(runs, key=lambda r: r[0]["timestamp"] - r[0]["time_this_iter_s"])


def asha_replays(runs: list[list[list[dict]]], graces: list[int], rf: int, max_t: int) -> tuple[list[str], list]:
    """For FIFO sweeps (every trial ran every epoch; `trial_curves` of each): each signal x grace period
    replayed, how often the trial that ended best (highest final best/val_f1, what the sweep selects)
    would have been stopped, what the sweep would then have selected, and the epochs it would have cost."""
    header = ["ASHA sees", "grace", "eventual best stopped", "selected val F1 vs FIFO (mean points)", "fewer epochs"]
    rows = []
    for name, signal in SIGNALS.items():
        for grace in graces:
            stopped, loss, fifo_epochs, asha_epochs = 0, [], 0, 0
            for results in runs:
                final = [r[-1][OBJECTIVE] for r in results]
                ran = replay_asha([signal(r) for r in results], grace, rf, max_t)
                best = max(range(len(final)), key=final.__getitem__)
                stopped += ran[best] < max_t
                kept = max(r[n - 1][OBJECTIVE] for r, n in zip(results, ran, strict=True))
                loss.append(100 * (kept - final[best]))
                fifo_epochs += sum(len(r) for r in results)
                asha_epochs += sum(ran)
            rows.append([name, grace, f"{stopped}/{len(runs)}", f"{sum(loss) / len(loss):+.1f}",
                         f"{fifo_epochs / asha_epochs:.2f}x"])  # fmt: skip
    return header, rows


def efficiency(ns) -> None:
    """Each arm (scheduler+search) against FIFO + random on the same trial budget and seeds.
    `asha+random` samples the same configurations as `fifo+random` (same seeded sampler, which
    never looks at results), so it isolates what the scheduler's pruning costs in best score."""
    budget = ["--num-samples", str(ns.num_samples), "--max-epochs", str(ns.max_epochs)]
    if ns.max_concurrent:
        budget += ["--max-concurrent", str(ns.max_concurrent)]
    arms = [a for a in ns.arms if a != BASELINE]
    rows, per_seed, asha, fifo_runs = [], [], None, []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in ns.seeds:
            got = {}
            for arm in [*arms, BASELINE]:
                scheduler, search = arm.split("+")
                argv = [ns.method, *budget, "--scheduler", scheduler, "--search", search, "--seed", str(seed)]
                got[arm] = sweep([*argv, *ns.extra], Path(tmp), f"{arm}-{seed}")
                if scheduler == "asha":
                    asha = got[arm][0].attrs["sweep"]
            base, base_wall = got[BASELINE]
            fifo_runs.append(trial_curves(base))  # read now: the sweeps' folder is temporary
            rec = {"seed": seed, "base": (int(base["epochs"].sum()), float(base[OBJECTIVE_COLUMN].max())), "arms": {}}
            rows.append([seed, BASELINE, rec["base"][0], "1.00x", f"{base_wall:.0f}", f"{rec['base'][1]:.3f}", ""])
            for arm in arms:
                df, wall = got[arm]
                ep, best = int(df["epochs"].sum()), float(df[OBJECTIVE_COLUMN].max())
                rec["arms"][arm] = (ep, best)
                rows.append([seed, arm, ep, f"{rec['base'][0] / ep:.2f}x", f"{wall:.0f}", f"{best:.3f}",
                             f"{100 * (best - rec['base'][1]):+.1f}"])  # fmt: skip
            rec["early"] = _early_vs_final(base, sorted({1, 2, 3, max(1, ns.max_epochs // 2)}))
            per_seed.append(rec)
    for arm in arms:
        ratio = sum(r["base"][0] for r in per_seed) / sum(r["arms"][arm][0] for r in per_seed)
        within = sum(r["arms"][arm][1] >= r["base"][1] - 0.01 for r in per_seed)
        rows.append(["all", arm, "", f"{ratio:.2f}x", "", "", f"within 1 point: {within}/{len(per_seed)}"])
    body = table(
        ["seed", "scheduler + search", "epochs", "fewer epochs than FIFO", "wall s", "best val F1",
         "vs FIFO + random (points)"],
        rows,
    )  # fmt: skip
    how = (
        f"ASHA: grace {asha['grace_period']} epoch(s), reduction factor {asha['reduction_factor']}; "
        if asha else ""
    )  # fmt: skip
    notes = (
        f"`{ns.method}`, {ns.num_samples} trials x up to {ns.max_epochs} epochs per sweep, the same budget for every "
        f"arm; {how}{got[BASELINE][0].attrs['sweep']['concurrent']} trial(s) at a time; TPE seeded, the guide's "
        "recipe first; random search seeded (the recipe first too). `--seed` seeds the searcher and every trial's "
        "training. Goal: 3x fewer epochs with the best val Macro-F1 within one point."
    )
    early_rows = [
        [e, *(f"{r['early'][e][0]:.2f} ({r['early'][e][1]})" for r in per_seed)] for e in per_seed[0]["early"]
    ]
    body += "\n\n" + table(
        ["after epoch", *(f"seed {r['seed']}: rank corr. with final (rank of the final best)" for r in per_seed)],
        early_rows,
    )
    notes += (
        f" Second table, from the FIFO sweeps (every trial ran all {ns.max_epochs} epochs): how well a trial's best "
        f"val Macro-F1 after that many epochs predicts its final one (Spearman over the {ns.num_samples} trials), "
        "and where the trial that ended best stood then (1 = first): what ASHA bets on at a rung of that many epochs."
    )
    graces = [g for g in (1, 2, 3, 4, 6, 8) if g < ns.max_epochs]
    rf = asha["reduction_factor"] if asha else DEFAULTS["reduction_factor"]
    header, replay = asha_replays(fifo_runs, graces, rf, ns.max_epochs)
    body += "\n\n" + table(header, replay)
    notes += (
        f" Third table: ASHA (reduction factor {rf}) replayed with Ray's own "
        f"bracket on the {len(fifo_runs)} FIFO sweeps' complete curves, trials arriving in start order, for each "
        "value it could compare at a rung and each grace period: in how many sweeps it would have stopped the trial "
        "that ended best, how far the best val Macro-F1 it kept falls below FIFO's, and how many fewer epochs it runs."
    )
    what = f"{', '.join(arms)} vs FIFO + random" if arms else "FIFO + random, ASHA replayed on its curves"
    report(f"Sweep efficiency: {what} ({ns.method})", body, notes)
    print(json.dumps(per_seed))


# The baseline of `study`: sweeps.run with its searchers' study in memory, as Ray Tune's OptunaSearch
# keeps it by default (no journal: no dashboard, no growing), everything else the same.
IN_MEMORY = (
    "import sys\n"
    "import sweeps.search as s\n"
    "init = s.PrunedAwareOptunaSearch.__init__\n"
    "def in_memory(self, *a, journal=None, **k):\n"
    "    init(self, *a, journal=None, **k)\n"
    "s.PrunedAwareOptunaSearch.__init__ = in_memory\n"
    "from sweeps.run import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def searcher_cost(trials: int, epochs: int, journal: Path | None) -> float:
    """Seconds the driver spends in the searcher for `trials` trials of `epochs` epochs each (suggest,
    one result per epoch, completion), with the study in a journal or in memory; the searcher built
    with sweeps.tuner's settings."""
    import math

    import optuna

    from search_spaces import get_space
    from sweeps.search import PrunedAwareOptunaSearch

    sp = get_space("gated")
    where = {"journal": str(journal), "identity": {"sweep": "cost"}, "study_name": "gated"} if journal else {}
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=min(10, max(2, trials // 4)), constant_liar=True)
    s = PrunedAwareOptunaSearch(
        metric=OBJECTIVE, mode="max", sampler=sampler, points_to_evaluate=[sp.recipe], max_epochs=epochs, **where
    )
    t0 = time.perf_counter()
    s.set_search_properties(None, None, {**sp.param_space(), "epochs": epochs})
    for i in range(trials):
        cfg = s.suggest(f"t{i}")
        for e in range(1, epochs + 1):
            score = (1 - abs(math.log10(cfg["lr"]) + 3)) * e / epochs
            s.on_trial_result(f"t{i}", {OBJECTIVE: score, "epoch": e})
        s.on_trial_complete(f"t{i}", {OBJECTIVE: score, "epoch": epochs})
    return time.perf_counter() - t0


def study_cost(ns) -> None:
    """A 32-trial demo sweep with the Optuna study in the journal (what sweeps.run does) and in memory
    (Ray Tune's default), alternating, `--repeats` times each; and the searcher's own time per trial."""
    rows, walls = [], {"journal": [], "memory": []}
    args = ["gated", "--num-samples", str(ns.num_samples), *ns.extra]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(ns.repeats):
            for arm in ("journal", "memory") if r % 2 == 0 else ("memory", "journal"):
                entry = ("-m", "sweeps.run") if arm == "journal" else ("-c", IN_MEMORY)
                df, wall = sweep(args, Path(tmp), f"{arm}{r}", entry=entry)
                journal = Path(tmp, f"{arm}{r}", "optuna.journal")
                assert journal.exists() == (arm == "journal"), journal
                epochs = int(df["epochs"].sum())
                walls[arm].append((wall, epochs))
                rows.append([arm, r, len(df), epochs, f"{wall:.1f}", f"{wall / epochs:.3f}"])
    j = sum(w for w, _ in walls["journal"]) / sum(e for _, e in walls["journal"])
    m = sum(w for w, _ in walls["memory"]) / sum(e for _, e in walls["memory"])
    body = table(["study", "repeat", "trials", "epochs trained", "wall s", "wall s per epoch"], rows)
    body += f"\n\nwall per epoch trained, journal / memory: **{j / m:.3f}** ({(j / m - 1) * 100:+.1f}%)"
    # The driver's own added work, without the sweep's noise: the same calls Tune makes, timed.
    epochs = int(ns.max_epochs)
    cost = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in ("memory", "journal", "memory", "journal"):
            journal = Path(tmp, f"{arm}{len(cost.get(arm, []))}.journal") if arm == "journal" else None
            t = searcher_cost(ns.num_samples, epochs, journal)
            cost.setdefault(arm, []).append(t)
    per = {a: min(v) / ns.num_samples * 1000 for a, v in cost.items()}
    mean_wall = sum(w for w, _ in walls["journal"]) / len(walls["journal"])
    extra_s = min(cost["journal"]) - min(cost["memory"])
    body += "\n\n" + table(
        ["searcher calls per trial (suggest, one result per epoch, completion)", "ms per trial (best of 2)"],
        [[f"{arm}, {epochs} epochs", f"{per[arm]:.1f}"] for arm in ("memory", "journal")],
    )
    body += (
        f"\n\njournal's added driver time for {ns.num_samples} trials of {epochs} epochs: {extra_s:.2f} s, "
        f"**{extra_s / mean_wall * 100:.2f}%** of the journal sweeps' mean wall time ({mean_wall:.0f} s)"
    )
    notes = (
        "Both arms are `python -m sweeps.run gated` on the demo set with the same flags and seed; the baseline "
        "patches the searcher to keep Optuna's study in memory, as Ray Tune's OptunaSearch does by default. The "
        "sweeps' wall times include Ray's start and differ by the epochs ASHA let each sweep train (TPE's "
        "proposals depend on the order results arrive in), hence the ratio per epoch trained. The second "
        "table times the searcher alone, outside Ray, for the same number of trials and every trial run to the "
        "last epoch (an upper bound: ASHA stops most sooner): what the journal adds to the driver's work."
    )
    report(f"Optuna study in a journal vs in memory ({ns.num_samples}-trial demo sweep)", body, notes)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    d = sub.add_parser("demo")
    d.add_argument("extra", nargs="*", help="more sweeps.run flags")
    f = sub.add_parser("fresh")
    f.add_argument("extra", nargs="*", help="more sweeps.run flags")
    e = sub.add_parser("efficiency")
    e.add_argument("--method", default="gated")
    e.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    e.add_argument("--num-samples", type=int, default=DEMO_BUDGET["num_samples"])
    e.add_argument("--max-epochs", type=int, default=DEMO_BUDGET["max_epochs"])
    e.add_argument("--max-concurrent", type=int, default=0)
    e.add_argument("--arms", nargs="*", default=["asha+tpe"], choices=["asha+tpe", "asha+random", "fifo+tpe"],
                   help="scheduler+search pairs to compare with fifo+random (always run)")  # fmt: skip
    e.add_argument("extra", nargs="*", help="more sweeps.run flags (after --)")
    st = sub.add_parser("study")
    st.add_argument("--num-samples", type=int, default=32)
    st.add_argument("--max-epochs", type=int, default=DEMO_BUDGET["max_epochs"], help="for the searcher-only timing")
    st.add_argument("--repeats", type=int, default=2)
    st.add_argument("extra", nargs="*", help="more sweeps.run flags (after --)")
    ns = p.parse_args(argv)
    {"demo": demo, "fresh": fresh, "efficiency": efficiency, "study": study_cost}[ns.what](ns)


if __name__ == "__main__":
    main()
