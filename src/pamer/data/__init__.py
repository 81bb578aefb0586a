"""Dataset readers: the datasets' own annotation sheets and frame folders -> `DatasetIndex`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pamer.data import casme2, casme3, composite, fourdme, htnet, images, mmew, samm, smic
from pamer.data.labels import DEFAULT_PROTOCOL, PROTOCOLS, Protocol, get_protocol, normalise_emotion
from pamer.data.samples import DatasetError, DatasetIndex, Problem, Sample

# name -> reader(root, protocol=None, **options); `pamer datasets check NAME` takes the same names
DATASETS: Mapping[str, Callable[..., DatasetIndex]] = MappingProxyType(
    {
        "casme2": casme2.read,
        "samm": samm.read,
        "smic": smic.read,
        "smic-e": smic.read_e,
        "casme3": casme3.read,
        "mmew": mmew.read,
        "4dme": fourdme.read,
        "composite": composite.read,
        # preprocessed forms: the HTNet/STSTNet MEGC2019 folders, and one image per clip listed in a csv
        "htnet": htnet.read,
        "images": images.read,
    }
)


def read(name: str, root: Path | Mapping[str, Path], protocol: str | None = None, **options: Any) -> DatasetIndex:
    """Read dataset `name` from `root` under `protocol` (the paper's label set when None).

    Args:
        name: one of `DATASETS` (casme2, samm, smic, smic-e, casme3, mmew, 4dme, composite, htnet, images).
        root: the dataset folder as its owners ship it; for composite, {"casme2": ..., "samm": ..., "smic": ...}.
        protocol: a name from `PROTOCOLS[name]`, e.g. "5class", "megc2019", "all".
        options: reader options: `sheet=PATH` (the annotation file when it is not in `root`), `frames=DIR` (the
            folder holding the clip folders, instead of the one found under `root`: `pamer.data._layout`); for
            composite `sheets={"casme2": PATH}`, `frames={"samm": DIR}`; for images `labels=CSV`, `classes="a,b,c"`.

    Raises:
        DatasetError: an unknown dataset or protocol (the message lists the allowed names), a missing root, a
            missing or unreadable sheet, a sheet without the expected columns, no clip folder under the root (the
            message names the folders searched).
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    get_protocol(name, protocol)  # an unknown protocol fails before any file is read
    return DATASETS[name](root, protocol, **options)


__all__ = [
    "DATASETS",
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "DatasetError",
    "DatasetIndex",
    "Problem",
    "Protocol",
    "Sample",
    "get_protocol",
    "normalise_emotion",
    "read",
]
