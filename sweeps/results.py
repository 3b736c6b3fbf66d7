"""A sweep's results as one table: one row per trial, written to `results.parquet` in the run folder,
and the leaderboard printed at the end. Readable with pandas or DuckDB:

    pd.read_parquet("runs/NAME/results.parquet")
    duckdb.sql("select method, max(best_val_f1) from 'runs/NAME/results.parquet' group by method")
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from emo.metric_names import COSTS, EPOCH_VAL_F1, OBJECTIVE, OBJECTIVE_COLUMN
from search_spaces.common import plain
from sweeps.progress import START_OVERHEAD_S

STATUSES = ("completed", "early-stopped", "pruned", "diverged", "error")


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def trial_row(result, sweep: str, method: str, searched: list[str], max_epochs: int) -> dict:
    """One trial (a `ray.tune.Result`) as a flat row."""
    m = dict(result.metrics or {})
    cfg = dict(result.config or {})
    df = result.metrics_dataframe
    epochs = int(m.get("epoch") or 0)
    if result.error is not None:
        status = "error"
    elif m.get("diverged"):
        status = "diverged"  # the loss went NaN/inf: ended by the trainable, not retried
    elif epochs >= max_epochs:
        status = "completed"
    elif m.get("stopped_early"):
        status = "early-stopped"  # fit's own early stopping (patience on val Macro-F1)
    else:
        status = "pruned"  # the scheduler (ASHA) stopped it at a rung
    setup = None
    if df is not None and "time/setup_s" in df.columns and len(df):
        setup = _num(float(df["time/setup_s"].dropna().iloc[0])) if df["time/setup_s"].notna().any() else None
    row = {
        "sweep": sweep,
        "method": method,
        "trial_id": m.get("trial_id") or Path(result.path).name,
        "status": status,
        "epochs": epochs,
        "max_epochs": max_epochs,
        OBJECTIVE_COLUMN: _num(m.get(OBJECTIVE)),
        "best_epoch": _num(m.get("best/epoch")),
        "val_f1": _num(m.get(EPOCH_VAL_F1)),
        "val_acc": _num(m.get("val/acc")),
        "val_loss": _num(m.get("val/loss")),
        "train_f1": _num(m.get("train/f1")),
        "train_loss": _num(m.get("train/loss")),
        "gate_val_mean": _num(m.get("gate/val_mean")),
        "wall_s": _num(m.get("time_total_s")),
        "setup_s": setup,  # in the trial: first epoch's start minus the trainable's start
        "start_overhead_s": START_OVERHEAD_S.get(m.get("trial_id")),  # driver: trial start to first epoch
        "error": (
            f"{type(result.error).__name__}: {result.error}"[:2000]
            if result.error is not None
            else f"diverged: {m['diverged']}"
            if m.get("diverged")
            else None
        ),
        "path": result.path,
        "checkpoint": result.checkpoint.path if result.checkpoint is not None else None,
        "config": json.dumps(cfg, sort_keys=True, default=str),
    }
    for name in COSTS.values():  # a multi-objective sweep's costs: cost_params, cost_flops, cost_latency_ms
        if name in m:
            row[cost_column(name)] = _num(m[name])
    for k in searched:
        row[f"config/{k}"] = plain(cfg.get(k))
    return row


def cost_column(metric: str) -> str:
    return metric.replace("/", "_")


FRONT_STATUSES = ("completed", "early-stopped")  # trials that trained to their end: their F1 is final


def mark_pareto(rows: list[dict], costs: tuple[str, ...]) -> None:
    """Set each row's `pareto`: whether, within its method, no other trial that trained to its end has
    a validation Macro-F1 at least as high and every cost at least as low, one of them strictly. Pruned,
    diverged and failed trials are never on the front (a pruned trial's F1 is an early epoch's)."""
    cols = [cost_column(COSTS[c]) for c in costs]

    def point(r):
        vals = [r.get(OBJECTIVE_COLUMN), *(r.get(c) for c in cols)]
        if r["status"] not in FRONT_STATUSES or any(v is None for v in vals):
            return None
        return [-vals[0], *vals[1:]]  # all minimised

    for method in {r["method"] for r in rows}:
        mine = [r for r in rows if r["method"] == method]
        pts = [point(r) for r in mine]
        for r, p in zip(mine, pts, strict=True):
            r["pareto"] = p is not None and not any(
                q is not None and all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in pts
            )


def pareto_table(rows: list[dict], costs: tuple[str, ...]) -> str:
    """Each method's Pareto front (rows marked by `mark_pareto`), best validation Macro-F1 first."""
    cols = [cost_column(COSTS[c]) for c in costs]
    lines = []
    for method in sorted({r["method"] for r in rows}):
        front = [r for r in rows if r["method"] == method and r.get("pareto")]
        front.sort(key=lambda r: -r[OBJECTIVE_COLUMN])
        lines.append(f"{method}: Pareto front of val F1 against {', '.join(costs)} ({len(front)} trials)")
        lines.append(f"  {'trial':<14} {'val F1':>6}  " + "  ".join(f"{c[5:]:>12}" for c in cols) + "  config")
        for r in front:
            params = " ".join(f"{k[7:]}={short(v)}" for k, v in r.items() if k.startswith("config/"))
            costs_ = "  ".join(f"{short(r[c]):>12}" for c in cols)
            lines.append(f"  {r['trial_id']:<14} {r[OBJECTIVE_COLUMN]:>6.3f}  {costs_}  {params}")
    return "\n".join(lines)


def short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def leaderboard(rows: list[dict], top: int = 5) -> str:
    """The best `top` trials of each method by best validation Macro-F1, methods ranked by their best."""
    by_method: dict[str, list[dict]] = {}
    for r in rows:
        by_method.setdefault(r["method"], []).append(r)

    def score(r):
        return r[OBJECTIVE_COLUMN] if r[OBJECTIVE_COLUMN] is not None else -1.0

    order = sorted(by_method, key=lambda m: max(score(r) for r in by_method[m]), reverse=True)
    lines = []
    for method in order:
        trials = sorted(by_method[method], key=score, reverse=True)
        counts = {s: sum(r["status"] == s for r in trials) for s in STATUSES}
        epochs = sum(r["epochs"] for r in trials)
        lines.append(
            f"{method}: {len(trials)} trials ("
            + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            + f"), {epochs} epochs trained"
        )
        lines.append(f"  {'rank':>4}  {'trial':<14} {'val F1':>6}  {'epochs':>6}  {'status':<13} config")
        for i, r in enumerate(trials[:top], 1):
            params = " ".join(f"{k[7:]}={short(v)}" for k, v in r.items() if k.startswith("config/"))
            f1 = f"{r[OBJECTIVE_COLUMN]:.3f}" if r[OBJECTIVE_COLUMN] is not None else "-"
            lines.append(f"  {i:>4}  {r['trial_id']:<14} {f1:>6}  {r['epochs']:>6}  {r['status']:<13} {params}")
            if r["error"]:
                lines.append(f"        error: {r['error'].splitlines()[0][:150]}")
    return "\n".join(lines)
