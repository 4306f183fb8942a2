"""scripts/emulate_programs.py, the GPU kernel's programs emulated in lockstep on the CPU, against
the C kernel: with one program it is the kernel, random streams included, so the quality it
measures at many programs (docs/gpu.md) is the kernel's with only the staleness added."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from conftest import require_kernel
from oracles import SEED, assert_same_training, c_kernel, copy_tables, kernel_case
from w2v_nce.model import Model
from w2v_nce.windows import PaddedCentres

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "emulate_programs.py"


def _script():
    spec = importlib.util.spec_from_file_location("emulate_programs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model(tables):
    model = Model(1, 1, bias=False, device=torch.device("cpu"), generator=torch.Generator())
    model.inp, model.out, model.bias = tables
    return model


@pytest.mark.parametrize("loss", ["neg", "nce", "hs"])
@pytest.mark.parametrize("arch", ["cbow", "skipgram", "skipgram-shared"])
def test_one_program_is_the_c_kernel(loss, arch):
    require_kernel()
    emulate = _script()
    skipgram, shared = arch.startswith("skipgram"), arch.endswith("shared")
    objective, tables, ids, gen = kernel_case(loss, tokens=30 if skipgram else 60)
    centres = torch.nonzero(ids >= 0).squeeze(1)
    centres = centres[torch.randperm(len(centres), generator=gen)]
    window = 2 if skipgram else 3
    want_tables, got_tables = copy_tables(tables), copy_tables(tables)
    want = c_kernel(objective, want_tables, ids, centres, window, skipgram, SEED, shared_noise=shared)
    seed = torch.tensor([SEED - (1 << 64)])  # the bits of SEED (past 2^63) as an int64
    batch = PaddedCentres(ids, centres, window, skipgram, seed, shared)
    loss_sum, examples, gsum = emulate.lockstep(_model(got_tables), objective, batch, 0.1, 0.1, programs=1)
    assert_same_training(((float(loss_sum), gsum, examples), got_tables), (want, want_tables))


def test_programs_in_lockstep_read_the_round_s_start():
    """Two programs whose only examples share their target and noise rows: each steps from the
    rows as they were, and both steps land (their sum), unlike one program training both in turn."""
    require_kernel()
    emulate = _script()
    objective, tables, ids, _ = kernel_case("neg", tokens=60)
    centres = torch.nonzero(ids >= 0).squeeze(1)[:2]
    seed = torch.tensor([SEED - (1 << 64)])  # the bits of SEED (past 2^63) as an int64
    both, each = copy_tables(tables), copy_tables(tables)
    emulate.lockstep(_model(both), objective, PaddedCentres(ids, centres, 3, False, seed), 0.1, 0.1, programs=2)
    for start in (0, 1):  # each program alone, from the same start: its step
        alone = copy_tables(tables)
        emulate.lockstep(_model(alone), objective, PaddedCentres(ids, centres[start:start + 1], 3, False, seed,
                                                                  start=start), 0.1, 0.1, programs=1)
        for t, a, s in zip(each, alone, tables):
            if t is not None:
                t += a - s
    for got, want in zip(both, each):
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
