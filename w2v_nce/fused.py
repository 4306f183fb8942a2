"""The fused CPU kernel (`_kernel.c`) behind the kernel step paths (w2v_nce.steps).

`pip install` compiles `_kernel.c` into the package (setup.py; optional: without a C
compiler the install still succeeds and training runs the PyTorch path, about 1.5x slower
on the CPU). `AVAILABLE` says whether it was built; W2V_NCE_NO_KERNEL=1 turns it off.

`window_sgd` makes a chunk's examples and trains the logistic losses one by one; `forward` and
`backward` are the batched step's arithmetic for rnce and is; `alias_sample` draws noise words.
They take CPU float32 tables and int64 ids, and release the GIL (ctypes does), so Hogwild worker
threads run them in parallel. What they are handed is
checked (dtype, device, shapes; contiguity is made); W2V_NCE_CHECK_IDS=1 also checks that
every id is a row of its table (a pass over the ids per call: for debugging).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os

import numpy as np
import torch

_P = ctypes.c_void_p
_N = ctypes.c_int64


DISABLED = bool(os.environ.get("W2V_NCE_NO_KERNEL"))  # turned off on purpose (not missing)
CHECK_IDS = bool(os.environ.get("W2V_NCE_CHECK_IDS"))


def _load() -> ctypes.CDLL | None:
    if DISABLED:
        return None
    spec = importlib.util.find_spec("w2v_nce._kernel")
    if spec is None or spec.origin is None:
        return None
    try:  # a build older than this module lacks its newest functions: AttributeError, the PyTorch path
        lib = ctypes.CDLL(spec.origin)
        lib.bag_forward.argtypes = [_P] * 7 + [_N] * 4 + [_P] * 2
        lib.bag_forward.restype = None
        lib.bag_backward.argtypes = [_P] * 11 + [_N] * 4 + [_P]
        lib.bag_backward.restype = None
        lib.window_sgd.argtypes = ([_P] * 4 + [_N] + [_P] + [_N] * 5 + [_P] * 2 + [_N] + [_P] * 3 + [_N] + [_P]
                                   + [ctypes.c_float, _N, _N, ctypes.c_float, ctypes.c_float, ctypes.c_uint64] + [_P] * 8
                                   + [_N] * 2 + [_P, _N] + [_P] * 4 + [_N] + [_P] * 3)
        lib.window_sgd.restype = ctypes.c_double
        lib.alias_sample.argtypes = [_P, _P, _N, _N, ctypes.c_uint64, _P]
        lib.alias_sample.restype = None
        lib.bucket_init.argtypes = [_P, _N, _P, _N, _N, ctypes.c_uint64]
        lib.bucket_init.restype = None
        lib.counter_publish.argtypes = [_P, _N]
        lib.counter_publish.restype = None
        lib.counter_least.argtypes = [_P, _N, _N]
        lib.counter_least.restype = _N
        lib.counter_wait.argtypes = [_P, _N, _N, _N, _N]
        lib.counter_wait.restype = _N
        lib.format_rows.argtypes = [_P, _N, _N, _N, _P, _P]
        lib.format_rows.restype = _N
    except (OSError, AttributeError):
        return None
    return lib


_LIB = _load()
AVAILABLE = _LIB is not None


def counter_publish(address: int, value: int) -> None:
    """Store `value` at the int64 `address` (shared memory) after every write before it (release)."""
    _LIB.counter_publish(address, value)


def counter_least(address: int, n: int, stride: int) -> int:
    """The least of the n int64 counters at `address`, `stride` int64s apart (acquire loads: what
    was written before a counter was published is seen)."""
    return _LIB.counter_least(address, n, stride)


def counter_wait(address: int, n: int, stride: int, x: int, timeout_us: int) -> int:
    """Sleep (a futex, not a poll) until the least of those counters reaches x or about
    `timeout_us` passes; the least counter then."""
    return _LIB.counter_wait(address, n, stride, x, timeout_us)


def format_rows(rows: np.ndarray) -> tuple[bytes, np.ndarray]:
    """2-D rows as word2vec text without the words: b" v1 ... vd\n" a row, each value as "%.9g"
    writes it as a float32; and where each row's text ends. float32 rows of contiguous values (a
    padded table's) are read where they lie; anything else is copied into that layout first."""
    _need(rows.ndim == 2, "rows must be 2-D")
    if rows.dtype != np.float32 or rows.strides[1] != 4 or rows.strides[0] % 4:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
    n, dim = rows.shape
    out = np.empty(n * (dim * 17 + 1), dtype=np.uint8)
    ends = np.empty(n, dtype=np.int64)
    if n:
        written = _LIB.format_rows(rows.ctypes.data, n, dim, rows.strides[0] // 4, out.ctypes.data, ends.ctypes.data)
        out = out[:written]
    return out.tobytes(), ends


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def usable(table: torch.Tensor) -> bool:
    """Whether the kernel can train `table` (built, on the CPU, float32)."""
    return AVAILABLE and table.device.type == "cpu" and table.dtype == torch.float32


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"fused kernel: {what}")


