"""The words a first lesson needs, explained once on the Guide page, and linked from every help line that uses them."""

from __future__ import annotations

import re
from dataclasses import dataclass

GUIDE = "Guide"  # the Guide page's address, relative to any page of the lab


@dataclass(frozen=True)
class Term:
    word: str  # as the heading shows it
    anchor: str  # the heading's anchor on the Guide page
    pattern: str  # how help lines write it (a regular expression, matched case-insensitively)
    meaning: str


TERMS = (
    Term(
        "Epoch",
        "epoch",
        r"\bepochs?\b",
        "One pass over every training image. After each epoch the lab scores the model on the test images, so the "
        "accuracy chart gains a point per epoch.",
    ),
    Term(
        "Learning rate",
        "learning-rate",
        r"\blearning rate\b|\blr\b",
        "How big a step the weights take after each batch of images. Too small and learning crawls; too big and the "
        "loss jumps about or blows up.",
    ),
    Term(
        "Loss",
        "loss",
        r"\bloss\b",
        "How wrong the model's answers are, as one number: lower is better. Training makes it fall; it wobbles from "
        "batch to batch because every batch holds different images.",
    ),
    Term(
        "Augmentation",
        "augmentation",
        r"\baugment\w*|\bmirror\w*|\bflip\w*|\bshift(ed|s)?\b",
        "Changing the training images at random (mirroring, shifting, rotating) so the model sees more variety "
        "than the 50,000 images hold. It makes training harder and the model better on new pictures.",
    ),
    Term(
        "Overfitting",
        "overfitting",
        r"\boverfit\w*|\bmemoris\w*",
        "When a model learns its training images by heart instead of what the classes look like: training "
        "accuracy keeps rising while test accuracy stops or falls.",
    ),
    Term(
        "Confusion matrix",
        "confusion-matrix",
        r"\bconfusion matri\w*",
        "A table of true class (rows) against predicted class (columns): the diagonal holds the right answers, "
        "every other cell a mix-up, such as cats taken for dogs.",
    ),
    Term(
        "Grad-CAM",
        "grad-cam",
        r"\bgrad-?cam\b",
        "A heat map of where in the picture the model looked for its answer: the last convolution's features, "
        "weighted by how much each pushed the predicted class.",
    ),
    Term(
        "Seed",
        "seed",
        r"\bseeds?\b",
        "The number that starts the random choices of a run (first weights, order of the images). The same seed and "
        "settings give the same run; another seed shows how much of a score is luck.",
    ),
)


def terms_in(text: str) -> list[Term]:
    return [t for t in TERMS if re.search(t.pattern, text, flags=re.IGNORECASE)]


def link(term: Term) -> str:
    return f"[{term.word.lower() if term.word != 'Grad-CAM' else term.word}]({GUIDE}#{term.anchor})"


def with_links(text: str, *, about: str = "") -> str:
    """`text` with a link to the Guide's explanation of each word of the glossary it (or `about`, the name of what it
    describes, e.g. a field's label) uses, e.g. "... (glossary: [epoch](Guide#epoch))"; unchanged when none."""
    found = terms_in(f"{about} {text}")
    return f"{text} (glossary: {', '.join(link(t) for t in found)})" if found else text
