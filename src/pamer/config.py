"""Run configuration: typed dataclass defaults, overridden by a YAML file, overridden by `--set key=value`."""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from pamer.errors import PamerError

__all__ = [
    "AugmentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "load_config",
    "resolve_config_path",
    "shipped_configs",
]

# the configs that ship inside the package (`pamer/configs/**.yaml`), found by name: "paper/casme2"
SHIPPED = Path(__file__).resolve().parent / "configs"


# what a network sees: apex - onset (the paper's), the cache's flow field, or the apex crop alone
REPRESENTATIONS = ("diff", "flow", "apex")
# what a network computes in (`engine.fold.compute_dtype`)
PRECISIONS = ("auto", "float32", "bfloat16")
MIN_INPUT_SIZE = 16  # the smallest train.input_size (a checkpoint's card is held to it too)
# The largest crop side (`pamer prepare --size`) and train.input_size. A MER network reads 28-224 px, and no
# dataset's face is this many pixels across (SAMM's 2040x1088 frames hold faces of about 400 px): a larger value is a
# typo, refused by name before it fails as an allocation of gigabytes deep in a worker.
MAX_SIZE = 1024


class ConfigError(PamerError):
    """A configuration file, key or value that pamer cannot accept (the message names it and what was expected)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping: PyYAML keeps the last without a word, so a
    second `train:` section replaced the first whole. Keys merged in with `<<:` may be overridden, as YAML says."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key, line = loader.construct_object(key_node), key_node.start_mark.line + 1
        if key in lines:
            raise ConfigError(  # `load_config` and `Config.override` add where
                f"key {key!r} is given twice (lines {lines[key]} and {line}); give each key once (YAML would keep "
                "the second without a word)"
            )
        lines[key] = line
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _read_yaml(text: str) -> Any:
    """`text` parsed as YAML (safe: plain data only); a key given twice is a `ConfigError` that does not say where."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only


@dataclass
class DataConfig:
    """Where the inputs come from.

    Attributes:
        cache: path of a cache written by `pamer prepare`.
        dataset: name shown in reports (smic, casme2, samm, composite, ...); empty: the cache's own.
        representation: `diff` (apex - onset, the paper's motion image), `flow` (the cache's flow field) or
            `apex` (the aligned apex crop alone, as several published methods classify it).
    """

    cache: str = ""
    dataset: str = ""
    representation: str = "diff"


@dataclass
class ModelConfig:
    """Which network: a name from `pamer models` and constructor options passed to `create_model`."""

    name: str = "pamnet"
    args: dict = field(default_factory=dict)


@dataclass
class AugmentConfig:
    """Training-time geometric augmentation, applied identically to onset and apex (never at evaluation).

    Attributes:
        hflip: probability of a horizontal flip.
        rotation: maximum rotation in degrees (uniform in [-rotation, rotation]).
        crop_scale: smallest crop area as a share of the image (uniform in [crop_scale, 1]), then resized.
    """

    hflip: float = 0.5
    rotation: float = 10.0
    crop_scale: float = 0.8

    @property
    def active(self) -> bool:
        """Whether any map can differ from the identity (all off: training skips the warp, which would only copy)."""
        return self.hflip > 0 or self.rotation > 0 or self.crop_scale < 1


@dataclass
class TrainConfig:
    """Optimisation of one fold: a fixed number of epochs, never chosen by looking at the test subject.

    Attributes:
        epochs: epochs per fold; the headline uses the model after the last one.
        batch_size: clips per step.
        lr: Adam learning rate (the paper's 1e-4).
        weight_decay: Adam weight decay.
        input_size: side of the square network input in pixels.
        class_weights: weight the cross-entropy by inverse class frequency of the training clips.
        device: `auto` (CUDA when available), `cpu` or `cuda[:N]`.
        threads: CPU threads per fold; 0 keeps torch's default (the process executor splits the cores).
        precision: `auto`, `float32` or `bfloat16` (`engine.fold.compute_dtype`). `auto`: float32 on every device
            (bf16 on CUDA and on CPUs with native bf16 waits for `benchmarks/precision.py` to show it learns the same:
            see `engine.fold.AUTO_BF16`). bfloat16 is autocast: weights, gradients, Adam's state and batch norm's
            statistics stay float32; on a CPU without native bf16 it is many times slower, and training warns.
    """

    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    input_size: int = 224
    class_weights: bool = False
    device: str = "auto"
    threads: int = 0
    precision: str = "auto"


