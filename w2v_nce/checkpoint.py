"""A run's checkpoint: reading it safely, the resume rule, and the model it holds.

The checkpoint (`checkpoint.pt` in a run directory) is a dict of tensors and plain data:
config, words, counts, model tables, the objective's parameters, progress and random streams.
It is untrusted input when it is read back: `load_checkpoint` refuses anything a full unpickler
would be needed for, and `load_model` checks that the tables fit the config.

Loading a model is not building a trainer: `load_model` rebuilds the vocabulary, the model and
its objective from the checkpoint alone (for `predict`, `diagnose` and `Word2Vec.load`).
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2v_nce.atomic import atomic_path
from w2v_nce.config import FIELDS, GROW_FIXED, GROW_FRESH, RESUMABLE, Config, apply_overrides
from w2v_nce.errors import UserError
from w2v_nce.model import Model, saved_buckets
from w2v_nce.objectives import Objective, objective_for
from w2v_nce.subwords import Subwords, bag_means, subwords_for
from w2v_nce.vectors import Vectors
from w2v_nce.vocab import Vocab

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(state: dict, path: Path) -> None:
    with atomic_path(path, "checkpoint") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path | str) -> dict:
    """A checkpoint written by train, loaded without running any code it might carry
    (`weights_only`: tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        with warnings.catch_warnings():  # an untrusted file's pickle protocol must not print warnings
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # garbage, or objects that only a full unpickler would build
        raise UserError(f"checkpoint '{path}' cannot be read: it is not a file of tensors and plain data "
                        "(anything else is refused: loading it could run code)") from None
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise UserError(f"checkpoint '{path}' cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise UserError(f"checkpoint '{path}' is not a w2v-nce checkpoint")
    missing = {"config", "words", "counts", "model"} - set(state)
    if missing:
        raise UserError(f"checkpoint '{path}' is not a w2v-nce checkpoint (missing {sorted(missing)[0]})")
    return state


def checkpoint_config(state: dict) -> Config:
    """The Config a checkpoint was trained with."""
    if not isinstance(state["config"], dict):
        raise UserError("checkpoint's config is not a table of settings")
    return apply_overrides(Config(), state["config"])


def resume_config(saved: Config, asked: dict[str, Any]) -> Config:
    """The config a resumed run continues with: the run's own, with the settings the user gave
    (`asked`: a TOML file's keys and explicit options) applied where they are `resumable` in the
    options table. Asking for another value of any other setting is an error, so a run never
    continues as something it was not (the CLI, the API and torchrun all resume through this).

    >>> saved = Config(loss="nce", epochs=2)
    >>> resume_config(saved, {"epochs": 4, "loss": "nce"}).epochs
    4
    >>> resume_config(saved, {"loss": "neg"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    w2v_nce.errors.UserError: cannot change 'loss' when resuming (the run has 'nce', asked 'neg'); only ...
    """
    current = dataclasses.asdict(saved)
    requested = dataclasses.asdict(apply_overrides(saved, asked))
    changed = sorted(k for k in asked if requested[k] != current[k] and k not in RESUMABLE)
    if changed:
        k = changed[0]
        raise UserError(f"cannot change {k!r} when resuming (the run has {current[k]!r}, asked {requested[k]!r}); "
                        f"only {', '.join(sorted(RESUMABLE))} may change")
    return apply_overrides(saved, {k: v for k, v in asked.items() if k in RESUMABLE})


def grow_config(parent: Config, asked: dict[str, Any], parent_name: str = "the parent run") -> Config:
    """The config of a run that continues `parent`'s tables on new text (train --init): the
    parent's settings with those asked applied, under the options table's `grow` column. The
    settings that shape the tables or the token space (GROW_FIXED: arch, loss, dim, output_bias,
    tokenizer, phrases, minn, maxn, buckets) cannot change; those of one run only (GROW_FRESH: init_vectors, lock_init,
    heldout, patience) are not inherited.

    >>> child = grow_config(Config(loss="hs", epochs=2, heldout="h.txt"), {"epochs": 1})
    >>> child.loss, child.epochs, child.heldout
    ('hs', 1, None)
    >>> grow_config(Config(dim=50), {"dim": 100})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    w2v_nce.errors.UserError: cannot change 'dim' when continuing the parent run (it has 50, asked 100): ...
    """
    current = dataclasses.asdict(parent)
    requested = dataclasses.asdict(apply_overrides(parent, asked))
    changed = sorted(k for k in asked if requested[k] != current[k] and k in GROW_FIXED)
    if changed:
        k = changed[0]
        raise UserError(f"cannot change {k!r} when continuing {parent_name} (it has {current[k]!r}, asked "
                        f"{requested[k]!r}): its arch, loss, dim, output bias, tokenizer, phrases and subwords stay")
    inherited = {k: v for k, v in current.items() if k not in GROW_FRESH and v != FIELDS[k].default}
    return apply_overrides(Config(), {**inherited, **asked})


def checkpoint_vocab(state: dict) -> Vocab:
    words, counts = state["words"], state["counts"]
    if not isinstance(words, (list, tuple)) or not isinstance(counts, torch.Tensor) or len(words) != len(counts):
        raise UserError("checkpoint's words and counts do not match")
    return Vocab(list(words), counts.numpy())


@dataclass
class Loaded:
    """A trained model read back: its settings, vocabulary, tables and objective."""

    cfg: Config
    vocab: Vocab
    model: Model
    objective: Objective


def load_model(state: dict, device: str | torch.device = "cpu") -> Loaded:
    """The model and objective of a checkpoint, on `device`, from the checkpoint alone."""
    cfg = checkpoint_config(state)
    vocab = checkpoint_vocab(state)
    device = torch.device(device)
    objective = objective_for(cfg, vocab.counts, device)
    _, subwords, seed = input_table(state, cfg, vocab.words)
    model = Model(len(vocab), cfg.dim, cfg.use_bias, device, torch.Generator(device=device),
                  out_rows=objective.output_rows(len(vocab)), subwords=subwords, init=False, bucket_seed=seed)
    restore(model, objective, state)
    return Loaded(cfg, vocab, model, objective)


def input_table(state: dict, cfg: Config, words: list[str]) -> tuple[torch.Tensor, Subwords | None, int]:
    """The checkpoint's input table, checked against its config before anything is built from it,
    the bags of its words over it (None without subwords) and the buckets' seed: one row per word,
    and with subwords one per bucket it stores (bucket_ids; without them, fastText's full table),
    which must include every bucket of the bags."""
    tables = state["model"]
    inp = tables.get("inp") if isinstance(tables, dict) else None
    if not isinstance(inp, torch.Tensor) or inp.dim() != 2:
        raise UserError("checkpoint does not fit its own config: it has no input table")
    vocab = len(words)
    subwords = subwords_for(cfg, words)
    if subwords is None:
        if tuple(inp.shape) != (vocab, cfg.dim):
            raise UserError(f"checkpoint does not fit its own config: its input table is {tuple(inp.shape)}, expected "
                            f"({vocab}, {cfg.dim}) for {vocab:,} words at dim {cfg.dim}")
        return inp, None, cfg.seed
    try:
        stored, seed = saved_buckets(tables, vocab, subwords, cfg.dim, cfg.seed)
    except ValueError as exc:
        raise UserError(f"checkpoint does not fit its own config ({vocab:,} words, {cfg.buckets:,} buckets, dim "
                        f"{cfg.dim}): {exc}") from None
    return inp, subwords.stored_as(stored), seed


def restore(model: Model, objective: Objective, state: dict) -> None:
    """Load the checkpoint's tables and objective parameters into `model` and `objective`."""
    try:
        model.load_state_dict(state["model"])
        objective.load_state_dict(state.get("objective", {}))
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
        raise UserError(f"checkpoint does not fit its own config: {str(exc).splitlines()[0]}") from None


def vectors_from_checkpoint(state: dict, which: str = "input") -> Vectors:
    """The checkpoint's input vectors (word2vec's syn0; with subwords each word's mean with its
    n-grams, fastText's .vec), or its output rows (syn1neg): one per word for every loss but hs,
    whose output rows belong to the Huffman tree's inner nodes."""
    words = list(state["words"])
    if which == "input":
        inp, subwords, _ = input_table(state, checkpoint_config(state), words)
        inp = inp.float()
        if subwords is not None:
            inp = bag_means(inp, torch.from_numpy(subwords.offsets), torch.from_numpy(subwords.rows))
        return Vectors(words, inp.numpy())
    rows = state["model"]["out"]
    if len(rows) != len(words):
        loss = state["config"].get("loss")
        raise UserError(f"the {loss} model has {len(rows):,} output rows for {len(words):,} words: they are not "
                        "word vectors (hs keeps one per inner node of its tree); export --which input")
    return Vectors(words, rows.numpy().astype(np.float32))
