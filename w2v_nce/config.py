"""Typed training configuration: defaults, TOML presets, and CLI overrides.

Every setting is a field of `Config`. A TOML file sets any subset of them (flat keys);
CLI options override the file. Unknown keys, wrong types and out-of-range values are
`UserError`s, never silently ignored. A field marked `resumable` may change when a run is
resumed (w2v_nce.checkpoint.resume_config); every other one is part of the model.

This module is a leaf: the choices (architectures, losses, update rules, step paths) are
declared here and the registries that implement them are keyed by these names (a test checks
that they match), so the command line's help needs neither torch nor the trainer.

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
from typing import Any, Sequence

from w2v_nce.errors import UserError

MAX_BUCKETS = 2**31 - 1  # fastText reads `bucket` as an int32 (w2v_nce.subwords)

ARCHS = ("cbow", "skipgram")  # w2v_nce.windows.EXAMPLES
LOSSES = ("softmax", "hs", "neg", "nce", "rnce", "is")  # w2v_nce.objectives.OBJECTIVES
UPDATES = ("sum", "cap", "mean", "sqrt", "implicit", "directional")  # w2v_nce.updates.RULES
STEPS = ("auto", "kernel", "batched", "triton")  # w2v_nce.steps.choose_step
SUBWORD_BAGS = ("cached", "exact")  # the C kernel's subword CBOW: w2v_nce._kernel.c (cached_cbow)
TOKENIZERS = ("whitespace", "simple")  # w2v_nce.corpus.TOKENIZERS
PHRASE_SCORINGS = ("word2vec", "gensim", "npmi")  # w2v_nce.phrases (scores)
PHRASE_CONNECTORS = ("none", "english")  # w2v_nce.phrases.CONNECTOR_SETS
PHRASE_THRESHOLDS = {"word2vec": 100.0, "gensim": 10.0, "npmi": 0.5}  # word2phrase's, gensim's, a middling NPMI

WORD2VEC_CBOW_LR = 0.05  # word2vec.c's -alpha default for CBOW (docs/results.md: better than 0.025 at every budget)
SKIPGRAM_NEG_LR = 0.05  # fastText's: skip-gram NS scored better than at 0.025, words or subwords (docs/results.md)
DEFAULT_LR = 0.025  # word2vec.c's for skip-gram, gensim's for both
NOISE_POWER = 0.75  # word2vec.c's unigram^0.75
SUBWORD_SKIPGRAM_NOISE_POWER = 0.5  # fastText's initTableNegatives: better subword skip-gram (docs/results.md)
# torchrun's sync schedule by backend (docs/distributed.md): CPU ranks sync small rounds of the hottest
# rows often (gloo's cost grows with the bytes, and the ranks' drift lives in those rows); GPU ranks as modelled
SYNC_EVERY_GLOO, SYNC_ROWS_GLOO, SYNC_LEVELS_GLOO = 25_000, 512, 5
SYNC_EVERY_NCCL, SYNC_ROWS_NCCL, SYNC_LEVELS_NCCL = 100_000, 4096, 0
SYNC_DIVISORS = ("none", "world", "touched")  # what divides the sum of the ranks' changes to a synced row


GROW_RULES = ("inherit", "fixed", "fresh")  # how a run continued from another (train --init) takes a setting


def option(default: Any, help: str, choices: tuple[str, ...] | None = None, flag: str | None = None,
           resumable: bool = False, grow: str = "inherit") -> Any:
    """A Config field with its help text: the one place an option is declared. The CLI's
    `train` options, the TOML keys and the API's keyword arguments are all derived from it.
    `resumable`: the setting may change when a run is resumed (it does not define the model).
    `grow`: what a run continued from another one (`train --init RUN`) takes: the parent's value
    unless asked otherwise (inherit), the parent's value and no other (fixed: the tables' shape and
    meaning), or its own, the default unless asked (fresh: inputs of one run, such as its held-out
    text)."""
    assert grow in GROW_RULES
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "flag": flag,
                                                        "resumable": resumable, "grow": grow})


@dataclass(frozen=True)
class Config:
    # architecture and objective
    arch: str = option("cbow", "cbow: a window's mean predicts its centre word; skipgram: each window word does.",
                       choices=ARCHS, grow="fixed")
    loss: str = option("neg", "Training objective (docs/objectives.md).", choices=LOSSES, grow="fixed")
    negatives: int = option(5, "Noise words per example (sampled losses).")
    shared_negatives: bool = option(True, "Skip-gram on the window kernel: one draw of noise words per window, "
                                    "shared by all its examples (pWord2Vec): a third of the rows to fetch, the "
                                    "same quality (docs/performance.md). Off: word2vec's draw per example. The "
                                    "batched step, and skip-gram with subwords (each window word a target), draw "
                                    "per example.")
    noise_power: float | None = option(None, "Noise distribution q(x) ∝ count^noise_power (default: 0.5 for "
                                             "skip-gram with subwords, fastText's; 0.75 otherwise, word2vec's).")
    log_z: float = option(0.0, "NCE: log Z subtracted from every score (0 = self-normalised); "
                               "the start value with --learn-log-z.")
    learn_log_z: bool = option(False, "NCE: learn one shared log Z instead of fixing it.",
                               flag="--learn-log-z/--fixed-log-z")
    remove_accidental_hits: bool = option(True, "rnce: drop noise words equal to the target (as TensorFlow).")
    output_bias: bool | None = option(None, "A per-word output bias (default: on for softmax, nce, rnce, is).",
                                      grow="fixed")
    # model
    dim: int = option(100, "Vector size.", grow="fixed")
    window: int = option(5, "Maximum context window; each example draws its own in 1..window (word2vec).")
    # subwords (fastText's model: a word's input vector is the mean of its row and its n-grams' rows)
    minn: int = option(3, "Subwords: the shortest character n-gram of <word>.", grow="fixed")
    maxn: int = option(0, "Subwords: the longest character n-gram of <word> (0 = no subwords; --subwords sets 3-6).",
                       grow="fixed")
    buckets: int = option(2_000_000, "Subwords: rows the n-grams are hashed into (a run stores those its words use; "
                                       "fastText's whole table, buckets x dim x 4 bytes, is made for export and queries).",
                          grow="fixed")
    subword_bags: str = option("cached", "Subwords, CBOW on the C kernel: cached keeps each window position's row sum "
                                         "while it is in reach and moves its rows once, as it leaves (1.8x faster on "
                                         "wiki17m, docs/performance.md); exact reads and writes every row of every "
                                         "window word for each centre.",
                               choices=SUBWORD_BAGS, resumable=True)
    # corpus and vocabulary
    tokenizer: str = option("whitespace", "whitespace: split lines on white space as they are; simple: gensim's "
                                          "simple_preprocess (lowercase, accents folded, punctuation dropped, "
                                          "tokens of 2-15 letters).", choices=TOKENIZERS,
                         grow="fixed")
    min_count: int = option(5, "Drop words seen fewer times.")
    max_vocab: int = option(0, "Keep at most this many most frequent words (0 = no limit).")
    sample: float = option(1e-3, "Subsampling threshold t: a word is kept with probability sqrt(t/f) + t/f "
                                 "(0 = off).")
    vocab_budget: int = option(10_000_000, "Word types held while counting; past it the rarest are pruned "
                                           "(word2vec.c's ReduceVocab; 0 = no limit).")
    # phrases (the `phrases` command's options are declared by these too)
    phrases: int = option(0, "Detect phrases in this many passes and join them (new_york) before counting the "
                             "vocabulary, as `w2v-nce phrases` does but with no intermediate file; the phrase model "
                             "is saved as OUT/phrases.json (0 = no phrases).", grow="fixed")
    phrase_min_count: int = option(5, "Ignore pairs (and, for word2vec, words) seen fewer times.", grow="fixed")
    phrase_threshold: tuple[float, ...] | None = option(
        None, "The score a pair must pass: given once for every pass, or once per pass (word2vec's demo: 200, then "
              "100; default " + ", ".join(f"{v:g} {k}" for k, v in PHRASE_THRESHOLDS.items()) + ").", grow="fixed")
    phrase_scoring: str = option("word2vec", "word2phrase.c's score, gensim's default, or NPMI in [-1, 1].",
                                 choices=PHRASE_SCORINGS, grow="fixed")
    phrase_connectors: str = option("none", "english: gensim's ENGLISH_CONNECTOR_WORDS may stand inside a phrase "
                                            "(bank_of_america).", choices=PHRASE_CONNECTORS, grow="fixed")
    phrase_delimiter: str = option("_", "Joins a phrase's words.", grow="fixed")
    phrase_max_vocab: int = option(40_000_000, "Word and pair types held while counting; past it the rarest are "
                                               "pruned, as gensim's max_vocab_size (0 = no limit).", grow="fixed")
    # optimisation
    epochs: int = option(5, "Passes over the corpus.", resumable=True)
    lr: float | None = option(None, "Starting learning rate, decaying linearly with the words processed "
                                    "(default: 0.05 for cbow with neg or hs, as word2vec.c, and skipgram with neg, "
                                    "as fastText; else 0.025).")
    min_lr_ratio: float = option(1e-4, "The learning rate decays to lr × this.")
    batch_size: int = option(4096, "Batched step: examples (CBOW windows, skip-gram pairs) computed against the "
                                   "same parameters in one step (docs/large-batches.md). The kernel trains example "
                                   "by example and does not use it.", resumable=True)
    shuffle: bool = option(True, "Train on each chunk's examples in random order.")
    update: str = option("cap", "Batched step: how a row's steps within a batch combine (docs/large-batches.md; "
                                "mean, sqrt, implicit and directional are research rules that lost).",
                         choices=UPDATES)
    update_cap: float = option(64.0, "update = cap: a row hit n > cap times in a batch gets cap/n of the sum.")
    step: str = option("auto", "kernel: the fused C kernel on the CPU (hs, neg, nce example by example; rnce, is "
                               "batched); triton: the same example-by-example training on a CUDA GPU, `programs` "
                               "slices at once (needs triton; docs/gpu.md); batched: tensor operations (every loss, "
                               "any device); auto: the C kernel where it serves, else batched. The choice is "
                               "recorded in metrics.json.", choices=STEPS, resumable=True)
    programs: int = option(128, "step = triton: programs, each training its own slice of a chunk's centre words "
                                "one example after another, that the GPU runs at once without locks (Hogwild); "
                                "about as many examples are in flight, so more is faster and staler (docs/gpu.md).",
                           resumable=True)
    # where a run starts and when it stops (train --init RUN continues another run: w2v_nce.grow)
    init_vectors: str | None = option(None, "word2vec text or binary file: the vocabulary words found in it start "
                                            "from its vectors (gensim's intersect_word2vec_format).", grow="fresh")
    lock_init: bool = option(False, "Keep the input vectors taken from --init-vectors as they are (gensim's lockf "
                                    "0.0).", grow="fresh")
    heldout: str | None = option(None, "Held-out text: its loss after every epoch (the exact cross-entropy; for neg, "
                                       "neg's own loss) goes into the history, and vectors.txt keeps the best "
                                       "epoch's vectors.", resumable=True, grow="fresh")
    heldout_examples: int = option(5_000, "The held-out loss uses the first this many examples of the held-out "
                                          "text (CBOW windows or skip-gram pairs, full window); the exact "
                                          "cross-entropy costs examples x vocabulary x dim.", resumable=True)
    patience: int | None = option(None, "With --heldout: stop after this many epochs without a better held-out "
                                        "loss (default: train every epoch, keep the best).", resumable=True,
                                  grow="fresh")
    # runtime
    device: str = option("auto", "auto | cpu | cuda | cuda:N.", resumable=True)
    threads: int = option(0, "CPU threads (0 = all cores).", resumable=True)
    chunk_tokens: int = option(1_000_000, "Corpus tokens turned into examples at a time.", resumable=True)
    seed: int = option(1, "Random seed.")
    eval_each_epoch: bool = option(False, "Evaluate analogies and WordSim-353 (gensim's copies) after every "
                                          "epoch, into metrics.json's history.", resumable=True)
    # several processes under torchrun (docs/distributed.md)
    sync_every: int | None = option(None, "torchrun: words each rank trains between syncs of the frequent rows "
                                             "(0 = at each epoch's end only; default: 25,000 over gloo, CPU ranks; "
                                             "100,000 over NCCL, GPU ranks).", resumable=True)
    sync_rows: int | None = option(None, "torchrun: rows [0, K) averaged at a sync, K doubling with the sync's power "
                                         "of two; all at an epoch's end (0 = all every time; default: 512 over gloo, "
                                         "4096 over NCCL).", resumable=True)
    sync_levels: int | None = option(None, "torchrun: how many sizes K takes, doubling from sync_rows; rows past the "
                                           "largest are averaged at epoch ends only (0 = doubling up to every row; "
                                           "default: 5 over gloo, up to 16 x 512 rows; 0 over NCCL).", resumable=True)
    sync_divisor: str = option("world", "torchrun: a synced row is the ranks' mean (world), the mean over the ranks "
                                        "that changed it (touched), or the sum of their changes (none).",
                               choices=SYNC_DIVISORS, resumable=True)
    sync_scale_lr: bool = option(True, "torchrun, sync_divisor world or touched: each rank trains at lr × world "
                                       "size, so that the mean moves a row as one process at lr.", resumable=True)
    sync_overlap: bool = option(True, "torchrun: a sync's all-reduces run beside training (each rank keeps what it "
                                      "trained meanwhile) instead of stopping it.", resumable=True)
    sync_shm: bool = option(True, "torchrun, CPU ranks of one host: overlapped rounds go through shared memory "
                                  "(/dev/shm) instead of gloo's loopback TCP, where the C kernel and /dev/shm are "
                                  "there.", resumable=True)
    dist_timeout: float = option(1800.0, "torchrun: seconds a rank waits for the others (a stuck rank fails the "
                                         "run after this).", resumable=True)

    @property
    def start_lr(self) -> float:
        """The learning rate at the start: `lr`, or the measured default (docs/results.md): 0.05 for
        CBOW with word2vec's losses (neg, hs; word2vec.c's) and for skip-gram with neg (fastText's),
        0.025 otherwise (skip-gram hs, word2vec.c's; the losses word2vec lacks, whose batched steps
        were tuned at 0.025)."""
        if self.lr is not None:
            return self.lr
        if self.arch == "cbow" and self.loss in ("neg", "hs"):
            return WORD2VEC_CBOW_LR
        return SKIPGRAM_NEG_LR if self.arch == "skipgram" and self.loss == "neg" else DEFAULT_LR

    @property
    def noise_exponent(self) -> float:
        """The power of the unigram counts that noise words are drawn from: `noise_power`, or the
        measured default (docs/results.md): fastText's 0.5 for skip-gram with subwords, where it
        scored better than 0.75; word2vec's 0.75 otherwise (subword CBOW too, where 0.5 scored worse)."""
        if self.noise_power is not None:
            return self.noise_power
        return SUBWORD_SKIPGRAM_NOISE_POWER if self.arch == "skipgram" and self.subwords else NOISE_POWER

    def sync_schedule(self, backend: str) -> tuple[int, int, int]:
        """(words a rank trains between syncs, K: the rows of every sync, how many sizes K takes) under
        torchrun: `sync_every`, `sync_rows` and `sync_levels`, or the measured defaults for the process
        group's backend (docs/distributed.md): gloo's rounds go over TCP and cost with their bytes, so
        CPU ranks sync few rows often and leave the rare ones to the epoch's end."""
        gloo = backend != "nccl"
        every = self.sync_every if self.sync_every is not None else SYNC_EVERY_GLOO if gloo else SYNC_EVERY_NCCL
        rows = self.sync_rows if self.sync_rows is not None else SYNC_ROWS_GLOO if gloo else SYNC_ROWS_NCCL
        levels = self.sync_levels if self.sync_levels is not None else SYNC_LEVELS_GLOO if gloo else SYNC_LEVELS_NCCL
        return every, rows, levels

    @property
    def subwords(self) -> bool:
        """Whether words are bags of character n-grams (fastText's model)."""
        return self.maxn > 0

    @property
    def use_bias(self) -> bool:
        return self.loss not in ("neg", "hs") if self.output_bias is None else self.output_bias


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
# keys that stand for several settings: on (true), each sets those of its settings not given too
SHORTHANDS = {"subwords": ("fastText's subwords: character n-grams of 3 to 6 (minn 3, maxn 6).", {"minn": 3, "maxn": 6})}
RESUMABLE = frozenset(name for name, f in FIELDS.items() if f.metadata["resumable"])
GROW_FIXED = frozenset(name for name, f in FIELDS.items() if f.metadata["grow"] == "fixed")
GROW_FRESH = frozenset(name for name, f in FIELDS.items() if f.metadata["grow"] == "fresh")
_HINTS = typing.get_type_hints(Config)


def field_type(name: str) -> type:
    """The value type of a field (bool, int, float or str), None left out."""
    return next(t for t in _allowed_types(name) if t is not type(None))


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
    elif any(typing.get_origin(t) is tuple for t in allowed) and isinstance(value, (int, float, list, tuple)):
        items = value if isinstance(value, (list, tuple)) else [value]  # one number: the same for every pass
        if items and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            if not all(math.isfinite(v) for v in items):
                raise UserError(f"config key {name!r} must hold finite numbers, got {value!r}")
            return tuple(float(v) for v in items)
    names = " or ".join("none" if t is type(None) else "a list of numbers" if typing.get_origin(t) is tuple
                        else t.__name__ for t in allowed)
    raise UserError(f"config key {name!r} must be {names}, got {value!r}")


def _check(cfg: Config) -> Config:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

    for name, f in FIELDS.items():
        choices = f.metadata["choices"]
        value = getattr(cfg, name)
        need(choices is None or value in choices, f"unknown {name} {value!r}: choose one of {', '.join(choices or ())}")
    need(cfg.update_cap > 0, f"update_cap must be positive, got {cfg.update_cap}")
    need(cfg.dim >= 1, f"dim must be at least 1, got {cfg.dim}")
    need(cfg.window >= 1, f"window must be at least 1, got {cfg.window}")
    need(cfg.negatives >= 1, f"negatives must be at least 1, got {cfg.negatives}")
    need(cfg.min_count >= 1, f"min_count must be at least 1, got {cfg.min_count}")
    need(cfg.max_vocab >= 0, f"max_vocab must be 0 (no limit) or positive, got {cfg.max_vocab}")
    need(cfg.sample >= 0, f"sample must be non-negative, got {cfg.sample}")
    need(cfg.epochs >= 1, f"epochs must be at least 1, got {cfg.epochs}")
    need(cfg.lr is None or cfg.lr > 0, f"lr must be positive, got {cfg.lr}")
    need(0 < cfg.min_lr_ratio <= 1, f"min_lr_ratio must be in (0, 1], got {cfg.min_lr_ratio}")
    need(cfg.batch_size >= 1, f"batch_size must be at least 1, got {cfg.batch_size}")
    need(cfg.programs >= 1, f"programs must be at least 1, got {cfg.programs}")
    need(cfg.threads >= 0, f"threads must be 0 (all cores) or positive, got {cfg.threads}")
    need(cfg.chunk_tokens >= 1000, f"chunk_tokens must be at least 1000, got {cfg.chunk_tokens}")
    need(cfg.vocab_budget >= 0, f"vocab_budget must be 0 (no limit) or positive, got {cfg.vocab_budget}")
    need(cfg.sync_every is None or cfg.sync_every >= 0, f"sync_every must be 0 (epoch ends only) or positive, got {cfg.sync_every}")
    need(cfg.sync_rows is None or cfg.sync_rows >= 0, f"sync_rows must be 0 (all rows) or positive, got {cfg.sync_rows}")
    need(cfg.sync_levels is None or cfg.sync_levels >= 0,
         f"sync_levels must be 0 (doubling up to every row) or positive, got {cfg.sync_levels}")
    need(cfg.dist_timeout > 0, f"dist_timeout must be positive, got {cfg.dist_timeout}")
    need(cfg.noise_power is None or cfg.noise_power >= 0, f"noise_power must be non-negative, got {cfg.noise_power}")
    need(cfg.maxn >= 0, f"maxn must be 0 (no subwords) or positive, got {cfg.maxn}")
    if cfg.subwords:
        need(cfg.minn >= 1, f"minn must be at least 1, got {cfg.minn}")
        need(cfg.maxn >= cfg.minn, f"maxn ({cfg.maxn}) must be at least minn ({cfg.minn})")
        need(cfg.buckets >= 1, f"buckets must be at least 1 with subwords, got {cfg.buckets}")
        need(cfg.buckets <= MAX_BUCKETS, f"buckets {cfg.buckets:,} is past fastText's limit of {MAX_BUCKETS:,} "
                                         f"(2^31 - 1); the table would take {table_bytes(cfg.buckets, cfg.dim)} "
                                         "(buckets x dim x 4 bytes)")
    else:
        unused = [name for name in ("minn", "buckets") if getattr(cfg, name) != FIELDS[name].default]
        need(not unused, f"{unused[0] if unused else ''} is set but maxn is 0 (no subwords): add --subwords or --maxn N")
    need(
        cfg.device == "auto" or cfg.device == "cpu" or cfg.device.startswith("cuda"),
        f"device must be auto, cpu or cuda[:N], got {cfg.device!r}",
    )
    need(cfg.heldout_examples >= 1, f"heldout_examples must be at least 1, got {cfg.heldout_examples}")
    need(cfg.patience is None or cfg.patience >= 1, f"patience must be at least 1 epoch, got {cfg.patience}")
    need(not cfg.lock_init or cfg.init_vectors is not None, "lock_init is set but init_vectors is not: add "
         "--init-vectors FILE")
    need(cfg.phrases >= 0, f"phrases must be 0 (none) or a number of passes, got {cfg.phrases}")
    if cfg.phrases:
        check_phrase_options(cfg.phrase_scoring, cfg.phrase_min_count, phrase_thresholds(cfg), cfg.phrases,
                             cfg.phrase_delimiter, cfg.phrase_max_vocab, prefix="phrase_")
    else:
        unused = [name for name in FIELDS if name.startswith("phrase_") and getattr(cfg, name) != FIELDS[name].default]
        need(not unused, f"{unused[0] if unused else ''} is set but phrases is 0: add --phrases N (passes) to use it")
    return cfg


def table_bytes(rows: int, dim: int) -> str:
    """The size of a float32 table, for people.

    >>> table_bytes(2_000_000, 100)
    '800 MB'
    """
    size = rows * dim * 4
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:,.3g} {unit}"
    return f"{size} bytes"


