"""The MEGC2019 composite as the HTNet and STSTNet authors published it, preprocessed (reader `htnet`).

Layout (ROOT is the folder holding the csv and `datasets/`; checked against wangzhifengharrison/HTNet, whose
`main_HTNet.py` builds the flow name as `sub + '_' + filename_o + ' .png'`, and christy1206/STSTNet):

    ROOT/combined_3_class2_for_optical_flow.csv
        dataset,sub,filename_o,label,apex,imagename,sub_filename       (apex and sub_filename empty)
        casme2,sub01,EP02_01f,1,,sub01_EP02_01f.jpg,
        smic,s01,s01_ne_01,0,,s01_s1_ne_01.jpg,                        (SMIC: imagename differs from the flow name)
    ROOT/datasets/STSNet_whole_norm_u_v_os/<sub>_<filename_o> .png     (a space before .png; 28 x 28 RGB:
        u, v and optical strain of the onset -> apex TV-L1 flow, each channel min-max stretched to 0..255 per image)
    ROOT/datasets/combined_datasets_whole/<imagename>                   (the apex frame's face crop, JPEG)
    ROOT/datasets/three_norm_u_v_os/<sub>/u_train|u_test/<label>/<sub>_<filename_o> .png   (per-fold copies)

Labels 0, 1, 2 are negative, positive, surprise (also when saved as `0.0`, `1.0`, `2.0`); anything else is refused by
row; `dataset` (casme2, samm, smic) is each clip's dataset of origin. Every flow image and apex crop is decoded once
(`pamer.data.images.image_problems`): a file that is no image, a constant image, a grey flow image or an image of
another size than the others is named with its reason. The published csv codes no action units (every clip's `aus`
is None); a csv with an `aus` column (`4+L10`, as the sheets write them: `pamer.data.aus`) gives them, and an
unreadable cell is a `bad-aus` problem.

The csv is the truth. Every row must find its files: a flow image or apex crop not on disk is a problem naming
the file (the clip stays while it has the other one: a flow cache needs only the flow image); a row with neither,
an unknown label or a repeated clip is left out, named. An apex crop that an earlier row already names is a
`duplicate-file` problem and not taken for the later row (one crop cannot be two clips' apex). Files no row names
are reported too. The per-fold copy, when present, is checked against the csv, never read for labels: each fold's
test folder must hold exactly its subject's clips, each in its csv label's folder, byte for byte the file of the
whole folder; its training folder every other clip and none of its subject. Each difference is a problem naming
the file.

Problem kinds: blank-cell, bad-label, bad-image, constant-image, grey-flow-image, odd-size, unknown-dataset,
duplicate-row, duplicate-file, missing-flow-image, flow-name-variant (found without the space; used),
missing-apex-image, no-files, unlisted-file, missing-folder, and for the per-fold copy fold-label-mismatch,
fold-wrong-subject, fold-test-clip-in-train, fold-test-missing, fold-train-missing, fold-unknown-file,
fold-duplicate, fold-copy-differs, fold-unknown-subject, fold-missing, fold-bad-folder.
"""

from __future__ import annotations

from pathlib import Path

from pamer.data._layout import is_junk
from pamer.data.aus import parse_cell
from pamer.data.images import (
    AU_COLUMN,
    ImageIndex,
    ImageSample,
    image_files,
    image_problems,
    integer_code,
    read_csv_rows,
)
from pamer.data.labels import get_protocol
from pamer.data.samples import DatasetError, Problem

CSV_NAME = "combined_3_class2_for_optical_flow.csv"
COLUMNS = ("dataset", "sub", "filename_o", "label", "imagename")  # of the 7; `apex` and `sub_filename` are empty
FLOW_DIR = Path("datasets") / "STSNet_whole_norm_u_v_os"
APEX_DIR = Path("datasets") / "combined_datasets_whole"
FOLDS_DIR = Path("datasets") / "three_norm_u_v_os"
FOLD_PARTS = ("u_train", "u_test")
PARTS = ("casme2", "samm", "smic")  # the datasets of origin the composite holds
LAYOUT = f"ROOT/{CSV_NAME} beside ROOT/{FLOW_DIR}/<sub>_<filename_o> .png and ROOT/{APEX_DIR}/<imagename>"


def shown(path: Path, root: Path) -> str:
    """A file as problems name it: relative to the root, quoted, so the space before `.png` shows."""
    return f"'{path.relative_to(root) if path.is_relative_to(root) else path}'"


def flow_name(subject: str, clip: str) -> str:
    """The flow image's file name: `<sub>_<filename_o> .png`, with the space the published files have."""
    return f"{subject}_{clip} .png"


