"""Training on several processes (w2v_nce.distributed): 2 ranks with gloo on the CPU.

Oracles: one process (identical shards synchronised after every batch must give its tables bit for
bit: both ranks then take the same steps, and (x + x) / 2 = x exactly), the whole corpus's counts
(the merged vocabulary, the global word count), the linear LR schedule at every epoch's start, an
uninterrupted run (resume), and the rank-sanity check of test_real_corpus on the bundled sample.

The ranks are forked processes that join a gloo group and call `train` (as torchrun's would); two
tests run the CLI under torchrun itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import require_kernel, write_planted_phrases, write_twin_corpus
from oracles import assert_known_neighbours_rank_high, free_port as _free_port, run_ranks
from w2v_nce import distributed
from w2v_nce import train as train_module
from w2v_nce.config import SYNC_EVERY_GLOO, SYNC_LEVELS_GLOO, SYNC_ROWS_GLOO, load_config
from w2v_nce.corpus import Shard, count_words
from w2v_nce.errors import RankFailed, UserError
from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint
from w2v_nce.train import train

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "wiki1.5m.txt.gz"


def small_cfg(**kw):
    base = dict(dim=16, epochs=2, threads=1, min_count=1, window=2, sample=0.0, seed=1, device="cpu",
                batch_size=256, chunk_tokens=4000, dist_timeout=60.0)
    base.update(kw)
    return load_config(None, base)


# --------------------------------------------------------------------------- shards (one process)


def test_a_rank_with_enough_files_reads_its_own(tmp_path):
    """.gz files (plain ones are cut into byte ranges: test_shards), stored uncompressed so that
    their sizes keep the order of their texts'."""
    import gzip

    for name, size in (("a", 50), ("b", 40), ("c", 30), ("d", 20)):
        with gzip.open(tmp_path / name, "wb", compresslevel=0) as f:
            f.write(b"w " * size)
    dist = distributed.Dist(rank=1, world=2)
    assert [p.name for p in dist.shard(tmp_path)] == ["b", "c"]
    assert isinstance(dist.shard(tmp_path / "a"), Shard)
    assert dataclasses.replace(dist, replicas=True).shard(tmp_path) == tmp_path


# --------------------------------------------------------------------------- two ranks (forked, gloo)


def _capture_trainers(monkeypatch_target: list) -> None:
    """Make train() remember the Trainer it builds (in this process)."""

    class Remembered(train_module.Trainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            monkeypatch_target.append(self)

    train_module.Trainer = Remembered


def _save_tables(trainer, path: Path) -> None:
    model = trainer.model
    torch.save({"inp": model.inp, "out": model.out, "bias": model.bias, "objective": trainer.objective.state_dict(),
                "words": trainer.progress.words_done, "vocab": dict(zip(trainer.vocab.words, trainer.vocab.counts.tolist()))},
               path)


def _train_replicas(rank: int, folder: Path, corpus: Path, runs: list) -> None:
    for name, overrides in runs:
        dist = dataclasses.replace(distributed.current(60.0), replicas=True)
        train(corpus, folder / name, small_cfg(**overrides), progress_bar=False, dist=dist)


REPLICA_RUNS = [  # (means at an unscaled LR: scaled, each rank would train at 2 lr)
    ("cbow-neg-world", dict(sync_every=1, sync_scale_lr=False)),
    ("cbow-neg-touched", dict(sync_every=1, sync_divisor="touched", sync_rows=16, sync_scale_lr=False)),
    ("sg-hs-rows", dict(arch="skipgram", loss="hs", sync_every=1, sync_rows=8, sync_scale_lr=False)),
    ("cbow-nce-log-z", dict(loss="nce", learn_log_z=True, sync_every=1, sync_divisor="touched", sync_rows=4,
                            sync_scale_lr=False)),
    ("blocking", dict(sync_every=1, sync_rows=8, sync_scale_lr=False, sync_overlap=False)),  # the rest overlap
]


def test_identical_shards_synchronised_every_step_equal_one_process(tmp_path):
    """Both ranks read the whole corpus with the same random stream and sync after every batch
    (rows [0, K) with K doubling, then all at each epoch's end): the tables, the loss, the word
    count and the vocabulary are one process's exactly, for either divisor, for hierarchical
    softmax's reversed hot rows and for NCE's learnt log Z. (With one thread the kernel is
    deterministic; the ranks' sum x + x and its halving are exact; the LR, computed from the
    global count 2w over the global total 2T, is w / T exactly.)"""
    require_kernel()
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=600)
    errors = run_ranks(_train_replicas, tmp_path, corpus, REPLICA_RUNS)
    assert not errors, errors
    for name, overrides in REPLICA_RUNS:
        one = train(corpus, tmp_path / f"one-{name}", small_cfg(**overrides), progress_bar=False)
        two = json.loads((tmp_path / name / "metrics.json").read_text())
        assert two["ranks"] == 2
        assert two["words"] == 2 * one["words"] and two["corpus_words"] == 2 * one["corpus_words"]
        assert two["final_loss"] == one["final_loss"], name
        a, b = load_checkpoint(tmp_path / f"one-{name}" / CHECKPOINT), load_checkpoint(tmp_path / name / CHECKPOINT)
        assert a["words"] == b["words"]
        for table in ("inp", "out", "bias"):
            if a["model"][table] is None:
                assert b["model"][table] is None
            else:
                assert torch.equal(a["model"][table], b["model"][table]), (name, table)
        assert a["objective"] == b["objective"]


