"""The synthetic demo set: RAVDESS layout, decodable media, determinism, idempotence, and the cue design.

Every test works on real files written by `emo.data.synth` into a tmp folder (one tiny set per module).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
import wave
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from emo.data import synth
from emo.data.naming import parse_name

# Tiny but complete: 2 actors x 60 recordings x 3 files, 64x48 (the face fills the centre 48x48).
ARGS = dict(actors=2, width=64, height=48, fps=10.0, sample_rate=16000, seconds=1.2, seed=0, modalities=(1, 2, 3))
N_FRAMES = round(ARGS["fps"] * ARGS["seconds"])
N_SAMPLES = round(ARGS["sample_rate"] * ARGS["seconds"])
AAC_FRAME = 1024  # samples per AAC frame: decoded tracks may run up to one frame long (encoder padding)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("synth") / "tiny", **ARGS, workers=2, progress=False)


def media(root: Path, pattern: str = "*") -> list[Path]:
    return sorted(root.glob(f"Actor_*/{pattern}"))


def read_wav(path: Path) -> tuple[np.ndarray, int, int, int]:
    with wave.open(str(path)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        return x, w.getframerate(), w.getsampwidth(), w.getnchannels()


def decode(path: Path) -> tuple[np.ndarray, np.ndarray, av.audio.stream.AudioStream]:
    """All video frames (T, H, W, 3) and the whole audio track (channels, samples) of an mp4."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        audio = np.concatenate([f.to_ndarray() for f in c.decode(stream)], axis=1)
    return frames, audio, stream


# ----------------------------------------------------------------------------- layout and media
def test_ravdess_layout_and_names(tiny):
    assert sorted(p.name for p in tiny.iterdir()) == ["Actor_01", "Actor_02", synth.MANIFEST]
    assert not list(tiny.parent.glob(".*partial*")), "the temporary build folder was left behind"
    for folder in sorted(tiny.glob("Actor_*")):
        actor = int(folder.name.split("_")[1])
        names = [parse_name(p) for p in folder.iterdir()]  # raises on any non-RAVDESS name
        assert all(n.actor == actor and n.vocal_channel == 1 for n in names)
        by_recording: dict[str, set[int]] = {}
        for n in names:
            by_recording.setdefault(n.recording, set()).add(n.modality)
        assert len(by_recording) == 60
        assert all(mods == {1, 2, 3} for mods in by_recording.values())
        # the RAVDESS speech design: 4 neutral (intensity 01 only), 8 of every other emotion
        per_emotion = Counter(n.emotion for n in names if n.modality == 3)
        assert per_emotion == {1: 4, **{e: 8 for e in range(2, 9)}}
        assert {(n.intensity, n.statement, n.repetition) for n in names if n.emotion == 5} == set(
            itertools.product((1, 2), (1, 2), (1, 2))
        )
    info = json.loads((tiny / synth.MANIFEST).read_text())
    assert info["version"] == synth.VERSION and info["clips"] == 120 and info["files"] == 360
    assert info["args"]["modalities"] == [1, 2, 3] and info["args"]["seconds"] == ARGS["seconds"]


def test_every_mp4_decodes_with_the_right_audio(tiny):
    mp4s = media(tiny, "*.mp4")
    assert len(mp4s) == 240
    for path in mp4s:
        frames, audio, stream = decode(path)
        assert frames.shape == (N_FRAMES, ARGS["height"], ARGS["width"], 3), path.name
        assert stream.codec_context.name == "aac" and stream.sample_rate == ARGS["sample_rate"]
        assert N_SAMPLES <= audio.shape[1] < N_SAMPLES + AAC_FRAME, path.name
        peak = np.abs(audio).max()
        if parse_name(path).modality == 1:
            assert peak > 0.05, f"{path.name}: the audio-video file's track is (nearly) silent"
        else:
            assert peak == 0, f"{path.name}: the video-only file's track must be digital silence"
    with av.open(str(mp4s[0])) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt) == ("h264", "yuv420p")


def test_wav_is_the_mp4_audio_with_the_same_duration(tiny):
    for wav in media(tiny, "03-*.wav")[::7]:
        x, rate, width, channels = read_wav(wav)
        assert (rate, width, channels, len(x)) == (ARGS["sample_rate"], 2, 1, N_SAMPLES)
        mp4 = wav.with_name("01" + wav.name[2:]).with_suffix(".mp4")
        _, audio, stream = decode(mp4)
        # the container says exactly the wav's duration; decoding adds at most the last frame's padding
        assert stream.duration * stream.time_base == pytest.approx(len(x) / rate, abs=1e-9)
        assert abs(audio.shape[1] - len(x)) < AAC_FRAME
        # and it is the same signal, sample-aligned (AAC is lossy: compare shapes, not bits)
        ref, dec = x.astype(np.float64) / 32768, audio[0, : len(x)].astype(np.float64)
        assert np.corrcoef(ref, dec)[0, 1] > 0.99, wav.name