def _check_tables(inp, out, bias) -> int:
    """The tables the kernel trains in place: float32 on the CPU, one width, rows contiguous and
    `ld` floats apart (model.py pads them to whole cache lines). Returns ld."""
    for name, t in (("inp", inp), ("out", out)):
        _need(t.dtype == torch.float32 and t.device.type == "cpu" and t.dim() == 2 and t.stride(1) == 1
              and (len(t) <= 1 or t.stride(0) >= t.shape[1]), f"{name} must be a 2-D float32 CPU table of contiguous rows")
    _need(inp.shape[1] == out.shape[1], "inp and out must have the same width")
    ld = max(inp.stride(0), out.stride(0)) if len(inp) > 1 or len(out) > 1 else inp.shape[1]
    _need(all(len(t) <= 1 or t.stride(0) == ld for t in (inp, out)), "inp and out must have the same row stride")
    _need(bias is None or (bias.dtype == torch.float32 and bias.shape == (len(out),) and bias.is_contiguous()),
          "bias must be a contiguous float32 vector with one entry per output row")
    return ld


def _check_logistic(out, row_offset, hot) -> None:
    """The logistic loops' per-row logit offset and private hot rows."""
    _need(row_offset is None or (row_offset.dtype == torch.float32 and row_offset.shape == (len(out),)
                                 and row_offset.is_contiguous()), "row_offset must be float32 [rows]")
    hot_lo, hot_n = hot
    _need(0 <= hot_lo and 0 <= hot_n and hot_lo + hot_n <= len(out), "hot rows must lie in out")


def _check_alias(accept, alias) -> None:
    _need(accept.dtype == torch.float32 and alias.dtype == torch.int64 and accept.shape == alias.shape
          and accept.is_contiguous() and alias.is_contiguous() and accept.device.type == "cpu",
          "accept must be float32 and alias int64, contiguous CPU vectors of one length")


def _checked(inp, out, bias, context, offsets, cand, mask):
    """The arguments as the kernel reads them (contiguous) and the tables' row stride, after checking
    what it relies on."""
    ld = _check_tables(inp, out, bias)
    for name, t in (("context", context), ("offsets", offsets), ("cand", cand)):
        _need(t.dtype == torch.int64 and t.device.type == "cpu", f"{name} must be int64 on the CPU")
    _need(cand.dim() == 2 and offsets.dim() == 1 and len(offsets) == len(cand) + 1,
          "cand must be [B, K] and offsets [B + 1]")
    _need(mask is None or (mask.dtype == torch.bool and mask.shape == cand.shape), "mask must be bool like cand")
    context, offsets, cand = context.contiguous(), offsets.contiguous(), cand.contiguous()
    mask = None if mask is None else mask.contiguous()
    if CHECK_IDS:
        _need(int(offsets[0]) == 0 and int(offsets[-1]) == len(context) and bool((offsets[1:] >= offsets[:-1]).all()),
              "offsets must rise from 0 to len(context)")
        _need(len(context) == 0 or 0 <= int(context.min()) and int(context.max()) < len(inp), "context id out of range")
        live = cand if mask is None else cand[mask]
        _need(len(live) == 0 or 0 <= int(live.min()) and int(live.max()) < len(out), "candidate id out of range")
    return context, offsets, cand, mask, ld


