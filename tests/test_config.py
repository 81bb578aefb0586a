"""Configs: defaults <- YAML <- --set, typed, unknown keys named with the nearest valid one; shipped configs load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pamer.cli import app
from pamer.config import SHIPPED, Config, ConfigError, load_config


def test_yaml_then_set_override(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\n  lr: 1e-3\nmodel:\n  name: pamnet_test\n  args: {stem_stride: 1}\n")
    c = load_config(path, ["train.epochs=2", "seed=5", "train.lr=2e-4"])
    assert (c.train.epochs, c.train.lr, c.seed) == (2, 2e-4, 5)
    assert c.model.name == "pamnet_test" and c.model.args == {"stem_stride": 1}
    assert c.train.batch_size == Config().train.batch_size
    assert Config.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.epoch=2", "unknown key 'train.epoch'; did you mean 'train.epochs'"),
        ("trian.batch_size=3", "did you mean 'train.batch_size'"),
        ("train.epochs=two", "train.epochs = 'two' is not a valid int"),
        ("oracle=maybe", "oracle = 'maybe' is not a valid bool"),
        ("data.representation=rgb", "expected 'diff', 'flow' or 'apex'"),
        ("train.epochs=0", "expected an integer >= 1"),
        ("seed=-1", "seed = -1, expected an integer >= 0"),
        ("train.lr=.inf", "train.lr = inf, expected a positive finite number"),
        ("train.lr=.nan", "train.lr = nan, expected a positive finite number"),
        ("train.lr=1e38", "expected a positive finite number <= 1e30"),
        # a typo of a size: refused here, not as an allocation of 1.4 TB in the first fold
        ("train.input_size=100000", "train.input_size = 100000, expected an integer from 16 to 1024"),
        ("train.input_size=8", "train.input_size = 8, expected an integer from 16 to 1024"),
        ("seed=18446744073709551616", "seed = 18446744073709551616, expected an integer >= 0 and < 2"),
        ("epochs", "expected key=value"),
    ],
)
def test_bad_overrides_are_named(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [assignment])


def test_unknown_key_in_file_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'train.learning_rate'"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_a_folder_given_as_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{tmp_path} is a folder, not a config file"):
        load_config(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(Config().to_dict()))  # a run directory of `pamer loso`
    result = CliRunner().invoke(app, ["loso", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{tmp_path} is a run directory, not a config file" in result.stderr
    assert f"pamer loso {tmp_path / 'config.yaml'} --out {tmp_path}" in result.stderr
    assert "does not exist" not in result.stderr


RUN_CONFIGS = sorted(SHIPPED.rglob("*.yaml"))  # every shipped YAML is a run config


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: str(p.relative_to(SHIPPED)))
def test_shipped_configs_load_and_name_registered_models(path: Path) -> None:
    from pamer.classic import check_classic, is_classic
    from pamer.models import list_models

    config = load_config(path)
    if is_classic(config.model.name):
        check_classic(config)  # a classic method's options
    else:
        assert config.model.name in list_models()
    if path.parent.name != "peers":  # the peers carry their authors' own recipes
        assert config.train.lr == 1e-4  # the paper's
    assert yaml.safe_load(path.read_text())  # not empty


def test_paper_configs_exist() -> None:
    for name in ("smic", "casme2", "samm"):
        assert (SHIPPED / "paper" / f"{name}.yaml").is_file()
    assert (SHIPPED / "megc2019.yaml").is_file()


def test_shipped_configs_are_found_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pamer loso paper/casme2` works from any folder, in a wheel install too; a file of that path wins."""
    from pamer.config import resolve_config_path, shipped_configs

    names = shipped_configs()
    assert "paper/casme2" in names and "megc2019" in names and "peers/ststnet" in names
    assert len(names) == len(RUN_CONFIGS)
    monkeypatch.chdir(tmp_path)
    for spelling in ("paper/casme2", "paper/casme2.yaml", "configs/paper/casme2.yaml"):
        assert resolve_config_path(spelling) == SHIPPED / "paper" / "casme2.yaml"
    assert load_config("paper/casme2").data.dataset == "casme2"
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "casme2.yaml").write_text("train:\n  epochs: 3\n")
    assert load_config("paper/casme2.yaml").train.epochs == 3  # the user's own file
    with pytest.raises(ConfigError, match="no shipped config is named 'paper/casme9'.*paper/casme2"):
        load_config("paper/casme9")


