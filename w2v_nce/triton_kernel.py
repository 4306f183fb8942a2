"""The GPU's window kernel, in Triton: the CPU kernel's training (fused.window_sgd), one program
per slice of centre words, all programs at once.

Program p trains the centre words `centres[first + p*per : first + (p+1)*per]` one after another
exactly as one thread of the C kernel trains its slice (_kernel.c, window_sgd): the same
splitmix64 streams (seeded `seed + (first + p*per) x golden`, as windows.Centres.slice seeds a
slice; the radii's from that xor 0x5DEECE66D) draw the same radii and noise words, the windows
stop at sentence ends, an example's candidates are scored in one block and a repeated one after
its earlier copy's step (as the C kernel rescores it), candidates classified beyond `saturated`
take no step, and the bag's rows move by the example's error after its candidates. So one program equals the C kernel's one-thread result on
its slice, and under TRITON_INTERPRET=1 (programs run one after another on the CPU) a whole
launch equals the C kernel called on each slice in turn (tests/test_triton_kernel.py).

On a GPU the programs run at once and share the tables without locks (Hogwild, as the CPU
kernel's threads): every step is an atomic add, so two programs' steps to one row both land, and
a row read by one program may miss the steps other programs are making: with P programs about P
examples are in flight. scripts/emulate_programs.py trains so on the CPU (the programs in
lockstep); docs/gpu.md gives the quality it measured, the launch budget (one launch a chunk) and
the words/s expected from this design.

The learning rate runs linearly from `lr` to `lr_end` over each program's slice. Loss, Σ dloss/dy
(NCE's learnt log Z) and the examples trained come back as device tensors: nothing here waits
for the GPU.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

AVAILABLE = importlib.util.find_spec("triton") is not None  # with TRITON_INTERPRET=1 set before this import,
# the kernel runs on CPU tensors, one program after another (tests only: ~100 candidates a second)


if AVAILABLE:
    import triton
    import triton.language as tl

    @triton.jit
    def _mix(z):
        """splitmix64's output function of a state."""
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB
        return z ^ (z >> 31)

    @triton.jit
    def _logistic(y, label, live, lr, saturated):
        """For logits y and labels (vectors or scalars): the step on each score (-lr g, 0 for a
        candidate not live or classified beyond `saturated` on its label's side), whether it
        moves, its loss (e^-|y| when saturated: softplus(-|y|) within e^-2|y|/2) and its g."""
        e = tl.exp(-tl.abs(y))
        inv = 1.0 / (1.0 + e)
        p = tl.where(y >= 0, inv, e * inv)
        bce = tl.maximum(y, 0.0) - label * y + tl.log(1.0 + e)
        positive = label > 0.5
        sat = (saturated > 0) & tl.where(positive, y > saturated, y < -saturated)
        g = p - label
        moves = tl.where(sat, False, live)
        step = tl.where(moves, -lr * g, 0.0)
        loss = tl.where(live, tl.where(sat, e, bce), 0.0)
        grad = tl.where(live, tl.where(sat, tl.where(positive, -e, e), g), 0.0)
        return step, moves, loss, grad

    @triton.jit
    def _example(h, target, nseed, nctr, out, bias, row_offset, const, accept, alias, vocab, points,
                 path_labels, path_mask, lr, saturated, d, dmask,
                 DIM: tl.constexpr, K: tl.constexpr, BLOCK_K: tl.constexpr, SAMPLED: tl.constexpr,
                 SKIP_HITS: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_OFFSET: tl.constexpr, PATH: tl.constexpr):
        """One example: bag vector h against its K candidates (_kernel.c's logistic_candidates).
        All K scores in one block, as the C kernel scores a block; a candidate repeated within the
        example is scored as the C kernel rescores it, after its earlier copies' steps. Returns
        (the bag's error, loss, Σ g, the noise stream's counter)."""
        col = tl.arange(0, BLOCK_K)
        if SAMPLED:
            # draw t of the noise stream is mix(seed + (t + 1) golden); column j >= 1 is draw nctr + j - 1
            z = _mix(nseed + (nctr + col.to(tl.uint64)) * 0x9E3779B97F4A7C15)
            drawn = (col >= 1) & (col < K)
            bucket = (((z >> 32) * vocab) >> 32).to(tl.int64)
            coin = (z & 0xFFFFFF).to(tl.float32) * (1.0 / 16777216.0)
            keep = tl.load(accept + bucket, mask=drawn, other=1.0)
            other = tl.load(alias + bucket, mask=drawn, other=0)
            cand = tl.where(col == 0, target, tl.where(coin < keep, bucket, other))
            cmask = col < K
            if SKIP_HITS:
                cmask = cmask & ((col == 0) | (cand != target))
            labels = (col == 0).to(tl.float32)
            nctr = nctr + (K - 1)
        else:
            on_path = col < PATH
            cand = tl.load(points + target * PATH + col, mask=on_path, other=0)
            labels = tl.load(path_labels + target * PATH + col, mask=on_path, other=0.0)
            cmask = tl.load(path_mask + target * PATH + col, mask=on_path, other=0) != 0
        rows = tl.load(out + cand[:, None] * DIM + d[None, :], mask=cmask[:, None] & dmask[None, :], other=0.0,
                       cache_modifier=".cg")
        y = tl.sum(rows * h[None, :], 1) - const
        if HAS_BIAS:
            y += tl.load(bias + cand, mask=cmask, other=0.0, cache_modifier=".cg")
        if HAS_OFFSET:
            y -= tl.load(row_offset + cand, mask=cmask, other=0.0)
        # shift[j]: the steps of candidate j's earlier copies, each of which moved y_j by h.h (+ 1 for the bias)
        shift = tl.zeros((BLOCK_K,), tl.float32)
        hh = tl.sum(h * h, 0)
        if HAS_BIAS:
            hh += 1.0
        if SAMPLED:  # a Huffman path has no repeats
            repeats = (cand[:, None] == cand[None, :]) & (col[None, :] < col[:, None]) & cmask[:, None] & cmask[None, :]
            if tl.sum(tl.sum(repeats.to(tl.int32), 1), 0) > 0:
                for j in range(K):
                    sel = col == j
                    yj = tl.sum(tl.where(sel, y + shift * hh, 0.0), 0)
                    lj = tl.sum(tl.where(sel, labels, 0.0), 0)
                    cj = tl.sum(tl.where(sel, cand, 0), 0)
                    live = tl.sum(tl.where(sel & cmask, 1, 0), 0) > 0
                    step_j, _m, _l, _g = _logistic(yj, lj, live, lr, saturated)
                    shift += tl.where((cand == cj) & (col > j) & cmask, step_j, 0.0)
        step, moves, loss, grad = _logistic(y + shift * hh, labels, cmask, lr, saturated)
        # the error through each row as its candidate saw it: the row plus its earlier copies' moves
        err = tl.sum(step[:, None] * rows, 0) + tl.sum(step * shift, 0) * h
        tl.atomic_add(out + cand[:, None] * DIM + d[None, :], step[:, None] * h[None, :],
                      mask=moves[:, None] & dmask[None, :], sem="relaxed")
        if HAS_BIAS:
            tl.atomic_add(bias + cand, step, mask=moves, sem="relaxed")
        return err, tl.sum(loss, 0), tl.sum(grad, 0), nctr

    @triton.jit
    def _window_sgd(inp, out, bias, ids, n_ids, centres, n_centres, first, per, seed_ptr, accept, alias, vocab,
                    points, path_labels, path_mask, row_offset, const_ptr, lr0, lr1, saturated,
                    loss_out, gsum_out, examples_out,
                    DIM: tl.constexpr, BLOCK_D: tl.constexpr, WINDOW: tl.constexpr, BLOCK_W: tl.constexpr,
                    SKIPGRAM: tl.constexpr, K: tl.constexpr, BLOCK_K: tl.constexpr, SAMPLED: tl.constexpr,
                    SKIP_HITS: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_OFFSET: tl.constexpr, PATH: tl.constexpr,
                    SHARED: tl.constexpr):
        pid = tl.program_id(0)
        lo = pid.to(tl.int64) * per
        hi = tl.minimum(lo + per, n_centres)
        nseed = tl.load(seed_ptr).to(tl.uint64, bitcast=True) + (first + lo).to(tl.uint64) * 0x9E3779B97F4A7C15
        rseed = nseed ^ 0x5DEECE66D
        const = tl.load(const_ptr)
        d = tl.arange(0, BLOCK_D)
        dmask = d < DIM
        w = tl.arange(0, BLOCK_W)
        nctr = tl.zeros((), tl.uint64)  # noise draws made
        rctr = tl.zeros((), tl.uint64)  # radii drawn
        loss = tl.zeros((), tl.float32)
        gsum = tl.zeros((), tl.float32)
        trained = tl.zeros((), tl.int64)
        span = tl.maximum(hi - lo, 1).to(tl.float32)
        for t in range(0, per):  # the same count in every program; the last one skips its tail
            i = lo + t
            if i < hi:
                lr = lr0 + (lr1 - lr0) * ((i - lo).to(tl.float32) / span)
                at = tl.load(centres + i)
                target = tl.load(ids + at).to(tl.int64)
                if target >= 0:  # a padded chunk's sentence ends are no centres (they draw nothing)
                    rctr += 1
                    radius = (1 + _mix(rseed + rctr * 0x9E3779B97F4A7C15) % WINDOW).to(tl.int64)
                    # the window: up to `radius` words each side, stopping at a sentence end
                    lpos = at - 1 - w
                    rpos = at + 1 + w
                    lid = tl.load(ids + lpos, mask=(w < radius) & (lpos >= 0), other=-1).to(tl.int64)
                    rid = tl.load(ids + rpos, mask=(w < radius) & (rpos < n_ids), other=-1).to(tl.int64)
                    lok = tl.cumsum((lid < 0).to(tl.int32), 0) == 0
                    rok = tl.cumsum((rid < 0).to(tl.int32), 0) == 0
                    n_left = tl.sum(lok.to(tl.int32), 0)
                    n_right = tl.sum(rok.to(tl.int32), 0)
                    if n_left + n_right > 0:
                        if SKIPGRAM:
                            # one example per window word, farthest left first (the C kernel's order);
                            # SHARED: the window's one draw of noise words serves all its examples
                            first_draw = nctr
                            for e in range(2 * WINDOW):
                                left = e < WINDOW
                                off = tl.where(left, WINDOW - e, e - WINDOW + 1)
                                if tl.where(left, off <= n_left, off <= n_right):
                                    word = tl.load(ids + tl.where(left, at - off, at + off)).to(tl.int64)
                                    h = tl.load(inp + word * DIM + d, mask=dmask, other=0.0, cache_modifier=".cg")
                                    err, l_e, g_e, after = _example(
                                        h, target, nseed, first_draw if SHARED else nctr, out, bias, row_offset,
                                        const, accept, alias, vocab, points, path_labels, path_mask, lr, saturated,
                                        d, dmask, DIM, K, BLOCK_K, SAMPLED, SKIP_HITS, HAS_BIAS, HAS_OFFSET, PATH)
                                    nctr = after
                                    tl.atomic_add(inp + word * DIM + d, err, mask=dmask, sem="relaxed")
                                    loss += l_e
                                    gsum += g_e
                                    trained += 1
                        else:
                            lmask = lok[:, None] & dmask[None, :]
                            rmask = rok[:, None] & dmask[None, :]
                            lrows = tl.load(inp + lid[:, None] * DIM + d[None, :], mask=lmask, other=0.0,
                                            cache_modifier=".cg")
                            rrows = tl.load(inp + rid[:, None] * DIM + d[None, :], mask=rmask, other=0.0,
                                            cache_modifier=".cg")
                            n = n_left + n_right
                            h = tl.sum(lrows, 0) + tl.sum(rrows, 0)
                            if n > 1:
                                h = h * (1.0 / n.to(tl.float32))
                            err, l_e, g_e, nctr = _example(
                                h, target, nseed, nctr, out, bias, row_offset, const, accept, alias, vocab, points,
                                path_labels, path_mask, lr, saturated, d, dmask, DIM, K, BLOCK_K, SAMPLED, SKIP_HITS,
                                HAS_BIAS, HAS_OFFSET, PATH)
                            # every bag word moves by the whole error (a word twice in the window, twice)
                            tl.atomic_add(inp + lid[:, None] * DIM + d[None, :],
                                          err[None, :] + tl.zeros((BLOCK_W, BLOCK_D), tl.float32), mask=lmask,
                                          sem="relaxed")
                            tl.atomic_add(inp + rid[:, None] * DIM + d[None, :],
                                          err[None, :] + tl.zeros((BLOCK_W, BLOCK_D), tl.float32), mask=rmask,
                                          sem="relaxed")
                            loss += l_e
                            gsum += g_e
                            trained += 1
        tl.store(loss_out + pid, loss)
        tl.store(gsum_out + pid, gsum)
        tl.store(examples_out + pid, trained)


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


