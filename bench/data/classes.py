"""Class sets: which source emotions become which class, per protocol.

An emotion as written in a source is first canonicalised (case-insensitive, synonyms such as
``happy`` -> ``happiness``, ``Other`` -> ``others``, SMIC's ``ne``/``po``/``sur``), then mapped by the
class set. A canonical emotion the class set does not use (e.g. CASME II ``fear`` in the ``casme2``
5-class set) is *unmapped*: its rows are dropped and counted. An emotion outside the known vocabulary
(a typo such as ``hapiness``) is *unknown* and is an error, because silently dropping it would change
the class balance unnoticed.

Named sets (``CLASS_SETS``):

``casme2``   happiness, surprise, disgust, repression, others — the common CASME II 5-class protocol
             (fear and sadness, 2 + 7 clips, are dropped).
``samm``     anger, contempt, happiness, surprise, other — the usual SAMM 5-class protocol (classes
             with >= 10 clips; disgust, fear, sadness are dropped). SAMM's own "Other" is kept as a class.
``megc3``    negative, positive, surprise — the MEGC2019 composite mapping: negative = repression,
             anger, contempt, disgust, fear, sadness; positive = happiness; surprise = surprise;
             ``others`` is dropped. SMIC's negative/positive/surprise map to themselves.
``smic``     alias of ``megc3`` (SMIC is annotated in these three classes).
``mmew7``    happiness, surprise, anger, disgust, fear, sadness, others — all MMEW micro-expressions.
``mmew6``    the six basic emotions of MMEW (``others`` dropped). ``mmew`` is an alias of ``mmew7``.
``casme3``   anger, disgust, fear, happiness, others, sadness, surprise — CAS(ME)^3 part A 7-class.
``casme3_4`` negative (anger, disgust, fear, sadness), positive, surprise, others — the 4-class protocol.
``casme3_3`` alias of ``megc3`` (the 3-class protocol).

Instead of a name, ``classes`` may be an explicit mapping ``{class: [source emotions...]}`` (or
``{class: emotion}``), whose key order is the class order, or a list of class names each mapping
itself; explicit sets match emotions case-insensitively without synonyms, and everything not listed
is dropped with a count (there is no vocabulary to call a label unknown). ``None`` keeps every
emotion present as its own class, sorted by name; since a label typo then becomes a class of its own,
``bench.data.validate.finalize`` logs every class found with its counts and flags each class with a
single clip or a single subject (an error with ``strict=True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

#: source spelling (lower-cased, stripped) -> canonical emotion
SYNONYMS: dict[str, str] = {
    "happy": "happiness",
    "happiness": "happiness",
    "joy": "happiness",
    "sad": "sadness",
    "sadness": "sadness",
    "surprise": "surprise",
    "surprised": "surprise",
    "sur": "surprise",
    "anger": "anger",
    "angry": "anger",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "afraid": "fear",
    "contempt": "contempt",
    "repression": "repression",
    "tense": "tense",
    "other": "others",
    "others": "others",
    "negative": "negative",
    "ne": "negative",
    "neg": "negative",
    "positive": "positive",
    "po": "positive",
    "pos": "positive",
}
VOCABULARY = frozenset(SYNONYMS.values())

_NEG = ("anger", "contempt", "disgust", "fear", "sadness", "repression", "negative")


@dataclass(frozen=True)
class ClassSet:
    """Ordered class names and the canonical-emotion -> class mapping."""

    name: str
    classes: tuple[str, ...]
    mapping: Mapping[str, str]  # canonical (or, for explicit sets, lower-cased) emotion -> class
    canonicalise: bool = True  # named sets use SYNONYMS; explicit sets match lower-cased text
    description: str = ""
    infer: bool = field(default=False)  # classes=None: every emotion present is a class

    def key(self, emotion: str) -> str:
        e = str(emotion).strip().lower()
        return SYNONYMS.get(e, e) if self.canonicalise else e

    def is_known(self, emotion: str) -> bool:
        """False for an emotion outside the vocabulary (only named sets have one)."""
        return not self.canonicalise or self.key(emotion) in VOCABULARY or self.key(emotion) in self.mapping

    def label_of(self, emotion: str) -> int | None:
        c = self.mapping.get(self.key(emotion))
        return None if c is None else self.classes.index(c)


def _named(name: str, classes: Sequence[str], groups: Mapping[str, Sequence[str]], description: str) -> ClassSet:
    mapping = {e: c for c, es in groups.items() for e in es}
    assert set(mapping.values()) == set(classes), name
    return ClassSet(name, tuple(classes), mapping, True, description)


def _identity(name: str, classes: Sequence[str], description: str, extra: Mapping[str, str] | None = None) -> ClassSet:
    groups = {c: [c] for c in classes}
    for e, c in (extra or {}).items():
        groups[c].append(e)
    return _named(name, classes, groups, description)


_MEGC3 = _named(
    "megc3",
    ("negative", "positive", "surprise"),
    {"negative": _NEG, "positive": ("happiness", "positive"), "surprise": ("surprise",)},
    "MEGC2019 composite 3 classes (others dropped)",
)

CLASS_SETS: dict[str, ClassSet] = {
    "casme2": _identity(
        "casme2",
        ("happiness", "surprise", "disgust", "repression", "others"),
        "CASME II 5-class (fear, sadness dropped)",
    ),
    "samm": _named(
        "samm",
        ("anger", "contempt", "happiness", "surprise", "other"),
        {"anger": ["anger"], "contempt": ["contempt"], "happiness": ["happiness"], "surprise": ["surprise"],
         "other": ["others"]},
        "SAMM 5-class (disgust, fear, sadness dropped)",
    ),
    "megc3": _MEGC3,
    "smic": _MEGC3,
    "casme3_3": _MEGC3,
    "mmew7": _identity(
        "mmew7", ("happiness", "surprise", "anger", "disgust", "fear", "sadness", "others"), "MMEW all 7 emotions"
    ),
    "mmew6": _identity(
        "mmew6", ("happiness", "surprise", "anger", "disgust", "fear", "sadness"), "MMEW 6 basic emotions (others dropped)"
    ),
    "casme3": _identity(
        "casme3",
        ("anger", "disgust", "fear", "happiness", "others", "sadness", "surprise"),
        "CAS(ME)^3 part A 7-class",
    ),
    "casme3_4": _named(
        "casme3_4",
        ("negative", "positive", "surprise", "others"),
        {"negative": ("anger", "disgust", "fear", "sadness", "contempt", "negative"), "positive": ("happiness",),
         "surprise": ("surprise",), "others": ("others",)},
        "CAS(ME)^3 4-class",
    ),
}
CLASS_SETS["mmew"] = CLASS_SETS["mmew7"]


def resolve_class_set(spec: Any, emotions: Sequence[str] = ()) -> ClassSet:
    """A ``ClassSet`` from a name, an explicit mapping or list, or ``None`` (infer from ``emotions``)."""
    if spec is None:
        names = sorted({str(e).strip().lower() for e in emotions if str(e).strip()})
        return ClassSet("inferred", tuple(names), {n: n for n in names}, canonicalise=False,
                        description="every emotion present", infer=True)
    if isinstance(spec, str):
        if spec not in CLASS_SETS:
            raise KeyError(f"unknown class set {spec!r}. Available: {', '.join(sorted(CLASS_SETS))}")
        return CLASS_SETS[spec]
    if isinstance(spec, Mapping):
        classes, mapping = [], {}
        for c, es in spec.items():
            c = str(c)
            classes.append(c)
            for e in [es] if isinstance(es, str) else list(es):
                e = str(e).strip().lower()
                if e in mapping and mapping[e] != c:
                    raise ValueError(f"class set maps emotion {e!r} to both {mapping[e]!r} and {c!r}")
                mapping[e] = c
        return ClassSet("custom", tuple(classes), mapping, canonicalise=False, description="explicit mapping")
    if isinstance(spec, Sequence):
        classes = [str(c) for c in spec]
        if len(set(c.lower() for c in classes)) != len(classes):
            raise ValueError(f"duplicate class names in {classes}")
        return ClassSet("custom", tuple(classes), {c.lower(): c for c in classes}, canonicalise=False,
                        description="explicit class list")
    raise TypeError(f"classes must be a class-set name, a mapping, a list or None, not {type(spec).__name__}")


def list_class_sets() -> dict[str, str]:
    return {k: v.description for k, v in sorted(CLASS_SETS.items())}