class _Tables:
    """A model's three tables (6 input rows, 5 output rows, a bias)."""

    def __init__(self, rank: int):
        self.inp = torch.arange(12, dtype=torch.float32).view(6, 2)
        self.out = torch.arange(10, dtype=torch.float32).view(5, 2) + 100
        self.bias = torch.arange(5, dtype=torch.float32) + 200


class _Tree:
    """An objective whose hottest output rows are the last ones (as hierarchical softmax's)."""

    def __init__(self):
        self.log_z = 0.0

    def hot_rows(self, rows, count):
        return rows - min(count, rows), min(count, rows)

    def state_dict(self):
        return {"log_z": self.log_z}

    def load_state_dict(self, state):
        self.log_z = state["log_z"]


def _average_by_hand(rank: int, folder: Path) -> None:
    results = {}
    for divisor in ("world", "touched", "none"):
        tables, tree = _Tables(rank), _Tree()
        sync = distributed.RowSync(distributed.current(60.0), small_cfg(sync_divisor=divisor), tables, tree)
        sync.begin_epoch(0)
        # input rows: 0 changed by both ranks, 1 by rank 0, 2 by rank 1, 3 by none; 4, 5 (past k) by both
        change = {0: [0, 1, 4, 5], 1: [0, 2, 4, 5]}[rank]
        tables.inp[change] += 10.0 * (rank + 1)
        # output rows (hottest last): 4 by both, 3 by rank 1; row 0 (past k) by rank 0
        out_change = {0: [4, 0], 1: [4, 3]}[rank]
        tables.out[out_change] += 1.0 * (rank + 1)
        tables.bias[out_change] += 1.0 * (rank + 1)
        tree.log_z = float(rank)
        sync._average(4)
        results[divisor] = {"inp": tables.inp.tolist(), "out": tables.out.tolist(), "bias": tables.bias.tolist(),
                            "log_z": tree.log_z, "schedule": [sync.every, sync.first_rows, sync.levels]}
    (folder / f"average-{rank}.json").write_text(json.dumps(results))