@dataclass
class Config:
    """A whole run. `oracle: true` also records per-epoch test predictions for a separately labelled block."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    oracle: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain nested dicts (what `config.yaml` of a run holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> Config:
        """Build a checked `Config` from nested dicts; `source` names the file in error messages."""
        config = cls()
        options = _dict_fields()
        # a whole free-form dict (`model: {args: {...}}`) is set before its dotted options (`model.args.C: 1`)
        items = sorted(_flatten(values, source), key=lambda item: _option_of(item[0], options) is not None)
        keys = [key for key, _ in items]
        keys += [
            f"{key}.{name}" for key, value in items if key in options and isinstance(value, dict) for name in value
        ]
        for key in keys:
            if keys.count(key) > 1:  # `train.epochs: 2` beside a `train:` section holding epochs: the last won
                raise ConfigError(
                    f"{source}: {key} is given twice, as a dotted key and inside its section; give it once"
                )
        for key, value in items:
            _assign(config, key, value, source)
        config.validate(source)
        return config

    def override(self, assignments: list[str] | tuple[str, ...]) -> Config:
        """Apply `key=value` strings (value parsed as YAML, e.g. `train.epochs=2`, `model.args={stem_stride: 1}`)."""
        for item in assignments:
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=2")
            try:
                value = _read_yaml(text)
            except ConfigError as err:
                raise ConfigError(f"--set {item!r}: {err}") from None
            except yaml.YAMLError as err:
                raise ConfigError(f"--set {item!r}: the value is not valid YAML ({err})") from None
            _assign(self, key.strip(), value, "--set")
        self.validate("--set")
        return self

    def validate(self, source: str = "config") -> None:
        """Check values that have a type but not every value of it is valid."""
        checks = [
            (self.data.representation in REPRESENTATIONS, "data.representation", "'diff', 'flow' or 'apex'"),
            (self.train.epochs >= 1, "train.epochs", "an integer >= 1"),
            (self.train.batch_size >= 2, "train.batch_size", "an integer >= 2"),
            # Adam's float32 step overflows near 3e37 (a traceback); any rate near the bound diverges anyway
            (0 < self.train.lr <= 1e30, "train.lr", "a positive finite number <= 1e30"),
            (0 <= self.train.weight_decay < math.inf, "train.weight_decay", "a finite number >= 0"),
            (
                MIN_INPUT_SIZE <= self.train.input_size <= MAX_SIZE,
                "train.input_size",
                f"an integer from {MIN_INPUT_SIZE} to {MAX_SIZE}",
            ),
            (self.train.threads >= 0, "train.threads", "an integer >= 0"),
            (self.train.precision in PRECISIONS, "train.precision", "'auto', 'float32' or 'bfloat16'"),
            # torch.manual_seed takes 64-bit seeds; a negative one fails deep inside the first fold
            (0 <= self.seed < 2**63, "seed", "an integer >= 0 and < 2**63"),
            (0 <= self.augment.hflip <= 1, "augment.hflip", "a probability in [0, 1]"),
            (0 <= self.augment.rotation <= 180, "augment.rotation", "degrees in [0, 180]"),
            (0 < self.augment.crop_scale <= 1, "augment.crop_scale", "an area share in (0, 1]"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ConfigError(f"{source}: {key} = {_get(self, key)!r}, expected {expected}")


def shipped_configs() -> dict[str, Path]:
    """The configs shipped with pamer, by name (their path under `pamer/configs` without `.yaml`), sorted:
    `{"megc2019": ..., "paper/casme2": ..., "peers/ststnet": ...}`."""
    return {p.relative_to(SHIPPED).with_suffix("").as_posix(): p for p in sorted(SHIPPED.rglob("*.yaml"))}


def resolve_config_path(name: str | Path) -> Path:
    """A config file given by path, or by the name of a shipped config (`paper/casme2`, `paper/casme2.yaml`,
    `configs/paper/casme2.yaml`): an existing path wins over a shipped name.

    Raises:
        ConfigError: neither a file nor a shipped config's name (the message lists the shipped names).
    """
    path = Path(name)
    if path.exists():
        return path
    key = path.with_suffix("").as_posix() if path.suffix == ".yaml" else path.as_posix()
    key = key.removeprefix("configs/")
    shipped = shipped_configs()
    if key in shipped:
        return shipped[key]
    raise ConfigError(
        f"config file {path} does not exist, and no shipped config is named {key!r}; "
        f"shipped configs (`pamer configs`): {', '.join(shipped)}"
    )


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults <- the YAML file at `path` (if given: a path, or a shipped config's name such as `paper/casme2`)
    <- `overrides` (`key=value` strings).

    Raises:
        ConfigError: for a missing or unreadable file, an unknown key (naming the nearest valid one) or a value
            of the wrong type.
    """
    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = resolve_config_path(path)
        source = str(path)
        if path.is_dir():
            if (path / "config.yaml").is_file():  # a run directory of `pamer loso`
                raise ConfigError(
                    f"{path} is a run directory, not a config file; to resume it: "
                    f"pamer loso {path / 'config.yaml'} --out {path}"
                )
            raise ConfigError(f"{path} is a folder, not a config file; give a YAML file or a name, e.g. paper/casme2")
        try:
            values = _read_yaml(path.read_bytes().decode("utf-8")) or {}
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        except OSError as err:
            raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not a YAML text file (byte {err.start} is not UTF-8)") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(values).__name__}")
    return Config.from_dict(values, source).override(list(overrides))


