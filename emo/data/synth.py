"""The built-in demo dataset: synthetic talking faces in the exact RAVDESS layout and naming.

    uv run python -m emo.data.synth OUT                     # 8 actors x 60 recordings, 128x96, 15 fps, 16 kHz
    uv run python -m emo.data.synth OUT --modalities 1,2,3  # also the video-only 02- files
    uv run python -m emo.data.synth OUT --actors 24 --width 1280 --height 720 --fps 29.97 \\
        --sample-rate 48000 --channels 2 --seconds 3.5      # RAVDESS-size files, for benchmarks

writes `OUT/Actor_XX/MM-VV-EE-II-SS-RR-AA.ext` (see emo.data.naming), speech only (VV = 01), with the full
RAVDESS speech design per actor: neutral at intensity 01, the 7 other emotions at intensities 01 and 02,
statements 01-02, repetitions 01-02: 4 + 7 * 8 = 60 recordings. Actors 01..N, odd male, even female.
Per recording: `01-...mp4` (H.264 yuv420p + AAC), `03-...wav` (16-bit PCM mono, the mp4's audio sample for
sample), optionally `02-...mp4` (the same video; its AAC track is digital silence, as in real RAVDESS).

The cues. Emotion index e = RAVDESS code - 1 (0..7). The face carries only v = e // 2, the voice only
a = e % 4, so each stream alone separates 4 groups of 2 emotions (at most ~50% 8-class accuracy) and only
both together identify all 8:

    code  emotion    video cue v (face)     audio cue a (pitch contour)
    01    neutral    0 flat                 0 flat
    02    calm       0 flat                 1 rising
    03    happy      1 smile                2 falling
    04    sad        1 smile                3 vibrato
    05    angry      2 frown                0 flat
    06    fearful    2 frown                1 rising
    07    disgust    3 open                 2 falling
    08    surprised  3 open                 3 vibrato

Faces: flat = straight mouth, level brows; smile = mouth corners up, wide, teeth showing; frown = corners
down, brows slanted inwards; open = round open mouth, wide eyes, raised brows. Sounds: a voiced tone
(fundamental + harmonics, and a resonance that moves with the pitch) at the actor's pitch, whose contour is
flat, rises, falls, or wobbles (vibrato). Intensity 02 exaggerates the cue, 01 shows about half of it.
Everything else (pitch, colours, face size and position, timing, noise) varies per actor or per clip and
carries no label.

Deterministic: every random draw comes from a generator seeded by (seed, actor) or (seed, recording), so the
same arguments give byte-identical wavs and identical decoded frames, whatever `workers` is.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from emo.data.labels import EMOTIONS
from emo.data.naming import RavdessName
from emo.parallel import process_pool, usable_cores
from emo.paths import cache_root

# Bump when the generated content changes: a set of another version is never mistaken for this one.
VERSION = 1
MANIFEST = "synth.json"
GENERATOR = "emo.data.synth"  # not __name__: that is "__main__" under `python -m`

# ----------------------------------------------------------------------------- the cue design
# RAVDESS emotion code (1-8) -> cue index (0-3). Label index (emo.data.labels) == code - 1.
VIDEO_CUE: dict[int, int] = {code: (code - 1) // 2 for code, _, _ in EMOTIONS}
AUDIO_CUE: dict[int, int] = {code: (code - 1) % 4 for code, _, _ in EMOTIONS}
FACES = ("flat", "smile", "frown", "open")
SOUNDS = ("flat", "rising", "falling", "vibrato")


def cue_table() -> list[dict]:
    """One row per emotion: its code, name, and the video and audio cue it is drawn with."""
    return [
        {
            "code": code,
            "emotion": name,
            "video_cue": VIDEO_CUE[code],
            "face": FACES[VIDEO_CUE[code]],
            "audio_cue": AUDIO_CUE[code],
            "sound": SOUNDS[AUDIO_CUE[code]],
        }
        for code, name, _ in EMOTIONS
    ]


# How much of the cue each intensity shows (1.0 = the full face/contour below); 01 is weaker but learnable.
INTENSITY_STRENGTH = {1: 0.5, 2: 1.0}
# Face parameters, in units of the face height s. The flat face is the rest pose that strength scales from.
#   curve: mouth corners up (+) / down (-); open: lip gap; teeth: share of the gap showing teeth (a bright
#   band that survives downscaling); width: mouth width factor;
#   brow_raise: brows up (+); brow_tilt: inner brow ends down (+, degrees); eye: eye opening factor.
FACE_PARAMS = (
    dict(curve=0.0, open=0.0, teeth=0.0, width=1.0, brow_raise=0.0, brow_tilt=0.0, eye=1.0),
    dict(curve=0.14, open=0.07, teeth=1.0, width=1.2, brow_raise=0.02, brow_tilt=0.0, eye=0.8),
    dict(curve=-0.11, open=0.0, teeth=0.0, width=0.95, brow_raise=-0.035, brow_tilt=28.0, eye=0.8),
    dict(curve=0.0, open=0.18, teeth=0.0, width=0.7, brow_raise=0.08, brow_tilt=-12.0, eye=1.4),
)
GLIDE_SEMITONES = 6.0  # rising/falling: pitch change over the whole utterance at full strength
SYLLABLE_GLIDE_SEMITONES = 4.0  # ... plus this much within every syllable (a local slope, ~0.2 s)
VIBRATO_SEMITONES = 2.0  # vibrato: peak deviation at full strength, well above the natural drift
DRIFT_SEMITONES = 0.15  # amplitude of each of 3 slow random sines added to every contour
FORMANT_FOLLOW = 2.5  # the first resonance moves this many semitones per semitone of pitch

# The speech design: emotion 01 has only intensity 01 (RAVDESS has no strong neutral).
STATEMENTS = (1, 2)
REPETITIONS = (1, 2)
# Relative syllable durations of "Kids are talking by the door" / "Dogs are sitting by the door":
# the two statements differ only a little in rhythm, as in RAVDESS.
SYLLABLE_RHYTHM = {1: (0.9, 0.6, 1.1, 0.8, 0.7, 0.6, 1.3), 2: (1.1, 0.6, 1.0, 0.8, 0.7, 0.6, 1.3)}
# Sample rates the AAC encoder accepts.
AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)

# Domain tags keep the per-actor and per-clip seed streams apart.
_ACTOR_STREAM, _CLIP_STREAM = 0xAC7, 0xC11


def design(actors: int) -> list[tuple[int, int, int, int, int]]:
    """All recordings as (actor, emotion, intensity, statement, repetition), in RAVDESS order."""
    out = []
    for actor in range(1, actors + 1):
        for code, _, _ in EMOTIONS:
            for intensity in (1,) if code == 1 else (1, 2):
                for statement in STATEMENTS:
                    for repetition in REPETITIONS:
                        out.append((actor, code, intensity, statement, repetition))
    return out


def file_name(modality: int, actor: int, emotion: int, intensity: int, statement: int, repetition: int) -> str:
    return RavdessName(modality, 1, emotion, intensity, statement, repetition, actor).filename()


def frame_rate(fps: float) -> Fraction:
    """29.97 means NTSC 30000/1001 (what RAVDESS uses), not 2997/100; other rates as given."""
    for base in (24, 30, 60):
        if abs(fps - base * 1000 / 1001) < 0.005:
            return Fraction(base * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


# ----------------------------------------------------------------------------- per-actor traits
SKIN = ((241, 194, 167), (224, 172, 138), (198, 134, 96), (160, 102, 70), (111, 72, 48), (234, 190, 150))
HAIR = ((30, 24, 20), (80, 50, 30), (150, 110, 60), (200, 170, 110), (120, 120, 120), (110, 40, 20))


def actor_traits(seed: int, actor: int, width: int, height: int) -> dict:
    """What stays fixed for one actor: voice and looks. Independent of the emotion by construction."""
    rng = np.random.default_rng([_ACTOR_STREAM, seed, actor])
    male = actor % 2 == 1
    side = min(width, height)
    skin = np.clip(np.array(SKIN[rng.integers(len(SKIN))]) + rng.integers(-12, 13, 3), 0, 255)
    while True:  # a background that does not swallow the face
        bg = rng.integers(30, 226, 3)
        if np.abs(bg - skin).sum() > 120:
            break
    return dict(
        f0=rng.uniform(95, 145) if male else rng.uniform(175, 245),  # Hz: typical adult speaking pitch
        tilt=rng.uniform(0.7, 1.3),  # spectral tilt of the harmonics: the timbre
        formant=rng.uniform(500, 1000),  # Hz: the first resonance (it moves with the pitch contour)
        formant2=rng.uniform(1800, 2800),  # Hz: a fixed second resonance: the voice's colour
        rate=rng.uniform(0.92, 1.08),  # speaking rate
        skin=tuple(int(c) for c in skin),
        hair=tuple(int(c) for c in np.clip(np.array(HAIR[rng.integers(len(HAIR))]) + rng.integers(-10, 11, 3), 0, 255)),
        bg=tuple(int(c) for c in bg),
        bg_slope=rng.uniform(-25, 25),  # vertical background gradient, grey levels top to bottom
        s=side * rng.uniform(0.70, 0.80),  # face height in pixels: fills most of the centre square
        aspect=rng.uniform(0.72, 0.82),  # face width / height
        cx=width / 2 + side * rng.uniform(-0.05, 0.05),
        cy=height / 2 + side * rng.uniform(-0.04, 0.04),
        eye_dx=rng.uniform(0.15, 0.19),  # half the eye distance, in face heights
    )


# ----------------------------------------------------------------------------- per-clip plan
def clip_rngs(seed: int, rec: tuple[int, int, int, int, int]) -> tuple[np.random.Generator, ...]:
    """Three independent generators (timing, audio, video) for one recording: audio and video can be rendered
    separately and still agree, and the 01/02/03 files of one recording share them."""
    ss = np.random.SeedSequence([_CLIP_STREAM, seed, *rec])
    return tuple(np.random.default_rng(s) for s in ss.spawn(3))


def clip_timing(rng: np.random.Generator, traits: dict, statement: int, seconds: float) -> dict:
    """When the 'speech' happens: ~0.3 s of silence first, voiced mostly within the first ~2 s."""
    lead = min(0.3, 0.15 * seconds)
    window = min(seconds, 2.2) - 2 * lead  # speech fits in [lead, min(seconds, 2.2) - lead]
    dur = min(1.5, 0.9 * window) * rng.uniform(0.9, 1.0) / traits["rate"]
    dur = min(dur, window)
    onset = lead + rng.uniform(0, 1) * (window - dur)
    rel = np.array(SYLLABLE_RHYTHM[statement]) * rng.uniform(0.85, 1.15, len(SYLLABLE_RHYTHM[statement]))
    edges = onset + dur * np.concatenate([[0.0], np.cumsum(rel) / rel.sum()])
    return dict(onset=onset, dur=dur, edges=edges, peaks=rng.uniform(0.7, 1.0, len(rel)))


def envelope(t: np.ndarray, timing: dict) -> np.ndarray:
    """Loudness over time (0 = silence): one bump per syllable on a voiced floor, with soft onset/offset.
    The face's mouth opens with it, so sound and picture stay in sync."""
    edges, peaks = timing["edges"], timing["peaks"]
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(peaks) - 1)
    u = np.clip((t - edges[idx]) / (edges[idx + 1] - edges[idx]), 0, 1)
    env = 0.3 + 0.7 * peaks[idx] * np.sin(np.pi * u) ** 0.8
    ramp = 0.04  # s: onset/offset ramps, no clicks
    start, end = timing["onset"], timing["onset"] + timing["dur"]
    taper = np.clip(np.minimum(t - start, end - t) / ramp, 0, 1)
    return env * (0.5 - 0.5 * np.cos(np.pi * taper))


