"""The report's numbers, as pure functions of its rows (no Ray, no plotting, no files).

A row is one confirmation run (method x variant x fold x seed): see `sweeps.report.confirm.confirm_row`.
Variants: `best` is the method's best sweep configuration (chosen on validation Macro-F1 only);
`recipe` is the training guide's recipe for a method that was not swept (the video baseline, when
the sweeps left it out); `modality_dropout=0` and `num_classes=N` are the checklist's comparisons;
`front ID` is trial ID of a multi-objective sweep's Pareto front (Macro-F1 against cost).
"""

from __future__ import annotations

import json
import math

import numpy as np

from emo.metric_names import OBJECTIVE_COLUMN

BASELINE = "video"
BEST, RECIPE = "best", "recipe"
NO_MODALITY_DROPOUT = "modality_dropout=0"
FRONT = "front "  # + trial id: a configuration on a multi-objective sweep's Pareto front, other than `best`
# The training guide's targets (test Macro-F1 on real RAVDESS, actor-independent).
TARGETS = {"audio": 0.65, "video": 0.73}
ALPHA = 0.05


def main_variant(rows: list[dict], method: str) -> str | None:
    """`best` when the method was swept, `recipe` when it is the baseline nobody swept."""
    have = {r["variant"] for r in rows if r["method"] == method}
    return BEST if BEST in have else RECIPE if RECIPE in have else None


def runs_of(rows: list[dict], method: str, variant: str | None = None) -> list[dict]:
    """The finished runs of one method's variant (its main one by default)."""
    variant = variant or main_variant(rows, method)
    return [r for r in rows if r["method"] == method and r["variant"] == variant and r["status"] == "ok"]


def mean_std(values) -> tuple[float | None, float | None]:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if v.size == 0:
        return None, None
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def paired(a: list[dict], b: list[dict], metric: str = "test_f1", seed: int = 0) -> dict:
    """Paired comparison of runs `a` against runs `b` on the same (fold, seed): the same test actors,
    the same initial RNG. Returns the per-pair deltas, their mean +- std, a paired bootstrap 95% CI of
    the mean delta, the Wilcoxon signed-rank p-value (two-sided) and per-fold mean deltas.

    Seeds of one fold share their test actors, so their deltas move together. The bootstrap therefore
    resamples whole folds (each drawn fold brings all its pairs) when there are two or more: the
    interval is as wide as the fold-to-fold spread says, not narrowed by counting seeds as
    independent. The Wilcoxon test has no such variant and is over the pairs: a guide, not proof."""
    by_key = {(r["fold"], r["seed"]): r[metric] for r in b}
    pairs = [
        {"fold": r["fold"], "seed": r["seed"], "a": r[metric], "b": by_key[(r["fold"], r["seed"])]}
        for r in a
        if (r["fold"], r["seed"]) in by_key
    ]
    pairs.sort(key=lambda p: (p["fold"], p["seed"]))
    for p in pairs:
        p["delta"] = p["a"] - p["b"]
    d = np.array([p["delta"] for p in pairs], dtype=float)
    out = {"n": len(pairs), "pairs": pairs, "mean": None, "std": None, "ci95": None, "p": None, "wins": 0}
    if not len(d):
        return out
    out["mean"], out["std"] = mean_std(d)
    out["wins"] = int((d > 0).sum())
    folds = sorted({p["fold"] for p in pairs})
    out["per_fold"] = {f: float(np.mean([p["delta"] for p in pairs if p["fold"] == f])) for f in folds}
    if len(d) >= 2:
        rng = np.random.default_rng(seed)
        if len(folds) >= 2:  # cluster bootstrap: folds with replacement, all pairs of each
            sums = np.array([sum(p["delta"] for p in pairs if p["fold"] == f) for f in folds])
            counts = np.array([sum(p["fold"] == f for p in pairs) for f in folds])
            draw = rng.integers(0, len(folds), size=(10_000, len(folds)))
            boot = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
        else:
            boot = d[rng.integers(0, len(d), size=(10_000, len(d)))].mean(axis=1)
        out["ci95"] = [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]
        if np.any(d != 0):
            from scipy.stats import wilcoxon

            out["p"] = float(wilcoxon(d).pvalue)
        else:
            out["p"] = 1.0
    return out