def test_a_sync_averages_the_hot_rows_as_worked_out_by_hand(tmp_path):
    """Rows [0, 4) of the input table and the 4 hottest (last) output rows with their bias, after
    ranks 0 and 1 changed some of them by +10/+20 (outputs +1/+2): the world's mean, the mean
    over the ranks that changed a row, or the sum of the changes; rows past K keep each rank's
    own value; log Z is averaged."""
    errors = run_ranks(_average_by_hand, tmp_path)
    assert not errors, errors
    got = [json.loads((tmp_path / f"average-{rank}.json").read_text()) for rank in (0, 1)]
    inp = [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]
    expected_inp = {  # rows 0-3: (both +10/+20, rank 0 +10, rank 1 +20, none)
        "world": [[15, 16], [7, 8], [14, 15], [6, 7]],
        "touched": [[15, 16], [12, 13], [24, 25], [6, 7]],
        "none": [[30, 31], [12, 13], [24, 25], [6, 7]],
    }
    expected_out_rows = {  # rows 1-4 (row 3: rank 1 +2, row 4: both +1/+2)
        "world": [[102, 103], [104, 105], [107, 108], [109.5, 110.5]],
        "touched": [[102, 103], [104, 105], [108, 109], [109.5, 110.5]],
        "none": [[102, 103], [104, 105], [108, 109], [111, 112]],
    }
    expected_bias = {"world": [201, 202, 204, 205.5], "touched": [201, 202, 205, 205.5], "none": [201, 202, 205, 207]}
    for divisor in ("world", "touched", "none"):
        for rank in (0, 1):
            result = got[rank][divisor]
            assert result["inp"][:4] == expected_inp[divisor], (divisor, rank, result["inp"])
            assert result["inp"][4:] == [[8 + 10 * (rank + 1), 9 + 10 * (rank + 1)], [10 + 10 * (rank + 1), 11 + 10 * (rank + 1)]]
            assert result["out"][1:] == expected_out_rows[divisor], (divisor, rank, result["out"])
            assert result["out"][0] == ([101, 102] if rank == 0 else [100, 101])
            assert result["bias"][1:] == expected_bias[divisor], (divisor, rank, result["bias"])
            assert result["log_z"] == 0.5
            # small_cfg leaves the schedule automatic: gloo's
            assert result["schedule"] == [SYNC_EVERY_GLOO, SYNC_ROWS_GLOO, SYNC_LEVELS_GLOO]
    assert inp  # (the rows before the changes, for reading the table above)


@pytest.mark.parametrize("levels", [0, 1, 3, 5])
def test_a_round_syncs_the_rows_of_its_largest_power_of_two_up_to_the_levels(levels):
    """Brute force: sync number c takes first x the largest power of two that divides c, at most
    first x 2^(levels - 1); levels 0 doubles without bound."""
    for count in range(1, 300):
        power = max(p for p in (1 << j for j in range(10)) if count % p == 0)
        cap = 1 << (levels - 1) if levels else 1 << 62
        assert distributed.round_rows(count, 512, levels) == 512 * min(power, cap), count


def _overlap_against_blocking(rank: int, folder: Path) -> None:
    """Two syncs of the same tables, one overlapped and one blocking, through two rounds and the
    epoch's end; each rank trains a little (its own rows) while the overlapped round is in flight,
    and the blocking twin takes the same steps after its round."""
    results = {}
    for case in ("world", "world-float32", "touched", "none"):
        divisor, levels = case.split("-")[0], 0 if case == "world-float32" else None
        twins = []
        for overlap in (True, False):
            tables, tree = _Tables(rank), _Tree()
            cfg = small_cfg(sync_divisor=divisor, sync_rows=4, sync_every=10, sync_overlap=overlap, sync_levels=levels)
            twins.append((tables, tree, distributed.RowSync(distributed.current(60.0), cfg, tables, tree)))
        steps = [  # (input rows, output rows, amount) trained by each rank before each round, then in flight
            ({0: [0, 1, 4, 5], 1: [0, 2, 4, 5]}[rank], {0: [4, 0], 1: [4, 3]}[rank], 10.0 * (rank + 1)),
            ({0: [1, 3], 1: [3, 5]}[rank], {0: [2], 1: [4]}[rank], 0.5 * (rank + 1)),
            ({0: [2], 1: [0, 2]}[rank], {0: [3, 4], 1: [1]}[rank], 0.25 * (rank + 1)),
        ]

        def take(tables, tree, step):
            rows, out_rows, amount = step
            tables.inp[rows] += amount
            tables.out[out_rows] += amount / 8  # dyadic, few bits: bf16 changes carry them exactly
            tables.bias[out_rows] += amount / 8
            tree.log_z += amount

        record = []
        for tables, tree, sync in twins:
            local = sync.begin_epoch(0)
            seen = []
            for i, step in enumerate(steps[:2]):
                take(tables, tree, step)
                local += 10 * (rank + 1)
                sync._round(local, training=True)
                if sync.overlap:  # trained in flight: the blocking twin trains it after its round
                    take(tables, tree, steps[i + 1])
                    sync._land()
                else:
                    take(tables, tree, steps[i + 1])
                seen.append([tables.inp.tolist(), tables.out.tolist(), tables.bias.tolist(), tree.log_z,
                             sync.words(local)])
            totals = sync.end_epoch(local, float(local))
            seen.append([tables.inp.tolist(), tables.out.tolist(), tables.bias.tolist(), tree.log_z, totals])
            record.append(seen)
        results[case] = record
    (folder / f"twins-{rank}.json").write_text(json.dumps(results))


