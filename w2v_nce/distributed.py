"""Several processes training one model under torchrun: data parallel, synchronised by averaging.

torchrun starts N copies of `w2v-nce train ...` with RANK, WORLD_SIZE, LOCAL_RANK and
LOCAL_WORLD_SIZE in their environment (one node or several: its rendezvous). Each process, a
rank, in `train.train`:

  1. joins the process group (`session`): gloo on the CPU, NCCL on GPUs, device cuda:LOCAL_RANK;
  2. reads its shard of the corpus (`Dist.shard`): of plain files its byte range (1/N of their
     bytes, cut at line starts); with a .gz file, its own files when there are at least N, else
     every N-th sentence (or 10,000-token piece of a longer one) of the stream;
  3. counts its shard within `vocab_budget` types; the master merges the ranks' counts, one rank
     at a time, builds the vocabulary and hands it to every rank (w2v_nce.vocab.build_vocabulary,
     through `Dist.to_master` and `Dist.from_master`);
  4. holds the full tables, initialised alike (one seed), and trains its shard with its threads
     or its GPU, drawing from its own random stream;
  5. every `sync_every` of its words, averages rows [0, K) of the tables with the others
     (`RowSync`): the most frequent words, K = sync_rows x the largest power of two dividing the
     sync's number, so row r is synced about every r / sync_rows syncs; at each epoch's end all
     rows, so that the ranks end every epoch with the same tables;
  6. the master (rank 0) alone writes files and draws the progress bar.

One process (no torchrun) is `Dist()` with `NoSync`: nothing to synchronise, nothing changes.

Failures: an error on any rank while reading its shard reaches every rank (`Dist.together`) and
the master reports it as one line (errors.reports_errors: the other ranks print none). A rank that
dies otherwise makes the others' next collective fail, at once with gloo (connection reset) or
after `dist_timeout`: they stop quietly (`RankFailed`), the dead rank's own line or torchrun's
summary says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as td

from w2v_nce import hostsum
from w2v_nce.config import Config
from w2v_nce.corpus import (ByteRange, Corpus, Shard, _is_path_list, corpus_files, describe, file_sizes,
                             gzipped)
from w2v_nce.errors import RankFailed, UserError


@dataclass(frozen=True)
class Dist:
    """This process's place among the ranks; `Dist()` is one process alone."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    group: bool = False  # a process group exists (torchrun): collectives run, even for a world of 1
    timeout: float = Config.dist_timeout
    replicas: bool = False  # every rank reads the whole corpus with one random stream: a check of the
    #                         synchronisation (the run must then equal one process's), not a way to train
    objects: Any = None  # process group for pickled objects (gloo, also beside NCCL); None: the default

    @property
    def master(self) -> bool:
        return self.rank == 0

    def place(self, device: torch.device) -> torch.device:
        """A rank's device: on GPUs, its own (cuda:LOCAL_RANK)."""
        return torch.device("cuda", self.local_rank) if self.group and device.type == "cuda" else device

    def cores(self) -> int:
        """CPU cores for this rank's threads: the node's, shared among its ranks."""
        return max(1, (os.cpu_count() or 1) // self.local_world)

    def data_seed(self, seed: int) -> int | None:
        """The seed of this rank's stream for subsampling, windows and noise, or None to go on with
        the stream that initialised the tables (one process, rank 0, replicas)."""
        return None if self.rank == 0 or self.replicas else seed + 1_000_003 * self.rank

    def shard(self, corpus: Corpus) -> Corpus:
        """This rank's part of `corpus`: of plain files, its `ByteRange` (it reads its own bytes
        only); of a corpus with a .gz file (gzip cannot be entered at an offset), its own files
        when there are at least one per rank (balanced by size, each in corpus order), else a
        `Shard` of the stream (every rank then reads it all and keeps every world-th unit). With
        phrases, they are joined in the rank's part of the corpus."""
        from w2v_nce.phrases import PhrasedCorpus  # (a corpus filter: imported where it is taken apart)

        if self.world == 1 or self.replicas:
            return corpus
        if isinstance(corpus, PhrasedCorpus):
            inner = self.shard(corpus.corpus)
            if isinstance(inner, ByteRange):  # its files' last lines ended, as phrases read files
                return PhrasedCorpus(corpus.model, dataclasses.replace(inner, file_ends=True), corpus.tokenizer)
        if isinstance(corpus, (str, os.PathLike)) or _is_path_list(corpus):
            files = corpus_files(corpus)
            if not any(map(gzipped, files)):
                return ByteRange(files, self.rank, self.world)
            if len(files) >= self.world:
                return balanced(files, self.world)[self.rank]
        return Shard(corpus, self.rank, self.world)

    def same_files(self, corpus: Corpus) -> None:
        """A UserError on every rank unless every rank sees the corpus's files with the same sizes
        (per-node copies that differ would make the byte ranges or the files' groups overlap or
        leave gaps, without any other sign)."""
        if not self.group or self.world == 1 or self.replicas:
            return
        seen = self.gather(self.together(file_sizes, corpus))
        for rank, files in enumerate(seen):
            if files == seen[0]:
                continue
            if files is None or seen[0] is None or len(files) != len(seen[0]):
                raise UserError(f"rank {rank} sees another corpus than rank 0 ({len(files or [])} files against "
                                f"{len(seen[0] or [])}): every node needs the same files at the same path")
            (path, size), (first, first_size) = next((a, b) for a, b in zip(files, seen[0]) if a != b)
            raise UserError(f"corpus file '{first}' is {_bytes(first_size)} on rank 0 but '{path}' is {_bytes(size)} "
                            f"on rank {rank}: every node needs the same files at the same path")

    def shard_note(self, corpus: Corpus) -> str | None:
        """What the master says when the ranks cannot read their parts alone (a .gz too few to share)."""
        try:
            if self.world == 1 or self.replicas or not isinstance(self.shard(corpus), Shard):
                return None
        except UserError:  # reading the shard says it, on every rank
            return None
        return (f"a .gz file cannot be cut at byte offsets: each of the {self.world} ranks reads all of "
                f"'{describe(corpus)}' and keeps one line in {self.world} (decompress it, or split it into "
                f"{self.world}+ files, so that each rank reads only its part)")

    # -- agreement: one outcome on every rank

    def together(self, fn: Callable, *args) -> Any:
        """fn(*args) on every rank; a UserError on any of them is raised on all (named by its rank)."""
        if not self.group:
            return fn(*args)
        try:
            value, error = fn(*args), None
        except UserError as exc:
            value, error = None, str(exc)
        errors: list = [None] * self.world
        with self._peers():
            td.all_gather_object(errors, error, group=self.objects)
        failed = [(rank, message) for rank, message in enumerate(errors) if message is not None]
        if failed:
            if hasattr(value, "close"):
                value.close()
            rank, message = failed[0]
            raise UserError(message if rank == 0 else f"rank {rank}: {message}")
        return value

    def from_master(self, fn: Callable, *args) -> Any:
        """fn(*args) run by the master alone; its result (or its UserError) on every rank."""
        if not self.group:
            return fn(*args)
        box: list = [None]
        if self.master:
            try:
                box = [(True, fn(*args))]
            except UserError as exc:
                box = [(False, str(exc))]
        with self._peers():
            td.broadcast_object_list(box, src=0, group=self.objects)
        ok, value = box[0]
        if not ok:
            raise UserError(value)
        return value

    def total(self, n: int) -> int:
        """The sum of `n` over the ranks."""
        if not self.group:
            return n
        with self._peers():
            t = torch.tensor([n], dtype=torch.int64)
            td.all_reduce(t, group=self.objects)
        return int(t)

    def gather(self, obj: Any) -> list:
        """Every rank's `obj`, in rank order."""
        if not self.group:
            return [obj]
        out: list = [None] * self.world
        with self._peers():
            td.all_gather_object(out, obj, group=self.objects)
        return out

    def to_master(self, obj: Any) -> Iterator[Any] | None:
        """Every rank's `obj`, handed to the master one rank at a time (it holds one part at once):
        on the master an iterator over them in rank order, on the other ranks None once sent."""
        if not self.group:
            return iter([obj])
        if not self.master:
            with self._peers():
                td.send_object_list([obj], dst=0, group=self.objects)
            return None

        def parts() -> Iterator[Any]:
            yield obj
            for rank in range(1, self.world):
                box: list = [None]
                with self._peers():
                    td.recv_object_list(box, src=rank, group=self.objects)
                yield box[0]

        return parts()

    @contextlib.contextmanager
    def _peers(self) -> Iterator[None]:
        """Around a collective: a rank gone (connection reset) or silent past the timeout stops this
        one quietly; a timeout is reported by the master (no other rank may have said anything)."""
        try:
            yield
        except RuntimeError as exc:
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if self.master and "timed out" in cause.lower():
                raise UserError(f"no answer from the other ranks within dist_timeout={self.timeout:g} s: "
                                f"a rank is stuck or far slower ({cause[:200]})") from None
            raise RankFailed(f"lost the other ranks: {cause[:200]}") from None


def _bytes(size: int | None) -> str:
    return "missing" if size is None else f"{size:,} bytes"


def balanced(files: list[Path], parts: int) -> list[list[Path]]:
    """`files` in `parts` groups of about equal bytes (largest first to the lightest group), each
    group in corpus order. A missing file counts as empty (reading it says what is wrong).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name, size in (("a", 5), ("b", 3), ("c", 3), ("d", 1)):
    ...     _ = (d / name).write_text("x" * size)
    >>> [[p.name for p in group] for group in balanced(sorted(d.iterdir()), 2)]
    [['a', 'd'], ['b', 'c']]
    """

    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    loads = [0] * parts
    groups: list[list[int]] = [[] for _ in range(parts)]
    for i in sorted(range(len(files)), key=lambda i: -size(files[i])):
        lightest = loads.index(min(loads))
        groups[lightest].append(i)
        loads[lightest] += size(files[i])
    return [[files[i] for i in sorted(group)] for group in groups]


@contextlib.contextmanager
def session(device_type: str, timeout: float, dist: Dist | None = None) -> Iterator[Dist]:
    """This process's `Dist` for one run: the one given; else the process group already set up
    (by the caller); else, under torchrun (RANK in the environment), a new one joined here and
    left at the end (gloo, or NCCL for `device_type` cuda); else one process alone."""
    if dist is not None:
        yield dist
        return
    if td.is_available() and td.is_initialized():
        yield current(timeout)
        return
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        yield Dist()
        return
    if not td.is_available():
        raise UserError("this torch build has no torch.distributed: it cannot train under torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        # NCCL takes one GPU a rank (two ranks on one device: ncclInvalidUsage "Duplicate GPU
        # detected"); said on every rank of the node before the group forms, so none waits for the rest
        gpus, ranks = torch.cuda.device_count(), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if ranks > gpus:
            raise UserError(f"torchrun started {ranks} ranks on this node, which has {gpus} GPU"
                            f"{'' if gpus == 1 else 's'}: NCCL needs a GPU of its own for each rank "
                            f"(--nproc_per_node {gpus}, or --device cpu)")
        torch.cuda.set_device(local_rank)
    td.init_process_group(backend, timeout=timedelta(seconds=timeout))
    try:
        yield current(timeout)
    finally:
        td.destroy_process_group()


def current(timeout: float = Config.dist_timeout) -> Dist:
    """The `Dist` of the process group this process has joined."""
    objects = td.new_group(backend="gloo") if td.get_backend() == "nccl" else None
    return Dist(rank=td.get_rank(), world=td.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")), group=True, timeout=timeout,
                objects=objects)


# --------------------------------------------------------------------------- synchronisation


def round_rows(count: int, first: int, levels: int) -> int:
    """K, the rows of sync number `count` (from 1): first x 2^j for the largest 2^j dividing count,
    j below `levels` (0: no bound). Each size syncs as many rows a round on average as the top one,
    rarer rows less often: a row's drift between syncs, its count times the interval, stays level
    down the Zipf curve (docs/distributed.md)."""
    level = (count & -count).bit_length() - 1
    return first << (min(level, levels - 1) if levels else level)


class NoSync:
    """One process: nothing to synchronise; its words are all the words."""

    lr_scale = 1.0  # this rank's learning rate is cfg.lr times this
    note: str | None = None  # what the master tells the user about how the ranks sync

    def begin_epoch(self, words_done: int) -> float:
        """This rank's word counter at the start of an epoch, given all ranks' words so far."""
        return words_done

    def words(self, local: float) -> float:
        """All ranks' words (for the learning rate and the progress bar), given this rank's counter."""
        return local

    def step(self, local: float) -> None:
        """After a batch (the first worker thread): synchronise if it is time."""

    def end_epoch(self, local: float, *totals: float) -> tuple[float, ...]:
        """At an epoch's end, this rank's counter at `local`: every rank's tables made equal;
        `totals` summed over the ranks."""
        return totals


class RowSync(NoSync):
    """The ranks' synchronisation: after every `sync_every` words of a rank, the rows [0, K) of the
    tables (for hierarchical softmax's output, the K inner nodes nearest the root), their output
    biases, and the objective's own parameters (NCE's learnt log Z) are averaged over the ranks.
    K = round_rows(the sync's number, sync_rows, sync_levels): the top sync_rows rows at every sync,
    the next as many every other sync, and so on for sync_levels sizes. At an epoch's end every rank
    keeps syncing (idle ones without training) until all have finished, then all rows.

    `sync_divisor` says what a synced row becomes, from the ranks' changes since its last sync:
      world    the ranks' mean: each rank's change counts 1/N. With `sync_scale_lr` (default) the
               ranks train at lr x N, so that the mean of N changes moves a row as one process at lr
               (without it the run learns as one process at lr/N: docs/distributed.md)
      touched  the mean over the ranks that changed the row since its last sync: a row one rank
               trained keeps that change whole, one all ranks trained is divided by N (with
               `sync_scale_lr`, the former's change then counts N times: the LR is one scalar)
      none     the last synced row plus every rank's change in full (each computed without the
               others': stale by up to sync_every words)

    With `sync_overlap` (default) a round's all-reduces run beside training, as non-blocking
    collectives (gloo's own thread, NCCL's stream): the rank sends a snapshot S of the rows, trains
    on, and at its next round (or the epoch's end) takes the result T of the snapshots while keeping
    what it trained since: row += T - S (for `touched` and `none`, T is computed from the snapshots
    and the last synced rows, which then become T). For `world` with sync_levels > 0 (`compact`, the
    default over gloo) the rank sends instead its change since the rows' last sync B, in bf16: half
    the bytes, and T = B + the mean change; what bf16 rounded off stays in the rank's row and goes
    with the next round (_Part.land). The round's control all-reduce (still training?, words) lands
    a round late too; the epoch's end waits for everything and averages all rows blocking, in
    float32, so epochs end as without overlap: identical tables on every rank.

    The learning rate runs on all ranks' words: the sum at the last sync plus, since then, this
    rank's words times the world size (with overlap, a round's words count as this rank's times the
    world size until their sum lands).
    """

    def __init__(self, dist: Dist, cfg: Config, model, objective):
        self.dist, self.model, self.objective = dist, model, objective
        self.every, rows, self.levels = cfg.sync_schedule(td.get_backend())
        self.first_rows = rows or 1 << 62
        self.divisor = cfg.sync_divisor
        self.overlap = cfg.sync_overlap
        self.lr_scale = float(dist.world) if cfg.sync_divisor != "none" and cfg.sync_scale_lr else 1.0
        # the rows as of their last sync: every row for "touched" and "none"; the rows a round can reach
        # (base_lo: the first) when overlapped rounds of "world" send their changes (`compact`)
        self.base: dict[str, torch.Tensor] = {}
        self.base_lo: dict[str, int] = {}
        self.compact = self.overlap and self.divisor == "world" and self.levels > 0
        self.count = 0  # syncs in this epoch
        self.shared = self.mine = 0.0  # all ranks' words, and this rank's counter, at the last sync
        self.in_flight: _Round | None = None  # overlap: the round whose all-reduces are running
        # CPU ranks of one host: overlapped rounds through shared memory (hostsum), room for two of the largest
        self.host = None
        if (self.compact and cfg.sync_shm and td.get_backend() == "gloo" and dist.local_world == dist.world
                and model.inp.device.type == "cpu"):
            self.host, why = hostsum.HostSum.connect(dist, 2 * self._round_bytes())
            if why:
                self.note = f"the ranks' rounds go over gloo's loopback TCP, not shared memory ({why})"

    def begin_epoch(self, words_done: int) -> float:
        self.count = 0
        self.shared = float(words_done)
        self.mine = words_done / self.dist.world
        if self.divisor != "world" or self.compact:  # tables alike on every rank at an epoch's start: so the bases
            spans = self._spans(self._reach() if self.compact else 1 << 62)
            self.base = {name: t[spans[name][0] : sum(spans[name])].clone() for name, t in self._tables().items()}
            self.base_lo = {name: spans[name][0] for name in self.base}
        return self.mine

    def words(self, local: float) -> float:
        return self.shared + self.dist.world * (local - self.mine)

    def step(self, local: float) -> None:
        if self.every and local - self.mine >= self.every:
            self._round(local, training=True)

    def end_epoch(self, local: float, *totals: float) -> tuple[float, ...]:
        while self._round(local, training=False):
            pass
        self._land()
        self._average(1 << 62)
        summed = torch.tensor(totals, dtype=torch.float64, device=self.model.inp.device)
        self._reduce(summed)
        return tuple(summed.tolist())

    def _round(self, local: float, training: bool) -> bool:
        """One sync, if any rank is still training: returns whether one was."""
        if self.overlap:
            return self._overlapped_round(local, training)
        flags = torch.tensor([float(training), local - self.mine], dtype=torch.float64, device=self.model.inp.device)
        self._reduce(flags)
        active, words = flags.tolist()
        self.shared += words
        self.mine = local
        if not active:
            return False
        self.count += 1
        self._average(round_rows(self.count, self.first_rows, self.levels))
        return True

    def _overlapped_round(self, local: float, training: bool) -> bool:
        """`_round` beside training: the round in flight lands, this one's all-reduces start. A rank
        still training sends its rows at once (its own flag says the round is on); one that has
        finished waits for the flags first: every rank starts the same collectives in one order."""
        self._land()
        flags = torch.tensor([float(training), local - self.mine], dtype=torch.float64, device=self.model.inp.device)
        control = [self._start(flags)]
        guess = self.dist.world * (local - self.mine)  # the round's words until their sum lands
        self.shared += guess
        self.mine = local
        if not training:
            self._wait(control)
            active, words = flags.tolist()
            self.shared += words - guess
            if not active:
                return False
            control = []
        self.count += 1
        parts, works, state = self._send(round_rows(self.count, self.first_rows, self.levels), True)
        self.in_flight = _Round(flags if control else None, guess, control + works, parts, state)
        return True

    def _land(self) -> None:
        """Overlap: wait for the round in flight and apply it, keeping the progress made since."""
        done, self.in_flight = self.in_flight, None
        if done is None:
            return
        self._wait(done.works)
        if done.flags is not None:
            self.shared += float(done.flags[1]) - done.guess
        self._apply(done.parts, done.state)

    def _reach(self) -> int:
        """K of the largest round within an epoch (sync_levels > 0): the rows a compact round can reach."""
        return self.first_rows << (self.levels - 1)

    def _round_bytes(self) -> int:
        """The bytes of the largest compact round: bf16 changes of the rows it reaches, the control
        and the objective's state in float64, each on whole cache lines (hostsum's spans)."""
        spans, tables = self._spans(self._reach()), self._tables()
        changes = [spans[name][1] * (t.shape[1] if t.dim() == 2 else 1) * 2 for name, t in tables.items()]
        return sum(hostsum._align(n) for n in [16, 8 * len(self.objective.state_dict()), *changes])

    def _base(self, name: str, lo: int, n: int) -> torch.Tensor:
        """Rows lo .. lo + n of table `name` as of their last sync (a view of its base)."""
        at = lo - self.base_lo[name]
        return self.base[name][at : at + n]

    def _spans(self, k: int) -> dict[str, tuple[int, int]]:
        """(first row, rows) of each table that a sync of K = k rows averages."""
        first, n = self.objective.hot_rows(len(self.model.out), k)
        return {"inp": (0, min(k, len(self.model.inp))), "out": (first, n), "bias": (first, n)}

    def _tables(self) -> dict[str, torch.Tensor]:
        tables = {"inp": self.model.inp, "out": self.model.out}
        if self.model.bias is not None:
            tables["bias"] = self.model.bias
        return tables

    def _average(self, k: int) -> None:
        """Rows [0, k) of the input table and the objective's hottest k output rows (with their bias),
        averaged over the ranks (blocking)."""
        parts, _, state = self._send(k, False)
        self._apply(parts, state)

    def _send(self, k: int, overlap: bool) -> tuple[list[_Part], list, dict | None]:
        """This rank's share of the sums that average rows [0, k) of the input table, the objective's
        hottest k output rows (with their bias) and its state, all-reduced at once or, with
        `overlap`, from a snapshot of them and beside training. Returns (the parts, the running
        all-reduces, the objective's state)."""
        tables, spans = self._tables(), self._spans(k)
        reduce = self._start if overlap else self._reduce
        parts, works, mine, weight = [], [], None, None
        for name, table in tables.items():
            lo, n = spans[name]
            rows = table[lo : lo + n]
            compact = overlap and self.compact
            base = self._base(name, lo, n) if compact or self.divisor != "world" else None
            if compact:  # this rank's change since the rows' last sync, in bf16
                change = (rows - base).to(torch.bfloat16)
                sent = change.clone()
                works.append(reduce(sent))
                parts.append(_Part(rows, sent, change, base, None, changes=True))
                continue
            snapshot = rows.clone() if overlap else None
            now = rows if snapshot is None else snapshot
            if self.divisor == "world":  # the sum of the ranks' rows
                sent = now.clone()
            elif self.divisor == "none":  # the sum of every rank's change since the row's last sync
                sent = now - base
            else:  # the sum of the rows of the ranks that changed them, and how many did
                if name != "bias":  # a bias moves with its output row: it takes the row's weights
                    changed = now != base
                    mine = (changed.any(1) if changed.dim() == 2 else changed).to(now.dtype)
                    weight = mine.clone()
                    works.append(reduce(weight))
                sent = now * (mine if now.dim() == 1 else mine[:, None])
            works.append(reduce(sent))
            parts.append(_Part(rows, sent, snapshot, base, weight))
        state = self.objective.state_dict()
        if state:
            snapshot = [float(value) for value in state.values()] if overlap else None
            values = torch.tensor(list(state.values()), dtype=torch.float64, device=self.model.inp.device)
            works.append(reduce(values))
            state = {"sent": values, "snapshot": snapshot, "keys": list(state)}
        return parts, [work for work in works if work is not None], state or None

    def _apply(self, parts: list[_Part], state: dict | None) -> None:
        """The sums have landed: every part's rows and the objective's state take the ranks' result
        (with a snapshot, plus what this rank trained since it)."""
        for part in parts:
            part.land(self.divisor, self.dist.world)
        if state is None:
            return
        means = (state["sent"] / self.dist.world).tolist()
        if state["snapshot"] is not None:  # the state's progress since the snapshot stays
            now = self.objective.state_dict()
            means = [float(now[key]) + (mean - sent) for key, mean, sent in zip(state["keys"], means, state["snapshot"])]
        self.objective.load_state_dict(dict(zip(state["keys"], means)))

    def _reduce(self, t: torch.Tensor) -> None:
        with self.dist._peers():
            td.all_reduce(t)

    def _start(self, t: torch.Tensor):
        """A non-blocking all-reduce of `t` (in place): its handle."""
        with self.dist._peers():
            if self.host is not None and self.host.fits(t):
                return self.host.start(t)
            return td.all_reduce(t, async_op=True)

    def _wait(self, works: list) -> None:
        for work in works:
            with self.dist._peers():
                work.wait()


@dataclass
class _Part:
    """One table's rows in a sync: this rank's share of the ranks' sum (all-reduced in place), and
    for the divisors that need them the rows as of their last sync (`base`, a view) and how many
    ranks changed each (`weight`, touched); with overlap, the rows as sent (`snapshot`)."""

    rows: torch.Tensor  # a view of the table
    sent: torch.Tensor
    snapshot: torch.Tensor | None
    base: torch.Tensor | None
    weight: torch.Tensor | None
    changes: bool = False  # sent: bf16 changes since the last sync (snapshot: this rank's, as sent)

    def land(self, divisor: str, world: int) -> None:
        """The rows become the ranks' result T (with a snapshot S: row += T - S, keeping what was
        trained since); for touched and none, T is also the rows' new last-synced value.
        With `changes` (world, overlapped): the mean change M lands, row += M - (this rank's change as
        sent) and base += M; what bf16 rounded off this rank's change stays in its row, to go out
        with the next round's change."""
        if self.changes:  # M - change in float32: identical ranks then leave their rows as they are
            mean = self.sent.float().mul_(1 / world)
            self.base.add_(mean)
            self.rows.add_(mean.sub_(self.snapshot))
            return
        if divisor == "world":  # the ranks' mean
            target = self.sent.div_(world)
        elif divisor == "none":  # the last synced row plus every rank's change
            target = self.base.add_(self.sent)
        else:  # the mean over the ranks that changed the row, or the row as last synced
            one = self.rows.dim() == 1
            share = self.weight.clamp(min=1) if one else self.weight.clamp(min=1)[:, None]
            untouched = self.weight == 0 if one else (self.weight == 0)[:, None]
            target = torch.where(untouched, self.base, self.sent.div_(share))
            self.base.copy_(target)
        if self.snapshot is None:
            self.rows.copy_(target)
        else:  # (none's target is the base itself: not in place)
            self.rows.add_(target - self.snapshot if divisor == "none" else target.sub_(self.snapshot))


@dataclass
class _Round:
    """An overlapped round in flight: its control all-reduce (flags: still training?, words; None
    once read), the words counted for it meanwhile, its running all-reduces, its parts and the
    objective's state as sent."""

    flags: torch.Tensor | None
    guess: float
    works: list
    parts: list[_Part]
    state: dict | None


def make_sync(cfg: Config, dist: Dist, model, objective) -> NoSync:
    """The run's synchronisation: RowSync in a process group, else nothing."""
    return RowSync(dist, cfg, model, objective) if dist.group else NoSync()
