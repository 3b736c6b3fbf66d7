"""Frozen front ends: each clip's embeddings from an encoder that is not trained here, computed once into
a cache of their own and read by every run after that.

A stream whose front end (`TrainConfig.audio_frontend` / `video_frontend`) is not the end-to-end one
(log-mels, frames) reads these embeddings instead of its features: (N, T', E) float32 sequences, so the
six methods (mean pooling, the gate, cross-attention over time) run unchanged on top of a light
projection per stream (emo.models.EmbeddedStream), and a trial trains only that and its head.

`own`: the audio or video encoder of a finished `emo.train` run or sweep trial, at its best validation
epoch (the checkpoint folder's best.pt; its settings and training actors from state.pt). Two stages on
any data: train or sweep audio-only and video-only, then train or sweep fusion heads over their frozen
encoders (python -m emo.train_encoders). A head must not be validated or tested on an actor its encoder
trained on: `check_actors` refuses that, and `{split}` in an encoder path gives the sweep's split and
every confirmation fold their own encoder.

`wav2vec2_base`, `hubert_base`, `wavlm_base_plus` (audio): torchaudio's pretrained speech encoders,
their weights downloaded once. Each clip's audio window (the stretch its log-mel covers) goes through
the encoder at 16 kHz, and every transformer layer's output is kept, mean-pooled over SPEECH_SEGMENTS
stretches: (N, layers, segments, E). The head mixes the layers with learnt softmax weights (the SUPERB
recipe; `layer_mix`) before its projection. They never saw a RAVDESS actor, so any split may use them.

`egemaps`, `egemaps_lld` (audio; the optional extra `opensmile`, research and education only):
openSMILE's eGeMAPSv02 of the same window, its 88 functionals (N, 1, 88) or its 25 low-level
descriptors over SPEECH_SEGMENTS stretches (N, segments, 25); the head standardises them per feature.

`resnet18_imagenet`, `resnet50_imagenet` (video): torchvision's ImageNet ResNets on every face-cropped
frame of the feature cache, normalised as they were trained: (N, frames, 512 or 2048).

One Arrow file per (feature cache, stream, front end, encoder weights): the name holds a hash of all
of them, so another encoder, retrained weights or changed features never reuse another's embeddings.
Rows are the feature cache's rows (zeros where the clip lacks the stream); like the feature cache it is
memory-mapped, checksummed and written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from emo.config import TrainConfig
from emo.data.cache import CacheError, FeatureSet, map_ipc, tensor_column, verify_mapped, write_ipc

# Bump when the computation changes in a way the cache key does not capture: old files then rebuild.
EMBEDDER_VERSION = 1
_META_KEY = b"emo.embeddings"
_BATCH = 64
# Pretrained speech encoders: the torchaudio.pipelines bundle and the weight file it downloads into
# torch's hub cache (named here, so that the cache key, and a cache hit, need no torch).
SPEECH_ENCODERS = {
    "wav2vec2_base": ("WAV2VEC2_BASE", "wav2vec2_fairseq_base_ls960.pth"),
    "hubert_base": ("HUBERT_BASE", "hubert_fairseq_base_ls960.pth"),
    "wavlm_base_plus": ("WAVLM_BASE_PLUS", "wavlm_base_plus.pth"),
}
SPEECH_RATE = 16_000  # what all three were trained on
# Pretrained image encoders, on every face-cropped frame: torchvision's model, its ImageNet weights
# enum and the file they download into torch's hub cache.
IMAGE_ENCODERS = {
    "resnet18_imagenet": ("resnet18", "ResNet18_Weights", "IMAGENET1K_V1", "resnet18-f37072fd.pth"),
    "resnet50_imagenet": ("resnet50", "ResNet50_Weights", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
}
_IMAGE_BATCH = 8  # clips (x their frames)
# openSMILE's feature level for each paralinguistic front end (eGeMAPSv02, the optional extra).
PARALINGUISTIC = {"egemaps": "Functionals", "egemaps_lld": "LowLevelDescriptors"}
# Every transformer layer's output, mean-pooled over this many equal stretches of the clip's window: a
# short sequence per layer, so that the gate and cross-attention still see time (1 would be SUPERB's
# utterance-level mean).
SPEECH_SEGMENTS = 8
_SPEECH_BATCH = 16


class FrontendError(ValueError):
    """A front end cannot be used as asked (a missing or unfinished encoder run, one without the
    stream); the message says what to pass instead."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checkpoint_folder(cfg: TrainConfig, stream: str) -> Path:
    from emo.checkpoint import BEST_FILE, STATE_FILE

    path = Path(cfg.encoder_path(stream)).expanduser()
    if path.is_file() and path.name in (BEST_FILE, STATE_FILE):
        path = path.parent  # the folder's file given instead of the folder
    if not path.is_dir():
        raise FrontendError(f"--{stream}_encoder {str(path)!r} is not a folder: pass a finished run's --checkpoint_dir")
    missing = [f for f in (BEST_FILE, STATE_FILE) if not (path / f).is_file()]
    if missing:
        raise FrontendError(
            f"--{stream}_encoder {str(path)!r} holds no {' or '.join(missing)}: not a checkpoint folder of a run "
            "that finished an epoch (emo.train --checkpoint_dir, or a sweep trial's checkpoint)"
        )
    return path


