"""Typed training configuration: defaults, TOML presets, and CLI overrides.

Every setting is a field of `Config`. A TOML file sets any subset of them (flat keys);
CLI options override the file. Unknown keys, wrong types and out-of-range values are
`UserError`s, never silently ignored.

>>> cfg = apply_overrides(Config(), {"dim": 50, "loss": "nce"})
>>> cfg.dim, cfg.loss, cfg.window
(50, 'nce', 5)
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2v_nce.errors import UserError
from w2v_nce.objectives import LOSSES
from w2v_nce.updates import UPDATES
from w2v_nce.windows import ARCHS

SYNC_DIVISORS = ("none", "world", "touched")  # what divides the sum of the ranks' changes to a synced row


@dataclass(frozen=True)
class Config:
    # architecture and objective
    arch: str = "cbow"  # cbow (a window's mean predicts its centre) | skipgram (each window word predicts it)
    loss: str = "neg"  # softmax | hs | neg | nce | rnce | is
    negatives: int = 5  # k noise words per example (sampled losses)
    noise_power: float = 0.75  # q(x) ∝ count^noise_power
    log_z: float = 0.0  # NCE: log Z subtracted from every score (0 = self-normalised)
    learn_log_z: bool = False  # NCE: learn one shared log Z instead of fixing it
    remove_accidental_hits: bool = True  # rnce: drop noise words equal to the target (TensorFlow-style)
    output_bias: bool | None = None  # per-row output bias b_x; None: on for softmax/nce/rnce/is
    # model
    dim: int = 100
    window: int = 5  # maximum window; each example draws its own in 1..window (word2vec)
    # vocabulary
    min_count: int = 5
    max_vocab: int = 0  # keep at most this many most frequent words (0 = no limit)
    sample: float = 1e-3  # subsampling threshold t: keep-prob sqrt(t/f) + t/f (0 = off)
    vocab_budget: int = 10_000_000  # types held while counting; past it the rarest are pruned (word2vec.c's ReduceVocab; 0 = no limit)
    # optimisation
    epochs: int = 5
    lr: float = 0.025  # starting learning rate α0, decayed linearly to α0 * min_lr_ratio
    min_lr_ratio: float = 1e-4
    batch_size: int = 4096  # examples per SGD step (CBOW windows or skip-gram pairs; docs/large-batches.md)
    shuffle: bool = True  # train on each chunk's examples in random order (docs/results.md: better also for sequential steps)
    update: str = "cap"  # how a row's steps within a batch combine: sum (word2vec) | mean | sqrt | cap | implicit | directional
    update_cap: float = 64.0  # update = "cap": a row hit n > cap times in a batch gets cap/n of the sum
    # runtime
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # CPU threads for torch (0 = all cores)
    chunk_tokens: int = 1_000_000  # corpus tokens turned into examples at a time
    seed: int = 1
    # several processes under torchrun (docs/distributed.md)
    sync_every: int = 100_000  # words each rank trains between syncs of the frequent rows (0 = at each epoch's end only)
    sync_rows: int = 4096  # rows [0, K) averaged at a sync, K doubling with the sync's power of two; at an epoch's end all (0 = all every time)
    sync_divisor: str = "world"  # a synced row: the ranks' mean (world), the mean over the ranks that changed it (touched), or the sum of their changes (none)
    sync_scale_lr: bool = True  # sync_divisor world or touched: each rank trains at lr x world size, so that the mean moves a row as one process at lr
    dist_timeout: float = 1800.0  # seconds a rank waits for the others (a stuck rank fails the run after this)

    @property
    def use_bias(self) -> bool:
        return self.loss not in ("neg", "hs") if self.output_bias is None else self.output_bias


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_HINTS = typing.get_type_hints(Config)


def _allowed_types(name: str) -> tuple[type, ...]:
    hint = _HINTS[name]
    if isinstance(hint, types.UnionType):
        return tuple(typing.get_args(hint))
    return (hint,)


def _coerce(name: str, value: Any) -> Any:
    allowed = _allowed_types(name)
    if value is None and type(None) in allowed:
        return None
    if isinstance(value, bool):  # bool is an int subclass: only a bool field takes it
        if bool in allowed:
            return value
    elif float in allowed and isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise UserError(f"config key {name!r} must be a finite number, got {value!r}")
        return float(value)
    elif int in allowed and isinstance(value, int):
        return value
    elif str in allowed and isinstance(value, str):
        return value
    names = " or ".join("none" if t is type(None) else t.__name__ for t in allowed)
    raise UserError(f"config key {name!r} must be {names}, got {value!r}")


def _check(cfg: Config) -> Config:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

    need(cfg.arch in ARCHS, f"unknown arch {cfg.arch!r}: choose one of {', '.join(ARCHS)}")
    need(cfg.loss in LOSSES, f"unknown loss {cfg.loss!r}: choose one of {', '.join(LOSSES)}")
    need(cfg.update in UPDATES, f"unknown update {cfg.update!r}: choose one of {', '.join(UPDATES)}")
    need(cfg.update_cap > 0, f"update_cap must be positive, got {cfg.update_cap}")
    need(cfg.dim >= 1, f"dim must be at least 1, got {cfg.dim}")
    need(cfg.window >= 1, f"window must be at least 1, got {cfg.window}")
    need(cfg.negatives >= 1, f"negatives must be at least 1, got {cfg.negatives}")
    need(cfg.min_count >= 1, f"min_count must be at least 1, got {cfg.min_count}")
    need(cfg.max_vocab >= 0, f"max_vocab must be 0 (no limit) or positive, got {cfg.max_vocab}")
    need(cfg.sample >= 0, f"sample must be non-negative, got {cfg.sample}")
    need(cfg.epochs >= 1, f"epochs must be at least 1, got {cfg.epochs}")
    need(cfg.lr > 0, f"lr must be positive, got {cfg.lr}")
    need(0 < cfg.min_lr_ratio <= 1, f"min_lr_ratio must be in (0, 1], got {cfg.min_lr_ratio}")
    need(cfg.batch_size >= 1, f"batch_size must be at least 1, got {cfg.batch_size}")
    need(cfg.threads >= 0, f"threads must be 0 (all cores) or positive, got {cfg.threads}")
    need(cfg.chunk_tokens >= 1000, f"chunk_tokens must be at least 1000, got {cfg.chunk_tokens}")
    need(cfg.vocab_budget >= 0, f"vocab_budget must be 0 (no limit) or positive, got {cfg.vocab_budget}")
    need(cfg.sync_every >= 0, f"sync_every must be 0 (epoch ends only) or positive, got {cfg.sync_every}")
    need(cfg.sync_rows >= 0, f"sync_rows must be 0 (all rows) or positive, got {cfg.sync_rows}")
    need(cfg.sync_divisor in SYNC_DIVISORS,
         f"unknown sync_divisor {cfg.sync_divisor!r}: choose one of {', '.join(SYNC_DIVISORS)}")
    need(cfg.dist_timeout > 0, f"dist_timeout must be positive, got {cfg.dist_timeout}")
    need(cfg.noise_power >= 0, f"noise_power must be non-negative, got {cfg.noise_power}")
    need(
        cfg.device == "auto" or cfg.device == "cpu" or cfg.device.startswith("cuda"),
        f"device must be auto, cpu or cuda[:N], got {cfg.device!r}",
    )
    return cfg


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A new Config with `overrides` applied; unknown keys and wrong types are errors."""
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise UserError(f"unknown config key {unknown[0]!r} (known: {', '.join(FIELDS)})")
    values = {name: _coerce(name, value) for name, value in overrides.items()}
    return _check(dataclasses.replace(cfg, **values))


def load_config(path: Path | str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file at `path` (if any), then `overrides` (None values skipped)."""
    cfg = Config()
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"config file '{path}' does not exist") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UserError(f"config file '{path}' is not valid TOML: {exc}") from None
        nested = [k for k, v in data.items() if isinstance(v, dict)]
        if nested:
            raise UserError(f"config file '{path}': tables are not supported ([{nested[0]}]); use flat keys")
        cfg = apply_overrides(cfg, data)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return apply_overrides(cfg, given) if given else _check(cfg)


def to_toml(cfg: Config) -> str:
    """The resolved config as TOML (None fields are left out: they mean 'automatic')."""
    lines = []
    for name, value in dataclasses.asdict(cfg).items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            text = repr(value)
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"
