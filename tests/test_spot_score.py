"""The MEGC spotting score and the interval CSV files, against hand-worked cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pamer.cli import app
from pamer.spot import Interval
from pamer.spot.intervals_csv import IntervalFileError, read_intervals, write_intervals
from pamer.spot.score import Counts, iou, match, score

runner = CliRunner()
HEADER = "video,onset,offset,type\n"


def micro(video: str, onset: int, offset: int) -> Interval:
    return Interval(video, onset, offset, "micro")


def macro(video: str, onset: int, offset: int) -> Interval:
    return Interval(video, onset, offset, "macro")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------------------
# IoU and matching


def test_iou_counts_frames_inclusive() -> None:
    # truth 1..6 and prediction 3..8 share frames 3,4,5,6 (4) of 1..8 (8): 0.5. Counting (offset - onset) without
    # the +1 frame would give 3 / 7 = 0.43 and miss it.
    assert iou(micro("v", 1, 6), micro("v", 3, 8)) == 0.5
    assert iou(micro("v", 10, 19), micro("v", 10, 14)) == 0.5  # 5 of 10 frames
    assert iou(micro("v", 10, 19), micro("v", 10, 13)) == 0.4
    assert iou(micro("v", 5, 5), micro("v", 5, 5)) == 1.0  # a one-frame interval is itself
    assert iou(micro("v", 1, 2), micro("v", 3, 4)) == 0.0  # adjacent, no shared frame
    assert iou(micro("v", 1, 10), micro("v", 21, 30)) == 0.0


def test_iou_exactly_at_threshold_is_found() -> None:
    truth, at, below = micro("v", 10, 19), micro("v", 10, 14), micro("v", 10, 13)
    assert score([truth], [at]).micro == Counts(truth=1, predicted=1, tp=1)
    assert score([truth], [below]).micro == Counts(truth=1, predicted=1, tp=0)
    # the threshold is a parameter: 0.4 finds the shorter one too
    assert score([truth], [below], threshold=0.4).micro.tp == 1


def test_matching_is_one_to_one_and_maximal() -> None:
    a, b = micro("v", 0, 9), micro("v", 10, 19)
    wide, exact_a = micro("v", 0, 19), micro("v", 0, 9)  # wide: IoU 0.5 with a and with b
    # a greedy first-come pairing (a takes `wide`) would leave b unfound: the maximum matching finds both
    assert match([a, b], [wide, exact_a]) == 2
    assert match([a, b], [wide]) == 1  # one prediction finds one truth, never two


# ---------------------------------------------------------------------------------------------------------------
# the hand-worked cases


def test_prediction_overlapping_two_truths() -> None:
    truths = [micro("v", 0, 9), micro("v", 12, 21)]
    # 0..13 shares 10 of 14 frames with 0..9 (0.71) and 2 of 22 with 12..21 (0.09): it finds the first only
    counts = score(truths, [micro("v", 0, 13)]).micro
    assert (counts.tp, counts.fp, counts.fn) == (1, 0, 1)
    # 1..20 has IoU exactly 0.5 with both 1..10 and 11..20; counting each truth found (the MEGC2020 baseline
    # code) would give TP 2 from one prediction, FP = 1 - 2 = -1 and precision 2.0: one prediction finds one truth
    counts = score([micro("v", 1, 10), micro("v", 11, 20)], [micro("v", 1, 20)]).micro
    assert (counts.tp, counts.fp, counts.fn) == (1, 0, 1)
    assert counts.precision == 1.0 and counts.recall == 0.5


def test_two_predictions_on_one_truth() -> None:
    truth = macro("v", 100, 119)  # 20 frames
    predictions = [macro("v", 100, 117), macro("v", 102, 119)]  # each 18 of 20 frames: IoU 0.9
    counts = score([truth], predictions).macro
    # the truth is found once; the second prediction is a false positive
    assert (counts.truth, counts.predicted, counts.tp, counts.fp, counts.fn) == (1, 2, 1, 1, 0)
    assert counts.precision == 0.5 and counts.recall == 1.0
    assert counts.f1 == pytest.approx(2 / 3)  # 2*1 / (2*1 + 1 + 0)


def test_types_and_videos_are_kept_apart() -> None:
    truth = [micro("a", 10, 19)]
    # the right frames but the wrong type, and the right type in another (unknown) video: neither finds it
    result = score(truth, [macro("a", 10, 19), micro("b", 10, 19)])
    assert result.micro == Counts(truth=1, predicted=1, tp=0)
    assert result.macro == Counts(truth=0, predicted=1, tp=0)
    assert result.unknown_videos == ("b",)
    assert result.overall == Counts(truth=1, predicted=2, tp=0)


def test_empty_truth_and_predictions() -> None:
    nothing = score([], [])
    for counts in nothing.counts().values():
        assert counts.to_dict() == {
            "truth": 0, "predicted": 0, "tp": 0, "fp": 0, "fn": 0, "precision": None, "recall": None, "f1": None
        }  # fmt: skip
    missed = score([micro("v", 1, 10)], []).micro
    assert (missed.precision, missed.recall, missed.f1) == (None, 0.0, 0.0)
    only_false = score([], [micro("v", 1, 10)], videos=["v"]).micro
    assert (only_false.precision, only_false.recall, only_false.f1) == (0.0, None, 0.0)
    assert score([], [micro("v", 1, 10)], videos=["v"]).unknown_videos == ()


def test_a_truth_interval_given_twice_counts_once(tmp_path: Path) -> None:
    # a row copied in the truth: one-to-one, its copy could never be found, so a perfect prediction scored recall
    # 0.5; the same frames of the other type are another interval
    truth = [micro("v", 1, 10), micro("v", 1, 10), macro("v", 1, 10), micro("v", 1, 10)]
    result = score(truth, [micro("v", 1, 10)])
    assert result.micro == Counts(truth=1, predicted=1, tp=1) and result.macro.truth == 1
    assert result.repeated == (micro("v", 1, 10), micro("v", 1, 10))
    files = [write(tmp_path / "truth.csv", HEADER + "v,1,10,micro\nv,1,10,micro\n"), tmp_path / "pred.csv"]
    write(files[1], HEADER + "v,1,10,micro\n")
    cli = runner.invoke(app, ["spot", "score", *map(str, files), "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["micro"]["recall"] == 1.0
    assert f"note: {files[0]} repeats 1 interval given before: v 1-10 micro (each counted once)" in cli.stderr


def test_worked_example_over_videos() -> None:
    truth = [
        micro("v1", 10, 19),  # found by 11..19 (9 of 10 frames: 0.9)
        micro("v1", 100, 109),  # missed: 105..116 shares 5 of 17 frames (0.29)
        macro("v1", 200, 259),  # found by 205..259 (55 of 60: 0.92)
        macro("v2", 0, 39),  # found by 0..19 (20 of 40: exactly 0.5)
        macro("v2", 300, 349),  # missed: nothing near
    ]
    predicted = [
        micro("v1", 11, 19),
        micro("v1", 105, 116),
        micro("v2", 500, 509),  # false positive: no micro truth in v2
        macro("v1", 205, 259),
        macro("v1", 0, 40),  # false positive: no macro near
        macro("v2", 0, 19),
        macro("v3", 0, 30),  # v3 is not in the truth: false positive, and reported
    ]
    result = score(truth, predicted)
    # micro: truth 2, predicted 3, TP 1 -> FP 2, FN 1; P = 1/3, R = 1/2, F1 = 2/(2+2+1) = 0.4
    assert result.micro.to_dict() == pytest.approx(
        {"truth": 2, "predicted": 3, "tp": 1, "fp": 2, "fn": 1, "precision": 1 / 3, "recall": 0.5, "f1": 0.4}
    )
    # macro: truth 3, predicted 4, TP 2 -> FP 2, FN 1; P = 1/2, R = 2/3, F1 = 4/(4+2+1) = 4/7
    assert result.macro.to_dict() == pytest.approx(
        {"truth": 3, "predicted": 4, "tp": 2, "fp": 2, "fn": 1, "precision": 0.5, "recall": 2 / 3, "f1": 4 / 7}
    )
    # overall sums the counts (not the F1s): truth 5, predicted 7, TP 3 -> P = 3/7, R = 3/5, F1 = 6/(6+4+2) = 0.5
    assert result.overall.to_dict() == pytest.approx(
        {"truth": 5, "predicted": 7, "tp": 3, "fp": 4, "fn": 2, "precision": 3 / 7, "recall": 0.6, "f1": 0.5}
    )
    assert result.unknown_videos == ("v3",)


def test_threshold_outside_zero_one_refused() -> None:
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="IoU threshold must be in"):
            score([], [], threshold=bad)


# ---------------------------------------------------------------------------------------------------------------
# interval files


def test_csv_round_trip_with_extra_columns(tmp_path: Path) -> None:
    intervals = [Interval("clip, one", 3, 9, "micro", apex=5, peak=1.25), Interval("b", 0, 40, "macro")]
    extra = [{"class": "happiness", "p": 0.7}, {"seconds": 1.4}]
    path = write_intervals(tmp_path / "intervals.csv", intervals, extra)
    lines = path.read_text().splitlines()
    assert lines[0] == "video,onset,offset,type,apex,peak,class,p,seconds"
    assert read_intervals(path) == intervals  # extra columns are read past


def test_csv_columns_in_any_order_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "type,offset,note,video,onset\nmacro,40,x,v,2\n\nmicro,5,,v,1\n")
    assert read_intervals(path) == [macro("v", 2, 40), micro("v", 1, 5)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty; expected a header row video,onset,offset,type"),
        ("video,onset,type\nv,1,micro\n", "line 1: the header lacks offset"),
        ("video,onset,offset,type,onset\n", "line 1: column onset appears twice"),
        (HEADER + "v,1,5,micro\nv,9,5,micro\n", "line 3: offset 5 is before onset 9"),
        (HEADER + "v,1,5,mirco\n", "line 2: type 'mirco' is not one of micro, macro"),
        (HEADER + "v,1.5,5,micro\n", "line 2: onset '1.5' is not a whole frame number"),
        (HEADER + "v,-1,5,micro\n", "line 2: onset '-1' is not a whole frame number"),
        (HEADER + "v,1,,micro\n", "line 2: offset '' is not a whole frame number"),
        (HEADER + "v,1,5\n", "line 2: 3 fields, but the header has 4"),
        (HEADER + ",1,5,micro\n", "line 2: the video is empty"),
        ("video,onset,offset,type,peak\nv,1,5,micro,nan\n", "line 2: peak 'nan' is not a finite number"),
    ],
)
def test_malformed_files_refused_by_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(IntervalFileError, match="bad.csv") as error:
        read_intervals(path)
    assert message in str(error.value)


def test_missing_file_refused(tmp_path: Path) -> None:
    with pytest.raises(IntervalFileError, match="no such file"):
        read_intervals(tmp_path / "absent.csv")


# ---------------------------------------------------------------------------------------------------------------
# pamer spot score


def test_cli_json_is_the_score(tmp_path: Path) -> None:
    truth = write(tmp_path / "truth.csv", HEADER + "v,10,19,micro\nv,200,259,macro\n")
    predicted = write(tmp_path / "pred.csv", HEADER + "v,11,19,micro\nv,0,5,macro\nw,1,9,micro\n")
    result = runner.invoke(app, ["spot", "score", str(truth), str(predicted), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["micro", "macro", "overall"]
    assert data["micro"] == {
        "truth": 1, "predicted": 2, "tp": 1, "fp": 1, "fn": 0, "precision": 0.5, "recall": 1.0, "f1": 2 / 3
    }  # fmt: skip
    assert data["macro"]["tp"] == 0 and data["macro"]["f1"] == 0.0
    assert data["overall"]["truth"] == 2 and data["overall"]["predicted"] == 3 and data["overall"]["tp"] == 1
    assert "w" in result.stderr and "not in the truth" in result.stderr


def test_cli_table_and_iou_option(tmp_path: Path) -> None:
    truth = write(tmp_path / "truth.csv", HEADER + "v,10,19,micro\n")
    predicted = write(tmp_path / "pred.csv", HEADER + "v,10,13,micro\n")  # IoU 0.4
    table = runner.invoke(app, ["spot", "score", str(truth), str(predicted)])
    assert table.exit_code == 0, table.output
    assert "micro" in table.stdout and "overall" in table.stdout and "IoU >= 0.5" in table.stdout
    loose = runner.invoke(app, ["spot", "score", str(truth), str(predicted), "--iou", "0.4", "--json"])
    assert json.loads(loose.stdout)["micro"]["tp"] == 1


def test_cli_refuses_a_malformed_file_in_one_line(tmp_path: Path) -> None:
    truth = write(tmp_path / "truth.csv", HEADER + "v,10,19,micro\nv,30,20,macro\n")
    predicted = write(tmp_path / "pred.csv", HEADER)
    result = runner.invoke(app, ["spot", "score", str(truth), str(predicted)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "truth.csv line 3: offset 20 is before onset 30" in result.stderr
    good = write(tmp_path / "good.csv", HEADER + "v,10,19,micro\n")
    bad_iou = runner.invoke(app, ["spot", "score", str(good), str(predicted), "--iou", "0"])
    assert bad_iou.exit_code == 2 and "IoU threshold must be in (0, 1]" in bad_iou.stderr


def test_cli_default_iou_is_the_library_default() -> None:
    from pamer.cli import spot_eval
    from pamer.spot.score import DEFAULT_IOU

    assert spot_eval.DEFAULT_IOU == DEFAULT_IOU == 0.5  # the CLI keeps its own copy: importing pamer.spot is slow


def test_cli_start_up_does_not_load_the_spotter() -> None:
    import subprocess
    import sys

    code = "import sys, pamer.cli; print('pamer.spot.spotter' in sys.modules, 'cv2' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded[0] == "False"  # `pamer --help` and every other command start without the spotter