def frontend_key(cfg: TrainConfig, stream: str) -> dict:
    """What identifies `stream`'s front end, without importing torch (a cache hit needs none): its name,
    and for `own` the encoder's weights (sha256 of best.pt)."""
    from emo.checkpoint import BEST_FILE

    name = getattr(cfg, f"{stream}_frontend")
    if name in SPEECH_ENCODERS:
        return {"frontend": name, "stream": stream, "weights": SPEECH_ENCODERS[name][1], "segments": SPEECH_SEGMENTS}
    if name in IMAGE_ENCODERS:
        return {"frontend": name, "stream": stream, "weights": IMAGE_ENCODERS[name][3]}
    if name in PARALINGUISTIC:
        segments = SPEECH_SEGMENTS if PARALINGUISTIC[name] == "LowLevelDescriptors" else 1
        return {"frontend": name, "stream": stream, "feature_set": "eGeMAPSv02", "segments": segments}
    if name != "own":
        raise FrontendError(f"{stream} front end {name!r} reads no embeddings")
    folder = _checkpoint_folder(cfg, stream)
    return {"frontend": name, "stream": stream, "weights_sha256": _sha256_file(folder / BEST_FILE)}


def embeddings_path(fs: FeatureSet, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps({**key, "version": EMBEDDER_VERSION}, sort_keys=True).encode()).hexdigest()
    return fs.path.parent / "embeddings" / f"{fs.path.stem}-{key['stream']}-{digest[:16]}.arrow"


def embed(cfg: TrainConfig, fs: FeatureSet, progress: bool = True) -> FeatureSet:
    """`fs` with each frozen stream of `cfg` replaced by its front end's embeddings: from their cache,
    or computed (batched, on the GPU when there is one) and cached first."""
    changes, frontends = {}, dict(fs.frontends)
    for stream in cfg.streams:
        if not cfg.frozen(stream):
            continue
        if stream in fs.frontends:  # an encoder fed another's embeddings would compute nonsense
            raise ValueError(f"the {stream} arrays are embeddings already: embed the features (emo.data.prepare)")
        key = frontend_key(cfg, stream)
        path = embeddings_path(fs, key)
        arr = record = None
        if path.exists():
            try:
                arr, record = _load(path, fs, key)
            except CacheError as e:
                print(f"embedding cache {path} is unusable ({e}); rebuilding it", file=sys.stderr)
        if arr is None:
            t0 = time.perf_counter()
            values, record = _compute(cfg, stream, fs, progress)
            try:
                _write(path, fs, key, record, values, time.perf_counter() - t0)
            except OSError as e:
                raise FrontendError(
                    f"cannot write the embedding cache {str(path)!r} ({e.strerror or e}): free space there, or "
                    "set EMO_CACHE_DIR to another folder"
                ) from e
            arr, record = _load(path, fs, key)
        changes[stream] = arr
        if key["frontend"] != "own":
            frontends[stream] = {**record, "named": None, "path": str(path)}
            continue
        # The same weights (the key) in whichever folder they are now: the one this run names, as it
        # names it (a trial on Ray runs in another working directory: the string is what it compares).
        folder = str(_checkpoint_folder(cfg, stream).resolve())
        frontends[stream] = {**record, "encoder": folder, "named": cfg.encoder_path(stream), "path": str(path)}
    return dataclasses.replace(fs, **changes, frontends=frontends)


