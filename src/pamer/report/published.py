"""Published numbers that pamer's runs are set beside, and the label protocol each published column used.

The one place in pamer that holds numbers copied from papers: the paper's Tables 2-4 (Zhan et al. 2024;
`../shared/SPEC.md` section 5) and the MEGC2019 composite results (See et al. 2019). A run fills a published
column only when the `label_protocol` in its `metrics.json` (the reader's dataset name, protocol name and
classes) is the one that column was measured under: never by the free-form `data.dataset` label.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pamer.data.labels import CASME2_5CLASS, MEGC2019_SMIC, SAMM_5CLASS, SMIC_3CLASS

__all__ = [
    "DATASETS",
    "MEGC2019",
    "MEGC2019_PARTS",
    "MODEL_ROWS",
    "PAPER",
    "PAPER_COLUMNS",
    "SOURCES",
    "Column",
    "is_megc2019_composite",
    "paper_column",
    "published_row",
    "unplaced_reason",
]


@dataclass(frozen=True)
class Column:
    """A published dataset column and the labels it was measured with.

    Attributes:
        key: pamer's name of the column (`casme2`).
        title: the name printed in tables (`CASME II`).
        datasets: the reader names (`label_protocol.dataset`) whose runs may fill the column.
        protocol: the label protocol's name in `pamer.data.labels`.
        classes: that protocol's classes.
    """

    key: str
    title: str
    datasets: tuple[str, ...]
    protocol: str
    classes: tuple[str, ...]


# the paper's three columns (SPEC.md section 1): SMIC-HS 3 classes, CASME II and SAMM 5 classes; smic-e is
# SMIC-HS read from its -E sheet, the same clips and labels
PAPER_COLUMNS: tuple[Column, ...] = (
    Column("smic", "SMIC", ("smic", "smic-e"), SMIC_3CLASS.name, SMIC_3CLASS.classes),
    Column("casme2", "CASME II", ("casme2",), CASME2_5CLASS.name, CASME2_5CLASS.classes),
    Column("samm", "SAMM", ("samm",), SAMM_5CLASS.name, SAMM_5CLASS.classes),
)
DATASETS: Mapping[str, str] = {c.key: c.title for c in PAPER_COLUMNS}

# MEGC2019 composite: the whole composite ("full") and its three parts, by the part names the cache records
MEGC2019_PARTS: Mapping[str, str] = {"smic": "SMIC", "casme2": "CASME II", "samm": "SAMM"}
MEGC2019_PROTOCOL = MEGC2019_SMIC.name
MEGC2019_CLASSES = MEGC2019_SMIC.classes

# (accuracy, F1) per dataset, as printed in the paper (SPEC.md section 5); None where the paper has "-"
_T = tuple[float | None, float | None]
PAPER: Mapping[str, Mapping[str, Mapping[str, _T]]] = {
    "Table 2": {
        "LBP-TOP": {"smic": (0.544, 0.567), "casme2": (0.651, 0.674), "samm": (0.462, 0.488)},
        "Bi-WOOF": {"smic": (0.583, 0.573), "casme2": (0.803, 0.781), "samm": (0.514, 0.521)},
        "DSSN": {"smic": (0.634, 0.646), "casme2": (0.708, 0.729), "samm": (0.574, 0.464)},
        "DConv+ETran+AUGCN+AUFusion": {"smic": (0.719, 0.722), "casme2": (0.743, 0.705), "samm": (0.743, 0.704)},
        "LBP+attention": {"smic": (0.812, None), "casme2": (0.745, None), "samm": (None, None)},
        "MADFN": {"smic": (0.817, 0.810), "casme2": (0.821, 0.801), "samm": (0.772, 0.749)},
        "Dual-ATME": {"smic": (0.646, 0.645), "casme2": (0.817, 0.765), "samm": (0.714, 0.560)},
        "this paper": {"smic": (0.826, 0.817), "casme2": (0.880, 0.864), "samm": (0.787, 0.761)},
    },
    "Table 3": {
        "A": {"smic": (0.653, 0.552), "casme2": (0.671, 0.598), "samm": (0.610, 0.607)},
        "B": {"smic": (0.719, 0.615), "casme2": (0.711, 0.658), "samm": (0.669, 0.652)},
        "C": {"smic": (0.778, 0.759), "casme2": (0.859, 0.827), "samm": (0.735, 0.721)},
        "D": {"smic": (0.826, 0.817), "casme2": (0.880, 0.864), "samm": (0.787, 0.761)},
    },
    "Table 4": {
        "E": {"smic": (0.796, 0.782), "casme2": (0.835, 0.822), "samm": (0.750, 0.742)},
        "F": {"smic": (0.826, 0.817), "casme2": (0.880, 0.864), "samm": (0.787, 0.761)},
        "G": {"smic": (0.808, 0.796), "casme2": (0.855, 0.846), "samm": (0.742, 0.730)},
        "H": {"smic": (0.802, 0.780), "casme2": (0.859, 0.839), "samm": (0.746, 0.733)},
        "I": {"smic": (0.784, 0.775), "casme2": (0.831, 0.797), "samm": (0.735, 0.726)},
    },
}

# (UF1, UAR) in the MEGC2019 composite evaluation (See et al. 2019, "MEGC 2019 - the second facial micro-expressions
# grand challenge", IEEE FG 2019): "full" over the 442 clips of 68 subjects, then the same LOSO's predictions
# restricted to each part's clips; each method on its authors' own preprocessing. The full values are issue 11's;
# STSTNet's four UARs are also those of its authors' README (76.05, 70.13, 86.86, 68.10 %), and the per-part values
# agree with those collected for configs/peers (issue 11, helper w11a) from reprints of the table.
MEGC2019: Mapping[str, Mapping[str, _T]] = {
    "LBP-TOP": {
        "full": (0.5882, 0.5785),
        "smic": (0.2000, 0.5280),
        "casme2": (0.7026, 0.7429),
        "samm": (0.3954, 0.4102),
    },
    "Bi-WOOF": {
        "full": (0.6296, 0.6227),
        "smic": (0.5727, 0.5829),
        "casme2": (0.7805, 0.8026),
        "samm": (0.5211, 0.5139),
    },
    "OFF-ApexNet": {
        "full": (0.7196, 0.7096),
        "smic": (0.6817, 0.6695),
        "casme2": (0.8764, 0.8681),
        "samm": (0.5409, 0.5392),
    },
    "Dual-Inception": {
        "full": (0.7322, 0.7278),
        "smic": (0.6645, 0.6726),
        "casme2": (0.8621, 0.8560),
        "samm": (0.5868, 0.5663),
    },
    "STSTNet": {
        "full": (0.7353, 0.7605),
        "smic": (0.6801, 0.7013),
        "casme2": (0.8382, 0.8686),
        "samm": (0.6588, 0.6810),
    },
}

SOURCES: Mapping[str, str] = {
    "Table 2": "Zhan et al. 2024, Table 2",
    "Table 3": "Zhan et al. 2024, Table 3 (ablation)",
    "Table 4": "Zhan et al. 2024, Table 4 (MSC kernel sizes)",
    "MEGC2019": "See et al. 2019 (MEGC2019 composite)",
}

# which registered network (metrics.json `model`) measures which published row; the peers' names are those
# of their registered models and configs/peers/*.yaml
MODEL_ROWS: Mapping[str, list[tuple[str, str]]] = {
    "pamnet": [("Table 2", "this paper"), ("Table 3", "D"), ("Table 4", "F")],
    "pamnet_backbone": [("Table 3", "A")],
    "pamnet_pa": [("Table 3", "B")],
    "pamnet_msc": [("Table 3", "C")],
    "pamnet_k1357": [("Table 4", "E")],
    "pamnet_k57911": [("Table 4", "G")],
    "pamnet_k3333": [("Table 4", "H")],
    "pamnet_k9999": [("Table 4", "I")],
    "lbptop": [("Table 2", "LBP-TOP"), ("MEGC2019", "LBP-TOP")],
    "biwoof": [("Table 2", "Bi-WOOF"), ("MEGC2019", "Bi-WOOF")],
    "dssn": [("Table 2", "DSSN")],
    "off_apexnet": [("MEGC2019", "OFF-ApexNet")],
    "dual_inception": [("MEGC2019", "Dual-Inception")],
    "ststnet": [("MEGC2019", "STSTNet")],
    "dual_atme": [("Table 2", "Dual-ATME")],
    "fgrmer": [("Table 2", "DConv+ETran+AUGCN+AUFusion")],
}


def published_row(model: str, tables: tuple[str, ...]) -> tuple[str, str, Mapping[str, _T]] | None:
    """The first published row `model` measures among `tables`: (table, row, {column: numbers}), or None."""
    for table, row in MODEL_ROWS.get(model, []):
        if table in tables:
            values = MEGC2019[row] if table == "MEGC2019" else PAPER[table][row]
            return table, row, values
    return None


def _same_classes(classes: object, expected: tuple[str, ...]) -> bool:
    # the class order is only the index order of the cache; the label set is what the column fixes
    return isinstance(classes, list | tuple) and len(classes) == len(expected) and set(classes) == set(expected)


def paper_column(metrics: Mapping) -> str | None:
    """The paper column (`smic`, `casme2`, `samm`) a run's `label_protocol` matches, or None."""
    label = metrics.get("label_protocol")
    if not isinstance(label, Mapping):
        return None
    for column in PAPER_COLUMNS:
        if (
            label.get("dataset") in column.datasets
            and label.get("protocol") == column.protocol
            and _same_classes(label.get("classes"), column.classes)
        ):
            return column.key
    return None


