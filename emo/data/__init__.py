"""RAVDESS data: names, labels, discovery, splits, decoding, features and the feature cache.

from emo.data import prepare
fs = prepare("path/to/RAVDESS")            # builds or loads the cache
fs.audio, fs.video, fs.labels(8)             # (N, n_mels, frames) f32, (N, T, S, S, 3) u8, (N,)
"""

from emo.data.cache import FeatureSet, TrainingArrays, load_data, prepare
from emo.data.catalog import Catalog, DataRootError, discover
from emo.data.labels import CLASS_NAMES, EMOTIONS, class_names, label_of, labels_of
from emo.data.naming import RavdessName, RavdessNameError, parse_name
from emo.data.splits import Split, SplitError, actor_folds, actor_split, make_split, stratified_split

__all__ = [
    "CLASS_NAMES",
    "EMOTIONS",
    "Catalog",
    "DataRootError",
    "FeatureSet",
    "RavdessName",
    "RavdessNameError",
    "Split",
    "SplitError",
    "TrainingArrays",
    "actor_folds",
    "actor_split",
    "class_names",
    "discover",
    "label_of",
    "labels_of",
    "load_data",
    "make_split",
    "parse_name",
    "prepare",
    "stratified_split",
]
