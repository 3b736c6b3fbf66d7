"""Concat fusion: [audio; video] embeddings through an MLP head."""

from search_spaces.common import MODALITY_DROPOUT, OPTIMISER, SPECAUGMENT, space

SPACE = space("concat", OPTIMISER, SPECAUGMENT, MODALITY_DROPOUT)