# ----------------------------------------------------------------------------- audio
def pitch_contour(t: np.ndarray, timing: dict, cue: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """The audio cue: pitch in semitones relative to the actor's, over time `t` (seconds).

    rising/falling glide over the whole utterance and again within each syllable (so a short window of a
    spectrogram shows the slope too); vibrato is a ~5 Hz wobble; flat has only the drift every contour has.
    All are centred on 0: the mean pitch says nothing, only the shape does."""
    u = np.clip((t - timing["onset"]) / timing["dur"], 0, 1)  # 0..1 through the utterance
    edges = timing["edges"]
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    v = np.clip((t - edges[idx]) / (edges[idx + 1] - edges[idx]), 0, 1)  # 0..1 through each syllable
    if cue in (1, 2):
        sign = 1 if cue == 1 else -1
        semis = sign * strength * (GLIDE_SEMITONES * (u - 0.5) + SYLLABLE_GLIDE_SEMITONES * (v - 0.5))
    elif cue == 3:
        rate, phase = rng.uniform(4.5, 6.5), rng.uniform(0, 2 * np.pi)
        semis = strength * VIBRATO_SEMITONES * np.sin(2 * np.pi * rate * t + phase)
    else:
        semis = np.zeros_like(t)
    for _ in range(3):  # natural slow drift on every contour, so flat is not perfectly flat
        semis = semis + DRIFT_SEMITONES * np.sin(2 * np.pi * rng.uniform(0.4, 1.5) * t + rng.uniform(0, 2 * np.pi))
    return semis


def render_audio(
    rec: tuple[int, int, int, int, int], *, sample_rate: int = 16000, seconds: float = 2.0, seed: int = 0
) -> np.ndarray:
    """The recording's audio as int16 mono: exactly what the wav holds and what the mp4's AAC track encodes.

    A voiced tone: harmonics of f0(t) shaped by two resonances. The first follows the pitch contour
    (FORMANT_FOLLOW times as far, in semitones), so the cue also shows as a moving bright band in a
    coarse mel spectrogram, where single harmonics are not resolved."""
    actor, emotion, intensity, statement, _ = rec
    traits = actor_traits(seed, actor, 2, 2)  # the voice does not depend on the picture size
    timing_rng, rng, _ = clip_rngs(seed, rec)
    timing = clip_timing(timing_rng, traits, statement, seconds)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    strength = INTENSITY_STRENGTH[intensity] * rng.uniform(0.85, 1.15)
    semis = pitch_contour(t, timing, AUDIO_CUE[emotion], strength, rng)
    f0 = traits["f0"] * rng.uniform(0.96, 1.04) * 2 ** (semis / 12)
    formant = traits["formant"] * 2 ** (FORMANT_FOLLOW * semis / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = np.zeros_like(t)
    for h in range(1, 41):  # up to ~4 kHz at a low voice
        if h * f0.max() > min(0.45 * sample_rate, 5000):  # no aliasing; nothing above speech's band
            break
        fh = h * f0
        gain = h ** -traits["tilt"] * (
            0.2
            + 3.0 * np.exp(-(((fh - formant) / (0.3 * formant)) ** 2))
            + 1.0 * np.exp(-(((fh - traits["formant2"]) / 400) ** 2))
        )
        voice += gain * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    voice *= envelope(t, timing)
    rms = np.sqrt(np.mean(voice[np.abs(voice) > 0] ** 2))
    snr_db = rng.uniform(14, 24)  # audible hiss, like a room: the cue must survive it
    x = voice + rng.standard_normal(n) * rms * 10 ** (-snr_db / 20)
    x *= rng.uniform(0.3, 0.6) / np.abs(x).max()  # peak level varies per clip, never clips
    return np.round(x * 32767).astype(np.int16)


# ----------------------------------------------------------------------------- video
_SHIFT = 4  # cv2 sub-pixel drawing: coordinates in 1/16 px, so slow head motion is smooth


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * (1 << _SHIFT))), int(round(y * (1 << _SHIFT)))