def test_an_overlapped_sync_equals_a_blocking_one_at_its_snapshot(tmp_path):
    """The overlapped correction (row += T - S, T from the ranks' snapshots and for touched and
    none the rows as last synced; for world the mean of the ranks' bf16 changes since the last sync,
    or with sync_levels 0 of their float32 rows) gives, exactly (small dyadic values), what the blocking sync gives
    when the steps trained while the round was in flight are taken after it instead: after each of
    two rounds (the second one's `touched` must count rows a rank changed while the first was in
    flight), and after the epoch's end (every row averaged; equal on both ranks). The blocking sync
    is itself worked out by hand in the test above. The words (the LR's count) land too."""
    errors = run_ranks(_overlap_against_blocking, tmp_path)
    assert not errors, errors
    got = [json.loads((tmp_path / f"twins-{rank}.json").read_text()) for rank in (0, 1)]
    for divisor in ("world", "world-float32", "touched", "none"):
        for rank in (0, 1):
            overlapped, blocking = got[rank][divisor]
            assert overlapped == blocking, (divisor, rank)
            assert overlapped[0][4] == 30.0 and overlapped[1][4] == 60.0  # both ranks' words: 10 + 20 a round
        assert got[0][divisor][0][-1] == got[1][divisor][0][-1], divisor  # the epoch ends alike on both ranks
        assert got[0][divisor][0][-1][4] == [60.0]


def _residue_kept(rank: int, folder: Path, shm: bool) -> None:
    tables, tree = _Tables(rank), _Tree()
    sync = distributed.RowSync(distributed.current(60.0), small_cfg(sync_rows=4, sync_every=10, sync_shm=shm), tables,
                               tree)
    local = sync.begin_epoch(0)
    start = tables.inp[0].clone()
    tables.inp[0] += 0.1 * (rank + 1)  # not a bf16 value: the change sent is rounded
    trained = tables.inp[0].clone()
    sync._round(local + 10, training=True)
    sync._land()
    change = trained - start
    residue = change - change.to(torch.bfloat16).float()
    result = {"compact": sync.compact, "host": sync.host is not None, "start": start.tolist(), "trained": trained.tolist(),
              "base": sync.base["inp"][0].tolist(), "kept": (tables.inp[0] - sync.base["inp"][0]).tolist(),
              "residue": residue.tolist()}
    sync.end_epoch(local + 10)
    result["end"] = tables.inp[0].tolist()
    (folder / f"residue-{rank}-{shm}.json").write_text(json.dumps(result))


@pytest.mark.parametrize("shm", [True, False])
def test_bf16_changes_keep_what_rounding_took_in_the_rank_s_own_row(tmp_path, shm):
    """Overlapped `world` rounds send each rank's change since the last sync in bf16: the synced
    value (the base) is the start plus the mean change to bf16's precision and alike on both ranks,
    what the rounding took off a rank's change stays in its row (error feedback, worked out here
    from the change itself), and the epoch's end averages the rows, residues included, in float32.
    Through shared memory (ranks of one host, the default) or gloo: the same bits."""
    if shm:
        require_kernel()
    errors = run_ranks(_residue_kept, tmp_path, shm)
    assert not errors, errors
    got = [json.loads((tmp_path / f"residue-{rank}-{shm}.json").read_text()) for rank in (0, 1)]
    assert got[0]["compact"] and got[1]["compact"]
    assert got[0]["host"] == got[1]["host"] == shm
    if shm:  # gloo's run of the same ranks, the oracle
        assert not run_ranks(_residue_kept, tmp_path, False)
        for rank in (0, 1):
            by_gloo = json.loads((tmp_path / f"residue-{rank}-False.json").read_text())
            assert {**got[rank], "host": False} == by_gloo
    assert got[0]["base"] == got[1]["base"]
    exact_mean = [(a + b) / 2 for a, b in zip(got[0]["trained"], got[1]["trained"])]
    assert got[0]["base"] == pytest.approx(exact_mean, abs=2e-3)  # bf16: 8 bits of the changes' mean
    for result in got:
        assert any(abs(r) > 1e-6 for r in result["residue"])  # the rounding took something
        assert result["kept"] == pytest.approx(result["residue"], abs=1e-6)
    assert got[0]["end"] == got[1]["end"]
    # the epoch's end: the synced value plus both ranks' residues, nothing lost (the only error left
    # is the bf16 sum's own rounding of the mean change, the same on both ranks)
    kept = [base + (a + b) / 2 for base, a, b in zip(got[0]["base"], got[0]["kept"], got[1]["kept"])]
    assert got[0]["end"] == pytest.approx(kept, abs=1e-6)
    assert got[0]["end"] == pytest.approx(exact_mean, abs=2e-3)


