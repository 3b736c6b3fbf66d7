"""Late fusion: the average of the audio and video branches' class probabilities."""

from search_spaces.common import MODALITY_DROPOUT, OPTIMISER, SPECAUGMENT, space

SPACE = space("late", OPTIMISER, SPECAUGMENT, MODALITY_DROPOUT)