@dataclass(frozen=True)
class Launch:
    """One launch of _window_sgd, laid out: its grid (programs), arguments, compile-time constants
    and warps, and the per-program partial sums it writes (loss, Σ g, examples)."""

    programs: int
    args: tuple
    constexprs: dict
    num_warps: int
    partials: tuple


def window_sgd(inp: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None, ids: torch.Tensor,
               centres: torch.Tensor, window: int, skipgram: bool, lr: float, seed: int | torch.Tensor,
               programs: int, noise: tuple[torch.Tensor, torch.Tensor, int, bool] | None = None,
               tree: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
               row_offset: torch.Tensor | None = None, const_offset: float | torch.Tensor = 0.0,
               saturated: float = 0.0, lr_end: float | None = None, first: int = 0, shared_noise: bool = False,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fused.window_sgd's training on the device, the centres shared out over `programs` programs
    in contiguous slices (see the module's docstring). `seed` is an int or a 1-element int64
    tensor on the device (its bits, as the C kernel's uint64 seed); `first` is the index of
    centres[0] in its chunk (a slice's seeds follow from it). Centres whose id is a sentence end
    are skipped; `shared_noise`: skip-gram's window draws its noise words once for all its
    examples (fused.window_sgd's). Returns (summed loss, summed d loss / d y, examples trained),
    0-d tensors on the tables' device."""
    launch = plan(inp, out, bias, ids, centres, window, skipgram, lr, seed, programs, noise, tree, row_offset,
                  const_offset, saturated, lr_end, first, shared_noise)
    _window_sgd[(launch.programs,)](*launch.args, **launch.constexprs, num_warps=launch.num_warps)
    loss, gsum, examples = launch.partials
    return loss.sum(dtype=torch.float64), gsum.sum(dtype=torch.float64), examples.sum()


def plan(inp: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None, ids: torch.Tensor,
         centres: torch.Tensor, window: int, skipgram: bool, lr: float, seed: int | torch.Tensor,
         programs: int, noise: tuple[torch.Tensor, torch.Tensor, int, bool] | None = None,
         tree: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
         row_offset: torch.Tensor | None = None, const_offset: float | torch.Tensor = 0.0,
         saturated: float = 0.0, lr_end: float | None = None, first: int = 0, shared_noise: bool = False,
         ) -> Launch:
    """window_sgd's launch, checked and laid out, without running it (compile_ahead takes it too)."""
    if not AVAILABLE:
        raise RuntimeError("the Triton kernel needs triton (pip install triton)")
    device = inp.device
    if (noise is None) == (tree is None):
        raise ValueError("give noise or tree, not both")
    if ids.dtype != torch.int32 or centres.dtype != torch.int64:
        raise ValueError("ids must be int32 and centres int64")
    dim = inp.shape[1]
    if inp.stride() != (dim, 1) or out.stride() != (dim, 1):
        raise ValueError("the Triton kernel trains row-contiguous tables (not model.align_rows()'s)")
    programs = max(1, int(programs))
    per = max(1, -(-len(centres) // programs))
    programs = max(1, -(-len(centres) // per))  # none idle
    if not torch.is_tensor(seed):  # the uint64 seed's bits as an int64
        seed &= (1 << 64) - 1
        seed = torch.tensor([seed - (1 << 64) if seed >= 1 << 63 else seed], dtype=torch.int64, device=device)
    if not torch.is_tensor(const_offset):
        const_offset = torch.full((1,), float(const_offset), dtype=torch.float32, device=device)
    const_offset = const_offset.reshape(1).to(torch.float32)
    dummy_f = inp  # never read: the flags below say which optional tables exist
    if noise is not None:
        accept, alias, negatives, skip_hits = noise
        k, sampled, vocab, path = 1 + negatives, True, len(accept), 1
        points, labels, mask = centres, dummy_f, centres
    else:
        points, labels, mask = tree
        k, sampled, skip_hits, vocab, path = points.shape[1], False, False, 1, points.shape[1]
        accept, alias = dummy_f, centres
        mask = mask.view(torch.uint8) if mask.dtype == torch.bool else mask
    partials = (torch.empty(programs, dtype=torch.float32, device=device),
                torch.empty(programs, dtype=torch.float32, device=device),
                torch.empty(programs, dtype=torch.int64, device=device))
    block_d, block_k = _pow2(dim), _pow2(k)
    tile = block_k * block_d
    args = (inp, out, dummy_f if bias is None else bias, ids, len(ids), centres, len(centres), int(first), per, seed,
            accept, alias, vocab, points, labels, mask, dummy_f if row_offset is None else row_offset, const_offset,
            float(lr), float(lr if lr_end is None else lr_end), float(saturated), *partials)
    constexprs = dict(DIM=dim, BLOCK_D=block_d, WINDOW=int(window), BLOCK_W=_pow2(window), SKIPGRAM=bool(skipgram),
                      K=k, BLOCK_K=block_k, SAMPLED=sampled, SKIP_HITS=bool(skip_hits), HAS_BIAS=bias is not None,
                      HAS_OFFSET=row_offset is not None, PATH=path, SHARED=bool(shared_noise and skipgram and sampled))
    return Launch(programs, args, constexprs, 1 if tile <= 1024 else 2 if tile <= 4096 else 4, partials)


def compile_ahead(launch: Launch, capability: int = 90):
    """Compile `launch`'s kernel for an NVIDIA GPU of this compute capability (90: Hopper, the
    H100/H200) without one: Triton's front end and ptxas, which its wheel ships, on the CPU. The
    interpreter (TRITON_INTERPRET=1) checks what the kernel computes but not that it compiles: types
    that change inside a loop, a runtime value where a constant is needed. Argument types are those
    the JIT gives the same arguments. Returns Triton's compiled kernel (its cubin in .asm["cubin"])."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import mangle_type

    names = _window_sgd.arg_names
    signature = {name: mangle_type(arg) for name, arg in zip(names, launch.args)}
    signature.update({name: "constexpr" for name in launch.constexprs})
    source = ASTSource(fn=_window_sgd, signature=signature, constexprs=launch.constexprs)
    return triton.compile(source, target=GPUTarget("cuda", capability, 32), options={"num_warps": launch.num_warps})