def ranking(rows: list[dict], selection: dict[str, dict]) -> list[dict]:
    """One line per method (its main variant): confirmed test Macro-F1 and accuracy (mean +- std over
    folds x seeds), the validation score the sweep selected it on, and the paired delta against
    video-only. Sorted by mean delta (best first); without a baseline, by test Macro-F1."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    base_runs = runs_of(rows, BASELINE)
    out = []
    for m in methods:
        runs = runs_of(rows, m)
        variant = main_variant(rows, m)
        all_runs = [r for r in rows if r["method"] == m and r["variant"] == variant]
        f1, f1_sd = mean_std(r["test_f1"] for r in runs)
        acc, acc_sd = mean_std(r["test_acc"] for r in runs)
        line = {
            "method": m,
            "variant": variant,
            "runs": len(runs),
            "failed": len(all_runs) - len(runs),
            "selection_val_f1": selection.get(m, {}).get(OBJECTIVE_COLUMN),
            "confirm_val_f1": mean_std(r["val_f1"] for r in runs)[0],
            "test_f1": f1,
            "test_f1_std": f1_sd,
            "test_acc": acc,
            "test_acc_std": acc_sd,
        }
        if m != BASELINE and base_runs and runs:
            p = paired(runs, base_runs)
            line.update(
                delta=p["mean"], delta_std=p["std"], delta_ci95=p["ci95"], p_value=p["p"], wins=p["wins"], pairs=p["n"]
            )
            line["per_fold_delta"] = p.get("per_fold", {})
            line["pair_deltas"] = [q["delta"] for q in p["pairs"]]
        else:
            line.update(delta=0.0 if m == BASELINE and runs else None, delta_std=None, delta_ci95=None)
            line.update(p_value=None, wins=None, pairs=None, per_fold_delta={}, pair_deltas=[])
        out.append(line)

    def key(line):
        primary = line["delta"] if base_runs else line["test_f1"]
        return -(primary if primary is not None else -math.inf)

    out.sort(key=key)
    for i, line in enumerate(out, 1):
        line["rank"] = i
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def checklist(rows: list[dict], rank: list[dict], figures: dict[str, list[str]], errors: dict | None) -> list[dict]:
    """The training guide's checklist, one line per item: pass / fail / not run, with the number.
    `figures` maps a kind ("curves", "confusion") to the methods that have one."""
    by_method = {line["method"]: line for line in rank}
    lines = []

    def add(item, status, value, detail):
        lines.append({"item": item, "status": status, "value": value, "detail": detail})

    for m, target in TARGETS.items():
        line = by_method.get(m)
        item = f"{m}-only Macro-F1 > {target:.0%}"
        if line is None or line["test_f1"] is None:
            add(item, "not run", None, f"no confirmed {m} runs: sweep {m} (python -m sweeps.run {m})")
        else:
            sd = line["test_f1_std"]
            add(
                item,
                "pass" if line["test_f1"] > target else "fail",
                line["test_f1"],
                f"test Macro-F1 {_pct(line['test_f1'])} +- {_pct(sd)} over {line['runs']} runs (target {target:.0%})",
            )

    g = by_method.get("gated")
    item = "gated > video-only"
    if g is None or g.get("delta") is None or g["pairs"] is None:
        add(item, "not run", None, "needs confirmed gated and video runs")
    else:
        p = "-" if g["p_value"] is None else f"{g['p_value']:.3g}"
        sig = "significant" if g["p_value"] is not None and g["p_value"] < ALPHA else "not significant"
        add(
            item,
            "pass" if g["delta"] > 0 else "fail",
            g["delta"],
            f"paired delta {100 * g['delta']:+.1f} +- {100 * (g['delta_std'] or 0):.1f} points over {g['pairs']} "
            f"fold x seed pairs, {g['wins']} wins; Wilcoxon p = {p} ({sig} at {ALPHA})",
        )

    nc = sorted({r["num_classes"] for r in rows if r["status"] == "ok"})
    item = "4-class vs 8-class results"
    if nc != [4, 8]:
        add(item, "not run", None, f"only {nc}-class runs")
    else:
        parts = []
        for m in dict.fromkeys(r["method"] for r in rows):
            got = {}
            for c in (4, 8):
                rs = [r for r in rows if r["method"] == m and r["num_classes"] == c and r["status"] == "ok"]
                rs = [r for r in rs if r["variant"] in (BEST, RECIPE, f"num_classes={c}")]
                got[c] = mean_std(r["test_f1"] for r in rs)[0]
            if got[4] is not None and got[8] is not None:
                parts.append(f"{m}: 4-class {_pct(got[4])}, 8-class {_pct(got[8])}")
        add(item, "pass" if parts else "not run", None, "; ".join(parts) or "no method has both")

    item = "modality dropout: with vs without (gated)"
    with_ = runs_of(rows, "gated")
    without = runs_of(rows, "gated", NO_MODALITY_DROPOUT)
    p_md = with_[0].get("config", {}).get("modality_dropout") if with_ else None
    if p_md == 0:
        add(item, "fail", 0.0, "the sweep's best gated configuration already uses p = 0: dropout did not help there")
    elif not with_ or not without:
        add(item, "not run", None, "needs confirmed gated runs at the best p and at p = 0")
    else:
        pd_ = paired(with_, without)
        p = "-" if pd_["p"] is None else f"{pd_['p']:.3g}"
        sig = "significant" if pd_["p"] is not None and pd_["p"] < ALPHA else "not significant"
        best_p = "the best p" if p_md is None else f"p = {p_md:.2f}"
        add(
            item,
            "pass" if (pd_["mean"] or 0) > 0 else "fail",
            pd_["mean"],
            f"{best_p} vs p = 0: paired delta {100 * (pd_['mean'] or 0):+.1f} points over {pd_['n']} pairs, "
            f"Wilcoxon p = {p} ({sig} at {ALPHA}; pass: higher with dropout on average)",
        )

    methods = list(dict.fromkeys(line["method"] for line in rank if line["runs"]))
    for kind, item in (("curves", "training curves"), ("confusion", "a confusion matrix per method")):
        have = figures.get(kind, [])
        missing = [m for m in methods if m not in have]
        add(
            item,
            "pass" if methods and not missing else "fail",
            len(have),
            f"{len(have)} of {len(methods)} methods" + (f"; missing {', '.join(missing)}" if missing else ""),
        )

    item = "error cases: audio right / video wrong and the reverse"
    if errors is None:
        add(item, "not run", None, "needs confirmed audio and video runs")
    else:
        add(
            item,
            "pass",
            errors["audio_only_right"] + errors["video_only_right"],
            f"{errors['audio_only_right']} clips audio gets right and video wrong, {errors['video_only_right']} "
            f"the reverse (of {errors['clips']}; majority over seeds)",
        )
    return lines


def error_cases(audio: list[dict], video: list[dict], names: list[str], files: dict[int, str]) -> dict | None:
    """Clips the audio model gets right and the video model wrong, and the reverse, per emotion.
    A clip counts as right for a method when most of its seeds got it right (each clip is tested in
    exactly one fold). `files` maps a data row to a file name."""
    if not audio or not video:
        return None

    def votes(runs):
        right: dict[int, list[bool]] = {}
        label: dict[int, int] = {}
        for r in runs:
            for row, y, p in zip(r["recordings"], r["labels"], r["pred"], strict=True):
                right.setdefault(row, []).append(y == p)
                label[row] = y
        return {k: sum(v) * 2 > len(v) for k, v in right.items()}, label

    a_right, labels = votes(audio)
    v_right, _ = votes(video)
    common = sorted(set(a_right) & set(v_right))
    per = {n: {"audio_only_right": [], "video_only_right": [], "both_right": 0, "both_wrong": 0} for n in names}
    for row in common:
        e = per[names[labels[row]]]
        a, v = a_right[row], v_right[row]
        if a and not v:
            e["audio_only_right"].append(files.get(row, str(row)))
        elif v and not a:
            e["video_only_right"].append(files.get(row, str(row)))
        else:
            e["both_right" if a else "both_wrong"] += 1
    return {
        "clips": len(common),
        "audio_only_right": sum(len(e["audio_only_right"]) for e in per.values()),
        "video_only_right": sum(len(e["video_only_right"]) for e in per.values()),
        "per_emotion": per,
    }


def curves(runs: list[dict], keys: tuple[str, ...]) -> dict[str, list[float]]:
    """Per-epoch means over runs (a run that stopped early stops contributing after its last epoch)."""
    out: dict[str, list[float]] = {}
    for k in keys:
        longest = max((len(r["history"]) for r in runs), default=0)
        series = []
        for e in range(longest):
            vals = [r["history"][e][k] for r in runs if e < len(r["history"]) and k in r["history"][e]]
            series.append(float(np.mean(vals)) if vals else math.nan)
        if any(not math.isnan(v) for v in series):
            out[k] = series
    return out


def gate_behaviour(runs: list[dict], names: list[str], initial: float | None) -> dict | None:
    """The gated model's mean gate on audio over epochs (train and val) and per emotion on test:
    below 0.5 it leans to video. None when there are no gated runs."""
    runs = [r for r in runs if r.get("gate_test_mean") is not None]
    if not runs:
        return None
    c = curves(runs, ("gate/train_mean", "gate/val_mean"))
    per_emotion = {}
    for n in names:
        vals = [r["gate_per_class"][n] for r in runs if n in r["gate_per_class"]]
        if vals:
            per_emotion[n] = float(np.mean(vals))
    final = float(np.mean([r["gate_test_mean"] for r in runs]))
    return {
        "initial": initial,
        "epochs": c,
        "test_mean": final,
        "per_emotion": per_emotion,
        "leans_to_video": final < 0.5,
    }


def importance(trials: list[dict], distributions: dict, seed: int = 0) -> tuple[dict[str, float], str | None]:
    """Optuna's fANOVA importance of each searched parameter for the sweep's objective (best validation
    Macro-F1; a pruned trial counts with the score it had when ASHA stopped it, as the searcher saw it).
    Returns (importances, None) or ({}, why not)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    usable = [t for t in trials if t["value"] is not None and not math.isnan(t["value"])]
    if len(usable) < 3:
        return {}, f"{len(usable)} scored trials; fANOVA needs at least 3"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for t in usable:
        params = {k: t["params"][k] for k in distributions if t["params"].get(k) is not None}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=t["value"]))
    if len({t["value"] for t in usable}) < 2:
        return {}, "every trial has the same score: nothing to attribute"
    try:
        imp = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
    except (RuntimeError, ValueError) as e:
        return {}, f"fANOVA failed: {e}"
    return {k: float(v) for k, v in imp.items()}, None


def to_json(obj) -> str:
    """Strict JSON (NaN becomes null: browsers and jq reject NaN)."""
    return json.dumps(clean(obj), indent=1, default=_default, allow_nan=False)


def clean(obj):
    """NaN and infinities to None, numpy scalars to Python, tuples to lists, recursively."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
