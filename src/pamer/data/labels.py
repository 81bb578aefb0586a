"""Label protocols: which emotions of a dataset's sheet become which class, as typed module constants."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pamer.data.samples import DatasetError

# spellings that differ between the sheets (CAS(ME)^3 writes `happy`, SAMM `Other`, CASME II `others`)
_ALIASES = {"happy": "happiness", "sad": "sadness", "surprised": "surprise", "angry": "anger", "other": "others"}


def normalise_emotion(text: str) -> str:
    """The sheet's emotion as one lower-case word: `Happiness`, `happy` -> `happiness`, `Other` -> `others`."""
    word = " ".join(str(text).split()).lower()
    return _ALIASES.get(word, word)


def spellings(text: str) -> tuple[str, ...]:
    """Every lower-case word `normalise_emotion` takes to the same emotion as `text`: `Other` -> others, other."""
    word = normalise_emotion(text)
    return (word, *sorted(alias for alias, target in _ALIASES.items() if target == word))


@dataclass(frozen=True)
class Protocol:
    """A label set: the class names in a fixed order and the (normalised) emotions each class takes."""

    name: str
    classes: tuple[str, ...]
    mapping: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mapping", MappingProxyType(dict(self.mapping)))
        stray = set(self.mapping.values()) - set(self.classes)
        if stray:
            raise ValueError(f"protocol {self.name}: mapping targets {sorted(stray)} are not classes {self.classes}")

    def label(self, emotion: str) -> str | None:
        """The class of a sheet emotion (any spelling), or None when this protocol leaves the emotion out."""
        return self.mapping.get(normalise_emotion(emotion))


def _identity(name: str, classes: tuple[str, ...]) -> Protocol:
    return Protocol(name, classes, {c: c for c in classes})


def _megc2019(negative: tuple[str, ...]) -> Protocol:
    """MEGC2019 composite: negative / positive / surprise, the order of the official list's labels 0 / 1 / 2."""
    mapping = dict.fromkeys(negative, "negative")
    mapping.update(happiness="positive", positive="positive", surprise="surprise", negative="negative")
    return Protocol("megc2019", ("negative", "positive", "surprise"), mapping)


# every emotion each dataset's sheet uses, normalised; anything else in a sheet is reported as a problem
EMOTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "casme2": ("happiness", "disgust", "surprise", "repression", "others", "sadness", "fear"),
        "samm": ("happiness", "anger", "contempt", "surprise", "others", "disgust", "fear", "sadness"),
        "smic": ("positive", "negative", "surprise"),
        "smic-e": ("positive", "negative", "surprise"),
        "casme3": ("happiness", "disgust", "fear", "anger", "sadness", "surprise", "others"),
        "mmew": ("happiness", "disgust", "fear", "anger", "sadness", "surprise", "others"),
        "4dme": ("positive", "negative", "surprise", "repression", "others"),
    }
)

CASME2_5CLASS = _identity("5class", ("happiness", "disgust", "surprise", "repression", "others"))
# SAMM's own spelling is `Other`; the paper's class name keeps it
SAMM_5CLASS = Protocol(
    "5class",
    ("happiness", "anger", "contempt", "surprise", "other"),
    {"happiness": "happiness", "anger": "anger", "contempt": "contempt", "surprise": "surprise", "others": "other"},
)
SMIC_3CLASS = _identity("3class", ("positive", "negative", "surprise"))
MEGC2019_CASME2 = _megc2019(("disgust", "repression"))
MEGC2019_SAMM = _megc2019(("anger", "contempt", "disgust", "fear", "sadness"))
MEGC2019_SMIC = _megc2019(())
CASME3_4CLASS = Protocol(
    "4class",
    ("negative", "positive", "surprise", "others"),
    {
        **dict.fromkeys(("anger", "disgust", "fear", "sadness"), "negative"),
        "happiness": "positive",
        "surprise": "surprise",
        "others": "others",
    },
)
CASME3_3CLASS = Protocol(
    "3class", ("negative", "positive", "surprise"), {k: v for k, v in CASME3_4CLASS.mapping.items() if v != "others"}
)

PROTOCOLS: Mapping[str, Mapping[str, Protocol]] = MappingProxyType(
    {
        "casme2": {
            "5class": CASME2_5CLASS,
            "megc2019": MEGC2019_CASME2,
            "all": _identity("all", EMOTIONS["casme2"]),
        },
        "samm": {
            "5class": SAMM_5CLASS,
            "megc2019": MEGC2019_SAMM,
            "all": Protocol(
                "all",
                (*SAMM_5CLASS.classes, "disgust", "fear", "sadness"),
                {**SAMM_5CLASS.mapping, "disgust": "disgust", "fear": "fear", "sadness": "sadness"},
            ),
        },
        "smic": {"3class": SMIC_3CLASS, "megc2019": MEGC2019_SMIC, "all": _identity("all", EMOTIONS["smic"])},
        "smic-e": {"3class": SMIC_3CLASS, "megc2019": MEGC2019_SMIC, "all": _identity("all", EMOTIONS["smic-e"])},
        "casme3": {"all": _identity("all", EMOTIONS["casme3"]), "4class": CASME3_4CLASS, "3class": CASME3_3CLASS},
        "mmew": {"all": _identity("all", EMOTIONS["mmew"])},
        "4dme": {"all": _identity("all", EMOTIONS["4dme"])},
        # the composite labels each part with that part's megc2019 protocol; this one names the classes
        "composite": {"megc2019": MEGC2019_SMIC},
        # preprocessed folders: the HTNet/STSTNet csv's labels 0, 1, 2; a generic csv's own labels (`--classes`)
        "htnet": {"megc2019": MEGC2019_SMIC},
        "images": {"labels": Protocol("labels", ())},
    }
)

# the paper's label sets for its three datasets; the others default to every emotion their sheet uses
DEFAULT_PROTOCOL: Mapping[str, str] = MappingProxyType(
    {
        "casme2": "5class",
        "samm": "5class",
        "smic": "3class",
        "smic-e": "3class",
        "casme3": "all",
        "mmew": "all",
        "4dme": "all",
        "composite": "megc2019",
        "htnet": "megc2019",
        "images": "labels",
    }
)


def get_protocol(dataset: str, name: str | None = None) -> Protocol:
    """The protocol `name` of `dataset` (its default when None); a `DatasetError` lists the allowed names."""
    if dataset not in PROTOCOLS:
        raise DatasetError(f"unknown dataset {dataset!r}; expected one of {', '.join(PROTOCOLS)}")
    name = DEFAULT_PROTOCOL[dataset] if name is None else name
    try:
        return PROTOCOLS[dataset][name]
    except KeyError:
        allowed = ", ".join(PROTOCOLS[dataset])
        raise DatasetError(f"unknown protocol {name!r} for {dataset}; expected one of {allowed}") from None
