"""Late fusion: the average of the audio and video branches' class probabilities (the kept branch's
alone on a clip whose other stream modality dropout removed)."""

from search_spaces.common import MODALITY_DROPOUT, OPTIMISER, SPECAUGMENT, space

SPACE = space("late", OPTIMISER, SPECAUGMENT, MODALITY_DROPOUT)