def read(root: Path, protocol: str | None = None, *, sheet: Path | None = None) -> ImageIndex:
    """Read the HTNet/STSTNet MEGC2019 folders (see the module docstring): 442 clips of 68 subjects when complete.

    Args:
        root: the folder holding the csv and `datasets/`.
        protocol: only "megc2019" (negative, positive, surprise = the csv's labels 0, 1, 2).
        sheet: the csv, when it is not `root/combined_3_class2_for_optical_flow.csv`.

    Raises:
        DatasetError: a missing root or csv, a csv without the columns, neither image folder present, or not one
            row with a file.
    """
    classes = get_protocol("htnet", protocol).classes
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"htnet root {root} does not exist or is not a folder")
    path = Path(sheet) if sheet is not None else root / CSV_NAME
    if not path.is_file():
        hint = ""
        if sheet is None and (root.parent / CSV_NAME).is_file():
            hint = f"; it is in {root.parent}: pass that folder as --root"
        raise DatasetError(f"no {path}{hint}; expected {LAYOUT}")
    rows = read_csv_rows(path, COLUMNS, (AU_COLUMN,))
    folders = {kind: root / sub for kind, sub in (("flow", FLOW_DIR), ("apex", APEX_DIR))}
    present = {kind: folder for kind, folder in folders.items() if folder.is_dir()}
    if not present:
        raise DatasetError(f"neither {folders['flow']} nor {folders['apex']} exists; expected {LAYOUT}")
    listed = {kind: set(image_files(folder)) for kind, folder in present.items()}
    index = ImageIndex("htnet", classes, origins=True)
    report = index.problems.append
    for kind, folder in folders.items():
        if kind not in present:
            report(Problem(shown(folder, root), "missing-folder", f"no folder {folder}: no clip has its {kind} image"))

    claimed: dict[str, set[str]] = {kind: set() for kind in present}
    seen: set[tuple[str, str]] = set()
    apex_of: dict[str, str] = {}  # each apex crop -> the clip whose crop it is
    for number, cells in rows:
        where = f"{path.name} row {number}"
        origin, subject, clip = cells["dataset"].lower(), cells["sub"], cells["filename_o"]
        name = f"{origin}/{subject}/{clip}"
        if not subject or not clip:
            report(Problem(name, "blank-cell", f"{where}: sub or filename_o empty; left out"))
            continue
        code = integer_code(cells["label"])  # `1` or `1.0`, as a spreadsheet may save the csv
        label = classes[code] if code is not None and 0 <= code < len(classes) else None
        if label is None:
            codes = ", ".join(f"{i} = {c}" for i, c in enumerate(classes))
            report(Problem(name, "bad-label", f"{where}: label {cells['label']!r} is not one of {codes}; left out"))
            continue
        if origin not in PARTS:
            report(Problem(name, "unknown-dataset", f"{where}: dataset {cells['dataset']!r} is not one of {PARTS}"))
        if (subject, clip) in seen:
            report(Problem(name, "duplicate-row", f"{where}: sub {subject} filename_o {clip} again; first row kept"))
            continue
        seen.add((subject, clip))

        files: dict[str, Path] = {}
        if "flow" in present:
            wanted = flow_name(subject, clip)
            variant = f"{subject}_{clip}.png"
            if wanted in listed["flow"]:
                files["flow"] = present["flow"] / wanted
            elif variant in listed["flow"]:  # a copy that lost the space; the file is unambiguous, so it is used
                files["flow"] = present["flow"] / variant
                detail = f"{where}: {shown(present['flow'] / wanted, root)} not found; using {variant!r} (no space)"
                report(Problem(name, "flow-name-variant", detail))
            else:
                report(
                    Problem(name, "missing-flow-image", f"{where}: {shown(present['flow'] / wanted, root)} not found")
                )
            if "flow" in files:
                claimed["flow"].add(files["flow"].name)
        if "apex" in present:
            image = cells["imagename"]
            if image and image in apex_of:  # a copy-paste slip: one crop cannot be two clips' apex
                file = shown(present["apex"] / image, root)
                detail = f"{where}: {file} is already the apex crop of {apex_of[image]}; not used for this clip"
                report(Problem(name, "duplicate-file", detail))
            elif image and image in listed["apex"]:
                files["apex"] = present["apex"] / image
                claimed["apex"].add(image)
                apex_of[image] = name
            else:
                what = f"{shown(present['apex'] / image, root)} not found" if image else "imagename is empty"
                report(Problem(name, "missing-apex-image", f"{where}: {what}"))
        if not files:
            report(Problem(name, "no-files", f"{where}: neither its flow image nor its apex crop is on disk; left out"))
            continue
        aus, bad = parse_cell(cells.get(AU_COLUMN), where)
        if bad:
            report(Problem(name, "bad-aus", bad))
        sample = ImageSample(origin, subject, clip, label, files, where, aus, cells.get(AU_COLUMN) or None)
        index.samples.append(sample)

    for kind, folder in present.items():
        for extra in sorted(listed[kind] - claimed[kind]):
            file = shown(folder / extra, root)
            report(Problem(file, "unlisted-file", f"{file}: no row of {path.name} names it"))
    if not index.samples:
        raise DatasetError(f"{path}: not one row found its flow image or apex crop under {root}; expected {LAYOUT}")
    index.problems += image_problems(index)
    if (root / FOLDS_DIR).is_dir():
        index.problems += check_folds(root, rows_by_flow_name(index), classes)
    return index


