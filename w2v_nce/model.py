"""The model: input vectors (the embeddings users keep), output rows, optional output bias.

An example's input is a bag of words: its context for CBOW, one context word for skip-gram
(a bag of one). The model scores candidate output rows for a batch of bags: h(c) is the mean
of the bag's input vectors and s(x, c) = <h(c), out[x]> + bias[x]. It knows neither the
architecture nor the loss: the loss says how many output rows there are (one per word, or
the V - 1 inner nodes of hierarchical softmax), and the step (w2v_nce.steps) applies the updates.

With subwords (fastText's model, w2v_nce.subwords) the input table has V word rows and then a row
for each bucket its vocabulary's n-grams use (Subwords.stored; the others keep their initial values,
w2v_nce.subwords.bucket_init), and a word stands for its bag of rows: its own and its character
n-grams'. A bag of words is then the bag of all its words' rows (`input_bags`), h their mean, and a
word's vector the mean of its own bag (`word_vectors`).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from w2v_nce.config import table_bytes
from w2v_nce.errors import UserError

from w2v_nce.subwords import Subwords, bag_means, copy_buckets, expand_bags, fill_buckets
from w2v_nce.tensor_ops import take


def fits_in_memory(rows: int, dim: int) -> None:
    """A UserError if float32 tables of `rows` x `dim` would not fit in this machine's memory."""
    need = rows * dim * 4
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not known here: let the allocation decide
        return
    if need > have:
        raise UserError(f"the model's tables would take {table_bytes(rows, dim)} ({rows:,} rows x dim {dim} x 4 "
                        f"bytes), more than this machine's memory ({have / 1e9:,.3g} GB); lower --buckets or --dim")


def table(rows: int, dim: int, device: torch.device | str, zero: bool = False) -> torch.Tensor:
    """A float32 table, uninitialised or zero. On the CPU its memory comes from numpy, which asks
    Linux for huge pages (madvise): the steps read rows at random from tables larger than the cache,
    and with 4 kB pages nearly every row costs a TLB miss (docs/performance.md)."""
    if torch.device(device).type == "cpu":
        flat = (np.zeros if zero else np.empty)(rows * dim + 16, dtype=np.float32)
        start = (-flat.ctypes.data % 64) // 4  # rows from a 64-byte boundary, as torch's own allocator
        return torch.from_numpy(flat[start : start + rows * dim].reshape(rows, dim))
    return (torch.zeros if zero else torch.empty)(rows, dim, device=device)