def _round_alone(rank: int, folder: Path, overlap: bool) -> None:
    tables, tree = _Tables(rank), _Tree()
    sync = distributed.RowSync(distributed.current(60.0), small_cfg(sync_rows=4, sync_overlap=overlap), tables, tree)
    local = sync.begin_epoch(0) + 10
    if rank == 0:
        sync._round(local, training=True)  # returns while rank 1 has not yet joined (with overlap)
        (folder / "started").write_text("")
    else:
        deadline = time.monotonic() + (30 if overlap else 2)  # blocking, rank 0 never comes back: no need to wait
        while not (folder / "started").exists():
            if time.monotonic() > deadline:
                raise AssertionError("rank 0 is still in its round: it waits for rank 1")
            time.sleep(0.05)
        sync._round(local, training=True)
    sync.end_epoch(local)


@pytest.mark.parametrize("overlap", [True, False])
def test_an_overlapped_round_does_not_wait_for_the_other_ranks(tmp_path, overlap):
    """Rank 1 joins the round only once rank 0 has come back from it: with overlap rank 0 comes
    back at once (and waits at the epoch's end); a blocking round waits for rank 1 (the control
    case: rank 1 gives up and fails)."""
    errors = run_ranks(_round_alone, tmp_path, overlap, timeout=60)
    if overlap:
        assert not errors, errors
    else:
        assert "AssertionError: rank 0 is still in its round" in errors.get(1, ""), errors


def _train_shards(rank: int, folder: Path, corpus: Path, runs: list) -> None:
    made: list = []
    _capture_trainers(made)
    lrs: list = []
    inner = train_module.train_slices

    def recording(step, model, objective, rule, work, size, lr_at, *rest, **kw):
        lrs.append(lr_at(0))
        value = inner(step, model, objective, rule, work, size, lr_at, *rest, **kw)
        lrs.append(lr_at(len(work) - 1))
        return value

    train_module.train_slices = recording
    for name, overrides in runs:
        made.clear()
        lrs.clear()
        train(corpus, folder / name, small_cfg(**overrides), progress_bar=False)
        _save_tables(made[0], folder / f"{name}-tables-{rank}.pt")
        (folder / f"{name}-lrs-{rank}.json").write_text(json.dumps(lrs))


SHARD_RUNS = [
    ("world", dict(sync_every=500, sync_rows=8, epochs=3)),  # the ranks train at 2 lr (sync_scale_lr)
    ("touched-two-threads", dict(sync_every=300, sync_rows=4, sync_divisor="touched", threads=2)),
    ("sum", dict(sync_every=300, sync_divisor="none")),
    ("epoch-ends-only", dict(sync_every=0, arch="skipgram", loss="nce", learn_log_z=True)),
    ("subwords", dict(sync_every=300, sync_rows=8, arch="skipgram", subwords=True, buckets=200)),  # bucket rows too
    ("blocking-two-threads", dict(sync_every=300, sync_rows=4, threads=2, sync_overlap=False)),  # the rest overlap
]


