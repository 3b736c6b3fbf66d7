"""The sweep report, for real: a 3-method sweep on the tiny demo set ends with `--report`, which runs
confirmation runs over actor folds on Ray and writes report.html / report.parquet / summary.json and a
W&B run (offline), all read back here."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweeps.report import stats as A
from sweeps.report.page import RANKING_COLUMNS, pct, text_table
from tests.keysearch import FAKE_KEY, search
from tests.test_sweep import SWEEP_DATA as SWEEP_FLAGS

ROOT = Path(__file__).resolve().parents[1]
SWEEP_DATA = [*SWEEP_FLAGS, "--embed_dim", "32"]
CHECKLIST_ITEMS = [
    "audio-only Macro-F1 > 65%",
    "video-only Macro-F1 > 73%",
    "gated > video-only",
    "4-class vs 8-class results",
    "modality dropout: with vs without (gated)",
    "training curves",
    "a confusion matrix per method",
    "error cases: audio right / video wrong and the reverse",
]


@pytest.fixture(scope="module")
def reported(tiny_demo, tmp_path_factory):
    """`python -m sweeps.run audio video gated ... --report --wandb` (main(), W&B offline)."""
    import ray

    from sweeps.run import main

    storage = tmp_path_factory.mktemp("runs")
    argv = ["audio", "video", "gated", "--data_root", str(tiny_demo.root), *SWEEP_DATA]
    argv += ["--num-samples", "2", "--max-epochs", "2", "--storage-path", str(storage), "--name", "r"]
    argv += ["--report", "--report-folds", "2", "--report-seeds", "1", "--wandb"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        # A key in the environment, as a user with W&B set up has: it must end up in no file (offline
        # mode keeps W&B off the network; the key is still read by W&B and visible to Ray's processes).
        env.setenv("WANDB_API_KEY", FAKE_KEY)
        puts: list[str] = []  # the type of every object the driver put in Ray's object store
        sessions: set[Path] = set()  # the session folder of the Ray instance main() started, asked of Ray
        real_put = ray.put

        def put(value, *a, **k):
            puts.append(type(value).__name__)
            sessions.add(Path(ray._private.worker._global_node.get_session_dir_path()))
            return real_put(value, *a, **k)

        env.setattr(ray, "put", put)
        rc = main(argv)
        [session] = sessions
    out = storage / "r" / "report"
    summary = json.loads((out / "summary.json").read_text())
    return {"rc": rc, "sweep": storage / "r", "out": out, "summary": summary, "ray_session": session, "puts": puts}


class _Tables(HTMLParser):
    """Every <table id=...> as rows of cell texts, and every <img> src."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or f"t{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _html(reported) -> _Tables:
    p = _Tables()
    p.feed((reported["out"] / "report.html").read_text(encoding="utf-8"))
    return p


def test_sweep_ends_with_the_report_files(reported):
    assert reported["rc"] == 0
    for f in ("report.html", "report.parquet", "summary.json"):
        assert (reported["out"] / f).stat().st_size > 0, f
    df = pd.read_parquet(reported["out"] / "report.parquet")
    # 3 methods x 2 folds x 1 seed, plus gated without modality dropout and video + gated at 4 classes.
    assert len(df) == (3 + 1 + 2) * 2
    assert set(df["method"]) == {"audio", "video", "gated"}
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"][["method", "variant", "error"]]
    assert df["test_f1"].between(0, 1).all() and df["test_acc"].between(0, 1).all()
    assert set(df["variant"]) == {"best", "modality_dropout=0", "num_classes=4"}
    # The sweep's results.parquet keeps every method's searched values (gated's gate_bias included).
    res = pd.read_parquet(reported["sweep"] / "results.parquet")
    assert res.loc[res["method"] == "gated", "config/gate_bias"].notna().all()
    assert res.loc[res["method"] == "audio", "config/gate_bias"].isna().all()


def test_the_features_go_into_the_object_store_once(reported):
    """The sweep's trials and the report's confirmation runs read one copy of the feature arrays: a
    second would hold the features twice in every node's shared memory (about 1 GB at RAVDESS size)."""
    assert reported["rc"] == 0
    assert reported["puts"].count("TrainingArrays") == 1, reported["puts"]


def test_ranking_table_matches_the_parquet(reported):
    tables = _html(reported).tables
    head, *body = tables["ranking"]
    assert head == list(RANKING_COLUMNS)
    df = pd.read_parquet(reported["out"] / "report.parquet")
    main = df[(df["variant"] == "best") & (df["status"] == "ok")]
    assert len(body) == 3
    for cells in body:
        row = dict(zip(head, cells, strict=True))
        runs = main[main["method"] == row["method"]]
        assert row["test Macro-F1"] == pct(runs["test_f1"].mean(), runs["test_f1"].std(ddof=1))
        assert row["test accuracy"] == pct(runs["test_acc"].mean(), runs["test_acc"].std(ddof=1))
        assert row["runs"] == str(len(runs))
        if row["method"] == "video":
            assert row["Δ vs video (points)"] == "baseline"
        else:  # paired on (fold, seed) against video-only
            video = main[main["method"] == "video"].set_index(["fold", "seed"])["test_f1"]
            delta = runs.set_index(["fold", "seed"])["test_f1"] - video
            assert row["Δ vs video (points)"] == f"{100 * delta.mean():+.1f} ± {100 * delta.std(ddof=1):.1f}"
    # Sorted by the delta to video-only, best first.
    deltas = [line["delta"] for line in reported["summary"]["ranking"]]
    assert deltas == sorted(deltas, reverse=True)
    # The terminal / README table says the same.
    assert text_table(reported["summary"]).count("\n") == 1 + 3


def test_every_figure_is_a_valid_image(reported):
    from PIL import Image

    files = sorted((reported["out"] / "figures").glob("*.png"))
    names = {f.stem for f in files}
    assert {"ranking", "deltas", "gate"} <= names
    assert {f"{k}-{m}" for k in ("curves", "confusion") for m in ("audio", "video", "gated")} <= names
    for f in files:
        with Image.open(f) as im:
            im.verify()
    images = _html(reported).images
    assert len(images) == len(files), "every figure is embedded in the HTML, and nothing else"
    for src in images:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            assert im.size[0] > 100 and im.size[1] > 100


def test_checklist_has_a_line_for_each_item(reported):
    head, *body = _html(reported).tables["checklist"]
    assert [r[0] for r in body] == CHECKLIST_ITEMS
    assert {r[1] for r in body} <= {"pass", "fail", "not run"}
    lines = {c["item"]: c for c in reported["summary"]["checklist"]}
    # Everything the report ran has a result (nothing "not run"), with its number in the evidence.
    assert all(c["status"] != "not run" for c in lines.values()), lines
    audio = next(r for r in reported["summary"]["ranking"] if r["method"] == "audio")
    expected = "pass" if audio["test_f1"] > 0.65 else "fail"
    assert lines["audio-only Macro-F1 > 65%"]["status"] == expected
    assert pct(audio["test_f1"]) in lines["audio-only Macro-F1 > 65%"]["detail"]


def test_no_test_clip_picks_a_config(reported):
    res = pd.read_parquet(reported["sweep"] / "results.parquet")
    # Sweep trials never saw a test clip: no test metric in their results.
    assert not [c for c in res.columns if "test" in c]
    sel = reported["summary"]["selection"]
    for method, s in sel.items():
        trials = res[(res["method"] == method) & (res["status"] != "error")]
        assert s["trial_id"] == trials.loc[trials["best_val_f1"].idxmax(), "trial_id"]
        assert s["best_val_f1"] == pytest.approx(trials["best_val_f1"].max())
    df = pd.read_parquet(reported["out"] / "report.parquet")
    for _, r in df.iterrows():
        test, seen = set(r["test_actors"]), set(r["train_actors"]) | set(r["val_actors"])
        assert test and not test & seen, (r["method"], r["fold"])
        cfg = json.loads(r["config"])
        assert cfg["folds"] == 2 and cfg["fold"] == r["fold"] and cfg["split_mode"] == "actor"
    # The sweep chose on actor 3 (the tiny set's actor split: train 1-2, val 3, test 4): no
    # confirmation run tests on it, and every other actor is tested exactly once over the folds.
    assert reported["summary"]["meta"]["selection_actors"] == [3]
    assert not any(3 in actors for actors in df["test_actors"])
    assert all(3 in actors for actors in df["val_actors"])
    best_audio = df[(df["method"] == "audio") & (df["variant"] == "best")]
    tested = sorted(a for actors in best_audio["test_actors"] for a in actors)
    assert tested == sorted(set(tested)) == [1, 2, 4]


def test_gate_and_error_cases_are_reported(reported):
    s = reported["summary"]
    gate = s["gate"]
    assert 0 < gate["test_mean"] < 1 and gate["leans_to_video"] == (gate["test_mean"] < 0.5)
    assert len(gate["epochs"]["gate/val_mean"]) == 2
    assert gate["per_emotion"] and set(gate["per_emotion"]) <= set(s["class_names"])
    assert all(0 < g < 1 for g in gate["per_emotion"].values())
    err = s["error_cases"]
    assert err["clips"] > 0
    counted = sum(len(v["audio_only_right"]) + len(v["video_only_right"]) + v["both_right"] + v["both_wrong"]
                  for v in err["per_emotion"].values())  # fmt: skip
    assert counted == err["clips"]
    files = [f for v in err["per_emotion"].values() for f in v["audio_only_right"] + v["video_only_right"]]
    assert all(f.endswith((".wav", ".mp4")) or ".mp4 + " in f for f in files)
    for m in ("audio", "video", "gated"):
        imp = s["importance"].get(m) or {}
        assert imp or m in s["importance_notes"], m


def test_report_logs_a_wandb_run(reported):
    from tests.test_sweep import _wandb_records

    runs = list((reported["out"] / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    records = _wandb_records(runs[0])
    run = next(r["run"] for r in records if r["type"] == "run")
    assert run["job_type"] == "report" and run["run_group"] == "r" and "report" in run["tags"]
    table = json.loads(next((runs[0] / "files" / "media" / "table").glob("ranking_*.table.json")).read_text())
    f1 = {row[table["columns"].index("method")]: row[table["columns"].index("test_f1")] for row in table["data"]}
    for line in reported["summary"]["ranking"]:
        assert f1[line["method"]] == pytest.approx(line["test_f1"])
    assert len(list((runs[0] / "files" / "media" / "table").glob("checklist_*.table.json"))) == 1
    images = list((runs[0] / "files" / "media" / "images").rglob("*.png"))
    assert len(images) == len(list((reported["out"] / "figures").glob("*.png")))


def test_report_again_reruns_nothing(reported):
    """The standalone CLI on the same sweep: every confirmation run is read back, none is retrained,
    and the numbers are the same."""
    out = subprocess.run(
        [sys.executable, "-m", "sweeps.report", str(reported["sweep"]), "--folds", "2", "--seeds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "12 of 12 confirmation runs already finished" in out.stdout
    assert "confirmation runs (" not in out.stdout  # nothing submitted to Ray
    again = json.loads((reported["out"] / "summary.json").read_text())
    assert again["ranking"] == reported["summary"]["ranking"]


def test_a_finished_run_is_reused_unless_a_setting_that_changes_its_result_differs():
    """The report reruns a confirmation run only when its result would differ: not for a field that only
    says how runs are operated (W&B, checkpoint cadence), nor for a run saved before such a field
    existed (the committed example's runs predate `checkpoint_every`)."""
    from emo.config import TrainConfig
    from sweeps.report.confirm import same_run

    cfg = TrainConfig(fusion="gated", checkpoint_every=3, wandb=True).to_dict()
    saved = json.loads(json.dumps(TrainConfig(fusion="gated").to_dict()))  # as read back from its file
    del saved["checkpoint_every"]
    assert same_run(saved, cfg)
    assert not same_run(saved, {**cfg, "lr": cfg["lr"] * 2})
    assert not same_run(saved, {**cfg, "seed": cfg["seed"] + 1})


REPORT_CLI_ERRORS = [
    (("{tmp}",), "is not a sweep folder (no sweep.json)"),
    (("{tmp}/nope",), "is not a sweep folder"),
    (("{half}",), "has not finished; finish it with: python -m sweeps.run --resume --name half"),
    (("{half}", "--folds", "1"), "--folds must be >= 2, got 1"),
    ((), "the following arguments are required: RUN_DIR"),
    (("{half}", "--address", "ray://head:10001"), "(Ray Client) is not supported"),
    (("{garbled}",), "garbled/sweep.json is unreadable (JSONDecodeError"),
    (("{cut}",), "cut/results.parquet is unreadable (ArrowInvalid"),
    (("{moved}",), "the sweep's data_root '/nonexistent/RAVDESS' is not a folder here"),
]


@pytest.fixture(scope="module")
def report_cli_errors(tmp_path_factory):
    """Folders holding each kind of broken sweep, and the command lines naming them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp_path = tmp_path_factory.mktemp("report-cli")
    folders = {}
    for name, fixed in (("half", {}), ("garbled", {}), ("cut", {}), ("moved", {"data_root": "/nonexistent/RAVDESS"})):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "sweep.json").write_text(
            json.dumps({"name": name, "methods": ["gated"], "fixed": fixed, "num_samples": 1, "max_epochs": 1})
        )
    (folders["garbled"] / "sweep.json").write_text('{"name": "garbled", "meth')  # cut off mid-write
    pq.write_table(pa.table({"method": ["gated"]}), folders["moved"] / "results.parquet")
    pq.write_table(pa.table({"method": ["gated"] * 100}), folders["cut"] / "results.parquet")
    whole = (folders["cut"] / "results.parquet").read_bytes()
    (folders["cut"] / "results.parquet").write_bytes(whole[: len(whole) // 2])
    return {args: [a.format(tmp=tmp_path, **folders) for a in args] for args, _ in REPORT_CLI_ERRORS}


@pytest.mark.parametrize("args, message", REPORT_CLI_ERRORS)
def test_report_cli_errors_are_one_line(report_cli_errors, args, message, capsys):
    """Through `main` in this process (`python -m sweeps.report` itself runs in test_report_again_reruns_nothing)."""
    from sweeps.report.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(report_cli_errors[args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- the numbers, on known input
def _run(method, fold, seed, f1, variant="best", **kw):
    return {"method": method, "variant": variant, "fold": fold, "seed": seed, "status": "ok", "test_f1": f1,
            "test_acc": f1, "val_f1": f1, "num_classes": 8, **kw}  # fmt: skip


def test_paired_matches_scipy_and_pairs_by_fold_and_seed():
    from scipy.stats import wilcoxon

    a = [_run("gated", f, s, 0.5 + 0.01 * (3 * f + s)) for f in range(4) for s in range(3)]
    b = [_run("video", f, s, 0.4 + 0.002 * (f - s)) for f in range(4) for s in range(3)]
    b = [r for r in b if (r["fold"], r["seed"]) != (3, 2)]  # an unmatched run is left out, not misaligned
    p = A.paired(a, b)
    d = np.array(
        [ra["test_f1"] - rb["test_f1"] for ra in a for rb in b if (ra["fold"], ra["seed"]) == (rb["fold"], rb["seed"])]
    )
    assert p["n"] == 11 and p["wins"] == 11
    assert p["mean"] == pytest.approx(d.mean()) and p["std"] == pytest.approx(d.std(ddof=1))
    assert p["p"] == pytest.approx(wilcoxon(d).pvalue)
    assert p["ci95"][0] < d.mean() < p["ci95"][1]
    assert p["per_fold"][0] == pytest.approx(np.mean(d[:3]))


def test_ranking_sorts_by_delta_and_checklist_says_what_was_not_run():
    rows = [
        _run(m, f, 0, base + 0.01 * f) for m, base in (("video", 0.5), ("gated", 0.6), ("late", 0.45)) for f in range(3)
    ]
    rank = A.ranking(rows, {"gated": {"best_val_f1": 0.7}})
    assert [r["method"] for r in rank] == ["gated", "video", "late"]
    assert rank[0]["delta"] == pytest.approx(0.1) and rank[2]["delta"] == pytest.approx(-0.05)
    assert rank[0]["selection_val_f1"] == 0.7
    lines = {c["item"]: c for c in A.checklist(rows, rank, {"curves": ["gated"], "confusion": []}, None)}
    assert lines["audio-only Macro-F1 > 65%"]["status"] == "not run"
    assert "python -m sweeps.run audio" in lines["audio-only Macro-F1 > 65%"]["detail"]
    assert lines["video-only Macro-F1 > 73%"]["status"] == "fail"
    assert lines["gated > video-only"]["status"] == "pass"
    assert lines["training curves"]["status"] == "fail" and "missing video, late" in lines["training curves"]["detail"]
    assert lines["modality dropout: with vs without (gated)"]["status"] == "not run"


def test_error_cases_count_majority_over_seeds():
    names = ["neutral", "happy"]
    # Clip 0 (neutral): audio right in 2 of 3 seeds, video never -> audio right, video wrong.
    # Clip 1 (happy): audio right in 1 of 3, video in 3 of 3 -> the reverse. Clip 2: both right.
    audio = [{"recordings": [0, 1, 2], "labels": [0, 1, 1], "pred": p} for p in ([0, 0, 1], [0, 1, 1], [1, 0, 1])]
    video = [{"recordings": [0, 1, 2], "labels": [0, 1, 1], "pred": [1, 1, 1]} for _ in range(3)]
    e = A.error_cases(audio, video, names, {0: "a.wav", 1: "b.wav", 2: "c.wav"})
    assert e["clips"] == 3 and e["audio_only_right"] == 1 and e["video_only_right"] == 1
    assert e["per_emotion"]["neutral"]["audio_only_right"] == ["a.wav"]
    assert e["per_emotion"]["happy"]["video_only_right"] == ["b.wav"]
    assert e["per_emotion"]["happy"]["both_right"] == 1


def test_summary_json_is_strict():
    assert json.loads(A.to_json({"x": float("nan"), "y": np.float32(0.5), "z": (1, 2)})) == {
        "x": None,
        "y": 0.5,
        "z": [1, 2],
    }


def test_committed_demo_report_ranks_gated_above_video_and_the_readme_shows_it():
    """examples/demo-report is the report of `python -m sweeps.run all` on the demo set (see its
    README): gated beats video-only there, and the README's ranking table is that report's."""
    example = ROOT / "examples" / "demo-report"
    summary = json.loads((example / "summary.json").read_text())
    gated = next(line for line in summary["ranking"] if line["method"] == "gated")
    assert gated["delta"] > 0 and gated["wins"] > gated["pairs"] / 2, gated
    assert text_table(summary) in (ROOT / "README.md").read_text()
    p = _Tables()
    p.feed((example / "report.html").read_text(encoding="utf-8"))
    head, *body = p.tables["ranking"]
    assert [dict(zip(head, r, strict=True))["method"] for r in body] == [
        line["method"] + (" (recipe, not swept)" if line["variant"] == "recipe" else "") for line in summary["ranking"]
    ]
    df = pd.read_parquet(example / "report.parquet")
    assert len(df) == summary["meta"]["runs"] and set(df["method"]) == {line["method"] for line in summary["ranking"]}


def test_wandb_key_is_in_no_file_the_sweep_wrote(reported):
    """The sweep ran with WANDB_API_KEY set: no file it wrote (params.json, result.json, checkpoints,
    results.parquet, the W&B runs and their logs, the report) nor Ray's session logs holds the key."""
    hits, checked = search([reported["sweep"], reported["ray_session"]], [FAKE_KEY.encode()])
    assert hits == []
    names = {f.name for f in reported["sweep"].rglob("*") if f.is_file()}
    assert {"params.json", "result.json", "results.parquet", "report.html", "summary.json"} <= names
    assert any(n.startswith("debug") and n.endswith(".log") for n in names), "W&B's own logs were checked"
    assert len(checked) > 50


def test_importance_ranks_the_parameter_that_decides_the_score():
    """fANOVA on trials whose score depends on lr only: lr comes out on top."""
    import optuna

    rng = np.random.default_rng(0)
    dists = {"lr": optuna.distributions.FloatDistribution(1e-4, 3e-3, log=True),
             "dropout": optuna.distributions.FloatDistribution(0.0, 0.6)}  # fmt: skip
    trials = []
    for _ in range(12):
        lr, dropout = float(np.exp(rng.uniform(np.log(1e-4), np.log(3e-3)))), float(rng.uniform(0, 0.6))
        trials.append({"params": {"lr": lr, "dropout": dropout}, "value": -abs(np.log10(lr) + 3)})
    imp, why = A.importance(trials, dists)
    assert why is None and max(imp, key=imp.get) == "lr" and imp["lr"] > 0.8
    assert A.importance(trials[:2], dists) == ({}, "2 scored trials; fANOVA needs at least 3")


def test_importance_over_a_methods_own_search_space():
    """The report's path from a method's search space to fANOVA (`selection.distributions`, Optuna's conversion
    of Tune's domains), on gated trials whose score depends on the initial gate only."""
    from sweeps.report.selection import distributions

    rng = np.random.default_rng(1)
    names = ["lr", "dropout", "gate_bias"]
    dists = distributions("gated", {}, names)
    assert set(dists) == set(names)
    trials = []
    for _ in range(12):
        params = {k: float(rng.uniform(d.low, d.high)) for k, d in dists.items()}
        trials.append({"params": params, "value": -abs(params["gate_bias"] - 0.3)})
    imp, why = A.importance(trials, dists)
    assert why is None and max(imp, key=imp.get) == "gate_bias", imp


def test_bootstrap_interval_resamples_folds_not_seeds():
    """Seeds of one fold share test actors: when they agree within a fold and folds disagree, the
    interval must reflect the 4 folds, not 12 independent pairs (a pair bootstrap is about sqrt(3)
    times narrower here)."""
    fold_delta = [0.10, -0.02, 0.05, 0.15]
    a = [_run("gated", f, s, 0.5 + fold_delta[f]) for f in range(4) for s in range(3)]
    b = [_run("video", f, s, 0.5) for f in range(4) for s in range(3)]
    p = A.paired(a, b)
    d = np.array([q["delta"] for q in p["pairs"]])
    rng = np.random.default_rng(0)
    pair_boot = d[rng.integers(0, len(d), size=(10_000, len(d)))].mean(axis=1)
    pair_width = np.quantile(pair_boot, 0.975) - np.quantile(pair_boot, 0.025)
    lo, hi = p["ci95"]
    assert lo < p["mean"] < hi and hi - lo > 1.4 * pair_width, (p["ci95"], pair_width)