class Model:
    def __init__(self, vocab_size: int, dim: int, bias: bool, device: torch.device, generator: torch.Generator,
                 bias_init: torch.Tensor | None = None, out_rows: int | None = None,
                 subwords: Subwords | None = None, init: bool = True, bucket_seed: int = 0):
        # gensim 4's initialisation: inputs uniform in ±1/dim (word2vec.c uses ±0.5/dim; on the
        # full wiki17m gensim's range scored higher, docs/results.md), outputs zero; fastText's
        # createRandomMatrix and gensim's FastText draw the bucket rows the same way. The bias
        # starts at `bias_init` (the trainer gives log unigram probabilities: the untrained model
        # is then the unigram distribution, already normalised), else zero. `init` False: tables to
        # be loaded (load_state_dict), left unset. The bucket rows start from `bucket_seed`.
        out_rows = vocab_size if out_rows is None else out_rows
        in_rows = vocab_size + (len(subwords.stored) if subwords is not None else 0)
        if torch.device(device).type == "cpu":
            fits_in_memory(in_rows + out_rows, dim)
        self.inp = table(in_rows, dim, device)
        self.vocab_size = vocab_size
        self.subwords = subwords
        self.bucket_seed = bucket_seed
        if init:
            self.draw_inputs(generator)
        self.out = table(out_rows, dim, device, zero=True)  # untouched pages until written: align_rows copies none
        self.sub_offsets = self.sub_rows = None
        self._kernel_subwords = None
        if subwords is not None:
            self.sub_offsets = torch.from_numpy(subwords.offsets).to(device)
            self.sub_rows = torch.from_numpy(subwords.rows).to(device)
        self.bias = None
        if bias:
            self.bias = torch.zeros(out_rows, device=device) if bias_init is None else bias_init.to(device, torch.float32)

    def draw_inputs(self, generator: torch.Generator) -> None:
        """The input rows' start: uniform in ±1/dim, drawn in place (in the tables' layout: no second
        copy of a table), the same values whatever the layout. The word rows come from `generator`;
        the bucket rows from their bucket ids (w2v_nce.subwords.bucket_init), so a stored bucket
        starts as the same bucket unstored reads."""
        words = self.inp[: self.vocab_size]
        torch.rand(words.shape, generator=generator, device=words.device, out=words)
        words.mul_(2).sub_(1).div_(words.shape[1])
        if self.subwords is not None:
            fill_buckets(self.inp[self.vocab_size:], self.bucket_seed, self.subwords.stored)

    def bucket_vectors(self, buckets: np.ndarray) -> torch.Tensor:
        """[len(buckets), dim] the vectors of n-gram buckets: a stored bucket's row, else its start."""
        out = torch.empty(len(buckets), self.inp.shape[1], dtype=self.inp.dtype, device=self.inp.device)
        copy_buckets(out, np.asarray(buckets, dtype=np.int64), self.inp, self.vocab_size, self.subwords.stored,
                     self.bucket_seed)
        return out

    def input_bags(self, context: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bags of words (context[offsets[i]:offsets[i+1]]) as bags of input rows: the same without
        subwords, else every word's rows (fastText's bow)."""
        if self.subwords is None:
            return context, offsets
        return expand_bags(context, offsets, self.sub_offsets, self.sub_rows)

    def context_vectors(self, rows: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """h = mean of each example's bag of input rows (`input_bags`): [B, dim]."""
        return F.embedding_bag(rows, self.inp, offsets[:-1], mode="mean")

    def word_vectors(self) -> torch.Tensor:
        """[V, dim] each word's input vector: its row, or with subwords the mean of its bag (fastText's
        getWordVector, the vectors of its .vec file)."""
        if self.subwords is None:
            return self.inp
        return bag_means(self.inp, self.sub_offsets, self.sub_rows)

    def kernel_subwords(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None:
        """The bags as the fused kernel takes them (w2v_nce.fused.window_sgd), made once."""
        if self.subwords is not None and self._kernel_subwords is None:
            repeat = torch.from_numpy(self.subwords.repeat_factors())
            self._kernel_subwords = (self.sub_offsets, self.sub_rows, repeat, self.subwords.max_rows)
        return self._kernel_subwords

    def scores(self, h: torch.Tensor, ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of candidates `ids` [B, K] (or of every output row if None), and their
        output vectors ([B, K, dim], or the full table)."""
        if ids is None:
            out = self.out
            s = h @ out.T
            if self.bias is not None:
                s += self.bias
        else:
            out = F.embedding(ids, self.out)  # faster than self.out[ids] on CPU
            s = torch.bmm(out, h[:, :, None]).squeeze(2)
            if self.bias is not None:
                s += take(self.bias, ids)
        return s, out

    def align_rows(self, floats: int = 16) -> None:
        """Lay each table's rows `floats` apart (16: every row starts a 64-byte cache line, so that
        the CPU kernel's vector loads never straddle two lines); values and shapes stay, the tables
        become views of row-padded storage whose padding nothing reads."""
        width = -(-self.inp.shape[1] // floats) * floats
        for name in ("inp", "out"):
            rows = getattr(self, name)
            if len(rows) > 1 and rows.stride(0) == width:
                continue
            full = table(len(rows), width, rows.device, zero=True)  # 64-byte aligned
            full[:, : rows.shape[1]] = rows
            setattr(self, name, full[:, : rows.shape[1]])

    def state_dict(self) -> dict:
        """The tables; with subwords also the bucket each stored row holds and the buckets' seed."""
        state = {"inp": self.inp.cpu(), "out": self.out.cpu(), "bias": None if self.bias is None else self.bias.cpu()}
        if self.subwords is not None:
            state.update(bucket_ids=torch.from_numpy(self.subwords.stored), bucket_seed=self.bucket_seed)
        return state

    def load_state_dict(self, state: dict) -> None:
        """The tables of `state` (untrusted: a ValueError where they do not fit), copied in place;
        with subwords its bucket rows are found by bucket id, whatever buckets it stores."""
        device, vocab = self.inp.device, self.vocab_size
        if tuple(state["out"].shape) != tuple(self.out.shape):
            raise ValueError(f"out has shape {tuple(state['out'].shape)}, expected {tuple(self.out.shape)}")
        inp = state["inp"]
        if self.subwords is None:
            if tuple(inp.shape) != tuple(self.inp.shape):
                raise ValueError(f"inp has shape {tuple(inp.shape)}, expected {tuple(self.inp.shape)}")
            self.inp.copy_(inp.to(device, torch.float32))  # in place: the tables keep their row layout
        else:
            stored, self.bucket_seed = saved_buckets(state, vocab, self.subwords, self.inp.shape[1], self.bucket_seed)
            if not np.array_equal(stored, self.subwords.stored):
                raise ValueError("its bucket rows are not the model's (Subwords.stored_as lays the model out as they are)")
            self.inp.copy_(inp.to(device, torch.float32))
        self.out.copy_(state["out"].to(device, torch.float32))
        self.bias = None if state["bias"] is None else state["bias"].to(device, torch.float32).contiguous()


def saved_buckets(state: dict, vocab: int, subwords: Subwords, dim: int, seed: int) -> tuple[np.ndarray, int]:
    """(the bucket of each stored row, the buckets' seed) of a subword model's saved tables, which
    must store every bucket of `subwords`' bags (untrusted: a ValueError where they do not fit).
    Tables saved without them hold every bucket, as fastText's, and take `seed`."""
    buckets = subwords.buckets
    inp = state.get("inp")
    if not isinstance(inp, torch.Tensor) or inp.dim() != 2 or inp.shape[1] != dim or len(inp) < vocab:
        shape = tuple(inp.shape) if isinstance(inp, torch.Tensor) else None
        raise ValueError(f"inp has shape {shape}, expected ({vocab:,} words + stored buckets, {dim})")
    seed = state.get("bucket_seed", seed)
    if isinstance(seed, torch.Tensor) and seed.numel() == 1:
        seed = seed.item()
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"bucket_seed is {seed!r}, not an integer")
    ids = state.get("bucket_ids")
    if ids is None:  # fastText's layout: row V + b holds bucket b
        if len(inp) != vocab + buckets:
            raise ValueError(f"inp has {len(inp):,} rows, expected {vocab + buckets:,} ({vocab:,} words + {buckets:,} "
                             "buckets)")
        return np.arange(buckets, dtype=np.int64), seed
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.dtype not in (torch.int32, torch.int64):
        raise ValueError("bucket_ids is not a vector of integers")
    if len(ids) != len(inp) - vocab:
        raise ValueError(f"bucket_ids has {len(ids):,} buckets for the {len(inp) - vocab:,} bucket rows of inp")
    stored = ids.numpy().astype(np.int64)
    if len(stored) and (stored.min() < 0 or stored.max() >= buckets):
        raise ValueError(f"bucket_ids holds a bucket outside 0..{buckets - 1:,}")
    if len(np.unique(stored)) != len(stored):
        raise ValueError("bucket_ids holds a bucket twice")
    lacking = int((~np.isin(subwords.stored, stored)).sum())
    if lacking:
        raise ValueError(f"its bucket rows lack {lacking:,} of the {len(subwords.stored):,} buckets its words' "
                         f"n-grams use in {buckets:,} buckets")
    return stored, seed