def test_shards_end_with_equal_tables_global_words_and_the_global_lr(tmp_path):
    """Each rank trains its own half (every other sentence): after the final sync both hold the
    same tables (also with two Hogwild threads per rank syncing from a worker); the vocabulary
    merged from the halves is the whole corpus's; the word count is the whole corpus's times the
    epochs; every epoch starts at the LR of the global count (lr0 (1 - e/E)) on both ranks, and the
    last batch runs within a couple of batches' worth of words of the end of the schedule."""
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=800)
    errors = run_ranks(_train_shards, tmp_path, corpus, SHARD_RUNS)
    assert not errors, errors
    whole, _ = count_words(corpus)
    for name, overrides in SHARD_RUNS:
        cfg = small_cfg(**overrides)
        t0, t1 = (torch.load(tmp_path / f"{name}-tables-{r}.pt", weights_only=False) for r in (0, 1))
        for table in ("inp", "out", "bias"):
            if t0[table] is not None:
                assert torch.equal(t0[table], t1[table]), (name, table)
        assert t0["objective"] == t1["objective"]
        assert t0["vocab"] == t1["vocab"] == dict(whole)
        corpus_words = sum(whole.values())
        assert t0["words"] == t1["words"] == cfg.epochs * corpus_words
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert metrics["words"] == cfg.epochs * corpus_words and metrics["corpus_words"] == corpus_words
        for rank in (0, 1):
            lrs = json.loads((tmp_path / f"{name}-lrs-{rank}.json").read_text())
            chunks = len(lrs) // (2 * cfg.epochs)
            starts = [lrs[2 * chunks * e] for e in range(cfg.epochs)]
            lr = cfg.start_lr * (2 if cfg.sync_scale_lr and cfg.sync_divisor != "none" else 1)
            assert starts == [lr * (1 - e / cfg.epochs) for e in range(cfg.epochs)], (name, rank, starts)
            # the last example's LR: within 2 batches (x 2 ranks) of words of the end of the schedule
            slack = 2 * 2 * cfg.batch_size / (cfg.epochs * corpus_words)
            assert lr * cfg.min_lr_ratio <= lrs[-1] <= lr * slack, (name, rank, lrs[-1])
    assert not list(tmp_path.glob("world/.ids-*")), "rank 1 wrote scratch files into out_dir"


def _train_then_resume(rank: int, folder: Path, corpus: Path) -> None:
    cfg = small_cfg(sync_every=400, sync_rows=8, epochs=3, min_lr_ratio=1.0)  # (test_train: a decaying LR
    # cannot be extended by --resume --epochs, interrupted runs resume exactly there)
    train(corpus, folder / "whole", cfg, progress_bar=False)
    train(corpus, folder / "parts", dataclasses.replace(cfg, epochs=1), progress_bar=False)
    train(corpus, folder / "parts", cfg, resume=True, progress_bar=False)


def test_resume_under_two_ranks_equals_an_uninterrupted_run(tmp_path):
    """Every rank's random stream is in the checkpoint and the epoch's end leaves nothing else to
    carry: one epoch, then two more by --resume, gives the three-epoch run's tables exactly (at a
    constant LR, as test_train's extension test)."""
    require_kernel()
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=600)
    errors = run_ranks(_train_then_resume, tmp_path, corpus)
    assert not errors, errors
    whole, parts = load_checkpoint(tmp_path / "whole" / CHECKPOINT), load_checkpoint(tmp_path / "parts" / CHECKPOINT)
    assert len(parts["rank_generators"]) == 2
    assert whole["progress"]["words_done"] == parts["progress"]["words_done"]
    for table in ("inp", "out"):
        assert torch.equal(whole["model"][table], parts["model"][table]), table


def _train_with_phrases(rank: int, folder: Path, corpus: Path) -> None:
    from w2v_nce.phrases import Phrases

    learn = Phrases.learn.__func__

    def noted(cls, *a, **kw):
        (folder / f"learned-{rank}").write_text("")
        return learn(cls, *a, **kw)

    Phrases.learn = classmethod(noted)
    train(corpus, folder / "run", small_cfg(phrases=2, phrase_threshold=(10.0, 5.0)), progress_bar=False)