def is_megc2019_composite(metrics: Mapping) -> bool:
    """Whether a run is on the MEGC2019 composite: the megc2019 protocol and classes, over the composite's parts.

    A composite is the `composite` reader's cache, or any megc2019 cache whose clips (`by_dataset`) come from all
    three parts (e.g. a preprocessed MEGC2019 folder); one part alone under megc2019 labels is not the composite.
    """
    label = metrics.get("label_protocol")
    if not isinstance(label, Mapping):
        return False
    if label.get("protocol") != MEGC2019_PROTOCOL or not _same_classes(label.get("classes"), MEGC2019_CLASSES):
        return False
    return label.get("dataset") == "composite" or set(MEGC2019_PARTS) <= set(metrics.get("by_dataset") or {})


def unplaced_reason(metrics: Mapping) -> str:
    """Why a run fills no published column (for the "other runs" table)."""
    label = metrics.get("label_protocol")
    if not isinstance(label, Mapping):
        return (
            "metrics.json has no label_protocol (made by an older pamer): rerun the same `pamer loso` into this "
            "directory to record it (no fold is retrained)"
        )
    columns = ", ".join(f"{c.title} {c.protocol}" for c in PAPER_COLUMNS)
    classes = ", ".join(str(c) for c in label.get("classes") or [])
    return (
        f"{label.get('dataset') or 'unnamed dataset'} protocol {label.get('protocol') or 'unknown'} ({classes}) is "
        f"none of the published columns ({columns}, MEGC2019 composite {MEGC2019_PROTOCOL})"
    )