def describe(rec: dict) -> str:
    """A front end's record (FeatureSet.frontends[stream]) in one phrase, for the terminal and the report."""
    if rec["frontend"] == "own":
        return (
            f"the frozen encoder of the {rec['encoder_fusion']} run in {rec['encoder']} (best epoch "
            f"{rec['best_epoch']}, val Macro-F1 {rec['best_val_f1']:.3f})"
        )
    if rec["frontend"] in IMAGE_ENCODERS:
        return f"frozen {rec['frontend']} (torchvision's {rec['weights']}) on every face crop"
    if rec["frontend"] in PARALINGUISTIC:
        what = "88 functionals" if rec["segments"] == 1 else f"25 low-level descriptors x {rec['segments']} stretches"
        return f"eGeMAPSv02 {what} (openSMILE {rec['opensmile']})"
    return (
        f"frozen {rec['frontend']} (torchaudio's {rec['weights']}): {rec['layers']} layers x "
        f"{rec['segments']} stretches of the clip"
    )


def _not_downloaded(name: str, file: str, error: OSError, instead: str) -> FrontendError:
    """The one line for pretrained weights that could not be downloaded (no internet, say)."""
    import torch

    reason = " ".join(str(error).split())  # one line
    return FrontendError(
        f"the {name} weights could not be downloaded ({reason}): needs the internet once (they are kept "
        f"in {torch.hub.get_dir()}/checkpoints/{file}), or use {instead}"
    )


def _embed_rows(fs: FeatureSet, stream: str, name: str, batch: int, progress: bool, embed_batch) -> np.ndarray:
    """`embed_batch(rows)` -> (len(rows), ...) float32, over every clip of `fs` that has `stream`, `batch`
    clips at a time, with a progress bar: (N, ...) float32, zeros where a clip lacks the stream."""
    import torch
    from tqdm import tqdm

    rows = np.flatnonzero(getattr(fs, f"has_{stream}"))
    if not len(rows):
        raise FrontendError(f"no clip of {str(fs.root)!r} has {stream}: there is nothing for {name} to read")
    out = None
    bar = tqdm(total=len(rows), desc=f"embedding {stream} ({name})", unit="clip", disable=not progress, file=sys.stderr)
    with torch.inference_mode():
        for start in range(0, len(rows), batch):
            idx = rows[start : start + batch]
            y = embed_batch(idx)
            if out is None:
                out = np.zeros((len(fs), *y.shape[1:]), np.float32)
            out[idx] = y
            bar.update(len(idx))
    bar.close()
    return out


def _audio_window(fs: FeatureSet, row: int, rate: int):
    """Clip `row`'s audio window (emo.data.features.audio_window: the stretch its log-mel covers), decoded
    again from its source file at `rate`."""
    from emo.data.decode import DecodeError, decode_audio
    from emo.data.features import audio_window

    path = Path(fs.root) / fs.table.column("audio_file")[int(row)].as_py()
    try:
        return audio_window(decode_audio(path, rate), fs.config.replace(sample_rate=rate))
    except DecodeError as e:
        raise FrontendError(f"{path}: {e} (it decoded when the features were made: moved since?)") from e


def speech_model(name: str):
    """torchaudio's pretrained `name` (SPEECH_ENCODERS) in eval mode; its weights are downloaded on first
    use into torch's hub cache. Without the internet that download fails: one FrontendError line."""
    import torchaudio

    bundle, file = SPEECH_ENCODERS[name]
    try:
        return getattr(torchaudio.pipelines, bundle).get_model()
    except OSError as e:  # URLError, DNS failure, timeout, refused connection, disk full
        raise _not_downloaded(name, file, e, "--audio_frontend logmel") from e


