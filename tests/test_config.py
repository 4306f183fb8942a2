"""Config: TOML presets, override precedence, and strict validation (UserError, never silence)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from w2v_nce.config import (FIELDS, SYNC_EVERY_GLOO, SYNC_EVERY_NCCL, SYNC_LEVELS_GLOO, SYNC_LEVELS_NCCL,
                            SYNC_ROWS_GLOO, SYNC_ROWS_NCCL, Config, apply_overrides, load_config, to_toml)
from w2v_nce.errors import UserError
from w2v_nce.objectives import LOSSES, objective_for

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml"))


def _write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file():
    assert load_config(None) == Config()
    assert load_config(None, {"dim": None, "loss": None}) == Config()  # None = not given


@pytest.mark.parametrize("arch, maxn, given, power", [
    ("skipgram", 6, None, 0.5),   # fastText's unigram^0.5 for subword skip-gram
    ("cbow", 6, None, 0.75),      # subword CBOW keeps word2vec's (0.5 measured worse)
    ("skipgram", 0, None, 0.75),  # word2vec's
    ("cbow", 0, None, 0.75),
    ("skipgram", 6, 0.75, 0.75),  # an asked power wins
    ("cbow", 0, 0.0, 0.0),
])
def test_noise_power_default_follows_the_model_and_reaches_the_sampler(arch, maxn, given, power):
    cfg = load_config(None, {"arch": arch, "maxn": maxn, "noise_power": given})
    assert cfg.noise_exponent == power
    counts = np.array([1000, 300, 20, 7, 1])
    expected = counts ** power / (counts ** power).sum()
    np.testing.assert_allclose(objective_for(cfg, counts).sampler.prob.numpy(), expected, rtol=1e-6)
    assert ("noise_power" in to_toml(cfg)) == (given is not None)  # automatic stays automatic on resume


GLOO = (SYNC_EVERY_GLOO, SYNC_ROWS_GLOO, SYNC_LEVELS_GLOO)
NCCL = (SYNC_EVERY_NCCL, SYNC_ROWS_NCCL, SYNC_LEVELS_NCCL)


@pytest.mark.parametrize("every, rows, levels, backend, expected", [
    (None, None, None, "gloo", GLOO), (None, None, None, "nccl", NCCL),
    (0, None, None, "gloo", (0, SYNC_ROWS_GLOO, SYNC_LEVELS_GLOO)), (50_000, 0, None, "nccl", (50_000, 0, SYNC_LEVELS_NCCL)),
    (None, 64, 0, "gloo", (SYNC_EVERY_GLOO, 64, 0)), (None, None, 3, "nccl", (SYNC_EVERY_NCCL, SYNC_ROWS_NCCL, 3))])
def test_sync_schedule_follows_the_backend_unless_given(every, rows, levels, backend, expected):
    cfg = load_config(None, {"sync_every": every, "sync_rows": rows, "sync_levels": levels})
    assert cfg.sync_schedule(backend) == expected
    assert GLOO != NCCL
    toml = to_toml(cfg)  # automatic stays automatic on resume
    assert ("sync_every" in toml, "sync_rows" in toml, "sync_levels" in toml) == (
        every is not None, rows is not None, levels is not None)


def test_toml_values_are_loaded(tmp_path):
    path = _write(tmp_path, 'loss = "nce"\ndim = 64\nlr = 0.05\nlearn_log_z = true\nlog_z = -2\nseed = 7\n')
    cfg = load_config(path)
    assert (cfg.loss, cfg.dim, cfg.lr, cfg.learn_log_z, cfg.seed) == ("nce", 64, 0.05, True, 7)
    assert cfg.log_z == -2.0 and isinstance(cfg.log_z, float)  # int accepted for a float field
    assert cfg.window == Config().window  # untouched keys keep defaults


def test_cli_overrides_beat_the_file(tmp_path):
    path = _write(tmp_path, 'loss = "nce"\ndim = 64\nwindow = 3\n')
    cfg = load_config(path, {"dim": 32, "loss": None, "epochs": 2})
    assert cfg.dim == 32  # override wins
    assert cfg.loss == "nce"  # None override does not erase the file's value
    assert cfg.window == 3  # file beats default
    assert cfg.epochs == 2  # override of a key the file does not set


def test_apply_overrides_returns_new_config():
    base = Config()
    cfg = apply_overrides(base, {"dim": 50, "loss": "rnce"})
    assert (cfg.dim, cfg.loss) == (50, "rnce")
    assert base.dim == 100 and base.loss == "neg"


@pytest.mark.parametrize("source", ["file", "override"])
def test_unknown_key_is_an_error(tmp_path, source):
    with pytest.raises(UserError, match="unknown config key 'dimension'"):
        if source == "file":
            load_config(_write(tmp_path, "dimension = 5\n"))
        else:
            load_config(None, {"dimension": 5})


@pytest.mark.parametrize(
    "key,value",
    [
        ("dim", '"100"'),  # string for int
        ("dim", "2.5"),  # float for int
        ("dim", "100.0"),  # integral float for int is still a float
        ("dim", "true"),  # bool for int
        ("learn_log_z", "1"),  # int for bool
        ("learn_log_z", '"yes"'),  # string for bool
        ("lr", '"0.1"'),  # string for float
        ("lr", "true"),  # bool for float
        ("loss", "3"),  # int for str
        ("device", "false"),  # bool for str
        ("output_bias", '"none"'),  # string for bool | None
        ("dim", "[100]"),  # array
        ("seed", "1979-05-27"),  # date
        ("phrase_threshold", '"200"'),  # string for a list of numbers
        ("phrase_threshold", "[200, true]"),  # bool in it
        ("phrase_threshold", "[]"),  # empty
        ("phrase_threshold", '[200, "100"]'),
        ("phrase_threshold", "[200, nan]"),
    ],
)
def test_wrong_type_in_file_is_an_error(tmp_path, key, value):
    with pytest.raises(UserError, match=repr(key)):
        load_config(_write(tmp_path, f"{key} = {value}\n"))


@pytest.mark.parametrize(
    "key,value", [("dim", "100"), ("dim", 2.5), ("learn_log_z", 1), ("epochs", True), ("lr", "0.1"), ("loss", 1)]
)
def test_wrong_type_override_is_an_error(key, value):
    with pytest.raises(UserError, match=repr(key)):
        load_config(None, {key: value})


@pytest.mark.parametrize(
    "overrides",
    [
        {"loss": "foo"},
        {"dim": 0},
        {"dim": -3},
        {"window": 0},
        {"negatives": 0},
        {"min_count": 0},
        {"max_vocab": -1},
        {"sample": -1e-3},
        {"sample": float("nan")},
        {"epochs": 0},
        {"lr": 0.0},
        {"lr": -0.1},
        {"lr": float("nan")},
        {"min_lr_ratio": 0.0},
        {"min_lr_ratio": 1.5},
        {"batch_size": 0},
        {"threads": -1},
        {"chunk_tokens": 999},
        {"noise_power": -0.5},
        {"device": "gpu"},
        {"device": "CPU"},
    ],
)
def test_out_of_range_is_an_error(tmp_path, overrides):
    with pytest.raises(UserError):
        load_config(None, overrides)
    (key, value), = overrides.items()
    text = to_toml_value(value)
    with pytest.raises(UserError):
        load_config(_write(tmp_path, f"{key} = {text}\n"))


def to_toml_value(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value != value:
        return "nan"
    return repr(value)


@pytest.mark.parametrize(
    "overrides",
    [{"loss": name} for name in LOSSES]
    + [{"min_lr_ratio": 1.0}, {"max_vocab": 0}, {"sample": 0.0}, {"threads": 0}, {"chunk_tokens": 1000},
       {"noise_power": 0.0}, {"device": "cuda:1"}, {"device": "cpu"}, {"output_bias": True}],
)
def test_boundary_values_are_accepted(overrides):
    cfg = load_config(None, overrides)
    for key, value in overrides.items():
        assert getattr(cfg, key) == value


@pytest.mark.parametrize("text", ["lr = inf", "log_z = nan"])
def test_non_finite_values_are_an_error(tmp_path, text):
    with pytest.raises(UserError):
        load_config(_write(tmp_path, text + "\n"))


@pytest.mark.parametrize("overrides, fragment", [
    ({"phrase_scoring": "gensim"}, "phrase_scoring is set but phrases is 0"),
    ({"phrases": -1}, "phrases must be 0"),
    ({"phrases": 1, "phrase_threshold": [1.0, 2.0]}, "one per pass (1)"),
    ({"phrases": 2, "phrase_threshold": [0.5, 0.0]}, "positive for word2vec"),
    ({"phrases": 2, "phrase_scoring": "npmi", "phrase_threshold": 2}, "[-1, 1]"),
    ({"phrases": 2, "phrase_connectors": "french"}, "unknown phrase_connectors"),
    ({"phrases": 2, "phrase_max_vocab": -1}, "phrase_max_vocab"),
])
def test_phrase_settings_out_of_range_or_without_phrases_are_errors(overrides, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        load_config(None, overrides)


def test_phrase_thresholds_from_toml_once_or_per_pass(tmp_path):
    cfg = load_config(_write(tmp_path, "phrases = 2\nphrase_threshold = 150\n"))
    assert cfg.phrase_threshold == (150.0,)
    cfg = load_config(_write(tmp_path, "phrases = 2\nphrase_threshold = [200, 100.5]\n"))
    assert cfg.phrase_threshold == (200.0, 100.5)
    assert load_config(None, {"phrases": 3}).phrase_threshold is None  # the scoring's default, every pass


def test_use_bias_rule():
    assert not load_config(None, {"loss": "neg"}).use_bias
    for name in ("softmax", "nce", "rnce", "is"):
        assert load_config(None, {"loss": name}).use_bias
    assert load_config(None, {"loss": "neg", "output_bias": True}).use_bias
    assert not load_config(None, {"loss": "nce", "output_bias": False}).use_bias


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("dim = ", "not valid TOML"),
        ("dim = 5\ndim = 6\n", "not valid TOML"),
        ("[train]\ndim = 5\n", "tables are not supported"),
    ],
)
def test_bad_toml_is_an_error_naming_the_file(tmp_path, text, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(UserError, match=fragment) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_file_and_non_utf8_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'device = "caf\xe9"\n')
    with pytest.raises(UserError, match="latin1.toml"):
        load_config(bad)
    with pytest.raises(UserError):
        load_config(tmp_path)  # a directory


@pytest.mark.parametrize(
    "cfg",
    [
        Config(),
        Config(loss="nce", dim=7, lr=1e-5, sample=0.0, log_z=-3.25, learn_log_z=True, output_bias=False,
               device="cuda:0", threads=3, chunk_tokens=123456, min_lr_ratio=1.0, noise_power=0.5, seed=0),
        Config(loss="is", output_bias=True, sample=1e-5, lr=0.3),
        Config(phrases=2, phrase_threshold=(200.0, 100.0), phrase_scoring="gensim", phrase_connectors="english",
               phrase_min_count=3, phrase_delimiter="__", phrase_max_vocab=0),
    ],
)
def test_to_toml_round_trips(tmp_path, cfg):
    path = _write(tmp_path, to_toml(cfg))
    assert load_config(path) == cfg
    assert {line.split(" = ")[0] for line in to_toml(cfg).splitlines()} == {
        name for name in FIELDS if getattr(cfg, name) is not None
    }


def test_to_toml_escapes_strings(tmp_path):
    # device only allows cuda-prefixed strings; use one with quotes/backslashes
    cfg = dataclasses.replace(Config(), device='cuda"\\x')
    path = _write(tmp_path, to_toml(cfg))
    assert load_config(path).device == 'cuda"\\x'


@pytest.mark.skipif(not CONFIGS, reason="no configs/*.toml in this checkout")
@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(tmp_path, path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert load_config(_write(tmp_path, to_toml(cfg))) == cfg
