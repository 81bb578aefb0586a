"""Reader `images`: one image per clip listed in a csv (subject, clip, label, file[, dataset]); names or codes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from pamer.cli import app
from pamer.data import DatasetError, read
from pamer.preprocess import load_cache, read_manifest
from pamer.preprocess.images import prepare_images

runner = CliRunner()


def _tree(root: Path, rows: list[str], header: str = "subject,clip,label,file,dataset") -> Path:
    """Images 20 x 20 (one 30 x 20) whose red channel is the row number, green a gradient, and `labels.csv`."""
    (root / "img").mkdir(parents=True)
    for i in range(6):
        image = np.zeros((20, 30 if i == 5 else 20, 3), np.uint8)
        image[..., 0] = 10 * (i + 1)
        image[..., 1] = np.arange(20, dtype=np.uint8)[:, None]
        assert cv2.imwrite(str(root / "img" / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


ROWS = [
    "p1,a,happy,img/0.png,casme2",
    "p1,b,sad,img/1.png,casme2",
    "p2,c,happy,img/2.png,samm",
    "p2,d,sad,img/3.png,samm",
    "p3,e,happy,img/4.png,smic",
    "p3,f,sad,img/5.png,smic",
]


def test_names_codes_and_origins(tmp_path: Path) -> None:
    root = _tree(tmp_path / "mine", ROWS)
    index = read("images", root)  # labels.csv in the root is found
    assert index.classes == ("happy", "sad")  # sorted names when --classes is not given
    assert index.origins and [s.dataset for s in index.samples] == ["casme2"] * 2 + ["samm"] * 2 + ["smic"] * 2
    assert [(p.clip, p.kind) for p in index.problems] == [("smic/p3/f", "odd-size")]  # 30 x 20 among 20 x 20
    assert index.problems[0].detail.endswith("5.png: 30x20, the other image images are 20x20; prepare resizes it")
    coded = _tree(tmp_path / "coded", [r.replace(",happy,", ",1,").replace(",sad,", ",0,") for r in ROWS])
    by_code = read("images", coded, classes="sad,happy")
    assert by_code.classes == ("sad", "happy")
    assert [s.label for s in by_code.samples] == [s.label for s in index.samples]
    mixed = read("images", root, labels=root / "labels.csv", classes=["sad", "happy"])  # names with --classes
    assert [s.label for s in mixed.samples] == [s.label for s in index.samples]


def test_bad_rows_are_named_and_left_out(tmp_path: Path) -> None:
    rows = [
        *ROWS[:4],
        "p3,e,angry,img/4.png,smic",  # not a class
        "p3,f,sad,img/missing.png,smic",  # no such file
        "p3,g,,img/5.png,smic",  # blank label
        "p1,a,sad,img/1.png,casme2",  # the same clip again
        "p3,h,sad,img/5.png,",  # the dataset column is there but empty
        ",,,,",  # a blank line
        "p3,i,sad,./img/1.png,smic",  # another clip's image (a copy-paste slip)
    ]
    index = read("images", _tree(tmp_path / "mine", rows), classes="happy,sad")
    assert len(index) == 4
    kinds = {(p.clip, p.kind) for p in index.problems}
    assert kinds == {
        ("smic/p3/e", "unknown-label"),
        ("smic/p3/f", "missing-file"),
        ("smic/p3/g", "blank-cell"),
        ("casme2/p1/a", "duplicate-row"),
        ("p3/h", "blank-cell"),
        ("smic/p3/i", "duplicate-file"),
    }
    detail = {p.kind: p.detail for p in index.problems}
    assert "labels.csv row 7" in detail["missing-file"] and "img/missing.png not found" in detail["missing-file"]
    assert "label 'angry' is not one of happy, sad" in detail["unknown-label"]
    assert (
        "row 12" in detail["duplicate-file"]
        and "img/1.png is already the image of casme2/p1/b" in detail["duplicate-file"]
    )


def test_a_subject_name_in_two_datasets_is_two_subjects(tmp_path: Path) -> None:
    """MMEW's S01 and 4DME's S01 are two people: read as one, they were one LOSO fold and one bootstrap unit, and a
    clip name both use was dropped as a repeated row."""
    rows = ["S01,a,happy,img/0.png,mmew", "S01,a,sad,img/1.png,4dme", "S02,c,happy,img/2.png,mmew"]
    rows += ["S02,d,sad,img/3.png,mmew", "S03,e,happy,img/4.png,4dme"]
    index = read("images", _tree(tmp_path / "mine", rows))
    assert sorted(index.subjects) == ["4dme_S01", "S02", "S03", "mmew_S01"]
    assert len(index) == 5
    (problem,) = index.problems
    assert problem.kind == "subject-in-datasets"
    assert "subject S01 appears under datasets 4dme, mmew; read as 4dme_S01, mmew_S01" in problem.detail


def test_bad_csvs_are_explained(tmp_path: Path) -> None:
    root = _tree(tmp_path / "mine", ROWS)
    with pytest.raises(DatasetError, match="integer codes; name the classes in code order with --classes"):
        read("images", _tree(tmp_path / "coded", [r.replace(",happy,", ",1,") for r in ROWS]))
    with pytest.raises(DatasetError, match=r"labels csv .*other.csv does not exist"):
        read("images", root, labels=root / "other.csv")
    (root / "labels.csv").write_text("Subject,Clip,Emotion,Path\np1,a,happy,img/0.png\n")
    with pytest.raises(DatasetError, match=r"no column label, file in its header \(Subject, Clip, Emotion, Path\)"):
        read("images", root)
    with pytest.raises(DatasetError, match="names sad more than once"):
        read("images", root, classes="sad,happy,sad")
    with pytest.raises(DatasetError, match="unknown protocol 'megc2019' for images"):
        read("images", root, "megc2019")


def test_cache_resizes_to_the_first_image_and_keeps_origins(tmp_path: Path) -> None:
    index = read("images", _tree(tmp_path / "mine", ROWS))
    directory = prepare_images(index, tmp_path / "caches", "apex", protocol="labels")
    cache = load_cache(directory)
    assert cache.apex.shape == (6, 20, 20, 3) and cache.onset is None and cache.flow is None
    assert [int(cache.apex[i, 0, 0, 0]) for i in range(6)] == [10, 20, 30, 40, 50, 60]  # RGB order kept
    assert cache.datasets == ["casme2", "casme2", "samm", "samm", "smic", "smic"]
    rows = read_manifest(directory)
    assert rows[5]["source_size"] == "30x20" and rows[5]["problems"].endswith("; resized from 30x20 to 20x20")
    flow = load_cache(prepare_images(index, tmp_path / "caches", "flow"))
    assert flow.flow.dtype == np.float32 and flow.config["flow_kind"] == "normalised"
    no_origin = _tree(tmp_path / "plain", [r.rsplit(",", 1)[0] for r in ROWS], header="subject,clip,label,file")
    plain = load_cache(prepare_images(read("images", no_origin), tmp_path / "caches", "apex"))
    assert plain.datasets is None  # no dataset column: the origin is unknown, not invented


def test_cli_check_and_prepare(tmp_path: Path) -> None:
    root = _tree(tmp_path / "mine", [r.replace(",happy,", ",1,").replace(",sad,", ",0,") for r in ROWS])
    args = ["--root", str(root), "--labels", str(root / "labels.csv"), "--classes", "sad,happy"]
    checked = runner.invoke(app, ["datasets", "check", "images", *args, "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["classes"] == {"sad": 3, "happy": 3}
    prepared = runner.invoke(app, ["prepare", "images", *args, "--representation", "apex", "--out", str(tmp_path)])
    assert prepared.exit_code == 0, prepared.output
    assert load_cache(prepared.stdout.strip().splitlines()[-1]).classes == ("sad", "happy")
    for extra, message in [
        ([], "needs --representation flow or apex"),
        (["--representation", "diff"], "needs --representation flow or apex"),
    ]:
        failed = runner.invoke(app, ["prepare", "images", *args, "--out", str(tmp_path), *extra])
        assert failed.exit_code == 2 and message in failed.output, failed.output
    failed = runner.invoke(app, ["datasets", "check", "casme2", "--root", str(root), "--classes", "a,b"])
    assert failed.exit_code == 2 and "--labels and --classes apply to images only" in failed.output
    failed = runner.invoke(app, ["datasets", "check", "images", "--root", str(root)])
    assert failed.exit_code == 2 and "integer codes" in failed.output


def test_prepare_that_caches_no_image_fails_by_name(tmp_path: Path) -> None:
    root = _tree(tmp_path / "mine", ROWS)
    for image in (root / "img").iterdir():
        image.write_bytes(b"not an image")  # every file there, none readable
    args = ["--root", str(root), "--representation", "apex", "--out", str(tmp_path / "caches")]
    failed = runner.invoke(app, ["prepare", "images", *args])
    assert failed.exit_code == 2, failed.output
    assert "none of the 6 clips of images has a readable apex image" in failed.output
    assert "not a readable image" in failed.output and "Traceback" not in failed.output
    assert not list((tmp_path / "caches").glob("*/cache.json"))  # nothing that loads


# ---------------------------------------------------------------------------------------------------------------
# no silently wrong number: label cells, the cache key, odd files


def test_label_cells_are_normalised_or_refused_by_row(tmp_path: Path) -> None:
    """`Positive` among `positive` made a class of its own; codes saved as `0.0/1.0` were names, or with --classes
    gave "not one row with its file on disk"."""
    rows = [r.replace(",happy,", ",positive,").replace(",sad,", ",negative,") for r in ROWS]
    rows[2] = rows[2].replace(",positive,", ", Positive ,")
    rows[4] = rows[4].replace(",positive,", ",POSITIVE,")
    index = read("images", _tree(tmp_path / "names", rows))
    assert index.classes == ("negative", "positive")
    assert [s.label for s in index.samples] == ["positive", "negative"] * 3
    spelled = [p for p in index.problems if p.kind == "label-spelling"]
    assert [p.detail for p in spelled] == [
        "labels.csv rows 4: label 'Positive' read as class 'positive' (case and spaces ignored)",
        "labels.csv rows 6: label 'POSITIVE' read as class 'positive' (case and spaces ignored)",
    ]
    coded = [r.replace(",happy,", ",1.0,").replace(",sad,", ",0.0,") for r in ROWS]
    coded[5] = coded[5].replace(",0.0,", ",0.5,")
    by_code = read("images", _tree(tmp_path / "codes", coded), classes="Sad,happy")
    assert [s.label for s in by_code.samples] == ["happy", "Sad"] * 2 + ["happy"]
    refused = [p for p in by_code.problems if p.kind == "unknown-label"]
    assert [p.detail for p in refused] == [
        "labels.csv row 7: label '0.5' is not one of Sad, happy (nor an integer code into them); left out"
    ]
    with pytest.raises(DatasetError, match="integer codes; name the classes"):
        read("images", _tree(tmp_path / "codes-only", coded))
    with pytest.raises(DatasetError, match=r"names Happy, happy more than once \(case and spaces ignored\)"):
        read("images", tmp_path / "codes", classes="happy,Happy")


def test_cache_key_covers_the_bytes_not_only_the_size(tmp_path: Path) -> None:
    """Each image replaced by another of the same byte size: `prepare` returned the old cache."""
    root = tmp_path / "bmp"
    (root / "img").mkdir(parents=True)
    rows = []
    for i, row in enumerate(ROWS):
        image = np.random.default_rng(i).integers(0, 256, (20, 20, 3), dtype=np.uint8)
        assert cv2.imwrite(str(root / "img" / f"{i}.bmp"), image)  # uncompressed: the size is the shape's
        rows.append(row.replace(f"img/{i}.png", f"img/{i}.bmp"))
    (root / "labels.csv").write_text("\n".join(["subject,clip,label,file,dataset", *rows]) + "\n")
    first = prepare_images(read("images", root), tmp_path / "caches", "apex")
    sizes = [p.stat().st_size for p in sorted((root / "img").iterdir())]
    for i in range(len(ROWS)):
        image = np.random.default_rng(100 + i).integers(0, 256, (20, 20, 3), dtype=np.uint8)
        assert cv2.imwrite(str(root / "img" / f"{i}.bmp"), image)
    assert [p.stat().st_size for p in sorted((root / "img").iterdir())] == sizes
    second = prepare_images(read("images", root), tmp_path / "caches", "apex")
    assert second != first
    expected = cv2.cvtColor(cv2.imread(str(root / "img" / "0.bmp")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(load_cache(second).apex[0], expected)
    assert prepare_images(read("images", root), tmp_path / "caches", "apex") == second  # unchanged: reused


def test_check_decodes_each_image(tmp_path: Path) -> None:
    """A text file named .png passed `datasets check`, which never decoded an image."""
    root = _tree(tmp_path / "mine", ROWS)
    (root / "img" / "2.png").write_text("not an image\n")
    bgr = np.zeros((20, 20, 3), np.uint16)
    bgr[..., 2] = 200  # red 200 in a 16-bit file: constant, named; not read as black
    assert cv2.imwrite(str(root / "img" / "3.png"), bgr)
    checked = runner.invoke(app, ["datasets", "check", "images", "--root", str(root), "--json"])
    assert checked.exit_code == 0, checked.output
    problems = {(p["clip"], p["kind"]): p["detail"] for p in json.loads(checked.stdout)["problems"]}
    assert (
        problems[("samm/p2/c", "bad-image")]
        == f"{root / 'img' / '2.png'}: not a readable image (corrupt, empty or of an unsupported format)"
    )
    assert problems[("samm/p2/d", "constant-image")].endswith(
        "3.png: every pixel is (200, 0, 0): the image holds nothing"
    )
    assert set(problems) == {("samm/p2/c", "bad-image"), ("samm/p2/d", "constant-image"), ("smic/p3/f", "odd-size")}


def test_paths_written_on_windows_are_read(tmp_path: Path) -> None:
    """`img\\0.png` (a csv written on Windows) was a missing file on Linux and macOS: every row left out."""
    rows = [r.replace("img/", "img\\") for r in ROWS]
    rows[1] = rows[1].replace("img\\1.png", "img\\0.png")  # row 2's file again: still one clip's only
    index = read("images", _tree(tmp_path / "mine", rows))
    expected = [tmp_path / "mine" / "img" / f"{i}.png" for i in (0, 2, 3, 4, 5)]
    assert [s.files["image"] for s in index.samples] == expected
    assert [(p.clip, p.kind) for p in index.problems if p.kind != "odd-size"] == [("casme2/p1/b", "duplicate-file")]
    named = _tree(tmp_path / "named", [])
    (named / "labels.csv").write_text("subject,clip,label,file\np1,a,happy,img\\9.png\np2,b,sad,img\\8.png\n")
    (named / "img\\9.png").write_bytes((named / "img" / "1.png").read_bytes())  # a file named so is taken as named
    index = read("images", named)
    assert [s.files["image"].name for s in index.samples] == ["img\\9.png"]
    missing = named / "img\\8.png"
    assert [p.detail for p in index.problems] == [f"labels.csv row 3: {missing} not found; left out"]


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_csv_saved_by_a_spreadsheet_program_is_read(tmp_path: Path, separator: str) -> None:
    """A labels csv saved by Excel where the decimal mark is a comma (`;`), or as tab-separated text, in
    Windows-1252, was refused: `no column subject, clip, label, file` or `cannot read it as a csv`, although the
    annotation sheets are read in those forms."""
    rows = [r.replace("p1,", "Pé,").replace(",", separator) for r in ROWS]
    root = _tree(tmp_path / "mine", [], header="")
    (root / "labels.csv").write_bytes(
        "\r\n".join(["Subject;Clip;Label;File;Dataset".replace(";", separator), *rows]).encode("cp1252")
    )
    index = read("images", root)
    assert [s.subject for s in index.samples] == ["Pé", "Pé", "p2", "p2", "p3", "p3"]
    assert [s.label for s in index.samples] == ["happy", "sad"] * 3 and index.origins
