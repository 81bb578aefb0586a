"""Readers on small fake trees whose sheets use each dataset's published columns: every quirk and bad input."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import openpyxl
import pytest

from pamer.data import DATASETS, DatasetError, DatasetIndex, casme2, read
from pamer.data._clips import list_frames
from pamer.data.samples import ActionUnit

CASME2_HEADER = list(casme2.SHEET_HEADER)


def write_sheet(
    path: Path, header: Sequence[object], rows: Iterable[Sequence[object]], *, notes: int = 0, sheet: str = "Sheet1"
) -> Path:
    """An .xlsx with `notes` rows of text above the header, like SAMM's."""
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    for i in range(notes):
        ws.append([f"note {i}: not data"] if i % 2 == 0 else [])
    ws.append(list(header))
    for row in rows:
        ws.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def frames(folder: Path, numbers: Iterable[int], name: Callable[[int], str] = lambda n: f"img{n}.jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    numbers = list(numbers)
    random.Random(0).shuffle(numbers)  # creation (and so listing) order must not matter
    for n in numbers:
        (folder / name(n)).write_bytes(b"\xff\xd8 tiny")


def problems(index: DatasetIndex) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in index.problems:
        found.setdefault(p.clip.split("/")[-1], []).append(p.kind)
    return found


@pytest.fixture
def casme2_root(tmp_path: Path) -> Path:
    root = tmp_path / "CASME2"
    rows = [
        ["01", "EP01", None, 8, 10, 12, None, "12", "happiness"],  # fine
        ["01", "EP02", None, 10, 40, 30, None, "4", "disgust"],  # apex outside onset..offset
        ["02", "EP03", None, 10, 10, 30, None, "1+2", "surprise"],  # apex == onset
        ["02", "EP04", None, 10, 15, 30, None, "4", "others"],  # folder missing
        ["02", "EP05", None, 10, 15, 30, None, "R14", "repression"],  # apex has no file
        ["03", "EP06", None, 10, 15, 30, None, "4", "fear"],  # not a 5-class emotion (folder missing too)
        ["03", "EP07", None, "abc", 15, 30, None, "4", "happiness"],  # onset not a number
        ["03", "EP08", None, 10, 15, 30, None, "4", "joy"],  # not a CASME II emotion
        [None, None, None, None, None, None, None, None, None],  # blank
        ["Note: EP09 was re-coded", None, None, None, None, None, None, None, None],  # a note
        ["01", "EP01", None, 8, 9, 12, None, "12", "happiness"],  # the same clip again
        [4, "EP10", None, 30, 20, 10, None, "4", "others"],  # a number subject; onset after offset
        [4, "EP11", None, 10, "/", 30, None, "4", "Others"],  # apex `/`
        ["s?", "EP12", None, 10, 15, 30, None, "4", "others"],  # not a subject number
    ]
    write_sheet(root / "CASME2-coding-20140508.xlsx", CASME2_HEADER, rows)
    frames(root / "sub01" / "EP01", range(8, 13))
    frames(root / "sub01" / "EP02", [10, 20, 30, 40])
    frames(root / "sub02" / "EP03", [10, 15, 20, 30])
    frames(root / "sub02" / "EP05", [10, 12, 16, 20, 30])
    frames(root / "sub03" / "EP07", [10, 15, 30])
    frames(root / "sub03" / "EP08", [10, 15, 30])
    frames(root / "sub04" / "EP10", [10, 20, 30])
    frames(root / "sub04" / "EP11", [10, 19, 21, 30])
    (root / "sub01" / "EP01" / "Thumbs.db").write_bytes(b"")  # not a frame
    return root


def test_casme2_quirks(casme2_root: Path) -> None:
    index = read("casme2", casme2_root)
    samples = {s.clip: s for s in index.samples}
    assert sorted(samples) == ["EP01", "EP02", "EP03", "EP05", "EP11"]
    assert problems(index) == {
        "EP02": ["apex-outside"],
        "EP03": ["apex-at-onset"],
        "EP04": ["missing-folder"],
        "EP05": ["missing-frame"],
        "EP07": ["bad-frame-number"],
        "EP08": ["unknown-emotion"],
        "EP01": ["duplicate-row"],
        "EP10": ["onset-after-offset"],
        "EP11": ["apex-missing"],
        "EP12": ["bad-subject"],
    }
    ep01 = samples["EP01"]
    assert ep01.frame_numbers == [8, 9, 10, 11, 12]  # numerically, not img10 < img8
    assert [p.name for p in ep01.frames] == ["img8.jpg", "img9.jpg", "img10.jpg", "img11.jpg", "img12.jpg"]
    assert (ep01.subject, ep01.apex, ep01.apex_source, ep01.flags) == ("sub01", 10, "annotated", ())
    assert ep01.apex_path == casme2_root / "sub01" / "EP01" / "img10.jpg"
    # apex outside the clip: the middle frame, and the numbers in the problem
    assert (samples["EP02"].apex, samples["EP02"].apex_source) == (20, "middle")
    detail = {p.clip.split("/")[-1]: p.detail for p in index.problems}
    assert "40" in detail["EP02"] and "10..30" in detail["EP02"] and "row 3" in detail["EP02"]
    assert (samples["EP03"].onset, samples["EP03"].apex) == (10, 20)
    # apex 15 has no file: the nearest frame (16) stands in
    assert (samples["EP05"].apex, samples["EP05"].apex_source) == (16, "annotated")
    assert "apex-frame-missing" in samples["EP05"].flags and "15" in detail["EP05"] and "16" in detail["EP05"]
    assert "EP04" in detail["EP04"] and "left out" in detail["EP04"]
    assert "'s?'" in detail["EP12"] and "'abc'" in detail["EP07"] and "'joy'" in detail["EP08"]
    # middle of 10..30 is 20, which has no file: the nearest frame, the lower on a tie
    assert (samples["EP11"].subject, samples["EP11"].apex, samples["EP11"].apex_source) == ("sub04", 19, "middle")


def test_a_row_naming_a_clip_in_another_case_is_a_duplicate(tmp_path: Path) -> None:
    # folder names match ignoring case, so `ep01` reads the folder of `EP01`: one clip, not two with two labels
    rows = [
        ["01", "EP01", None, 8, 10, 12, None, "12", "happiness"],
        [1, "ep01", None, 8, 10, 12, None, "1", "surprise"],
    ]
    write_sheet(tmp_path / "CASME2-coding-20140508.xlsx", CASME2_HEADER, rows)
    frames(tmp_path / "sub01" / "EP01", range(8, 13))
    index = read("casme2", tmp_path)
    assert [(s.clip, s.label) for s in index.samples] == [("EP01", "happiness")]
    (problem,) = index.problems
    assert (problem.clip, problem.kind) == ("casme2/sub01/ep01", "duplicate-row")
    assert "row 3" in problem.detail and "as sub01/EP01" in problem.detail


@pytest.mark.parametrize(
    ("delimiter", "encoding"), [(",", "utf-8-sig"), (";", "utf-8"), (";", "cp1252"), ("\t", "utf-8")]
)
def test_a_sheet_saved_as_csv_by_a_spreadsheet(tmp_path: Path, delimiter: str, encoding: str) -> None:
    # Excel saves `;`-separated csv where the decimal mark is a comma, in Windows-1252 on Windows; rows may end
    # early (trailing blank cells left out, so a title above the header is shorter than it), and a note row may
    # hold the other separator and accents
    lines = [
        ["CASME II coding, 2014-05-08"],
        ["Subject", "Filename", "", "OnsetFrame", "ApexFrame", "OffsetFrame", "", "Action Units", "Estimated Emotion"],
        ["01", "EP01", "", "8", "10", "12", "", "12", "happiness"],
        ["Note: re-coded by André, see mail", "", "", "x, y"],
        ["02", "EP02", "", "10", "15", "30", "", "4+L10", "disgust"],
    ]
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter).writerows(
        [cells[: max(i for i, c in enumerate(cells) if c) + 1] for cells in lines]
    )
    (tmp_path / "CASME2-coding-20140508.csv").write_bytes(text.getvalue().encode(encoding))
    frames(tmp_path / "sub01" / "EP01", range(8, 13))
    frames(tmp_path / "sub02" / "EP02", [10, 15, 30])
    index = read("casme2", tmp_path)
    assert [(s.subject, s.clip, s.onset, s.apex, s.offset, s.label) for s in index.samples] == [
        ("sub01", "EP01", 8, 10, 12, "happiness"),
        ("sub02", "EP02", 10, 15, 30, "disgust"),
    ]
    assert index.samples[1].au_string == "4+L10" and not index.problems


