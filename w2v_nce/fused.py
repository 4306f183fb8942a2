"""The fused CPU kernel (`_cbow_cpu.c`) behind the CPU path of `train.sgd_step`.

`pip install` compiles `_cbow_cpu.c` into the package (setup.py; optional: without a C
compiler the install still succeeds and training runs the PyTorch path, about 1.5x slower
on the CPU). `AVAILABLE` says whether it was built; W2V_NCE_NO_KERNEL=1 turns it off.

Both functions take CPU float32 tables and int64 ids, contiguous, and release the GIL
(ctypes does), so Hogwild worker threads run them in parallel.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os

import torch

_P = ctypes.c_void_p
_N = ctypes.c_int64


DISABLED = bool(os.environ.get("W2V_NCE_NO_KERNEL"))  # turned off on purpose (not missing)


def _load() -> ctypes.CDLL | None:
    if DISABLED:
        return None
    spec = importlib.util.find_spec("w2v_nce._cbow_cpu")
    if spec is None or spec.origin is None:
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError:
        return None
    lib.cbow_forward.argtypes = [_P] * 6 + [_N] * 3 + [_P] * 2
    lib.cbow_forward.restype = None
    lib.cbow_backward.argtypes = [_P] * 10 + [_N] * 3 + [_P]
    lib.cbow_backward.restype = None
    return lib


_LIB = _load()
AVAILABLE = _LIB is not None


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def usable(table: torch.Tensor) -> bool:
    """Whether the kernel can train `table` (built, on the CPU, float32)."""
    return AVAILABLE and table.device.type == "cpu" and table.dtype == torch.float32


def forward(inp: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None, context: torch.Tensor,
            offsets: torch.Tensor, cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """h [B, dim] (mean of each example's context rows) and scores [B, K] of candidates `cand`."""
    n, k = cand.shape
    d = inp.shape[1]
    h = torch.empty(n, d, dtype=torch.float32)
    scores = torch.empty(n, k, dtype=torch.float32)
    context, offsets, cand = context.contiguous(), offsets.contiguous(), cand.contiguous()
    _LIB.cbow_forward(_ptr(inp), _ptr(out), _ptr(bias), _ptr(context), _ptr(offsets), _ptr(cand), n, k, d,
                      _ptr(h), _ptr(scores))
    return h, scores


def backward(inp: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None, context: torch.Tensor,
             offsets: torch.Tensor, cand: torch.Tensor, h: torch.Tensor, step: torch.Tensor,
             out_factor: torch.Tensor | None, in_factor: torch.Tensor | None) -> None:
    """Apply `step` [B, K] (-lr x dloss/dscore) in place, as train.sgd_step's PyTorch path does:
    output rows by step x factor x h, every context row by its example's whole error."""
    n, k = cand.shape
    d = inp.shape[1]
    err = torch.empty(n, d, dtype=torch.float32)
    context, offsets, cand = context.contiguous(), offsets.contiguous(), cand.contiguous()
    step = step.to(torch.float32).contiguous()
    out_factor = None if out_factor is None else out_factor.to(torch.float32).contiguous()
    in_factor = None if in_factor is None else in_factor.to(torch.float32).contiguous()
    _LIB.cbow_backward(_ptr(inp), _ptr(out), _ptr(bias), _ptr(context), _ptr(offsets), _ptr(cand), _ptr(h),
                       _ptr(step), _ptr(out_factor), _ptr(in_factor), n, k, d, _ptr(err))