def test_two_ranks_join_the_phrases_the_master_learned(tmp_path):
    """The master alone learns the phrases (from the whole corpus) and saves them; both ranks
    count and train their shards with them joined: the merged vocabulary is one process's."""
    corpus = tmp_path / "c.txt"
    planted = write_planted_phrases(corpus, sentences=600)
    errors = run_ranks(_train_with_phrases, tmp_path, corpus)
    assert not errors, errors
    assert (tmp_path / "learned-0").exists() and not (tmp_path / "learned-1").exists()
    train(corpus, tmp_path / "one", small_cfg(phrases=2, phrase_threshold=(10.0, 5.0), epochs=1), progress_bar=False)
    two, one = load_checkpoint(tmp_path / "run" / CHECKPOINT), load_checkpoint(tmp_path / "one" / CHECKPOINT)
    vocab = dict(zip(two["words"], two["counts"].tolist()))
    assert vocab == dict(zip(one["words"], one["counts"].tolist()))
    assert {w: c for w, c in vocab.items() if "_" in w} == planted
    assert (tmp_path / "run" / "phrases.json").read_bytes() == (tmp_path / "one" / "phrases.json").read_bytes()


def _grow_on_two_ranks(rank: int, folder: Path, new: Path, vectors: Path) -> None:
    cfg = small_cfg(epochs=2, init_vectors=str(vectors), lock_init=True, heldout=str(new), patience=1)
    train(new, folder / "grown", cfg, progress_bar=False, init=folder / "base", update_vocab=True)


def test_two_ranks_continue_a_run_with_frozen_rows_and_a_heldout_loss(tmp_path):
    """--init --update-vocab under two ranks: the merged vocabulary is one process's, the rows from
    --init-vectors --lock-init end as the file has them, and the master's held-out loss and its
    decision to stop reach both ranks (no rank hangs)."""
    import numpy as np

    from w2v_nce.vectors import Vectors, load_word2vec, save_word2vec

    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    write_twin_corpus(old, classes=20, sentences=300)
    write_twin_corpus(new, seed=1, classes=25, sentences=300)
    train(old, tmp_path / "base", small_cfg(epochs=1), progress_bar=False)
    given = Vectors([f"a{i}" for i in range(5)], np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32))
    save_word2vec(given, tmp_path / "v.txt")
    errors = run_ranks(_grow_on_two_ranks, tmp_path, new, tmp_path / "v.txt")
    assert not errors, errors
    train(new, tmp_path / "one", small_cfg(epochs=1), progress_bar=False, init=tmp_path / "base", update_vocab=True)
    two, one = load_checkpoint(tmp_path / "grown" / CHECKPOINT), load_checkpoint(tmp_path / "one" / CHECKPOINT)
    assert dict(zip(two["words"], two["counts"].tolist())) == dict(zip(one["words"], one["counts"].tolist()))
    rows = dict(zip(two["words"], two["model"]["inp"]))
    given = load_word2vec(tmp_path / "v.txt")
    for word, vector in zip(given.words, given.matrix):
        assert torch.equal(rows[word], torch.from_numpy(vector)), word
    metrics = json.loads((tmp_path / "grown" / "metrics.json").read_text())
    assert metrics["ranks"] == 2 and all("heldout" in h for h in metrics["history"])


def _fail_on_rank_one(rank: int, folder: Path, corpus: Path) -> None:
    if rank == 1:
        original = train_module.Trainer.run_epoch

        def run_epoch(self, *a, **kw):
            if self.progress.epoch == 1:
                raise RuntimeError("rank 1 breaks in its second epoch")
            return original(self, *a, **kw)

        train_module.Trainer.run_epoch = run_epoch
    train(corpus, folder / "run", small_cfg(epochs=3, sync_every=200), progress_bar=False)


def test_a_rank_that_dies_mid_run_stops_the_others_at_once(tmp_path):
    """Rank 1 raises in its second epoch; rank 0, training or waiting in a sync, loses it at its
    next collective and stops quietly (RankFailed: nobody prints it), long before the timeout."""
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=600)
    errors = run_ranks(_fail_on_rank_one, tmp_path, corpus, timeout=50)
    assert errors[1].startswith("RuntimeError: rank 1 breaks"), errors
    assert errors[0].startswith("RankFailed: lost the other ranks"), errors
    assert issubclass(RankFailed, UserError)


def _rank_sanity(rank: int, folder: Path, seed: int) -> None:
    cfg = load_config(None, dict(dim=50, epochs=3, threads=1, min_count=5, seed=seed, device="cpu"))
    train(SAMPLE, folder / "run", cfg, progress_bar=False)