def test_casme2_protocols(casme2_root: Path) -> None:
    five = read("casme2", casme2_root)
    assert five.classes == ("happiness", "disgust", "surprise", "repression", "others")
    assert five.class_counts() == {"happiness": 1, "disgust": 1, "surprise": 1, "repression": 1, "others": 1}
    everything = read("casme2", casme2_root, "all")
    assert "EP06" in problems(everything)  # fear is read under `all`: its missing folder is reported
    megc = read("casme2", casme2_root, "megc2019")
    assert megc.class_counts() == {"negative": 2, "positive": 1, "surprise": 1}


def test_casme2_sheet_elsewhere(casme2_root: Path, tmp_path: Path) -> None:
    sheet = casme2_root / "CASME2-coding-20140508.xlsx"
    moved = sheet.rename(tmp_path / "my coding.xlsx")
    with pytest.raises(DatasetError, match=r"no CASME II coding sheet .* in .*CASME2.*--sheet"):
        read("casme2", casme2_root)
    assert len(read("casme2", casme2_root, sheet=moved)) == 5
    with pytest.raises(DatasetError, match="nowhere.xlsx does not exist"):
        read("casme2", casme2_root, sheet=tmp_path / "nowhere.xlsx")


def test_missing_root(tmp_path: Path) -> None:
    for name in DATASETS:
        root = tmp_path / "absent"
        arg = {"casme2": root, "samm": root, "smic": root} if name == "composite" else root
        with pytest.raises(DatasetError, match="absent"):
            read(name, arg)


