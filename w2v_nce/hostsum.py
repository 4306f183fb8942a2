"""All-reduces (sums) beside training between the ranks of one host, through shared memory.

gloo carries a collective over loopback TCP: its threads wake and the kernel copies the bytes
through sockets, on the same two cores that train (docs/distributed.md: the rounds cost ~3.7 s of
kernel time over two ranks of ~20 s). Ranks on one host can instead each write their buffer into
a file in /dev/shm that all of them map and read each other's (DeepSpeed's CPU all-reduce takes
this route when every rank is local: csrc/cpu/comm/shm.cpp, which spins on state flags where this
sleeps in a futex): no bytes go through the kernel, only a futex wake when a rank publishes (two
an exchange).

The file: a first cache line (a token the ranks check), then per rank two counters, each on its
own line (the last exchange it has published, the last it has read), then a ring of `capacity`
bytes per rank. Every rank starts the same exchanges in the same order with the same sizes (as
gloo's collectives must be), so exchange x lies at the same offset of every rank's ring. A rank
copies its buffer there and publishes x; waiting on x, a rank reads every rank's copy once all have
published x, sums them in rank order (so every rank gets the same bits) into its own buffer, and
publishes that it has read x. A span of the ring is written again only once every rank has read
what lay there. A rank that must wait sleeps in a futex on the counter it waits for (a rank that
polled would take a core from the rank it waits for), waking every 20 ms to look at the others'
pidfds: one that has exited fails the wait, as a reset connection fails gloo's.

The counters take release and acquire loads and stores and the futex (the C kernel's
counter_publish, counter_least, counter_wait), so this needs the kernel; `connect` says None, and
why, where anything is missing, and the caller keeps gloo.
"""

from __future__ import annotations

import mmap
import os
import secrets
import select
import time
import weakref
from collections import deque
from pathlib import Path

import torch

from . import fused

LINE = 64  # bytes: a cache line; counters and spans start on their own
SHM = Path("/dev/shm")
MAX_BYTES = 1 << 30  # all ranks' rings: past this (sync_rows = 0 and a large vocabulary), gloo