def expand_shorthands(overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` with each SHORTHANDS key replaced by the settings it stands for (those given
    explicitly win).

    >>> expand_shorthands({"subwords": True, "maxn": 5})
    {'maxn': 5, 'minn': 3}
    """
    expanded = {k: v for k, v in overrides.items() if k not in SHORTHANDS}
    for name, (_, settings) in SHORTHANDS.items():
        value = overrides.get(name)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise UserError(f"config key {name!r} must be bool, got {value!r}")
        for key, setting in (settings if value else {"maxn": 0}).items():
            expanded.setdefault(key, setting)
    return expanded


def phrase_thresholds(cfg: Config) -> tuple[float, ...]:
    """The run's phrase thresholds: as given, or the scoring's default (PHRASE_THRESHOLDS)."""
    return cfg.phrase_threshold or (PHRASE_THRESHOLDS[cfg.phrase_scoring],)


def check_phrase_options(scoring: str, min_count: int, thresholds: Sequence[float], passes: int, delimiter: str,
                         max_vocab: int, prefix: str = "") -> None:
    """UserError for a phrase option out of range (the `phrases` command's, or with `prefix`
    phrase_ the train options of the same name)."""
    if scoring not in PHRASE_SCORINGS:
        raise UserError(f"{prefix}scoring must be one of {', '.join(PHRASE_SCORINGS)}, got {scoring!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise UserError(f"{prefix}min_count must be an integer of at least 1, got {min_count!r}")
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise UserError(f"{'phrases' if prefix else 'passes'} must be an integer of at least 1, got {passes!r}")
    if len(thresholds) not in (1, passes):
        raise UserError(f"give one {prefix}threshold, or one per pass ({passes}), not {len(thresholds)}")
    for t in thresholds:
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
            raise UserError(f"{prefix}threshold must be a finite number, got {t!r}")
        if scoring == "npmi" and not -1 <= t <= 1:
            raise UserError(f"{prefix}threshold must be in [-1, 1] for npmi scoring, got {t}")
        if scoring != "npmi" and t <= 0:
            raise UserError(f"{prefix}threshold must be positive for {scoring} scoring, got {t}")
    if not isinstance(delimiter, str) or not delimiter or any(c.isspace() for c in delimiter):
        raise UserError(f"{prefix}delimiter must be a non-empty string without white space, got {delimiter!r}")
    if isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < 0:
        raise UserError(f"{prefix}max_vocab must be 0 (no limit) or a positive integer, got {max_vocab!r}")


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A new Config with `overrides` applied; unknown keys and wrong types are errors."""
    overrides = expand_shorthands(overrides)
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise UserError(f"unknown config key {unknown[0]!r} (known: {', '.join([*FIELDS, *SHORTHANDS])})")
    values = {name: _coerce(name, value) for name, value in overrides.items()}
    return _check(dataclasses.replace(cfg, **values))


def read_config_file(path: Path | str) -> dict[str, Any]:
    """The keys a TOML preset sets (checked: known keys, right types)."""
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
    apply_overrides(Config(), data)
    return data


def asked(path: Path | str | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings a user gave: the TOML file's keys, then `overrides` (None values skipped).
    Resuming a run compares these, and only these, with the run's own (checkpoint.resume_config)."""
    given = expand_shorthands(dict(read_config_file(path))) if path is not None else {}
    given.update(expand_shorthands({k: v for k, v in (overrides or {}).items() if v is not None}))
    return given


def load_config(path: Path | str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file at `path` (if any), then `overrides` (None values skipped)."""
    return apply_overrides(Config(), asked(path, overrides))


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
        elif isinstance(value, tuple):
            text = "[" + ", ".join(map(repr, value)) + "]"
        else:
            text = repr(value)
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"
