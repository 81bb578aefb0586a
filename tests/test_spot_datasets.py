"""The spotting datasets' readers (CAS(ME)^2, SAMM Long Videos) and `pamer spot evaluate`, on tiny trees written in
the owners' layouts: CAS(ME)^2's three header-less sheets and `rawpic/s15/15_0101disgustingteeth/img1.jpg`, SAMM
Long Videos' `FACS_Movement_Only` sheet below ten rows of notes and `SAMM_longvideos/006_1/006_1_0001.jpg`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

import pamer.spot
from pamer.cli import app
from pamer.data.samples import DatasetError
from pamer.spot import Interval
from pamer.spot.evaluate import evaluate, read_spotting
from pamer.spot.intervals_csv import read_intervals
from pamer.spot.source import SpotError, open_source

runner = CliRunner()
FRAME = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()


def frames(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(FRAME)


def workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def casme_sq(root: Path) -> Path:
    """Two participants (s15, s16), three videos; frames img1..img60 (no zero padding, as released)."""
    root.mkdir(parents=True, exist_ok=True)
    codes = [
        # participant, video_expression, onset, apex, offset, AUs, estimated emotion, type, self-reported
        [1, "disgust1_1", 5, 12, 40, "4+9", "disgust", "macro-expression", "disgust"],
        [1, "disgust1_2", 44, 47, 50, "4", "disgust", "micro-expression", "disgust"],
        [1, "anger1_1", 3, 9, 0, "4", "anger", "micro-expression", "anger"],  # offset not coded: ends at the apex
        [2, "anger1_1", 10, 15, 20, "4", "anger", "blink", "anger"],  # not a type: left out
        [2, "happy1_1", 1, 5, 30, "12", "happy", "macro-expression", "happy"],  # no such folder
        [1, "anger1_2", 30, 0, 0, "4", "anger", "micro-expression", "anger"],  # neither apex nor offset: left out
    ]
    workbook(
        root / "CAS(ME)^2code_final.xlsx",
        {
            "CASFEcode_final": codes,
            "naming rule1": [[15, "s15", 1], [16, "s16", 2]],
            "naming rule2": [["0101", "disgust1"], [401, "anger1"], ["0502", "happy1"]],  # 401: a number cell
        },
    )
    numbered = [f"img{n}.jpg" for n in range(1, 61)]
    frames(root / "rawpic" / "s15" / "15_0101disgustingteeth", numbered)
    frames(root / "rawpic" / "s15" / "15_0401girlcrashing", numbered)
    frames(root / "rawpic" / "s16" / "16_0401girlcrashing", numbered)  # annotated row has no type
    return root


def samm_lv(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    notes = [[f"note {i}"] for i in range(1, 10)]  # citation, AU key...: the header is row 10
    header = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type"]
    header += ["Action Units", "Notes"]
    rows = [
        [6, "006_1_1", 1, 20, 40, 120, 101, "Macro", "12", ""],
        [6, "006_1_2", 1, 200, 220, 280.4, 81, "Micro - 1/2", "4", ""],  # a fractional frame: rounded
        [7, "007_3_1", 3, 50, 70, 90, 41, "Micro - 1/2", "1+2", ""],
        [7, "007_3_2", 3, 150, -1, 170, 21, "Micro - 1/2", "1+2", ""],  # apex not coded
        [7, "007_3_3", 3, 300, 310, 290, 0, "Micro - 1/2", "", ""],  # offset before onset
    ]
    workbook(root / "SAMM_LongVideos_V1_Release.xlsx", {"FACS_Movement_Only": [*notes, header, *rows]})
    frames(root / "SAMM_longvideos" / "006_1", [f"006_1_{n:04d}.jpg" for n in range(1, 301)])
    frames(root / "SAMM_longvideos" / "007_3", [f"007_3_{n:04d}.jpg" for n in range(1, 401)])
    frames(root / "SAMM_longvideos" / "008_2", [f"008_2_{n:04d}.jpg" for n in range(1, 101)])  # nothing coded
    return root


def kinds(index) -> dict[str, int]:
    counts: dict[str, int] = {}
    for problem in index.problems:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
    return counts


# ---------------------------------------------------------------------------------------------------------------
# readers


def test_casme_sq_reads_the_released_layout(tmp_path: Path) -> None:
    index = read_spotting("casme-sq", casme_sq(tmp_path))
    assert index.fps == 30
    assert [(v.video, v.subject, v.first, v.last, v.frames) for v in index.videos] == [
        ("15_0101disgustingteeth", "s15", 1, 60, 60),
        ("15_0401girlcrashing", "s15", 1, 60, 60),
        ("16_0401girlcrashing", "s16", 1, 60, 60),
    ]
    assert index.truth == [
        Interval("15_0101disgustingteeth", 5, 40, "macro", apex=12),
        Interval("15_0101disgustingteeth", 44, 50, "micro", apex=47),
        Interval("15_0401girlcrashing", 3, 9, "micro", apex=9),  # offset 0 -> the apex
    ]
    assert kinds(index) == {"offset-missing": 2, "apex-missing": 1, "type-unknown": 1, "video-missing": 1}
    assert any("neither offset nor apex" in p.detail and "row 6" in p.detail for p in index.problems)
    missing = next(p for p in index.problems if p.kind == "video-missing")
    assert "row 5" in missing.detail and "16_0502" in missing.detail


def test_a_frame_number_given_twice_names_the_refusal_the_spotter_makes(tmp_path: Path) -> None:
    """The readers said "the first is used" of two files of one number, but the spotter refuses such a folder."""
    root = casme_sq(tmp_path)
    folder = root / "rawpic" / "s15" / "15_0101disgustingteeth"
    (folder / "img007.jpg").write_bytes(FRAME)
    (problem,) = [p for p in read_spotting("casme-sq", root).problems if p.kind == "frame-duplicate"]
    assert (
        problem.detail
        == "img007.jpg and img7.jpg have one frame number: the spotter refuses this folder until one is removed"
    )
    with pytest.raises(SpotError, match="img007.jpg and img7.jpg have the same frame number 7"):
        open_source(folder, fps=30)


def test_casme_sq_sheets_found_by_position(tmp_path: Path) -> None:
    root = casme_sq(tmp_path)
    path = root / "CAS(ME)^2code_final.xlsx"
    from openpyxl import load_workbook

    book = load_workbook(path)
    for i, sheet in enumerate(book.worksheets):
        sheet.title = f"Sheet{i + 1}"  # a copy re-saved with default sheet names
    book.save(path)
    assert len(read_spotting("casme-sq", root).truth) == 3


def test_samm_lv_reads_the_released_layout(tmp_path: Path) -> None:
    index = read_spotting("samm-lv", samm_lv(tmp_path))
    assert index.fps == 200
    assert [(v.video, v.subject, v.first, v.last) for v in index.videos] == [
        ("006_1", "006", 1, 300),
        ("007_3", "007", 1, 400),
        ("008_2", "008", 1, 100),
    ]
    assert index.truth == [
        Interval("006_1", 20, 120, "macro", apex=40),
        Interval("006_1", 200, 280, "micro", apex=220),
        Interval("007_3", 50, 90, "micro", apex=70),
        Interval("007_3", 150, 170, "micro", apex=None),
    ]
    assert kinds(index) == {"frame-rounded": 1, "apex-missing": 1, "offset-before-onset": 1}
    assert any("row 15" in p.detail for p in index.problems if p.kind == "offset-before-onset")


@pytest.mark.parametrize(
    ("name", "build", "remove", "message"),
    [
        ("casme-sq", casme_sq, "CAS(ME)^2code_final.xlsx", "no CAS(ME)^2 code sheet"),
        ("casme-sq", casme_sq, "rawpic", "no rawpic/ folder"),
        ("samm-lv", samm_lv, "SAMM_LongVideos_V1_Release.xlsx", "no SAMM Long Videos release sheet"),
        ("samm-lv", samm_lv, "SAMM_longvideos", "no video folder (006_1) with frames"),
    ],
)
def test_missing_parts_refused_clearly(tmp_path: Path, name, build, remove: str, message: str) -> None:
    import shutil

    root = build(tmp_path)
    target = root / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetError) as error:
        read_spotting(name, root)
    assert message in str(error.value) and str(root) in str(error.value)


def test_unknown_dataset_lists_the_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected one of casme-sq, samm-lv"):
        read_spotting("casme2", tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# evaluate (the spotting itself is replaced: what is checked is the reading, the calls and the counting)


def fake_spotter(found: dict[str, list[tuple[int, int, str]]], calls: list, refuse: tuple[str, ...] = ()):
    def spot(folder: Path, fps: float | None = None) -> list[Interval]:
        calls.append((Path(folder).name, fps))
        if Path(folder).name == "008_2":
            warnings.warn(f"no face in frames 10-40 of {folder}: nothing spotted there", stacklevel=2)
        if Path(folder).name in refuse:
            raise pamer.spot.SpotError(f"{folder}: frame 3 cannot be decoded")
        return [Interval("whatever-the-spotter-calls-it", a, b, t) for a, b, t in found.get(Path(folder).name, [])]

    return spot


def test_evaluate_spots_every_video_at_the_dataset_fps(tmp_path: Path) -> None:
    index = read_spotting("samm-lv", samm_lv(tmp_path))
    calls: list = []
    found = {
        "006_1": [(25, 120, "macro"), (205, 280, "micro")],  # both found
        "007_3": [(50, 88, "micro")],  # found; 150..170 missed
        "008_2": [(10, 30, "micro")],  # nothing coded there: a false positive
    }
    result = evaluate(index, spotter=fake_spotter(found, calls))
    assert calls == [("006_1", 200.0), ("007_3", 200.0), ("008_2", 200.0)]
    assert {p.video for p in result.predicted} == {"006_1", "007_3", "008_2"}  # renamed to the dataset's ids
    assert (result.score.micro.truth, result.score.micro.predicted, result.score.micro.tp) == (3, 3, 2)
    assert (result.score.macro.truth, result.score.macro.predicted, result.score.macro.tp) == (1, 1, 1)
    assert result.score.unknown_videos == ()  # 008_2 is a dataset video, not an unknown one


def test_cli_evaluate_prints_the_score_and_writes_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = casme_sq(tmp_path / "casme")
    calls: list = []
    found = {"15_0101disgustingteeth": [(6, 40, "macro"), (44, 50, "micro")], "16_0401girlcrashing": []}
    monkeypatch.setattr(pamer.spot, "spot", fake_spotter(found, calls))
    out = tmp_path / "out"
    result = runner.invoke(app, ["spot", "evaluate", "casme-sq", "--root", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [fps for _, fps in calls] == [30.0, 30.0, 30.0]
    assert "overall" in result.stdout and "3 videos, 2 micro and 1 macro" in result.stderr
    assert "offset-missing 2" in result.stderr
    assert len(read_intervals(out / "truth.csv")) == 3 and len(read_intervals(out / "predicted.csv")) == 2
    rescored = runner.invoke(app, ["spot", "score", str(out / "truth.csv"), str(out / "predicted.csv"), "--json"])
    assert json.loads(rescored.stdout) == json.loads((out / "score.json").read_text())
    assert json.loads(rescored.stdout)["overall"]["tp"] == 2


def test_cli_evaluate_counts_a_row_copied_in_the_sheet_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from openpyxl import load_workbook

    root = casme_sq(tmp_path / "casme")
    book = load_workbook(root / "CAS(ME)^2code_final.xlsx")
    sheet = book["CASFEcode_final"]
    sheet.append([cell.value for cell in sheet[2]])  # disgust1_2, 44-50 micro, a second time
    book.save(root / "CAS(ME)^2code_final.xlsx")
    found = {"15_0101disgustingteeth": [(6, 40, "macro"), (44, 50, "micro")]}
    monkeypatch.setattr(pamer.spot, "spot", fake_spotter(found, []))
    result = runner.invoke(app, ["spot", "evaluate", "casme-sq", "--root", str(root), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["micro"]["truth"], data["micro"]["tp"], data["micro"]["fn"]) == (2, 1, 1)  # 44-50 found; 3-9 not
    assert "repeats 1 interval given before: 15_0101disgustingteeth 44-50 micro" in result.stderr


def test_cli_evaluate_json_reports_problems_and_refused_videos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = samm_lv(tmp_path / "samm")
    monkeypatch.setattr(
        pamer.spot, "spot", fake_spotter({"006_1": [(20, 120, "macro")]}, [], refuse=("007_3",)), raising=False
    )
    result = runner.invoke(app, ["spot", "evaluate", "samm-lv", "--root", str(root), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dataset"] == "samm-lv" and data["videos"] == 3
    assert data["macro"]["tp"] == 1 and data["micro"]["fn"] == 3
    assert {p["kind"] for p in data["problems"]} == {"frame-rounded", "apex-missing", "offset-before-onset"}
    # the refused video is reported and its two micro-expressions count as missed
    assert [(p["clip"], p["kind"]) for p in data["refused"]] == [("samm-lv/007_3", "spot-refused")]
    assert "frame 3 cannot be decoded" in data["refused"][0]["detail"]
    assert "samm-lv/007_3: not spotted" in result.stderr
    # the spotter's warnings (frames without a face) are kept per video, not lost in the output
    assert [(p["clip"], p["kind"]) for p in data["warnings"]] == [("samm-lv/008_2", "spot-warning")]
    assert "no face in frames 10-40" in data["warnings"][0]["detail"]


def test_cli_evaluate_refuses_a_bad_root_or_name_in_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["spot", "evaluate", "samm-lv", "--root", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "SAMM Long Videos root" in result.stderr and "does not exist" in result.stderr
    result = runner.invoke(app, ["spot", "evaluate", "casme2", "--root", str(tmp_path)])
    assert (
        result.exit_code == 2
        and "unknown spotting dataset 'casme2'; expected one of casme-sq, samm-lv" in result.stderr
    )


# ---------------------------------------------------------------------------------------------------------------
# end to end: the real spotter on a tiny CAS(ME)^2 tree of real-face frames


def test_evaluate_end_to_end_with_the_real_spotter(tmp_path: Path) -> None:
    import matplotlib.cbook

    from pamer.demo import synthetic
    from pamer.preprocess.face import detect_faces, landmarks

    photo = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    face = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    points = landmarks(face, detect_faces(face)[0])
    unit = synthetic.field(face.shape[:2], synthetic.au_handles(points, synthetic.EMOTION_AUS["happiness"]))
    unit *= 6 * np.linalg.norm(points[16] - points[0]) / 256 / np.linalg.norm(unit, axis=-1).max()
    root = tmp_path / "casme"
    folder = root / "rawpic" / "s15" / "15_0502happy"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for n in range(1, 61):  # a smile (AU6+12, 6 px at a 256 px face) over frames 21-50, apex 30; files from img1
        x = min(max((n - 21) / 9 if n <= 30 else (50 - n) / 20, 0.0), 1.0)
        frame = synthetic.warp(face, x * x * (3 - 2 * x) * unit).astype(np.float32)
        frame += rng.normal(0.0, 1.5, frame.shape).astype(np.float32)  # sensor noise
        cv2.imwrite(
            str(folder / f"img{n}.jpg"), cv2.cvtColor(np.clip(frame, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        )
    workbook(
        root / "CAS(ME)^2code_final.xlsx",
        {
            "CASFEcode_final": [[1, "happy1_1", 21, 30, 50, "6+12", "happy", "macro-expression", "happy"]],
            "naming rule1": [[15, "s15", 1]],
            "naming rule2": [["0502", "happy1"]],
        },
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["spot", "evaluate", "casme-sq", "--root", str(root), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["videos"] == 1 and data["refused"] == [] and data["problems"] == []
    assert data["macro"]["truth"] == 1 and data["micro"]["truth"] == 0
    predicted = read_intervals(out / "predicted.csv")
    assert data["overall"]["predicted"] == len(predicted) >= 1  # a 1 s, 6 px smile moves the face: something is found
    # named by the dataset's id and numbered as the frame files are (1..60), whatever the spotter found
    assert all(p.video == "15_0502happy" and 1 <= p.onset <= p.offset <= 60 for p in predicted)
    rescored = runner.invoke(app, ["spot", "score", str(out / "truth.csv"), str(out / "predicted.csv"), "--json"])
    assert json.loads(rescored.stdout) == {k: data[k] for k in ("micro", "macro", "overall")}
    # `pamer spot FOLDER --out` writes an intervals.csv that `pamer spot score` reads, with the same intervals
    single = runner.invoke(app, ["spot", str(folder), "--fps", "30", "--out", str(tmp_path / "single")])
    assert single.exit_code == 0, single.output
    written = read_intervals(tmp_path / "single" / "intervals.csv")
    assert [(p.onset, p.offset, p.type) for p in written] == [(p.onset, p.offset, p.type) for p in predicted]
    # the folder's name is the dataset's id of the video, so the file scores as the evaluation did
    scored = runner.invoke(
        app, ["spot", "score", str(out / "truth.csv"), str(tmp_path / "single" / "intervals.csv"), "--json"]
    )
    assert json.loads(scored.stdout) == json.loads(rescored.stdout)
