"""Sums over the ranks of one host through shared memory (w2v_nce.hostsum).

Oracles: gloo's own all-reduce of the same tensors (2 ranks: bit for bit, bf16 included), the sum in
rank order worked out from every rank's tensors (3 ranks), and the two failures gloo reports: a
rank that exits (at once) and one that stays silent (after the timeout).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as td

from conftest import require_kernel
from oracles import run_ranks
from w2v_nce import distributed, hostsum


@pytest.fixture(autouse=True)
def _kernel():
    require_kernel()  # the counters' atomics are the C kernel's


DTYPES = (torch.bfloat16, torch.float32, torch.float64)


def _tensors(rank: int, count: int) -> list[torch.Tensor]:
    """Rank's tensors, exchange by exchange: sizes from one float to ~1,000, three dtypes."""
    g = torch.Generator().manual_seed(1000 + rank)
    sizes = torch.Generator().manual_seed(7)  # alike on every rank, as collectives need
    out = []
    for i in range(count):
        n = int(torch.randint(1, 1000, (1,), generator=sizes))
        out.append(torch.randn(n, generator=g, dtype=torch.float64).to(DTYPES[i % 3]) * 10)
    return out


def _sums(rank: int, folder: Path, capacity: int) -> None:
    dist = distributed.current(60.0)
    host, why = hostsum.HostSum.connect(dist, capacity)
    assert host is not None and why is None
    mine = _tensors(rank, 60)
    by_host = [t.clone() for t in mine]
    handles = []
    for i, t in enumerate(by_host):  # several in flight, waited in twos and threes, some out of order
        handles.append(host.start(t))
        if i % 3 == 2:
            handles.pop(1).wait()
            for h in handles:
                h.wait()
            handles = []
    for h in handles:
        h.wait()
    by_gloo = [t.clone() for t in mine]
    for t in by_gloo:
        td.all_reduce(t)
    torch.save({"host": by_host, "gloo": by_gloo}, folder / f"sums-{rank}.pt")


@pytest.mark.parametrize("world", [2, 3])
def test_host_sums_are_the_ranks_sums_in_rank_order(tmp_path, world):
    """60 exchanges of 1-1,000 values in bf16, float32 and float64 through a ring of 8 KB, so that
    spans wrap and wait for the others to have read them: every rank holds the sum in rank order
    (float32 for bf16, rounded back), the same bits on every rank; with 2 ranks that is also gloo's
    all-reduce bit for bit."""
    before = set(hostsum.SHM.glob("w2v-nce-*"))
    errors = run_ranks(_sums, tmp_path, 8192, world=world)
    assert not errors, errors
    assert set(hostsum.SHM.glob("w2v-nce-*")) == before  # unlinked once mapped
    got = [torch.load(tmp_path / f"sums-{rank}.pt") for rank in range(world)]
    every = [_tensors(rank, 60) for rank in range(world)]
    for i in range(60):
        wide = torch.float64 if every[0][i].dtype == torch.float64 else torch.float32
        expected = every[0][i].to(wide)
        for rank in range(1, world):
            expected = expected + every[rank][i].to(wide)
        expected = expected.to(every[0][i].dtype)
        for rank in range(world):
            assert torch.equal(got[rank]["host"][i], expected), (i, rank)
            if world == 2:
                assert torch.equal(got[rank]["host"][i], got[rank]["gloo"][i]), (i, rank)


def _peer_exits(rank: int, folder: Path) -> None:
    dist = distributed.current(60.0)
    host, _ = hostsum.HostSum.connect(dist, 4096)
    if rank == 1:
        os._exit(0)  # gone without a word, mid-run
    start = time.monotonic()
    try:
        with dist._peers():
            host.start(torch.ones(4)).wait()
    finally:
        (folder / "waited").write_text(f"{time.monotonic() - start:.2f}")


def test_a_rank_that_exits_fails_the_others_wait_at_once(tmp_path):
    """Its pidfd wakes the waiting rank: RankFailed (as a reset gloo connection gives) within
    seconds, not after the 60 s timeout."""
    errors = run_ranks(_peer_exits, tmp_path, timeout=50)
    assert errors.keys() == {0}, errors
    assert errors[0].startswith("RankFailed: lost the other ranks"), errors[0]
    assert float((tmp_path / "waited").read_text()) < 10


def _peer_silent(rank: int, folder: Path) -> None:
    dist = distributed.current(1.0)
    host, _ = hostsum.HostSum.connect(dist, 4096)
    if rank == 1:
        time.sleep(4)  # alive, saying nothing
        return
    with dist._peers():
        host.start(torch.ones(4)).wait()


def test_a_silent_rank_times_the_master_out_with_one_line(tmp_path):
    errors = run_ranks(_peer_silent, tmp_path, timeout=50)
    assert errors.keys() == {0}, errors
    assert errors[0].startswith("UserError: no answer from the other ranks within dist_timeout=1 s"), errors[0]


def _one_rank_cannot(rank: int, folder: Path, where: str) -> None:
    if where == "master-shm" and rank == 0:
        hostsum.SHM = folder / "no-such-dir"
    if where == "rank1-pidfd" and rank == 1:
        del os.pidfd_open
    if where == "too-large":
        hostsum.MAX_BYTES = 8192
    host, why = hostsum.HostSum.connect(distributed.current(60.0), 4096)
    (folder / f"host-{rank}.json").write_text(json.dumps([host is not None, why]))


@pytest.mark.parametrize("where", ["master-shm", "rank1-pidfd", "too-large"])
def test_where_one_rank_cannot_map_the_file_every_rank_keeps_gloo(tmp_path, where):
    """No /dev/shm on the master, no pidfd on rank 1, or rings past MAX_BYTES: None on both (they
    agree) and the same reason, naming the rank; no file left."""
    before = set(hostsum.SHM.glob("w2v-nce-*"))
    errors = run_ranks(_one_rank_cannot, tmp_path, where)
    assert not errors, errors
    got = [json.loads((tmp_path / f"host-{rank}.json").read_text()) for rank in (0, 1)]
    assert got[0] == got[1] and got[0][0] is False, got
    why = got[0][1]
    expected = {"master-shm": "no-such-dir: No such file or directory", "rank1-pidfd": "rank 1: no pidfds (Linux 5.3)",
                "too-large": "its rings would take 0 MB"}[where]
    assert expected in why and why.startswith("rank") == (where == "rank1-pidfd"), why
    assert set(hostsum.SHM.glob("w2v-nce-*")) == before