def test_configs_command_lists_and_prints() -> None:
    listing = CliRunner().invoke(app, ["configs"])
    assert listing.exit_code == 0
    assert [line.split()[0] for line in listing.output.splitlines()] == sorted(
        p.relative_to(SHIPPED).with_suffix("").as_posix() for p in RUN_CONFIGS
    )
    resolved = CliRunner().invoke(app, ["configs", "paper/smic", "--resolved"])
    assert resolved.exit_code == 0
    assert Config.from_dict(yaml.safe_load(resolved.output)) == load_config("paper/smic")


@pytest.mark.parametrize("content", [b"\xff\xfe", b"\xff\xfem\x00o\x00d\x00e\x00l\x00:\x00"], ids=["bom", "utf16"])
def test_loso_on_a_yaml_file_of_other_bytes_is_one_line(tmp_path: Path, content: bytes) -> None:
    """A file holding bytes that are not UTF-8 (a UTF-16 BOM) was a UnicodeDecodeError traceback."""
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"{path}: not a YAML text file \\(byte 0 is not UTF-8\\)"):
        load_config(path)
    result = CliRunner().invoke(app, ["loso", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.strip() == f"error: {path}: not a YAML text file (byte 0 is not UTF-8)"


def test_a_key_given_twice_in_a_yaml_file_is_named(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys without a word: a second `train:` section replaced the first whole,
    and epochs and input_size went back to their defaults (40, 224) with no message."""
    path = tmp_path / "twice.yaml"
    path.write_text("train:\n  epochs: 3\n  input_size: 112\nmodel:\n  name: pamnet_test\ntrain:\n  lr: 0.01\n")
    with pytest.raises(ConfigError, match=rf"^{path}: key 'train' is given twice \(lines 1 and 6\)"):
        load_config(path)
    path.write_text("train:\n  epochs: 3\n  lr: 0.01\n  epochs: 50\n")
    with pytest.raises(ConfigError, match=r"key 'epochs' is given twice \(lines 2 and 4\)"):
        load_config(path)
    # the same key dotted and inside its section: whichever came last won
    path.write_text("train.epochs: 2\ntrain:\n  epochs: 40\n  lr: 0.01\n")
    with pytest.raises(ConfigError, match=rf"^{path}: train.epochs is given twice, as a dotted key and inside its "):
        load_config(path)
    with pytest.raises(ConfigError, match=r"--set 'model.args=\{a: 1, a: 2\}': key 'a' is given twice"):
        load_config(None, ["model.args={a: 1, a: 2}"])
    # a merge key (`<<: *anchor`) is not a duplicate: the keys written beside it override the anchor's, as YAML says
    path.write_text("train:\n  <<: {epochs: 3, lr: 0.01}\n  epochs: 5\n")
    assert (load_config(path).train.epochs, load_config(path).train.lr) == (5, 0.01)


@pytest.mark.parametrize("text", ["train:\n#  epochs: 2\nseed: 1\n", "train: 5\n"], ids=["empty", "number"])
def test_a_section_without_keys_is_named(tmp_path: Path, text: str) -> None:
    """A section whose keys are all commented out (`train:` alone, YAML's null) was refused as an unknown key
    'train' with a hint of 'train.lr', which the user never wrote."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    value = "None" if "#" in text else "5"
    with pytest.raises(ConfigError, match=rf"^{path}: train is a section, not a value \(got {value}\); expected its "):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^--set: train is a section, not a value \(got 5\)"):
        load_config(None, ["train=5"])


def test_one_model_option_is_set_by_its_dotted_name(tmp_path: Path) -> None:
    """`model.args.hars_attention: true`, as the shipped configs' comments, docs/models.md and the classic methods'
    messages spell an option, was refused as an unknown key; `model.args={...}`, the only spelling taken, drops the
    config's other options (peers/biwoof's blocks, bins and c_grid)."""
    config = load_config("peers/biwoof", ["model.args.blocks=6"])
    assert config.model.args == {"blocks": 6, "bins": 8, "c_grid": [0.01, 0.1, 1, 10, 100]}
    assert load_config("peers/biwoof", ["model.args={blocks: 6}"]).model.args == {"blocks": 6}  # replaces them all
    assert load_config("peers/dual_atme_casme2", ["model.args.hars_attention=true"]).model.args == {
        "hars_attention": True
    }
    path = tmp_path / "c.yaml"
    path.write_text("model.args.drop_rate: 0.3\nmodel:\n  name: pamnet\n  args: {stem_stride: 1}\n")
    assert load_config(path).model.args == {"stem_stride": 1, "drop_rate": 0.3}  # the dict first, whatever the order
    path.write_text("model.args.drop_rate: 0.3\nmodel:\n  args: {drop_rate: 0.1}\n")
    with pytest.raises(ConfigError, match=r"model.args.drop_rate is given twice, as a dotted key and inside its sec"):
        load_config(path)