def test_unreadable_sheet(casme2_root: Path) -> None:
    (casme2_root / "CASME2-coding-20140508.xlsx").write_text("this is not a spreadsheet")
    with pytest.raises(DatasetError, match=r"cannot read sheet .*CASME2-coding-20140508.xlsx"):
        read("casme2", casme2_root)


def test_several_sheets(casme2_root: Path) -> None:
    write_sheet(casme2_root / "CASME2-coding-updated.xlsx", CASME2_HEADER, [])
    with pytest.raises(DatasetError, match=r"several CASME II coding sheets .*20140508.*updated.*--sheet"):
        read("casme2", casme2_root)


def test_sheet_without_the_expected_columns(casme2_root: Path) -> None:
    header = ["Subject", "Clip", "Start", "Peak", "End", "Emotion"]
    write_sheet(casme2_root / "CASME2-coding-20140508.xlsx", header, [["01", "EP01", 8, 10, 12, "happiness"]])
    with pytest.raises(DatasetError) as error:
        read("casme2", casme2_root)
    message = str(error.value)
    assert "CASME2-coding-20140508.xlsx" in message
    assert "Filename" in message and "OnsetFrame" in message  # what was expected
    assert "'Clip'" in message and "'Start'" in message  # what was found


def test_no_clip_folder_at_all_is_one_error(casme2_root: Path, tmp_path: Path) -> None:
    """One error naming the sheet, a clip it looked for, every folder searched and the layout expected."""
    bare = tmp_path / "bare"
    (bare / "photos" / "2019").mkdir(parents=True)
    (bare / "photos" / "2019" / "deep").mkdir()  # three levels down: not searched
    (bare / "__MACOSX" / "sub01" / "EP01").mkdir(parents=True)  # junk, even where the clip folder is
    (casme2_root / "CASME2-coding-20140508.xlsx").rename(bare / "CASME2-coding-20140508.xlsx")
    with pytest.raises(DatasetError) as error:
        read("casme2", bare)
    message = str(error.value)
    assert message.startswith("none of the 11 clip folders of CASME2-coding-20140508.xlsx (e.g. sub01/EP01) found in")
    searched = "or in the folders one and two levels below it (searched ., photos, photos/2019);"
    assert f"found in {bare} {searched}" in message
    assert "expected ROOT/CASME2-coding-*.xlsx beside ROOT/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg" in message
    assert "--frames" in message


