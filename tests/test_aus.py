"""Action units: `pamer.data.aus` on every form of the real sheets, the readers' AU coding, `datasets check`."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from _trees import build_tree
from pamer.cli import app
from pamer.data import read
from pamer.data.aus import AUError, parse_aus
from pamer.data.samples import ActionUnit as AU

runner = CliRunner()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4+L10", (AU(4), AU(10, "L"))),  # CASME II
        ("R14", (AU(14, "R"),)),
        ("1A+2B+L14C", (AU(1, "", "A"), AU(2, "", "B"), AU(14, "L", "C"))),  # SAMM intensities
        ("(R6 or R12)+R15", (AU(6, "R"), AU(12, "R"), AU(15, "R"))),  # every alternative kept
        ("(R6 or R12) + R15", (AU(6, "R"), AU(12, "R"), AU(15, "R"))),
        ("R14A or 17A or 24A", (AU(14, "R", "A"), AU(17, "", "A"), AU(24, "", "A"))),
        ("ref(7B)+43", (AU(7, "", "B"), AU(43))),  # ref(): the AU kept
        ("7B+ ref(43)", (AU(7, "", "B"), AU(43))),
        ("ref(L10)+A12B", (AU(10, "L"), AU(12, "", "B"))),  # A = asymmetric: bilateral
        ("10A/B", (AU(10, "", "A"),)),  # alternative intensities: the first
        ("A/L12", (AU(12),)),  # alternative sides: the first (asymmetric)
        ("12/14", (AU(12), AU(14))),  # alternative AUs: both, as "or"
        ("4+13+T18+39", (AU(4), AU(13), AU(18), AU(39))),  # T/B: top/bottom lip, bilateral
        ("B18+25", (AU(18), AU(25))),
        ("R14+17+soft focus", (AU(14, "R"), AU(17))),  # a remark, not an AU
        ("L12 + 61", (AU(12, "L"), AU(61))),
        ("12+15 ", (AU(12), AU(15))),
        ("4+7+4", (AU(4), AU(7))),  # each AU once
        ("AU12+AU L4", (AU(12), AU(4, "L"))),
        ("12.0", (AU(12),)),  # a number cell stored as a float
        ("12?", (AU(12),)),  # unclear offset: the AU is coded
        ("0", ()),  # FACS neutral: coded, no AU
        ("?", None),  # not identified: not coded
        ("", None),
        (None, None),
    ],
)
def test_parse_aus(text: str | None, expected: tuple | None) -> None:
    assert parse_aus(text) == expected


@pytest.mark.parametrize(
    ("text", "part"), [("4+x", "'x'"), ("12/x", "'12/x'"), ("(4+7", "parentheses"), ("soft focus", "no action unit")]
)
def test_parse_aus_refuses_what_it_cannot_read(text: str, part: str) -> None:
    with pytest.raises(AUError, match=re.escape(part)):
        parse_aus(text)


@pytest.fixture(scope="module")
def trees(annotations_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree("composite", annotations_dir, tmp_path_factory.mktemp("au-trees"))


def _expected_counts(sheet: pd.DataFrame) -> tuple[dict[str, int], int]:
    """AU -> clips, and the number of coded clips, derived without pamer: every number in the string, once per clip
    (the parser's documented rules keep every AU named, alternatives and ref() included), `?` not coded."""
    counts: Counter[str] = Counter()
    coded = 0
    for text in sheet["Action Units"].astype(str):
        if text.strip() == "?":
            continue
        coded += 1
        counts.update(set(re.findall(r"\d+", text)))
    return {k: counts[k] for k in sorted(counts, key=int)}, coded


def test_casme2_au_counts_match_the_sheet(trees: Path, annotations_dir: Path) -> None:
    index = read("casme2", trees / "casme2", "all")
    sheet = pd.read_excel(annotations_dir / "CASME2-coding-20140508.xlsx", dtype=str)
    expected, coded = _expected_counts(sheet)
    assert index.au_counts() == expected
    # by hand from the sheet's tokens: AU4 = `4` in 126 strings + `L4` in 1 + `R4` in 2; five clips say `?`
    assert index.au_counts()["4"] == 129 and (coded, len(index)) == (250, 255)
    clips = {s.clip: s for s in index.samples}
    unknown = [s for s in index.samples if s.aus is None]
    assert len(unknown) == 5 and {s.au_string for s in unknown} == {"?"}
    sample = next(s for s in index.samples if s.au_string == "4+L10")
    assert sample.aus == (AU(4), AU(10, "L"))
    assert clips["EP12_01f"].aus is not None  # the apex quirk does not touch the AUs


def test_samm_au_counts_match_the_sheet(trees: Path, annotations_dir: Path) -> None:
    index = read("samm", trees / "samm", "all")
    sheet = pd.read_excel(annotations_dir / "SAMM_Micro_FACS_Codes_v2.xlsx", sheet_name="MICRO_ONLY", header=13)
    expected, coded = _expected_counts(sheet)
    assert index.au_counts() == expected and coded == len(index) == 159
    # by hand: 7, 7A, 7B, 7C, 7D, A7, L7A and ref(7B) strings: 18 + 3 + 12 + 4 + 3 + 3 + 1 + 2
    assert index.au_counts()["7"] == 46
    clips = {s.clip: s for s in index.samples}
    assert clips["007_6_1"].aus == (AU(6, "R"), AU(12, "R"), AU(15, "R"))
    assert clips["007_6_1"].au_string == "(R6 or R12)+R15"
    assert clips["011_6_1"].aus == (AU(10, "", "A"),)
    assert clips["014_6_3"].aus == (AU(12),)
    assert clips["010_2_1"].aus == (AU(7, "", "B"), AU(43))


def test_smic_codes_no_aus(trees: Path) -> None:
    index = read("smic", trees / "smic")
    assert all(s.aus is None and s.au_string is None for s in index.samples)
    assert index.au_counts() is None


def test_check_prints_au_counts(trees: Path) -> None:
    result = runner.invoke(app, ["datasets", "check", "casme2", "--root", str(trees / "casme2"), "--json"])
    summary = json.loads(result.output)
    index = read("casme2", trees / "casme2")
    assert summary["aus"] == index.au_counts() and summary["aus"]["4"] > 100
    assert summary["aus_coded"] == sum(s.aus is not None for s in index.samples) == len(index) - 5
    smic = json.loads(runner.invoke(app, ["datasets", "check", "smic", "--root", str(trees / "smic"), "--json"]).output)
    assert (smic["aus"], smic["aus_coded"]) == (None, 0)
    samm = json.loads(runner.invoke(app, ["datasets", "check", "samm", "--root", str(trees / "samm"), "--json"]).output)
    text = runner.invoke(app, ["datasets", "check", "samm", "--root", str(trees / "samm")]).output
    assert "action units: coded on 136 of 136 clips" in text
    assert re.search(rf"\b7\s*\S\s*{samm['aus']['7']}\b", text)  # the table's row of AU 7
    text = runner.invoke(app, ["datasets", "check", "smic", "--root", str(trees / "smic")]).output
    assert "action units: none coded" in text


def test_composite_keeps_its_parts_aus(trees: Path) -> None:
    args = ["datasets", "check", "composite", "--json"]
    for part in ("casme2", "samm", "smic"):
        args += ["--root", f"{part}={trees / part}"]
    summary = json.loads(runner.invoke(app, args).output)
    index = read("composite", {p: trees / p for p in ("casme2", "samm", "smic")})
    by_part = Counter((s.dataset, s.aus is not None) for s in index.samples)
    assert by_part == {("casme2", True): 145, ("samm", True): 133, ("smic", False): 164}
    assert summary["aus_coded"] == 278 and summary["aus"] == index.au_counts()


def test_bad_au_cell_is_a_problem_and_the_clip_stays(annotations_dir: Path, tmp_path: Path) -> None:
    root = build_tree("casme2", annotations_dir, tmp_path / "casme2", clips=("EP02_01f", "EP03_02"))
    sheet = root / "CASME2-coding-20140508.xlsx"
    frame = pd.read_excel(sheet, dtype=str)
    row = (frame["Subject"] == "01") & (frame["Filename"] == "EP02_01f")
    frame.loc[row, "Action Units"] = "4+L1O"  # letter O for a zero
    frame.to_excel(sheet, index=False)
    index = read("casme2", root)
    clip = next(s for s in index.samples if s.uid == "casme2/sub01/EP02_01f")
    assert clip.aus is None and clip.au_string == "4+L1O"
    [problem] = [p for p in index.problems if p.kind == "bad-aus"]
    assert problem.clip == "casme2/sub01/EP02_01f" and "'L1O'" in problem.detail and "row" in problem.detail


def _image(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((16, 16, 3), 128, np.uint8))
    return str(path.name)


def test_images_csv_with_and_without_an_aus_column(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        _image(tmp_path / name)
    (tmp_path / "labels.csv").write_text(
        "subject,clip,label,file,aus\ns1,a,pos,a.png,6+R12\ns1,b,neg,b.png,\ns2,c,neg,c.png,4+L1O\n"
    )
    index = read("images", tmp_path)
    aus = {s.clip: s.aus for s in index.samples}
    assert aus == {"a": (AU(6), AU(12, "R")), "b": None, "c": None}
    assert [p.kind for p in index.problems] == ["bad-aus"] and index.au_counts() == {"6": 1, "12": 1}
    (tmp_path / "labels.csv").write_text("subject,clip,label,file\ns1,a,pos,a.png\ns2,c,neg,c.png\n")
    index = read("images", tmp_path)
    assert all(s.aus is None for s in index.samples) and index.au_counts() is None