def image_model(name: str):
    """torchvision's `name` (IMAGE_ENCODERS) with its ImageNet weights, classifier removed (each frame ->
    its pooled features), in eval mode; the weights download on first use, and without the internet
    that is one FrontendError line."""
    import torch
    import torchvision

    arch, enum, member, file = IMAGE_ENCODERS[name]
    try:
        model = getattr(torchvision.models, arch)(weights=getattr(getattr(torchvision.models, enum), member))
    except OSError as e:  # URLError, DNS failure, timeout, refused connection, disk full
        raise _not_downloaded(name, file, e, "--video_frontend frames") from e
    model.fc = torch.nn.Identity()
    return model.eval()


def _compute_image(name: str, fs: FeatureSet, progress: bool) -> tuple[np.ndarray, dict]:
    """Every clip's face-cropped frames through the pretrained image encoder, normalised with ImageNet's
    statistics as it was trained: (N, frames, E) float32, E = 512 (ResNet18) or 2048 (ResNet50)."""
    import torch

    from emo.models.encoders import IMAGENET_MEAN, IMAGENET_STD
    from emo.train import resolve_device

    model = image_model(name)
    device = resolve_device("auto")
    model.to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def frames_of(idx):
        frames = torch.from_numpy(np.asarray(fs.video[idx])).to(device)  # (B, T, S, S, 3) uint8
        b, t = frames.shape[:2]
        x = frames.flatten(0, 1).permute(0, 3, 1, 2).float().div(255)  # (B*T, 3, S, S)
        return model((x - mean) / std).float().view(b, t, -1).cpu().numpy()

    out = _embed_rows(fs, "video", name, _IMAGE_BATCH, progress, frames_of)
    return out, {"frontend": name, "weights": IMAGE_ENCODERS[name][3], "train_actors": []}  # ImageNet's pictures


def _compute_opensmile(name: str, fs: FeatureSet, progress: bool) -> tuple[np.ndarray, dict]:
    """openSMILE's eGeMAPSv02 of every clip's audio window (the stretch its log-mel covers): the 88
    functionals, (N, 1, 88), or the 25 low-level descriptors (10 ms frames) mean-pooled over
    SPEECH_SEGMENTS stretches, (N, segments, 25). One clip at a time on the CPU (openSMILE is C++)."""
    from importlib.metadata import version

    try:
        import opensmile
    except ImportError as e:
        raise FrontendError(
            f"--audio_frontend {name} needs openSMILE, an optional extra: uv sync --extra opensmile "
            "(audEERING's licence allows research and education only)"
        ) from e
    level = PARALINGUISTIC[name]
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=getattr(opensmile.FeatureLevel, level)
    )

    def descriptors_of(idx):  # one clip (openSMILE takes one signal)
        y = smile.process_signal(_audio_window(fs, idx[0], fs.config.sample_rate).numpy(), fs.config.sample_rate)
        y = y.to_numpy(np.float32)  # (1, 88) or (frames, 25)
        if level == "LowLevelDescriptors":
            if len(y) < SPEECH_SEGMENTS:
                raise FrontendError(f"the audio window gives {len(y)} openSMILE frames: raise --audio_seconds")
            y = np.stack([part.mean(0) for part in np.array_split(y, SPEECH_SEGMENTS)])
        return np.nan_to_num(y)[None]  # a descriptor undefined on a clip (no voiced frame) is 0, not NaN

    out = _embed_rows(fs, "audio", name, 1, progress, descriptors_of)
    record = {
        "frontend": name,
        "feature_set": "eGeMAPSv02",
        "segments": int(out.shape[1]),
        "opensmile": version("opensmile"),
        "train_actors": [],  # hand-made features: nothing learnt
    }
    return out, record


def segment_means(x, segments: int):
    """(B, L, T, E) -> (B, L, segments, E): the mean of each of `segments` near-equal stretches of T."""
    import torch

    if x.shape[2] < segments:
        raise FrontendError(
            f"the clips' audio window gives {x.shape[2]} encoder frames, fewer than {segments} stretches: "
            "raise --audio_seconds"
        )
    return torch.stack([part.mean(2) for part in torch.tensor_split(x, segments, dim=2)], 2)