def _face_params(emotion: int, strength: float) -> dict:
    rest, target = FACE_PARAMS[0], FACE_PARAMS[VIDEO_CUE[emotion]]
    return {key: rest[key] + strength * (target[key] - rest[key]) for key in rest}


def _draw_face(img: np.ndarray, tr: dict, cx: float, cy: float, p: dict, speech: float, blink: bool) -> None:
    s = tr["s"]
    lw = max(1, round(0.035 * s))  # lines thick enough to survive a resize to ~48 px
    aa = cv2.LINE_AA
    fw = s * tr["aspect"] / 2  # face half-width
    cv2.ellipse(img, _pt(cx, cy - 0.1 * s), _pt(fw * 1.1, 0.52 * s), 0, 180, 360, tr["hair"], -1, aa, _SHIFT)
    cv2.ellipse(img, _pt(cx, cy), _pt(fw, 0.5 * s), 0, 0, 360, tr["skin"], -1, aa, _SHIFT)
    dark = (25, 20, 20)
    ex, ey = tr["eye_dx"] * s, cy - 0.08 * s
    for sgn in (-1, 1):
        x = cx + sgn * ex
        if blink:
            cv2.line(img, _pt(x - 0.07 * s, ey), _pt(x + 0.07 * s, ey), dark, lw, aa, _SHIFT)
        else:
            eye_h = 0.045 * s * p["eye"]
            cv2.ellipse(img, _pt(x, ey), _pt(0.075 * s, eye_h), 0, 0, 360, (245, 245, 245), -1, aa, _SHIFT)
            cv2.circle(img, _pt(x, ey), int(min(0.035 * s, eye_h) * (1 << _SHIFT)), dark, -1, aa, _SHIFT)
        # brows: inner end (towards the nose) lowered by brow_tilt degrees
        bx, by, half = x, cy - (0.2 + p["brow_raise"]) * s, 0.09 * s
        a = math.radians(p["brow_tilt"])
        inner = (bx - sgn * half * math.cos(a), by + half * math.sin(a))
        outer = (bx + sgn * half * math.cos(a), by - half * math.sin(a))
        cv2.line(
            img,
            _pt(*inner),
            _pt(*outer),
            tuple(int(c * 0.4) for c in tr["hair"]),
            round(lw * 1.5),
            aa,
            _SHIFT,
        )
    nose = tuple(int(c * 0.8) for c in tr["skin"])
    cv2.line(img, _pt(cx, cy - 0.02 * s), _pt(cx, cy + 0.1 * s), nose, lw, aa, _SHIFT)
    # mouth: centre line bends by `curve`, lips part by `open` plus the speech envelope
    hw, my = 0.17 * s * p["width"], cy + 0.24 * s
    xs = np.linspace(-1, 1, 17)
    mid = my + p["curve"] * s * (0.5 - xs**2)
    gap = (p["open"] + 0.05 * speech) * s * np.sqrt(1 - xs**2)
    upper = np.stack([cx + hw * xs, mid - 0.3 * gap], 1)
    lower = np.stack([cx + hw * xs, mid + 0.7 * gap], 1)  # the jaw drops: the lower lip moves most
    to_int = lambda a: np.round(a * (1 << _SHIFT)).astype(np.int32)  # noqa: E731
    cv2.fillPoly(img, [to_int(np.concatenate([upper, lower[::-1]]))], (90, 20, 30), aa, _SHIFT)
    if p["teeth"] > 0.05:
        teeth = np.stack([upper[:, 0], upper[:, 1] + 0.6 * p["teeth"] * gap], 1)
        cv2.fillPoly(img, [to_int(np.concatenate([upper, teeth[::-1]]))], (240, 240, 230), aa, _SHIFT)
    lips = (150, 60, 60)
    cv2.polylines(img, [to_int(upper), to_int(lower)], False, lips, lw, aa, _SHIFT)