def _align(n: int) -> int:
    return -(-n // LINE) * LINE


class HostSum:
    """Sums over the ranks of one host (see the module's docstring); `connect` makes one."""

    def __init__(self, mapping: mmap.mmap, rank: int, world: int, capacity: int, peers: list[int], timeout: float):
        self.rank, self.world, self.capacity, self.timeout = rank, world, capacity, timeout
        self._map = mapping  # kept open: the tensors below are views of it
        memory = torch.frombuffer(mapping, dtype=torch.uint8)
        self._counters = memory[LINE : LINE * (1 + 2 * world)].view(torch.int64)
        rings = LINE * (1 + 2 * world)
        self._rings = [memory[rings + r * capacity : rings + (r + 1) * capacity] for r in range(world)]
        self._poll = select.poll()  # the other ranks' pidfds: readable once a rank has exited
        for fd in peers:
            self._poll.register(fd, select.POLLIN)
        self.close = weakref.finalize(self, _close, peers)  # the pidfds, once (at exit at the latest)
        self._stride = 2 * LINE // 8  # int64s from one rank's counter to the next rank's
        self.started = 0  # the last exchange started here
        self._next = 0  # where the next exchange goes in the ring
        self._live: deque[tuple[int, int, int]] = deque()  # (x, offset, bytes) not yet read by every rank
        self._pending: deque[_Sum] = deque()  # started here, not yet read here

    @staticmethod
    def connect(dist, capacity: int) -> tuple[HostSum | None, str | None]:
        """Collective: every rank maps one new file in /dev/shm with a ring of `capacity` bytes a
        rank; or, on every rank, None and why, where any rank cannot (no C kernel, no pidfd: Linux
        5.3, no /dev/shm or no room in it). The file is unlinked once all have mapped it."""
        capacity = _align(capacity)
        size = LINE * (1 + 2 * dist.world) + dist.world * capacity
        missing = ("the C kernel is not built" if not fused.AVAILABLE
                   else "no pidfds (Linux 5.3)" if not (hasattr(os, "pidfd_open") and hasattr(os, "posix_fallocate"))
                   else f"its rings would take {size / 2**20:.0f} MB" if size > MAX_BYTES else None)

        def create() -> tuple[str, bytes] | str:
            if missing:
                return missing
            token = secrets.token_bytes(8)
            path = SHM / f"w2v-nce-{os.getpid()}-{token.hex()}"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as exc:
                return f"{SHM}: {exc.strerror}"
            try:
                os.posix_fallocate(fd, 0, size)  # the pages now, or ENOSPC now (not SIGBUS mid-run)
                os.pwrite(fd, token, 0)
            except OSError as exc:
                path.unlink()
                return f"{size / 2**20:.0f} MB in {SHM}: {exc.strerror}"
            finally:
                os.close(fd)
            return str(path), token

        made = dist.from_master(create)
        try:  # whatever happens (a rank lost mid-way too), the master unlinks the file
            pids = dist.gather(os.getpid())
            host, peers, why = None, [], made if isinstance(made, str) else missing
            if why is None:
                path, token = made
                try:
                    with open(path, "r+b") as f:
                        mapping = mmap.mmap(f.fileno(), size)
                    if mapping[:8] != token:
                        raise OSError(0, "another file under its name")
                    for rank, pid in enumerate(pids):
                        if rank != dist.rank:
                            peers.append(os.pidfd_open(pid))
                    host = HostSum(mapping, dist.rank, dist.world, capacity, peers, dist.timeout)
                except Exception as exc:  # noqa: BLE001 - any failure here means gloo, on every rank
                    why = f"{path}: {getattr(exc, 'strerror', None) or exc}"
            reasons = dist.gather(why)
        finally:
            if not isinstance(made, str) and dist.master:
                Path(made[0]).unlink(missing_ok=True)
        failed = [(rank, reason) for rank, reason in enumerate(reasons) if reason is not None]
        if failed:
            if host is not None:
                host.close()
            else:
                _close(peers)
            rank, reason = failed[0]
            return None, reason if rank == 0 else f"rank {rank}: {reason}"
        return host, None

    def fits(self, t: torch.Tensor) -> bool:
        return (t.device.type == "cpu" and t.is_contiguous() and t.is_floating_point()
                and _align(t.numel() * t.element_size()) <= self.capacity)

    def start(self, t: torch.Tensor) -> _Sum:
        """Start the sum of `t` (contiguous, on the CPU) over the ranks; its `wait()` leaves the sum in
        `t`, as an all-reduce does."""
        n = t.numel() * t.element_size()
        span = _align(n)
        if not self.fits(t):
            raise ValueError(f"hostsum: {n} bytes do not fit a ring of {self.capacity} (or not a contiguous float CPU tensor)")
        offset = self._next if self._next + span <= self.capacity else 0
        while self._live and any(o < offset + span and offset < o + b for _, o, b in self._live):
            oldest = self._live.popleft()[0]
            self._read(oldest)  # (if this rank has not yet itself)
            self._until(1, oldest)  # every rank has read the oldest span: it may be written
        x = self.started + 1
        self._rings[self.rank][offset : offset + n].copy_(t.view(-1).view(torch.uint8))
        fused.counter_publish(self._counter(0, self.rank), x)
        self.started, self._next = x, offset + span
        self._live.append((x, offset, span))
        handle = _Sum(self, x, t, offset, n)
        self._pending.append(handle)
        return handle

    def _read(self, x: int) -> None:
        """Read every exchange started up to x, in order: each buffer takes the sum."""
        while self._pending and self._pending[0].x <= x:
            done = self._pending.popleft()
            self._until(0, done.x)
            parts = [ring[done.offset : done.offset + done.n].view(done.t.dtype) for ring in self._rings]
            total = parts[0].to(torch.float64 if done.t.dtype == torch.float64 else torch.float32, copy=True)
            for part in parts[1:]:
                total += part
            done.t.view(-1).copy_(total)
            fused.counter_publish(self._counter(1, self.rank), done.x)

    def _counter(self, which: int, rank: int) -> int:
        """The address of rank's counter: 0 the last exchange published, 1 the last read."""
        return self._counters.data_ptr() + (rank * self._stride + which * LINE // 8) * 8

    def _until(self, which: int, x: int) -> None:
        """Wait until every rank's counter `which` reaches x; a rank that exits or a wait past the
        timeout raises RuntimeError (worded as gloo's, for Dist._peers)."""
        first = self._counter(which, 0)
        if fused.counter_least(first, self.world, self._stride) >= x:
            return
        deadline = time.monotonic() + self.timeout
        while fused.counter_wait(first, self.world, self._stride, x, 20_000) < x:
            gone = self._poll.poll(0)
            if gone and fused.counter_least(first, self.world, self._stride) < x:  # (it may have published, then left)
                raise RuntimeError("Connection reset by peer: a rank of this host exited (shared-memory sync)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"shared-memory sync timed out after {self.timeout:g} s")


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


class _Sum:
    """One exchange in flight: `wait()` leaves the ranks' sum in its buffer."""

    def __init__(self, host: HostSum, x: int, t: torch.Tensor, offset: int, n: int):
        self.host, self.x, self.t, self.offset, self.n = host, x, t, offset, n

    def wait(self) -> None:
        self.host._read(self.x)
