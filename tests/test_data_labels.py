"""Label protocols: the paper's label sets, MEGC2019, and emotion spellings."""

from __future__ import annotations

import pytest

from pamer.data import DATASETS, DEFAULT_PROTOCOL, PROTOCOLS, DatasetError, Protocol, get_protocol, normalise_emotion
from pamer.data.labels import EMOTIONS


def test_paper_defaults() -> None:
    assert get_protocol("casme2").classes == ("happiness", "disgust", "surprise", "repression", "others")
    assert get_protocol("samm").classes == ("happiness", "anger", "contempt", "surprise", "other")
    assert get_protocol("smic").classes == ("positive", "negative", "surprise")
    assert get_protocol("composite").classes == ("negative", "positive", "surprise")


def test_every_dataset_has_a_default_and_every_protocol_maps_into_its_classes() -> None:
    assert set(DEFAULT_PROTOCOL) == set(PROTOCOLS) == set(DATASETS)
    for dataset, protocols in PROTOCOLS.items():
        assert DEFAULT_PROTOCOL[dataset] in protocols
        for protocol in protocols.values():
            assert set(protocol.mapping.values()) <= set(protocol.classes), (dataset, protocol.name)
            if dataset in EMOTIONS:  # every class is reachable from the dataset's own emotions
                reached = {protocol.label(e) for e in EMOTIONS[dataset]} - {None}
                assert reached == set(protocol.classes), (dataset, protocol.name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Happiness", "happiness"),
        ("happy", "happiness"),
        (" Sad ", "sadness"),
        ("Other", "others"),
        ("Others", "others"),
    ],
)
def test_normalise_emotion(text: str, expected: str) -> None:
    assert normalise_emotion(text) == expected


def test_labels_case_insensitive() -> None:
    samm = get_protocol("samm")
    assert [samm.label(e) for e in ("Anger", "ANGER", "Other", "others", "Fear")] == [
        "anger",
        "anger",
        "other",
        "other",
        None,
    ]
    megc = get_protocol("casme2", "megc2019")
    assert [megc.label(e) for e in ("disgust", "Repression", "happiness", "surprise", "fear")] == [
        "negative",
        "negative",
        "positive",
        "surprise",
        None,  # MEGC2019 maps only disgust and repression to negative for CASME II
    ]
    assert get_protocol("samm", "megc2019").label("Sadness") == "negative"


def test_bad_names_list_the_allowed_ones() -> None:
    with pytest.raises(DatasetError, match="unknown protocol 'five' for samm; expected one of 5class, megc2019, all"):
        get_protocol("samm", "five")
    with pytest.raises(DatasetError, match="unknown dataset 'casme'"):
        get_protocol("casme")
    with pytest.raises(ValueError, match=r"mapping targets \['joy'\] are not classes"):
        Protocol("bad", ("a",), {"happiness": "joy"})