def test_unknown_dataset_and_protocol(casme2_root: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'casme'.*casme2, samm"):
        read("casme", casme2_root)
    with pytest.raises(DatasetError, match="unknown protocol '3class' for casme2; expected one of 5class"):
        read("casme2", casme2_root, "3class")


def test_list_frames_numbers_whatever_padding_or_prefix(tmp_path: Path) -> None:
    names = ["006_05562.jpg", "006_5563.jpg", "reg_img7.PNG", "image17581039.bmp", "175.jpg", "notes.txt", "x.jpg"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    paths, numbers, duplicates = list_frames(tmp_path)
    assert numbers == [7, 175, 5562, 5563, 17581039]
    assert [p.name for p in paths] == ["reg_img7.PNG", "175.jpg", "006_05562.jpg", "006_5563.jpg", "image17581039.bmp"]
    assert duplicates == []
    (tmp_path / "img7.jpg").write_bytes(b"")
    assert list_frames(tmp_path)[2] == ["img7.jpg and reg_img7.PNG"]


def test_list_frames_leaves_junk_out(tmp_path: Path) -> None:
    """macOS AppleDouble twins (`._img46.jpg`, sorted before `img46.jpg`), hidden files, Thumbs.db, non-images."""
    for name in ["img46.jpg", "img47.jpg", "._img46.jpg", "._img47.jpg", ".DS_Store", "Thumbs.db", ".img48.jpg"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "img49.jpg.txt").write_bytes(b"")
    (tmp_path / "img50.jpg").mkdir()  # a folder, whatever its name
    paths, numbers, duplicates = list_frames(tmp_path)
    assert ([p.name for p in paths], numbers, duplicates) == (["img46.jpg", "img47.jpg"], [46, 47], [])


def test_list_frames_leaves_a_finder_copy_out(tmp_path: Path) -> None:
    """macOS Finder names a second copy `image1000 copy 2.bmp`: its digits count copies, so read as a frame it
    would be frame 2, the onset of a SMIC clip whose frames start at 1000."""
    for name in ["image1000.bmp", "image1001.bmp", "image1000 copy 2.bmp", "image1001 Copy 11.bmp"]:
        (tmp_path / name).write_bytes(b"")
    paths, numbers, duplicates = list_frames(tmp_path)
    assert ([p.name for p in paths], numbers, duplicates) == (["image1000.bmp", "image1001.bmp"], [1000, 1001], [])


SAMM_HEADER = [
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Micro",
    "Action Units",
    "Estimated Emotion",
    "Objective Classes",
    "Notes",
]


def test_samm_header_found_by_its_cells(tmp_path: Path) -> None:
    rows = [
        ["006", "006_1_2", 1, 5562, 5588, 5632, 71, "Micro - 1/2", "4+7", "Anger", 3, None],
        [7, "007_3_1", 3, 900, 950, 1000, 101, "Micro - 1/2", "(R6 or R12)+R15", "Other", 7, "Blinks"],
        ["007", "007_3_2", 3, 90, 95, 100, 11, "Micro - 1/2", "A/L12", "Fear", 7, None],
    ]
    sheet = tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx"
    write_sheet(sheet, SAMM_HEADER, rows, notes=5, sheet="MICRO_ONLY")
    frames(tmp_path / "006" / "006_1_2", [5562, 5588, 5632], lambda n: f"006_{n:05d}.jpg")
    frames(tmp_path / "007" / "007_3_1", [900, 950, 1000], lambda n: f"007_{n:04d}.jpg")
    index = read("samm", tmp_path)
    assert [(s.subject, s.clip, s.label, s.apex) for s in index.samples] == [
        ("006", "006_1_2", "anger", 5588),
        ("007", "007_3_1", "other", 950),
    ]
    assert index.samples[0].apex_path.name == "006_05588.jpg"
    assert index.samples[1].apex_path.name == "007_0950.jpg"
    assert not index.problems  # fear is not a 5-class emotion: its absent folder is not looked for


def test_samm_sheet_without_header(tmp_path: Path) -> None:
    write_sheet(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", ["only", "notes"], [], notes=13, sheet="MICRO_ONLY")
    with pytest.raises(DatasetError, match=r"SAMM_Micro_FACS_Codes_v2.xlsx: no header row with the columns Subject"):
        read("samm", tmp_path)


SMIC_E_HEADER = [
    "Subject",
    "Filename",
    None,
    "OnsetF",
    "OffsetF",
    "Onset2F",
    "Offset2F",
    "Onset3F",
    "Offset3F",
    None,
    "FirstF",
    "LastF",
    "TotalMF1",
    "TotalMF2",
    "TotalMF3",
    "TotalVL",
    "Emotion",
]


def test_smic_e_trailing_rows_and_vis_copies(tmp_path: Path) -> None:
    def row(subject: object, clip: str, onset: int, offset: int, emotion: str | None, onset2: int | None = None):
        return [subject, clip, None, onset, offset, onset2, None, None, None, None, onset - 5, offset + 5] + [
            offset - onset + 1,
            None,
            None,
            offset - onset + 11,
            emotion,
        ]

    rows = [
        row(1, "s1_ne_01", 100, 120, "negative"),
        row(1, "s1_po_01", 200, 210, "positive", onset2=215),
        [None] * 17,
        ["total", None] + [None] * 15,
        row(2, "s2_sur_01", 300, 330, None),  # no emotion: not a labelled clip
    ]
    write_sheet(tmp_path / "SMIC-HS-E_annotation.xlsx", SMIC_E_HEADER, rows, sheet="HS")
    frames(tmp_path / "HS" / "s01" / "s1_ne_01", [100, 110, 120], lambda n: f"image{n}.jpg")
    frames(tmp_path / "VIS" / "s01" / "s1_ne_01", [1, 2], lambda n: f"image{n}.jpg")
    frames(tmp_path / "HS" / "s01" / "s1_po_01", [200, 205, 210], lambda n: f"image{n}.jpg")
    index = read("smic-e", tmp_path)
    assert [(s.subject, s.clip, s.label, s.apex) for s in index.samples] == [
        ("s1", "s1_ne_01", "negative", 110),
        ("s1", "s1_po_01", "positive", 205),
    ]
    assert index.samples[0].frames[0].parent.parent.parent.name == "HS"
    assert index.samples[1].flags == ("more-intervals",)
    assert not index.problems


def test_smic_tree_without_clips(tmp_path: Path) -> None:
    (tmp_path / "HS" / "s1").mkdir(parents=True)
    with pytest.raises(DatasetError) as error:
        read("smic", tmp_path)
    assert str(error.value).startswith("no SMIC-HS clip folders (e.g. s1/micro/negative/s1_ne_01) found in")
    assert "(searched ., HS, HS/s1); expected ROOT/HS/s1/micro/negative/s1_ne_01/image<n>.bmp" in str(error.value)


def test_smic_unknown_emotion_folder(tmp_path: Path) -> None:
    frames(tmp_path / "HS" / "s1" / "micro" / "negative" / "s1_ne_01", [5, 6, 7], lambda n: f"image{n}.bmp")
    frames(tmp_path / "HS" / "s1" / "micro" / "angry" / "s1_an_01", [5, 6, 7], lambda n: f"image{n}.bmp")
    index = read("smic", tmp_path)
    assert [s.clip for s in index.samples] == ["s1_ne_01"]
    assert problems(index) == {"s1_an_01": ["unknown-emotion"]}


def test_casme3_part_a(tmp_path: Path) -> None:
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    rows = [
        ["spNO.1", "b", 175, 190, 210, "4+7", 3, "disgust"],
        ["spNO.1", "b", 400, 420, 450, "12", 1, "happy"],  # a second micro-expression of recording b
        ["spNO.2", "a", 10, 14, 20, "1+2", 2, "sad"],
    ]
    write_sheet(tmp_path / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", header, rows, sheet="label")
    frames(tmp_path / "spNO.1" / "b" / "color", [175, 190, 210, 400, 420, 450], lambda n: f"{n}.jpg")
    frames(tmp_path / "spNO.2" / "a" / "color", [10, 14, 20], lambda n: f"{n}.jpg")
    index = read("casme3", tmp_path)
    assert [(s.subject, s.clip, s.label, s.emotion) for s in index.samples] == [
        ("spNO.1", "b_175", "disgust", "disgust"),
        ("spNO.1", "b_400", "happiness", "happy"),
        ("spNO.2", "a_10", "sadness", "sad"),
    ]
    assert index.samples[1].apex_path == tmp_path / "spNO.1" / "b" / "color" / "420.jpg"
    assert [s.aus for s in index.samples] == [
        (ActionUnit(4), ActionUnit(7)),
        (ActionUnit(12),),
        (ActionUnit(1), ActionUnit(2)),
    ]
    four = read("casme3", tmp_path, "4class")
    assert four.class_counts() == {"negative": 2, "positive": 1, "surprise": 0, "others": 0}


def test_mmew(tmp_path: Path) -> None:
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
    rows = [
        ["S01", "S01-01-001", 1, 15, 30, "AU12", "happiness"],
        ["S02", "S02-03-002", 3, 9, 20, "AU4", "Others"],
        ["S02", "S02-03-004", 3, 9, 20, "AU4", "surprise"],  # folder missing
    ]
    write_sheet(tmp_path / "MMEW_Micro_Exp.xlsx", header, rows)
    frames(tmp_path / "happiness" / "S01-01-001", [1, 15, 30], lambda n: f"{n}.jpg")
    frames(tmp_path / "others" / "S02-03-002", [3, 9, 20], lambda n: f"{n}.jpg")
    index = read("mmew", tmp_path)
    assert [(s.subject, s.clip, s.label) for s in index.samples] == [
        ("S01", "S01-01-001", "happiness"),
        ("S02", "S02-03-002", "others"),
    ]
    assert problems(index) == {"S02-03-004": ["missing-folder"]}
    assert [(s.aus, s.au_string) for s in index.samples] == [((ActionUnit(12),), "AU12"), ((ActionUnit(4),), "AU4")]


def test_4dme(tmp_path: Path) -> None:
    header = ["sub_ID", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion"]
    rows = [["S01", "S01_001", 5, 9, 14, "AU12", "Positive"], ["S02", "S02_003", 5, 9, 14, "AU4", "Repression"]]
    write_sheet(tmp_path / "4DME_Labelling_Micro_release v1.xlsx", header, rows)
    frames(tmp_path / "S01" / "S01_001", [5, 9, 14], lambda n: f"img{n:03d}.jpg")
    frames(tmp_path / "S02" / "S02_003", [5, 9, 14], lambda n: f"img{n:03d}.jpg")
    index = read("4dme", tmp_path)
    assert [(s.subject, s.clip, s.label, s.apex) for s in index.samples] == [
        ("S01", "S01_001", "positive", 9),
        ("S02", "S02_003", "repression", 9),
    ]
    assert index.au_counts() == {"4": 1, "12": 1}


def test_composite_roots_named_per_part(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="composite needs one root per part .*got casme2"):
        read("composite", {"casme2": tmp_path})