def rows_by_flow_name(index: ImageIndex) -> dict[str, ImageSample]:
    """Every sample of `index` under the flow file names it may have in a fold copy (with and without the space)."""
    names = {}
    for sample in index.samples:
        names[flow_name(sample.subject, sample.clip)] = sample
        names[f"{sample.subject}_{sample.clip}.png"] = sample
    return names


def check_folds(root: Path, by_name: dict[str, ImageSample], classes: tuple[str, ...]) -> list[Problem]:
    """Compare the per-fold copy `ROOT/datasets/three_norm_u_v_os/<sub>/u_train|u_test/<label>/<file>` with the
    csv's clips.

    Each fold must test exactly its subject's clips and train on every other clip, each in the folder of its csv
    label; a test copy must be the whole folder's flow image byte for byte. Returns one problem per difference,
    naming the file; the csv stays the truth.
    """
    problems: list[Problem] = []
    folds = root / FOLDS_DIR
    subjects = sorted({s.subject for s in by_name.values()})
    samples = {s.uid: s for s in by_name.values()}
    folders = sorted(p.name for p in folds.iterdir() if p.is_dir() and not is_junk(p.name))
    for subject in subjects:
        if subject not in folders:
            folder = shown(folds / subject, root)
            problems.append(Problem(folder, "fold-missing", f"no fold folder {folder} for subject {subject}"))
    for fold in folders:
        if fold not in subjects:
            folder = shown(folds / fold, root)
            problems.append(Problem(folder, "fold-unknown-subject", f"{folder}: no row of the csv has sub {fold!r}"))
            continue
        for part in FOLD_PARTS:
            test = part == "u_test"
            problems += _check_fold_part(root, folds / fold / part, fold, test, by_name, samples, classes)
    return problems


def _check_fold_part(
    root: Path,
    folder: Path,
    subject: str,
    test: bool,
    by_name: dict[str, ImageSample],
    samples: dict[str, ImageSample],
    classes: tuple[str, ...],
) -> list[Problem]:
    """The problems of one fold's `u_test` (`test`) or `u_train` folder."""
    problems: list[Problem] = []

    def add(path: Path, kind: str, detail: str) -> None:
        problems.append(Problem(shown(path, root), kind, f"{shown(path, root)}: {detail}"))

    if not folder.is_dir():
        add(folder, "fold-bad-folder", "no such folder")
        return problems
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if is_junk(entry.name):
            continue
        if not entry.is_dir() or entry.name not in {str(i) for i in range(len(classes))}:
            add(entry, "fold-bad-folder", f"expected only label folders 0..{len(classes) - 1}")
            continue
        code = int(entry.name)
        for name in image_files(entry):
            path = entry / name
            sample = by_name.get(name)
            if sample is None:
                add(path, "fold-unknown-file", "no row of the csv has this flow image name")
                continue
            if sample.uid in found:
                add(path, "fold-duplicate", f"the clip is also in {shown(found[sample.uid], root)}")
                continue
            found[sample.uid] = path
            if sample.label != classes[code]:
                truth = classes.index(sample.label)
                detail = f"in folder {code} ({classes[code]}), the csv says {truth} ({sample.label}); the csv is used"
                add(path, "fold-label-mismatch", detail)
            if test and sample.subject != subject:
                add(path, "fold-wrong-subject", f"a clip of subject {sample.subject} in the test folder of {subject}")
            if not test and sample.subject == subject:
                add(path, "fold-test-clip-in-train", "a clip of the test subject in its own training folder")
            whole = sample.files.get("flow")
            if test and whole is not None and whole.read_bytes() != path.read_bytes():
                add(path, "fold-copy-differs", f"differs from {shown(whole, root)}")
    expected = sorted(uid for uid, s in samples.items() if (s.subject == subject) == test)
    kind = "fold-test-missing" if test else "fold-train-missing"
    for uid in expected:
        if uid not in found:
            sample = samples[uid]
            expected_at = folder / str(classes.index(sample.label)) / flow_name(sample.subject, sample.clip)
            add(expected_at, kind, f"not found (clip {uid} of the csv)")
    return problems
