"""Dissect-style unit/concept profiles and Learned Concepts Embeddings (LCE).

Concept sets (synthetic, Broden, pixel colours) -> `dissect(acts, labels)` per layer ->
profiles -> `lce(entries)`; plus concept-free unit matching across models and label stability.
"""

from zoo.concepts.broden import read_broden
from zoo.concepts.colours import colour_concepts, name_colours
from zoo.concepts.dissection import Dissection, dissect
from zoo.concepts.embedding import LCEResult, ProfileEntry, lce, lce_matrix, pca
from zoo.concepts.labels import Concept, ConceptSet, SampleLabels
from zoo.concepts.matching import BuddyMatch, best_buddies
from zoo.concepts.pipeline import DissectRun, dissect_model, embed
from zoo.concepts.sources import (
                                  ConceptSource,
                                  concept_sources,
                                  open_concepts,
                                  register_concept_source,
)
from zoo.concepts.stability import label_stability
from zoo.concepts.synthetic import synthetic_concepts

__all__ = [
    "BuddyMatch", "Concept", "ConceptSet", "ConceptSource", "DissectRun", "Dissection",
    "LCEResult", "dissect_model", "embed",
    "ProfileEntry", "SampleLabels", "best_buddies", "colour_concepts", "concept_sources",
    "dissect", "label_stability", "lce", "lce_matrix", "name_colours", "open_concepts", "pca",
    "read_broden", "register_concept_source", "synthetic_concepts",
]