def _compute_speech(name: str, fs: FeatureSet, progress: bool) -> tuple[np.ndarray, dict]:
    """Every clip's audio window (the stretch its log-mel covers, at 16 kHz) through the pretrained speech
    encoder: each transformer layer's output, mean-pooled per stretch: (N, layers, segments, E) float32."""
    import torch

    from emo.train import resolve_device

    model = speech_model(name)
    device = resolve_device("auto")
    model.to(device).eval()

    def layers_of(idx):
        waves = torch.stack([_audio_window(fs, i, SPEECH_RATE) for i in idx])
        layers, _ = model.extract_features(waves.to(device))  # one (B, T, E) per layer
        return segment_means(torch.stack(layers, 1), SPEECH_SEGMENTS).float().cpu().numpy()

    out = _embed_rows(fs, "audio", name, _SPEECH_BATCH, progress, layers_of)
    record = {
        "frontend": name,
        "weights": SPEECH_ENCODERS[name][1],
        "layers": int(out.shape[1]),
        "segments": SPEECH_SEGMENTS,
        "sample_rate": SPEECH_RATE,
        "train_actors": [],  # pretrained on LibriSpeech / Libri-Light etc.: no RAVDESS actor
    }
    return out, record


def _compute(cfg: TrainConfig, stream: str, fs: FeatureSet, progress: bool) -> tuple[np.ndarray, dict]:
    """Run the frozen encoder over every clip that has `stream`: (N, T', E) float32 for our own encoders,
    (N, layers, segments, E) for a pretrained speech encoder; and its record."""
    if getattr(cfg, f"{stream}_frontend") in SPEECH_ENCODERS:
        return _compute_speech(getattr(cfg, f"{stream}_frontend"), fs, progress)
    if getattr(cfg, f"{stream}_frontend") in IMAGE_ENCODERS:
        return _compute_image(getattr(cfg, f"{stream}_frontend"), fs, progress)
    if getattr(cfg, f"{stream}_frontend") in PARALINGUISTIC:
        return _compute_opensmile(getattr(cfg, f"{stream}_frontend"), fs, progress)
    import torch

    from emo.checkpoint import BEST_FILE, STATE_FILE, load_checkpoint
    from emo.models import build_model
    from emo.train import resolve_device

    folder = _checkpoint_folder(cfg, stream)
    state = load_checkpoint(folder / STATE_FILE)
    saved = state["config"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        enc_cfg = TrainConfig(**{k: v for k, v in saved.items() if k in fields})
    except ValueError as e:
        raise FrontendError(f"the run in {str(folder)!r} has settings this version cannot build ({e})") from e
    if stream not in enc_cfg.streams:
        raise FrontendError(
            f"the run in {str(folder)!r} trained {enc_cfg.fusion!r}, which has no {stream} encoder: "
            f"pass a run of {stream!r} or of a fusion method"
        )
    if enc_cfg.frozen(stream):
        raise FrontendError(
            f"the run in {str(folder)!r} itself read frozen {stream} embeddings: pass the encoder's own run"
        )
    theirs, mine = state.get("features") or {}, fs.config.to_dict()
    if theirs and theirs != mine:
        diff = ", ".join(f"{k} {theirs.get(k)!r}, here {v!r}" for k, v in mine.items() if theirs.get(k) != v)
        raise FrontendError(
            f"the {stream} encoder in {str(folder)!r} trained on other features ({diff}): pass the feature "
            "flags (or --preset) it was trained with"
        )
    if "split" not in state:
        raise FrontendError(
            f"the run in {str(folder)!r} does not record which actors it trained on (written by an older "
            "emo-sweeps): train it again"
        )
    model = build_model(enc_cfg)
    model.load_state_dict(load_checkpoint(folder / BEST_FILE))
    encoder = getattr(model, stream).eval()
    device = resolve_device("auto")
    encoder.to(device)
    features = getattr(fs, stream)

    def encoded(idx):
        return encoder(torch.from_numpy(np.asarray(features[idx])).to(device)).float().cpu().numpy()

    out = _embed_rows(fs, stream, f"the {stream} encoder", _BATCH, progress, encoded)
    record = {
        "frontend": "own",
        "encoder": str(folder.resolve()),
        "encoder_fusion": enc_cfg.fusion,
        "encoder_data_root": enc_cfg.data_root,
        "train_actors": [int(a) for a in state["split"]["train_actors"]],
        "best_epoch": int(state["best"]["epoch"]) + 1,
        "best_val_f1": float(state["best"]["f1"]),
    }
    return out, record


def _write(path: Path, fs: FeatureSet, key: dict, record: dict, values: np.ndarray, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "recording": fs.table.column("recording"),
            "embedding": pa.FixedShapeTensorArray.from_numpy_ndarray(values),
        }
    )
    meta = {
        "version": EMBEDDER_VERSION,
        "key": key,
        "record": record,
        "features": fs.path.name,
        "shape": list(values.shape[1:]),
        "crc32": zlib.crc32(values),
        "build_seconds": round(seconds, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_ipc(path, table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()}))