def valid_keys(obj: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key a configuration accepts, e.g. `train.epochs`."""
    obj = Config() if obj is None else obj
    keys = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            keys += valid_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _flatten(values: dict[str, Any], source: str, prefix: str = "") -> list[tuple[str, Any]]:
    # a free-form dict field (model.args) is one value; every other mapping is a section
    items = []
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in _dict_fields():
            items += _flatten(value, source, dotted + ".")
        else:
            items.append((dotted, value))
    return items


def _dict_fields() -> set[str]:
    config = Config()
    return {key for key in valid_keys(config) if isinstance(_get(config, key), dict)}


def _get(config: Config, key: str) -> Any:
    obj: Any = config
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _option_of(key: str, options: set[str]) -> str | None:
    """The free-form dict field that `key` names one option of (`model.args.drop_rate` -> `model.args`), or None."""
    return next((field for field in options if key.startswith(f"{field}.")), None)


def _assign(config: Config, key: str, value: Any, source: str) -> None:
    field = _option_of(key, _dict_fields())
    if field is not None:  # one option (`model.args.drop_rate=0.3`, as messages and docs spell it): the others stay
        section, name = field.rsplit(".", 1)
        owner = _get(config, section)
        setattr(owner, name, {**getattr(owner, name), key[len(field) + 1 :]: value})
        return
    keys = valid_keys(config)
    inside = [k for k in keys if k.startswith(f"{key}.")]
    if inside:  # `train:` with its keys commented out is YAML's null, not an unknown key
        raise ConfigError(
            f"{source}: {key} is a section, not a value (got {value!r}); expected its keys beneath it: "
            f"{', '.join(inside)}"
        )
    if key not in keys:
        nearest = difflib.get_close_matches(key, keys, n=1, cutoff=0.0)
        hint = f"; did you mean {nearest[0]!r}?" if nearest else ""
        raise ConfigError(f"{source}: unknown key {key!r}{hint}")
    *parents, name = key.split(".")
    obj: Any = config
    for part in parents:
        obj = getattr(obj, part)
    expected = get_type_hints(type(obj))[name]
    setattr(obj, name, _coerce(value, expected, key, source))


def _coerce(value: Any, expected: type, key: str, source: str) -> Any:
    # YAML already parses numbers and booleans; only widen int -> float and refuse everything else
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, str):
        # YAML 1.1 reads `1e-4` (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if expected is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    ok = isinstance(value, expected) and not (expected in (int, float) and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{source}: {key} = {value!r} is not a valid {expected.__name__}")
    return value