def forward(inp: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None, context: torch.Tensor,
            offsets: torch.Tensor, cand: torch.Tensor, mask: torch.Tensor | None = None,
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """h [B, dim] (mean of each example's bag of input rows) and scores [B, K] of candidates
    `cand` (0 where `mask` is False)."""
    context, offsets, cand, mask, ld = _checked(inp, out, bias, context, offsets, cand, mask)
    n, k = cand.shape
    d = inp.shape[1]
    h = torch.empty(n, d, dtype=torch.float32)
    scores = torch.empty(n, k, dtype=torch.float32)
    _LIB.bag_forward(_ptr(inp), _ptr(out), _ptr(bias), _ptr(context), _ptr(offsets), _ptr(cand), _ptr(mask),
                     n, k, d, ld, _ptr(h), _ptr(scores))
    return h, scores


def backward(inp: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None, context: torch.Tensor,
             offsets: torch.Tensor, cand: torch.Tensor, mask: torch.Tensor | None, h: torch.Tensor,
             step: torch.Tensor, out_factor: torch.Tensor | None, in_factor: torch.Tensor | None) -> None:
    """Apply `step` [B, K] (-lr x dloss/dscore) in place, as the batched step (w2v_nce.steps) does:
    output rows by step x factor x h, every context row by its example's whole error."""
    context, offsets, cand, mask, ld = _checked(inp, out, bias, context, offsets, cand, mask)
    n, k = cand.shape
    d = inp.shape[1]
    _need(h.shape == (n, d) and step.shape == (n, k), "h must be [B, dim] and step [B, K]")
    err = torch.empty(n, d, dtype=torch.float32)
    h = h.to(torch.float32).contiguous()
    step = step.to(torch.float32).contiguous()
    out_factor = None if out_factor is None else out_factor.to(torch.float32).contiguous()
    in_factor = None if in_factor is None else in_factor.to(torch.float32).contiguous()
    _need(out_factor is None or out_factor.numel() == n * k, "out_factor must have one entry per candidate")
    _need(in_factor is None or in_factor.numel() == len(context), "in_factor must have one entry per context word")
    _LIB.bag_backward(_ptr(inp), _ptr(out), _ptr(bias), _ptr(context), _ptr(offsets), _ptr(cand), _ptr(mask),
                      _ptr(h), _ptr(step), _ptr(out_factor), _ptr(in_factor), n, k, d, ld, _ptr(err))


def alias_sample(accept: torch.Tensor, alias: torch.Tensor, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Draws from the alias table (accept float32 [V], alias int64 [V], on the CPU): ids of `shape`."""
    _check_alias(accept, alias)
    out = torch.empty(shape, dtype=torch.int64)
    _LIB.alias_sample(_ptr(accept), _ptr(alias), len(accept), out.numel(), seed, _ptr(out))
    return out


def bucket_init(out: torch.Tensor, ids: torch.Tensor, seed: int) -> None:
    """out[i] = the initial vector of n-gram bucket ids[i] (w2v_nce.subwords.bucket_init), in place:
    `out` a float32 CPU table of contiguous rows, `ids` int64."""
    _need(out.dtype == torch.float32 and out.device.type == "cpu" and out.dim() == 2 and out.stride(1) == 1
          and (len(out) <= 1 or out.stride(0) >= out.shape[1]), "out must be a 2-D float32 CPU table of contiguous rows")
    _need(ids.dtype == torch.int64 and ids.shape == (len(out),), "ids must be int64 with one entry per row of out")
    ids = ids.contiguous()
    _LIB.bucket_init(_ptr(out), out.stride(0) if len(out) > 1 else out.shape[1], _ptr(ids), len(out), out.shape[1],
                     seed & 0xFFFFFFFFFFFFFFFF)


def window_sgd(inp: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None, ids: torch.Tensor,
               centres: torch.Tensor, window: int, skipgram: bool, lr: float, seed: int,
               noise: tuple[torch.Tensor, torch.Tensor, int, bool] | None = None,
               tree: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
               row_offset: torch.Tensor | None = None, const_offset: float = 0.0,
               hot: tuple[int, int] = (0, 0), saturated: float = 0.0, shared_noise: bool = False,
               subwords: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None = None,
               cached_bags: bool = False) -> tuple[float, float, int]:
    """Train the logistic loss example by example, as word2vec's threads do (each example's step
    lands before the next is scored), on the examples the kernel makes: the centre words at
    positions `centres` of the subsampled chunk `ids` (int32, SENTENCE_END between sentences),
    each with a radius in 1..window drawn from `seed`'s stream, as CBOW windows or skip-gram pairs.
    For every candidate, y = h . out[c] (+ bias[c]) - row_offset[c] - const_offset, h the mean of
    the bag's input rows. Output rows hot = (first, count) train in a private copy whose change is
    added back at the end (Hogwild threads then do not fight over them). Candidates: the centre
    word and `noise` = (accept, alias, negatives, skip_hits) draws from the alias table (skip_hits:
    leave out draws equal to the centre word), or the centre word's Huffman path `tree` = (points,
    labels, mask) rows. With `saturated` > 0, a candidate classified beyond that logit on its
    label's side (|g| < σ(-saturated)) takes no step and adds e^-|y| to the loss (see _kernel.c).
    `subwords` = (offsets, rows, repeat, max rows of a word) (w2v_nce.model.Model.kernel_subwords):
    each word's bag of input rows; a CBOW bag is all rows of its window's words, and skip-gram takes
    fastText's orientation (the centre word's rows predict each window word; `shared_noise` does
    not apply there: every window word is a target with its own draws). `cached_bags` (CBOW with
    subwords): each window position's row sum is cached while it is within reach and its rows take
    their summed error once, when it leaves (see _kernel.c: cached_cbow).
    Returns (summed loss, summed d loss / d y, examples trained)."""
    ld = _check_tables(inp, out, bias)
    _check_logistic(out, row_offset, hot)
    _need(ids.dtype == torch.int32 and ids.dim() == 1 and ids.is_contiguous(), "ids must be a contiguous int32 vector")
    _need(centres.dtype == torch.int64 and centres.dim() == 1 and centres.is_contiguous(),
          "centres must be a contiguous int64 vector")
    _need(window >= 1, "window must be at least 1")
    _need((noise is None) != (tree is None), "give noise or tree, not both")
    hot_lo, hot_n = hot
    d = inp.shape[1]
    words = len(inp)
    sub_offsets = sub_rows = repeat = None
    bag_max = 0
    if subwords is not None:
        sub_offsets, sub_rows, repeat, max_rows = subwords
        for name, t in (("offsets", sub_offsets), ("rows", sub_rows)):
            _need(t.dtype == torch.int64 and t.dim() == 1 and t.is_contiguous() and t.device.type == "cpu",
                  f"subword {name} must be a contiguous int64 CPU vector")
        words = len(sub_offsets) - 1
        _need(0 < words <= len(inp), "subword offsets must have one entry per word and one more")
        _need(repeat.dtype == torch.float32 and repeat.shape == (words,) and repeat.is_contiguous(),
              "subword repeat factors must be float32 [words]")
        if CHECK_IDS:
            _need(int(sub_offsets[0]) == 0 and int(sub_offsets[-1]) == len(sub_rows)
                  and bool((sub_offsets[1:] >= sub_offsets[:-1]).all()), "subword offsets must rise to len(rows)")
            _need(int(max_rows) == int((sub_offsets[1:] - sub_offsets[:-1]).max()), "subword max rows is wrong")
            _need(len(sub_rows) == 0 or 0 <= int(sub_rows.min()) and int(sub_rows.max()) < len(inp),
                  "subword row out of range")
        bag_max = 0 if skipgram else 2 * window * int(max_rows)
    if CHECK_IDS:
        kept = ids[ids >= 0]
        _need(bool((kept < words).all()) and bool((ids >= -1).all()), "ids out of range")
        _need(bool(((centres >= 0) & (centres < len(ids))).all()) and bool((ids[centres] >= 0).all()),
              "centres must be positions of words in ids")
    accept = alias = points = labels = mask = None
    negatives, skip_hits, vocab, path_max = 0, False, 0, 0
    if noise is not None:
        accept, alias, negatives, skip_hits = noise
        _check_alias(accept, alias)
        _need(len(accept) <= len(out), "the noise table is larger than the output table")
        vocab = len(accept)
    else:
        points, labels, mask = tree
        _need(points.dtype == torch.int64 and labels.dtype == torch.float32 and mask.dtype == torch.bool
              and points.shape == labels.shape == mask.shape and points.shape[0] == words
              and points.is_contiguous() and labels.is_contiguous() and mask.is_contiguous(),
              "tree must be points int64, labels float32, mask bool [words, path]")
        path_max = points.shape[1]
    # h, err, and the hot rows laid out as the table, then err_total
    work = torch.empty(2 + 2 * hot_n + 1, ld, dtype=torch.float32)
    bags = torch.empty(2, bag_max, dtype=torch.int64)  # two centres' CBOW bags of subword rows
    context = torch.empty(2, 2 * window, dtype=torch.int64)  # two centres: the one training, the next
    cand = torch.empty(2, 2 * window, 1 + negatives, dtype=torch.int64)
    cand_labels = torch.empty(1 + negatives, dtype=torch.float32)
    cand_mask = torch.empty(2, 2 * window, 1 + negatives, dtype=torch.uint8)
    cached = cached_bags and subwords is not None and not skipgram
    cache = torch.empty(2 * window + 1 if cached else 0, 2, ld, dtype=torch.float32)  # per slot: S_p, pending_p
    cache_pos = torch.empty(2 * window + 1 if cached else 0, dtype=torch.int64)
    gsum, examples = ctypes.c_double(), ctypes.c_int64()
    loss = _LIB.window_sgd(_ptr(inp), _ptr(out), _ptr(bias), _ptr(ids), len(ids), _ptr(centres), len(centres),
                           window, int(skipgram), negatives, int(skip_hits), _ptr(accept), _ptr(alias), vocab, _ptr(points),
                           _ptr(labels), _ptr(mask), path_max, _ptr(row_offset), float(const_offset), d, ld, float(lr),
                           float(saturated), seed & ((1 << 64) - 1), _ptr(work[0]), _ptr(work[1]), _ptr(context), _ptr(cand),
                           _ptr(cand_labels), _ptr(cand_mask), ctypes.byref(gsum), ctypes.byref(examples), hot_lo,
                           hot_n, _ptr(work[2:]), int(shared_noise), _ptr(sub_offsets), _ptr(sub_rows), _ptr(repeat),
                           _ptr(bags), bag_max, _ptr(work[-1]), _ptr(cache) if cached else None,
                           _ptr(cache_pos) if cached else None)
    return loss, gsum.value, examples.value