def render_frames(
    rec: tuple[int, int, int, int, int],
    *,
    width: int = 128,
    height: int = 96,
    fps: float = 15.0,
    seconds: float = 2.0,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """The recording's video, one RGB uint8 (height, width, 3) frame at a time (a 720p clip does not fit
    comfortably in memory as one array)."""
    actor, emotion, intensity, statement, _ = rec
    tr = actor_traits(seed, actor, width, height)
    timing_rng, _, rng = clip_rngs(seed, rec)
    timing = clip_timing(timing_rng, tr, statement, seconds)
    rate = frame_rate(fps)
    n = round(seconds * rate)
    p = _face_params(emotion, INTENSITY_STRENGTH[intensity] * rng.uniform(0.85, 1.15))
    s = tr["s"]
    # head motion: a slow sway and nod of a few percent of the face, plus a small per-clip offset
    sway, nod = 0.02 * s, 0.012 * s
    f_sway, f_nod = rng.uniform(0.3, 0.8), rng.uniform(0.4, 1.0)
    ph_sway, ph_nod = rng.uniform(0, 2 * np.pi, 2)
    cx0, cy0 = tr["cx"] + rng.uniform(-0.03, 0.03) * s, tr["cy"] + rng.uniform(-0.03, 0.03) * s
    blink_at = rng.uniform(0, seconds)
    bg = np.empty((height, width, 3), np.uint8)
    ramp = np.linspace(-0.5, 0.5, height)[:, None] * tr["bg_slope"]
    for c in range(3):
        bg[:, :, c] = np.clip(tr["bg"][c] + ramp, 0, 255).astype(np.uint8)
    # pixel noise: one seeded field per clip, viewed at a random offset per frame (cheap at 720p too)
    amp = int(rng.integers(3, 11))
    pad = 16
    field = rng.integers(-amp, amp + 1, size=(height + pad, width + pad, 3), dtype=np.int16)
    offsets = rng.integers(0, pad, size=(n, 2))
    brightness = int(rng.integers(-10, 11))
    for i in range(n):
        t = float(i / rate)
        img = bg.copy()
        cx = cx0 + sway * math.sin(2 * math.pi * f_sway * t + ph_sway)
        cy = cy0 + nod * math.sin(2 * math.pi * f_nod * t + ph_nod)
        speech = float(envelope(np.array([t]), timing)[0])
        _draw_face(img, tr, cx, cy, p, speech, blink=abs(t - blink_at) < 0.08)
        oy, ox = offsets[i]
        x = img.astype(np.int16)
        x += field[oy : oy + height, ox : ox + width]
        x += brightness
        yield np.clip(x, 0, 255).astype(np.uint8)


def render_clip(
    rec: tuple[int, int, int, int, int],
    *,
    width: int = 128,
    height: int = 96,
    fps: float = 15.0,
    sample_rate: int = 16000,
    seconds: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One recording in memory, before encoding: frames (T, H, W, 3) uint8 and audio (N,) int16."""
    frames = np.stack(list(render_frames(rec, width=width, height=height, fps=fps, seconds=seconds, seed=seed)))
    return frames, render_audio(rec, sample_rate=sample_rate, seconds=seconds, seed=seed)


# ----------------------------------------------------------------------------- encoding
# bitexact: no encoder version strings in the containers, so the bytes depend only on the samples.
_CONTAINER_OPTIONS = {"fflags": "+bitexact"}
# veryfast: ~10x faster than medium, ample for cartoons. mbtree off: with it, x264's output varied from run
# to run on identical input (measured: ~1 clip in 5 at 64x48, also at 320x240; gone with mbtree=0, or with
# asm=0); without it the same frames always encode to the same bytes.
X264_OPTIONS = {"preset": "veryfast", "crf": "23", "x264-params": "mbtree=0"}


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    with av.open(str(path), "w", format="wav", options=_CONTAINER_OPTIONS) as out:
        stream = out.add_stream("pcm_s16le", rate=sample_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(audio[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def write_mp4(
    path: Path,
    frames: Iterator[np.ndarray],
    audio: np.ndarray,
    *,
    width: int,
    height: int,
    fps: float,
    sample_rate: int,
    channels: int,
) -> None:
    """H.264 yuv420p + AAC, interleaved in time. `audio` is int16 mono; it is copied to every channel."""
    rate = frame_rate(fps)
    with av.open(str(path), "w", format="mp4", options=_CONTAINER_OPTIONS) as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = dict(X264_OPTIONS)
        video.codec_context.thread_count = 1  # clips are encoded in parallel processes already
        layout = "mono" if channels == 1 else "stereo"
        sound = out.add_stream("aac", rate=sample_rate, layout=layout)
        sound.bit_rate = 64000 * channels  # plenty for a tone; keeps the demo files small
        sound.options = {"aac_coder": "fast"}  # ~2x faster than the default twoloop coder; fine for a tone
        samples = (audio.astype(np.float32) / 32768)[None, :].repeat(channels, 0)
        n_frames, n_samples, done = round(len(audio) / sample_rate * rate), len(audio), 0

        def push_audio(upto: int) -> None:  # the audio from `done` to `upto`, as one frame
            nonlocal done
            if upto > done:
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, done:upto]), format="fltp", layout=layout
                )
                chunk.sample_rate, chunk.pts = sample_rate, done
                out.mux(sound.encode(chunk))
                done = upto

        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            push_audio(min(n_samples, round((i + 1) * n_samples / n_frames)))  # up to this frame's end
        push_audio(n_samples)  # whatever rounding left over
        out.mux(video.encode(None))
        out.mux(sound.encode(None))


def write_recording(root: str, rec: tuple[int, int, int, int, int], args: dict) -> int:
    """Render and write one recording's files (the requested modalities); returns the bytes written."""
    actor = rec[0]
    folder = Path(root) / f"Actor_{actor:02d}"
    folder.mkdir(exist_ok=True)
    kw = dict(seconds=args["seconds"], seed=args["seed"])
    audio = render_audio(rec, sample_rate=args["sample_rate"], **kw)
    size = 0
    for modality in args["modalities"]:
        path = folder / file_name(modality, *rec)
        if modality == 3:
            write_wav(path, audio, args["sample_rate"])
        else:
            frames = render_frames(rec, width=args["width"], height=args["height"], fps=args["fps"], **kw)
            track = audio if modality == 1 else np.zeros_like(audio)  # 02: silent track, like RAVDESS
            write_mp4(
                path,
                frames,
                track,
                width=args["width"],
                height=args["height"],
                fps=args["fps"],
                sample_rate=args["sample_rate"],
                channels=args["channels"],
            )
        size += path.stat().st_size
    return size


def _one_cv2_thread() -> None:
    cv2.setNumThreads(1)  # one process per core already


# ----------------------------------------------------------------------------- the dataset
class SynthError(RuntimeError):
    """The output folder cannot be used as asked (exists with other contents); nothing was deleted."""


def check_args(
    *,
    actors: int,
    width: int,
    height: int,
    fps: float,
    sample_rate: int,
    channels: int,
    seconds: float,
    seed: int,
    modalities: Sequence[int],
) -> dict:
    """Validated, normalised arguments: what synth.json records and what a later call is compared with."""
    mods = sorted(set(int(m) for m in modalities))
    problems = []
    if not 1 <= actors <= 24:
        problems.append(f"actors must be 1-24 (RAVDESS actor codes), not {actors}")
    for name, v in (("width", width), ("height", height)):
        if not (32 <= v <= 4096 and v % 2 == 0):
            problems.append(f"{name} must be even and 32-4096 (H.264 yuv420p), not {v}")
    if not 1 <= fps <= 120:
        problems.append(f"fps must be 1-120, not {fps}")
    if sample_rate not in AAC_RATES:
        problems.append(f"sample_rate must be one AAC supports ({', '.join(map(str, AAC_RATES))}), not {sample_rate}")
    if channels not in (1, 2):
        problems.append(f"channels must be 1 or 2, not {channels}")
    if not 0.5 <= seconds <= 60:
        problems.append(f"seconds must be 0.5-60, not {seconds}")
    if seed < 0:
        problems.append(f"seed must be >= 0, not {seed}")
    if not mods or not set(mods) <= {1, 2, 3}:
        problems.append(f"modalities must be a non-empty subset of 1,2,3, not {list(modalities)}")
    if problems:
        raise ValueError("; ".join(problems))
    return dict(
        actors=int(actors),
        width=int(width),
        height=int(height),
        fps=float(fps),
        sample_rate=int(sample_rate),
        channels=int(channels),
        seconds=float(seconds),
        seed=int(seed),
        modalities=mods,
    )


def expected_files(args: dict) -> list[str]:
    """Every media file of a complete set, relative to its root."""
    return [f"Actor_{rec[0]:02d}/{file_name(m, *rec)}" for rec in design(args["actors"]) for m in args["modalities"]]


def _complete(out: Path, args: dict) -> bool:
    """True if `out` holds the complete set for `args`; False if it is absent or an empty folder.
    Raises SynthError for anything else: we never overwrite or delete what we did not write."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise SynthError(f"{out} exists and is not a folder; choose another output path")
    manifest = out / MANIFEST
    if not manifest.is_file():
        if not any(out.iterdir()):
            return False
        raise SynthError(f"{out} exists and is not a synth dataset (no {MANIFEST}); choose another folder")
    try:
        info = json.loads(manifest.read_text())
        if info.get("generator") != GENERATOR:
            raise ValueError
    except (ValueError, AttributeError) as e:
        raise SynthError(f"{out / MANIFEST} is not a manifest written by {GENERATOR}; choose another folder") from e
    theirs = dict(info.get("args", {}), version=info.get("version"))
    ours = dict(args, version=VERSION)
    if theirs != ours:
        diff = ", ".join(f"{k}={theirs.get(k)!r} (asked {v!r})" for k, v in ours.items() if theirs.get(k) != v)
        raise SynthError(
            f"{out} holds a synth set made with other arguments: {diff}. Pass the same arguments, or another "
            "folder (delete it yourself to regenerate)"
        )
    present = {f"{d.name}/{f.name}" for d in out.iterdir() if d.is_dir() for f in d.iterdir()}
    missing = [f for f in expected_files(args) if f not in present]
    if missing:
        raise SynthError(
            f"{out} is a synth set with {len(missing)} files missing (e.g. {missing[0]}); "
            "delete it yourself and generate again"
        )
    return True


def _generate(out_dir: str | os.PathLike, *, workers: int | None, progress: bool, **settings) -> tuple[Path, bool]:
    """`generate` (its keyword arguments other than `workers` and `progress` are `settings`), also saying
    whether anything was written (False: the set was already there)."""
    args = check_args(**settings)
    out = Path(out_dir).expanduser().absolute()
    if _complete(out, args):
        return out, False
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target and rename at the end: a crash leaves only a hidden .partial folder, never a
    # half set under the real name (and a rename within one folder is atomic).
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # (not mkdtemp: that makes it 0700, and the rename would keep that)
    try:
        recs = design(args["actors"])
        for actor in range(1, args["actors"] + 1):
            (tmp / f"Actor_{actor:02d}").mkdir()
        workers = max(1, min(workers or usable_cores(), len(recs)))
        total = 0
        bar = dict(total=len(recs), unit="clip", desc=f"synth {out.name}", disable=not progress)
        if workers == 1:
            for rec in tqdm(recs, **bar):
                total += write_recording(str(tmp), rec, args)
        else:
            # (see emo.parallel: workers from a fork server; they only use numpy, cv2 and av)
            pool = process_pool(workers, initializer=_one_cv2_thread)
            try:
                futures = [pool.submit(write_recording, str(tmp), rec, args) for rec in recs]
                for fut in tqdm(concurrent.futures.as_completed(futures), **bar):
                    total += fut.result()
            finally:  # on an error or Ctrl-C, drop the queued clips instead of finishing them first
                pool.shutdown(wait=True, cancel_futures=True)
        info = dict(
            generator=GENERATOR,
            version=VERSION,
            args=args,
            clips=len(recs),
            files=len(recs) * len(args["modalities"]),
            bytes=total,
            video_cue=VIDEO_CUE,
            audio_cue=AUDIO_CUE,
        )
        (tmp / MANIFEST).write_text(json.dumps(info, indent=1) + "\n")  # written last: marks the set complete
        try:
            os.rename(tmp, out)  # also replaces an empty folder
        except OSError:
            if _complete(out, args):  # another process finished the same set first: use theirs
                shutil.rmtree(tmp)
                return out, False
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, True


def generate(
    out_dir: str | os.PathLike,
    *,
    actors: int = 8,  # 8 x 60 = 480 clips: enough for held-out-actor splits, quick to make
    width: int = 128,  # 4:3 like a small webcam; the face sits in the centre 96x96 square
    height: int = 96,  # a centre crop resized to 48 px is exactly 2x down
    fps: float = 15.0,  # half RAVDESS's 29.97: enough for mouth motion, half the frames to decode
    sample_rate: int = 16000,  # what speech models use; RAVDESS is 48000
    channels: int = 1,  # channels of the mp4's AAC track (RAVDESS: 2); the wav is always mono, as in RAVDESS
    seconds: float = 2.0,  # ~0.3 s silence, ~1.3 s of speech, silence: the cue is all there
    seed: int = 0,  # every seed gives an equally hard set; another seed is a fresh draw of it
    modalities: Sequence[int] = (1, 3),  # audio-video + audio-only; add 2 for the video-only mp4s
    workers: int | None = None,  # processes; None: every usable core
    progress: bool = True,  # a tqdm bar on stderr
) -> Path:
    """Write the synthetic RAVDESS-layout set into `out_dir` (atomically) and return its path.

    A folder that already holds the complete set for these arguments is returned as is, at once. A folder
    with anything else in it (another synth set, other files) raises SynthError and is left untouched.
    """
    settings = dict(actors=actors, width=width, height=height, fps=fps, sample_rate=sample_rate)
    settings.update(channels=channels, seconds=seconds, seed=seed, modalities=modalities)
    return _generate(out_dir, workers=workers, progress=progress, **settings)[0]


def demo_root(progress: bool = True) -> Path:
    """The built-in demo set (the defaults of `generate`), made once under the cache folder on first use."""
    return generate(cache_root() / f"demo-v{VERSION}", progress=progress)


# ----------------------------------------------------------------------------- CLI
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def _modalities(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(m) for m in text.split(",") if m.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list like 1,2,3, not {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    p = _Parser(prog="python -m emo.data.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="output folder (created; must not exist, be empty, or hold this same set)")
    d = generate.__kwdefaults__
    flags = (
        ("actors", int, f"actors 01..N, odd male, even female (default {d['actors']})"),
        ("width", int, f"frame width, even (default {d['width']})"),
        ("height", int, f"frame height, even (default {d['height']})"),
        ("fps", float, f"frame rate; 29.97 is NTSC 30000/1001 like RAVDESS (default {d['fps']})"),
        ("sample_rate", int, f"audio sample rate of the wav and the mp4 (default {d['sample_rate']})"),
        ("channels", int, f"channels of the mp4's AAC track, 1 or 2 (RAVDESS: 2); the wav is mono "
         f"(default {d['channels']})"),
        ("seconds", float, f"length of every clip (default {d['seconds']})"),
        ("seed", int, f"the same seed and sizes give the same files (default {d['seed']})"),
        ("workers", int, "processes (default: every usable core)"),
    )  # fmt: skip
    for flag, typ, help_ in flags:
        spellings = sorted({f"--{flag}", f"--{flag.replace('_', '-')}"}, key=lambda s: "_" in s)
        p.add_argument(*spellings, dest=flag, type=typ, default=d[flag], help=help_)
    p.add_argument(
        "--modalities", type=_modalities, default=d["modalities"], help="of 1 (audio-video), 2 (video-only), "
        "3 (audio-only), comma-separated (default 1,3)"
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        out, wrote = _generate(
            a.out,
            actors=a.actors,
            width=a.width,
            height=a.height,
            fps=a.fps,
            sample_rate=a.sample_rate,
            channels=a.channels,
            seconds=a.seconds,
            seed=a.seed,
            modalities=a.modalities,
            workers=a.workers,
            progress=not a.quiet,
        )
    except ValueError as e:
        p.error(str(e))
    except SynthError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 1
    info = json.loads((out / MANIFEST).read_text())
    what = f"{info['clips']} clips, {info['files']} files, {info['bytes'] / 1e6:.1f} MB"
    if wrote:
        print(f"wrote {what} to {out} in {time.perf_counter() - t0:.1f} s")
    else:
        print(f"{out} already holds this set ({what}); nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