# ----------------------------------------------------------------------------- determinism and idempotence
def test_same_arguments_give_identical_files(tiny, tmp_path):
    # one actor, serially, in another folder: the per-clip seeds do not depend on the set around the clip
    # nor on the worker count, so actor 01's files must come out the same
    other = synth.generate(tmp_path / "again", **{**ARGS, "actors": 1, "modalities": (1, 3)}, workers=1, progress=False)
    wavs = media(other, "*.wav")
    assert len(wavs) == 60
    for w in wavs:
        assert w.read_bytes() == (tiny / w.parent.name / w.name).read_bytes(), w.name
    for m in media(other, "01-*.mp4")[::10]:
        np.testing.assert_array_equal(decode(m)[0], decode(tiny / m.parent.name / m.name)[0])
    # and the seed matters
    rec = (1, 3, 2, 1, 1)
    kw = dict(sample_rate=ARGS["sample_rate"], seconds=ARGS["seconds"])
    assert not np.array_equal(synth.render_audio(rec, seed=0, **kw), synth.render_audio(rec, seed=1, **kw))


def test_regenerating_a_complete_set_is_a_noop(tiny):
    files = [tiny / synth.MANIFEST, *media(tiny)]
    before = {p: p.stat().st_mtime_ns for p in files}
    t0 = time.perf_counter()
    assert synth.generate(tiny, **ARGS, progress=False) == tiny
    assert time.perf_counter() - t0 < 1.0
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_other_arguments_or_foreign_folders_raise_and_touch_nothing(tiny, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in media(tiny)}
    with pytest.raises(synth.SynthError, match=r"seconds=1\.2 \(asked 2\.0\)"):
        synth.generate(tiny, **{**ARGS, "seconds": 2.0}, progress=False)
    with pytest.raises(synth.SynthError, match="modalities"):
        synth.generate(tiny, **{**ARGS, "modalities": (1, 3)}, progress=False)
    assert {p: p.stat().st_mtime_ns for p in media(tiny)} == before

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(synth.SynthError, match="not a synth dataset"):
        synth.generate(foreign, actors=1, modalities=(3,), progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    # an empty folder is fine: it is filled (here with a quick wav-only set)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert synth.generate(empty, actors=1, seconds=0.5, modalities=(3,), progress=False) == empty
    assert len(media(empty, "*.wav")) == 60


def test_demo_root_lives_in_the_cache_and_refuses_a_foreign_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EMO_CACHE_DIR", str(tmp_path))
    demo = tmp_path / f"demo-v{synth.VERSION}"
    demo.mkdir()
    (demo / "x").write_text("")
    with pytest.raises(synth.SynthError, match=str(demo)):
        synth.demo_root(progress=False)


def test_bad_arguments_are_rejected(tmp_path):
    for bad in (
        dict(width=65),
        dict(actors=25),
        dict(sample_rate=12345),
        dict(modalities=(4,)),
        dict(channels=3),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            synth.generate(tmp_path / "x", **bad, progress=False)
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- CLI
def cli_args(root: Path, sample_rate_flag: str = "--sample-rate") -> list[str]:
    sizes = ["--actors", "2", "--width", "64", "--height", "48", "--fps", "10", sample_rate_flag, "16000"]
    return [str(root), *sizes, "--seconds", "1.2", "--modalities", "1,2,3", "--quiet"]


def test_cli_both_spellings_and_one_line_errors(tiny, capsys):
    for flag in ("--sample-rate", "--sample_rate"):
        assert synth.main(cli_args(tiny, flag)) == 0
        assert "already holds this set (120 clips, 360 files" in capsys.readouterr().out
    for argv, needle in (([str(tiny), "--bogus"], "--bogus"), ([str(tiny), "--width", "33"], "width")):
        with pytest.raises(SystemExit) as e:
            synth.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and needle in err and err.count("\n") == 1, err
    assert synth.main([*cli_args(tiny), "--seed", "1"]) == 1  # another set in the folder: one-line error
    err = capsys.readouterr().err
    assert "seed=0 (asked 1)" in err and err.count("\n") == 1


def test_module_entry_point(tiny):
    run = subprocess.run(
        [sys.executable, "-m", "emo.data.synth", *cli_args(tiny)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "already holds this set" in run.stdout


# ----------------------------------------------------------------------------- the cues
def test_cue_design_needs_both_streams():
    codes = range(1, 9)
    assert dict(synth.VIDEO_CUE) == {c: (c - 1) // 2 for c in codes}
    assert dict(synth.AUDIO_CUE) == {c: (c - 1) % 4 for c in codes}
    both = {(synth.VIDEO_CUE[c], synth.AUDIO_CUE[c]) for c in codes}
    assert len(both) == 8, "video and audio cues together must identify every emotion"
    for cue in (synth.VIDEO_CUE, synth.AUDIO_CUE):
        assert sorted(Counter(cue.values()).values()) == [2, 2, 2, 2], "alone: 4 groups of 2 emotions"
    rows = synth.cue_table()
    assert [(r["code"], r["video_cue"], r["audio_cue"]) for r in rows] == [
        (c, synth.VIDEO_CUE[c], synth.AUDIO_CUE[c]) for c in codes
    ]


def separation(stats: dict[int, np.ndarray], cue: dict[int, int]) -> float:
    """Mean distance between the statistics of two emotions that share a cue over the mean distance between
    two emotions with different cues: ~1 if the statistic does not see the cue, near 0 if it sees only it."""
    same, diff = [], []
    for a, b in itertools.combinations(sorted(stats), 2):
        (same if cue[a] == cue[b] else diff).append(float(np.linalg.norm(stats[a] - stats[b])))
    return float(np.mean(same) / np.mean(diff))


def spectrum(frames: np.ndarray) -> np.ndarray:
    """Mean magnitude spectrum of the grey frames: what the picture shows, not where. (Raw mean frames are
    dominated by the head's motion and per-clip offsets, which move every edge of the face.)"""
    grey = frames.astype(np.float64).mean(-1)
    grey -= grey.mean((1, 2), keepdims=True)  # the per-clip brightness offset out
    return np.abs(np.fft.rfft2(grey)).mean(0)


def test_video_cue_is_in_the_frames(tiny):
    for actor in (1, 2):
        stats = {}
        for e in range(1, 9):
            clips = media(tiny, f"01-01-{e:02d}-*-{actor:02d}.mp4")
            stats[e] = np.mean([spectrum(decode(p)[0]) for p in clips], axis=0).ravel()
        assert separation(stats, synth.VIDEO_CUE) < 0.4, actor
        assert separation(stats, synth.AUDIO_CUE) > 0.8, actor  # and the face says nothing of the sound


def pitch_track(x: np.ndarray, rate: int) -> np.ndarray:
    """log2 f0 per 40 ms frame of the loud (voiced) part, by autocorrelation (70-400 Hz)."""
    x = x.astype(np.float64)
    n, hop = int(0.04 * rate), int(0.01 * rate)
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
    energy = (frames**2).mean(1)
    voiced = frames[energy > 0.3 * energy.max()]
    lo, hi = rate // 400, rate // 70
    out = []
    for f in voiced * np.hanning(n):
        acf = np.correlate(f, f, "full")[n - 1 :][: hi + 1]
        lags = np.arange(lo, hi + 1)
        # the shortest lag near the best peak: multiples of the period score almost as high (octave errors)
        good = lags[acf[lo:] >= 0.9 * acf[lo:].max()]
        out.append(np.log2(rate / good[0]))
    return np.array(out)


def contour_stats(x: np.ndarray, rate: int) -> np.ndarray:
    """(slope in semitones per second, wobble: std of what a straight line leaves) of the pitch track."""
    semis = 12 * pitch_track(x, rate)
    semis = semis - np.median(semis)
    t = np.arange(len(semis)) * 0.01
    fit = np.polyfit(t, semis, 1)
    return np.array([fit[0], 3 * np.std(semis - np.polyval(fit, t))])


def test_audio_cue_is_in_the_pitch_contour(tiny):
    for actor in (1, 2):
        stats = {}
        for e in range(1, 9):
            clips = media(tiny, f"03-01-{e:02d}-*-{actor:02d}.wav")
            stats[e] = np.mean([contour_stats(*read_wav(p)[:2]) for p in clips], axis=0)
        assert separation(stats, synth.AUDIO_CUE) < 0.4, (actor, stats)
        assert separation(stats, synth.VIDEO_CUE) > 0.8, (
            actor,
            stats,
        )  # and the voice says nothing of the face
        # and the contours are what the table says: calm rises, happy falls, sad wobbles, neutral is flat
        assert stats[2][0] > 3 and stats[3][0] < -3 and abs(stats[1][0]) < 2, stats
        assert stats[4][1] > 2 * stats[1][1], stats