def _load(path: Path, fs: FeatureSet, key: dict) -> tuple[np.ndarray, dict]:
    """The memory-mapped embeddings of `path` and their record; CacheError unless they are `key`'s, for
    the rows of `fs`, with the bytes their checksum was computed from."""
    table, meta, before, base = map_ipc(path, _META_KEY)
    if meta.get("version") != EMBEDDER_VERSION or meta.get("key") != key or meta.get("features") != fs.path.name:
        raise CacheError("written for another front end or feature cache")
    if "recording" not in table.column_names or not table.column("recording").equals(fs.table.column("recording")):
        raise CacheError("its rows are not the feature cache's")
    arr = tensor_column(table, "embedding", tuple(meta["shape"]), np.float32)
    if arr is None:
        raise CacheError("no embedding column")
    verify_mapped(path, before, base, {"embeddings": (arr, meta["crc32"])})
    return arr, meta["record"]


def features_config(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with every stream end to end: the config whose data holds the features front ends read."""
    return cfg.replace(audio_frontend="logmel", audio_encoder=None, video_frontend="frames", video_encoder=None)


def fold_arrays(cfg: TrainConfig, fs: FeatureSet, folds: int, progress: bool = True) -> dict:
    """{fold: TrainingArrays} of `fs` (features, not embeddings) for the confirmation folds of `cfg`:
    each fold's frozen streams through that fold's own encoder (`{split}` in the path)."""
    return {k: embed(cfg.replace(split_mode="actor", folds=folds, fold=k), fs, progress).arrays() for k in range(folds)}


def check_actors(frontends: dict, cfg: TrainConfig, val_actors, test_actors) -> None:
    """ValueError when a frozen encoder of `cfg`'s streams trained on an actor this run validates or tests
    on (its scores would be of voices and faces the encoder has learnt), or when the embeddings handed
    over are not those of `cfg`'s encoder."""
    for stream in cfg.streams:
        if not cfg.frozen(stream):
            continue
        rec = frontends.get(stream)
        name = getattr(cfg, f"{stream}_frontend")
        if rec is None:
            raise ValueError(f"{stream}_frontend is {name!r} but the data holds no {stream} embeddings")
        if rec["frontend"] != name:
            raise ValueError(
                f"the {stream} embeddings are {rec['frontend']!r}'s, not this run's {name!r}: load the data with "
                "this run's settings"
            )
        if rec["named"] != cfg.encoder_path(stream):
            raise ValueError(
                f"the {stream} embeddings were computed by the encoder in {rec['named']!r}, not by this run's "
                f"{cfg.encoder_path(stream)!r}: load the data with this run's settings"
            )
        seen = sorted(set(rec["train_actors"]) & {int(a) for a in (*val_actors, *test_actors)})
        if seen:
            raise ValueError(
                f"the frozen {stream} encoder ({rec['encoder']}) trained on actor(s) {seen}, which this run "
                "validates or tests on: use an encoder trained with this run's split, one per split: "
                f"python -m emo.train_encoders, then --{stream}_encoder 'ENCODERS/{stream}-{{split}}'"
            )