def test_two_ranks_put_known_neighbours_near_the_top(tmp_path):
    """test_real_corpus's rank sanity (CBOW, 3 epochs, dim 50) trained by 2 ranks on halves of the
    bundled sample with the default synchronisation, held to that test's bounds. Calibrated over
    seeds 1-3: every pair ranked 6th or better (one process: 11th), 5 to 7 of the 8 first."""
    errors = run_ranks(_rank_sanity, tmp_path, 1)
    assert not errors, errors
    assert_known_neighbours_rank_high(tmp_path / "run" / "vectors.txt")


# --------------------------------------------------------------------------- the CLI under torchrun


def torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(_free_port()), "-m", "w2v_nce", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def test_torchrun_trains_resumes_and_reports_once(tmp_path):
    """`torchrun --nproc_per_node 2 -m w2v_nce train`: one summary line (rank 0's), every file in
    --out written by rank 0 alone, then --resume for one more epoch."""
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=600)
    out = tmp_path / "run"
    common = ["train", str(corpus), "--out", str(out), "--dim", "16", "--min-count", "1", "--threads", "1", "--quiet"]
    first = torchrun(*common, "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("trained cbow") == 1, first.stdout
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.toml", "metrics.json", "vectors.txt"]
    again = torchrun(*common, "--epochs", "2", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["ranks"] == 2
    assert metrics["words"] == 2 * metrics["corpus_words"]
    assert error_lines(first.stderr + again.stderr) == []


def test_torchrun_a_rank_that_cannot_read_its_shard_fails_the_run_with_one_line(tmp_path):
    """A directory of two files: rank 1 gets the smaller, which is binary. The run fails (no hang)
    with one `error:` line, rank 0's, naming rank 1 and the file."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_twin_corpus(folder / "a.txt", sentences=300)
    (folder / "b.txt").write_bytes(b"good words\x00 then binary\n")
    result = torchrun("train", str(folder), "--out", str(tmp_path / "run"), "--min-count", "1", "--quiet")
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr[-3000:]
    assert "rank 1:" in lines[0] and "b.txt" in lines[0] and "binary" in lines[0], lines
    assert "/w2v_nce/" not in result.stderr, "a traceback of ours (torchrun prints its own)"


@pytest.mark.parametrize("gpus", [0, 1])
def test_more_nccl_ranks_on_a_node_than_gpus_is_one_error_before_the_group_forms(monkeypatch, gpus):
    """torchrun --nproc_per_node 2 --device cuda on a node of one GPU: NCCL would refuse two ranks
    on one device at its first collective ("Duplicate GPU detected"), or rank 1 would ask for a
    cuda:1 that is not there while rank 0 waited; every rank says so at once instead, the process
    group never formed."""
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    joined = []
    monkeypatch.setattr(distributed.td, "init_process_group", lambda *a, **k: joined.append(a))
    with pytest.raises(UserError, match=rf"started 2 ranks on this node, which has {gpus} GPU.*--nproc_per_node {gpus}"):
        with distributed.session("cuda", 5.0):
            pass
    assert joined == []


def test_the_benchmark_variants_are_valid_settings(tmp_path):
    """scripts/bench_ddp.py's --variant NAME:KEY=VALUE,... becomes a TOML preset that Config takes
    (the variants docs/distributed.md suggests); its ratios are worked out in its doctests."""
    import doctest
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ddp", REPO / "scripts" / "bench_ddp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for text, key, value in [('touched:sync_divisor="touched",sync_scale_lr=false', "sync_divisor", "touched"),
                             ("mean-lr/2:sync_scale_lr=false", "sync_scale_lr", False),
                             ("i400k:sync_every=400000", "sync_every", 400_000),
                             ("blocking:sync_overlap=false", "sync_overlap", False)]:
        name, extra = module.parse_variant(text)
        preset = tmp_path / f"{len(name)}.toml"
        preset.write_text("".join(f"{k} = {v}\n" for k, v in extra.items()))
        assert getattr(load_config(preset), key) == value, text
    assert doctest.testmod(module).failed == 0


def test_the_sync_profiler_times_pieces_that_rowsync_has():
    """scripts/profile_sync.py wraps RowSync's methods by name: a renamed one would leave the
    profile silently empty, so each name it times must be one of RowSync's own methods."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("profile_sync", REPO / "scripts" / "profile_sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.PIECES
    for name in module.PIECES:
        assert callable(vars(distributed.RowSync).get(name)), name
