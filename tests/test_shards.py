"""Byte-range shards (w2v_nce.corpus.ByteRange) and several nodes under torchrun.

Oracles: brute force over the files' bytes (the tokens of `bytes.split()` per file, the lines of
one process's read_corpus), the whole corpus's counts, and a one-node torchrun run of the same
ranks (bit for bit).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import write_twin_corpus
from oracles import free_port as _free_port, run_ranks
from w2v_nce import corpus as corpus_module
from w2v_nce import distributed
from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint
from w2v_nce.config import load_config
from w2v_nce.corpus import ByteRange, Shard, corpus_files, count_words, read_corpus
from w2v_nce.train import train

REPO = Path(__file__).resolve().parent.parent


def small_cfg(**kw):
    """test_distributed's small run (one thread per rank: deterministic)."""
    base = dict(dim=16, epochs=2, threads=1, min_count=1, window=2, sample=0.0, seed=1, device="cpu",
                batch_size=256, chunk_tokens=4000, dist_timeout=60.0)
    base.update(kw)
    return load_config(None, base)


def sentences(corpus) -> list[list[str]]:
    """A corpus's sentences as read_corpus gives them (a last one unended included)."""
    out, sentence = [], []
    for tokens, ends in read_corpus(corpus):
        sentence.extend(tokens)
        if ends:
            out.append(sentence)
            sentence = []
    return out + ([sentence] if sentence else [])


def expected_cut(data: list[bytes], at: int, block: int) -> int:
    """Brute force of the rule: the first line start at or after `at` (a file's start and end are
    ones) if its newline lies within `block` bytes from byte at - 1, else the first white space at
    or after `at` (past it if a newline), else the file's end."""
    offset = 0
    for d in data:
        if at < offset + len(d):
            break
        offset += len(d)
    else:
        return offset
    q = at - offset
    if q == 0:
        return at
    line_start = next(i for i in range(q, len(d) + 1) if i == len(d) or d[i - 1] == ord("\n"))
    if line_start - 1 < q - 1 + block:
        return offset + line_start
    space = next((i for i in range(q, len(d)) if d[i] in b" \t\r\n"), len(d))
    return offset + space + (space < len(d) and d[space] == ord("\n"))


def check_ranges(files: list[Path], count: int, block: int) -> list[list[list[str]]]:
    """The `count` parts of `files` against brute force; returns each part's sentences."""
    data = [f.read_bytes() for f in files]
    whole = b"".join(data)
    starts = [sum(map(len, data[:i])) for i in range(len(data) + 1)]
    parts = [ByteRange(files, i, count, block_bytes=block) for i in range(count)]
    # the ranges tile the byte space in order, cut where the rule says, never inside a character
    spans = [[(starts[files.index(p)] + a, starts[files.index(p)] + b, mid) for p, a, b, mid in part.segments()]
             for part in parts]
    flat = [(a, b) for span in spans for a, b, _ in span]
    assert all(a < b for a, b in flat) and all(b == a for (_, b), (a, _) in zip(flat, flat[1:]))
    assert sum(b - a for a, b in flat) == len(whole), "a byte read twice or never"
    reach = min(block, max(1, len(whole) // (4 * count)))  # a quarter of a part at most
    cuts = [expected_cut(data, k * len(whole) // count, reach) for k in range(count + 1)]
    for k, span in enumerate(spans):
        if span:
            assert (span[0][0], span[-1][1]) == (cuts[k], cuts[k + 1]), (k, span, cuts)
            for a, b, mid in span:
                assert mid == (b not in starts and whole[b - 1] != ord("\n")), (b, mid)
        else:
            assert cuts[k] == cuts[k + 1]
    assert all(cut == len(whole) or not 0x80 <= whole[cut] < 0xC0 for cut in cuts), "a cut inside a character"
    token = max((len(t) for t in whole.split()), default=0)
    assert max(b - a for a, b in flat) <= -(-len(whole) // count) + max(reach, token) + 1, "unbalanced"
    # every token once, in order
    tokens = [t for d in data for t in d.decode("utf-8").split()]
    got = [list(part.sentences()) for part in parts]
    assert [t for part in got for s in part for t in s] == tokens
    # every line once, in order: one process's sentences, a line cut between two parts read as two
    one = sentences(files)
    mine = [s for part in got for s in part]
    i = 0
    for line in one:
        joined = list(mine[i])
        i += 1
        while joined != line:
            assert joined == line[: len(joined)] and i < len(mine), (line, joined)
            joined += mine[i]
            i += 1
    assert all(not s for s in mine[i:])
    if all(len(line) < reach for line in whole.split(b"\n")) and all(d.endswith(b"\n") for d in data if d):
        assert mine == one
    return got


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def random_text(rng: random.Random, lines: int, words: tuple[str, ...], long_every: int = 0) -> str:
    out = []
    for i in range(lines):
        n = rng.choice([0, 1, 3, 8]) if not long_every or i % long_every else 60
        out.append(" ".join(rng.choice(words) for _ in range(n)))
    return "\n".join(out) + "\n"


WORDS = ("a", "cat", "sat", "on", "the", "mat", "naïve", "日本語", "é", "ü", "x" * 12)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_ranges_cover_every_line_once_for_several_rank_counts(tmp_path, count):
    rng = random.Random(count)
    f = write(tmp_path / "c.txt", random_text(rng, 200, WORDS))
    check_ranges([f], count, block=1 << 12)


@pytest.mark.parametrize("count", [2, 3, 7])
def test_lines_longer_than_the_block_are_cut_at_white_space(tmp_path, count):
    """text8's single line and long lines among short ones, with an 8-byte block: cuts fall at a
    space (never inside a token or a multi-byte character) and the cut line's halves go to two ranks."""
    rng = random.Random(7)
    single = write(tmp_path / "text8.txt", " ".join(rng.choice(WORDS) for _ in range(300)))
    parts = check_ranges([single], count, block=8)
    assert all(parts), "every rank has a part of the one line"
    mixed = write(tmp_path / "mixed.txt", random_text(rng, 60, WORDS, long_every=7))
    check_ranges([mixed], count, block=8)
    check_ranges([mixed], count, block=64)


def test_a_file_smaller_than_the_ranks_leaves_some_empty(tmp_path):
    f = write(tmp_path / "tiny.txt", "ab\n")
    parts = check_ranges([f], 5, block=4)
    assert sorted(bool(p) for p in parts) == [False] * 4 + [True]
    assert check_ranges([write(tmp_path / "one.txt", "a b c")], 8, block=2)  # a cut at every space


def test_files_without_a_trailing_newline_and_empty_lines(tmp_path):
    a = write(tmp_path / "a.txt", "one two\n\n\nthree\nfour five six")
    b = write(tmp_path / "b.txt", "")
    c = write(tmp_path / "c.txt", "\n\nseven eight\n\nnine")
    for count in range(1, 9):
        for block in (3, 64):
            check_ranges([a, b, c], count, block)


def test_several_files_fewer_than_ranks(tmp_path):
    rng = random.Random(3)
    files = [write(tmp_path / f"{i}.txt", random_text(rng, n, WORDS)) for i, n in enumerate((40, 0, 3, 90))]
    for count in (5, 6, 11):
        check_ranges(files, count, block=16)
        check_ranges(files, count, block=1 << 10)


def test_a_cut_never_falls_inside_a_multibyte_character(tmp_path):
    """Non-ASCII text with no newline near the raw offsets: every raw offset k·T/N inside a 2-,
    3- or 4-byte character is moved to a white space."""
    text = " ".join(["日本語", "naïve", "😀x", "ü"] * 40)
    f = write(tmp_path / "u.txt", text)
    for count in range(2, 40):
        check_ranges([f], count, block=5)


def test_with_phrases_a_files_last_line_ends_as_phrases_read_files(tmp_path):
    """`file_ends` (a rank's part under phrases): the parts' sentences are w2v_nce.phrases'
    sentence_pieces' of the whole corpus, a file's unended last line ended, not run on into the
    next file's first line as read_corpus runs it."""
    from w2v_nce.phrases import sentence_pieces

    files = [write(tmp_path / "a.txt", "new york is\n" * 50 + "big new"), write(tmp_path / "b.txt", "york city\n" * 50),
             write(tmp_path / "c.txt", "new\n\n" * 30 + "york")]  # lines well within the reach: none is cut
    whole, sentence = [], []
    for tokens, ends in sentence_pieces(files):
        sentence.extend(tokens)
        if ends:
            whole.append(sentence)
            sentence = []
    whole += [sentence] if sentence else []
    assert ["big", "new"] in whole and ["big", "new", "york", "city"] in sentences(files)  # read_corpus runs on
    for count in range(1, 7):
        parts = [list(ByteRange(files, i, count, block_bytes=64, file_ends=True).sentences()) for i in range(count)]
        assert [s for part in parts for s in part] == whole, count


def test_a_range_reads_only_its_bytes(tmp_path, monkeypatch):
    """Each part opens its file at its start and stops at its end (the bytes read are its own)."""
    f = write(tmp_path / "c.txt", random_text(random.Random(1), 400, WORDS))
    read: list[tuple[int, int]] = []
    original = corpus_module.read_pieces

    def recording(path, block_bytes, tokenizer, start=0, stop=None):
        read.append((start, stop))
        return original(path, block_bytes, tokenizer, start, stop)

    monkeypatch.setattr(corpus_module, "read_pieces", recording)
    for i in range(4):
        list(ByteRange(f, i, 4).pieces())
    size = f.stat().st_size
    assert [a for a, _ in read] == [0] + [b for _, b in read[:-1]] and read[-1][1] == size
    assert all(abs((b - a) - size / 4) < 200 for a, b in read), read


def test_what_each_corpus_is_cut_into(tmp_path):
    """Plain files: byte ranges (also with a file per rank: equal bytes); with a .gz, its files
    when there are enough, else every N-th unit of the stream, which the master says; one process:
    the corpus as it is."""
    import gzip

    for name, size in (("a", 50), ("b", 40)):
        (tmp_path / name).write_text("w " * size)
    with gzip.open(tmp_path / "z.gz", "wt") as g:
        g.write("w w\n")
    rank1 = distributed.Dist(rank=1, world=2)
    assert isinstance(rank1.shard(tmp_path / "a"), ByteRange)
    assert isinstance(rank1.shard([tmp_path / "a", tmp_path / "b"]), ByteRange)
    assert rank1.shard_note(tmp_path / "a") is None
    assert [p.name for p in rank1.shard(tmp_path)] == ["b", "z.gz"]  # a, b, z.gz: files balanced by size
    assert isinstance(rank1.shard(tmp_path / "z.gz"), Shard)
    note = rank1.shard_note(tmp_path / "z.gz")
    assert "z.gz" in note and "keeps one line in 2" in note and "\n" not in note
    assert distributed.Dist().shard(tmp_path / "a") == tmp_path / "a"
    assert corpus_files(tmp_path)  # (the directory is a corpus)


# --------------------------------------------------------------------------- 2 ranks (forked, gloo)


def _train_long_line(rank: int, folder: Path, corpus: Path, tiny: Path) -> None:
    monkey_block = 256  # the reach and the read block: the corpus's 8 KB lines are "longer than a block"
    corpus_module.BLOCK_BYTES = monkey_block
    read: list = []
    original = corpus_module.read_pieces

    def recording(path, block_bytes, tokenizer, start=0, stop=None):
        read.append([start, stop])
        return original(path, block_bytes, tokenizer, start, stop)

    corpus_module.read_pieces = recording
    train(corpus, folder / "run", small_cfg(epochs=2, sync_every=300), progress_bar=False)
    (folder / f"read-{rank}.json").write_text(json.dumps(read))
    train(tiny, folder / "tiny", small_cfg(epochs=1), progress_bar=False)


def test_two_ranks_on_one_file_count_and_train_every_token_once(tmp_path):
    """Two ranks on one file of long lines (longer than the read block): each reads only its own
    byte range (twice: counting, encoding), the two ranges tile the file, the merged vocabulary
    is the whole file's counts, and the words trained are the file's times the epochs. A file of
    one short line leaves rank 1 nothing: the run still ends (no hang)."""
    corpus = tmp_path / "long.txt"
    write_twin_corpus(corpus, sentences=40, length=400)
    tiny = write(tmp_path / "tiny.txt", "a b\n")
    errors = run_ranks(_train_long_line, tmp_path, corpus, tiny)
    assert not errors, errors
    size = corpus.stat().st_size
    reads = [json.loads((tmp_path / f"read-{r}.json").read_text()) for r in (0, 1)]
    assert reads[0][0] == reads[0][1] and reads[1][0] == reads[1][1]  # the same range both times
    (a0, b0), (a1, b1) = reads[0][0], reads[1][0]
    assert a0 == 0 and b0 == a1 and b1 == size and 0.4 < b0 / size < 0.6
    whole, total = count_words(corpus)
    run = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert dict(zip(run["words"], run["counts"].tolist())) == dict(whole)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["corpus_words"] == total and metrics["words"] == 2 * total
    assert json.loads((tmp_path / "tiny" / "metrics.json").read_text())["corpus_words"] == 2


def _train_own_copy(rank: int, folder: Path) -> None:
    os.chdir(folder / f"node{rank}")  # "corpus.txt": each node's own copy
    train("corpus.txt", folder / "run", small_cfg(epochs=1), progress_bar=False)


def test_nodes_whose_copies_of_the_corpus_differ_fail_before_reading(tmp_path):
    """Per-node copies of different sizes would make the ranges overlap or leave gaps: every rank
    stops with the master's one line naming the file, both sizes and the rank."""
    for rank, lines in ((0, 100), (1, 101)):
        (tmp_path / f"node{rank}").mkdir()
        write_twin_corpus(tmp_path / f"node{rank}" / "corpus.txt", sentences=lines)
    errors = run_ranks(_train_own_copy, tmp_path)
    sizes = [(tmp_path / f"node{r}" / "corpus.txt").stat().st_size for r in (0, 1)]
    for rank in (0, 1):
        first = errors[rank].splitlines()[0]
        assert first.startswith("UserError: corpus file 'corpus.txt'") and "on rank 1" in first, errors
        assert f"{sizes[0]:,} bytes on rank 0" in first and f"{sizes[1]:,} bytes on rank 1" in first
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# --------------------------------------------------------------------------- several nodes (torchrun)


def launcher(*args: str, nnodes: int, nproc: int, port: int, join_timeout: int = 60) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc_per_node", str(nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"w2v-test-{port}",
            "--rdzv-conf", f"join_timeout={join_timeout}", "-m", "w2v_nce", *args]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def test_two_launchers_as_two_nodes_equal_one_node_bit_for_bit(tmp_path):
    """`torchrun --nnodes 2 --nproc_per_node 1` started twice (two nodes on loopback) trains the
    tables that `--nnodes 1 --nproc_per_node 2` trains, bit for bit, syncs within epochs included:
    one thread per rank (so each rank is deterministic: the one-node run gives the same vectors
    every time), a rank's data and stream set by its global rank, gloo's sum of two ranks exact in
    either order. The three launchers run at once (their imports dominate the time)."""
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=300)
    common = ["train", str(corpus), "--dim", "16", "--min-count", "1", "--threads", "1", "--epochs", "2",
              "--sync-every", "500", "--sync-rows", "8", "--quiet"]
    port = _free_port()
    commands = [launcher(*common, "--out", str(tmp_path / "one"), nnodes=1, nproc=2, port=_free_port())]
    commands += [launcher(*common, "--out", str(tmp_path / "two"), nnodes=2, nproc=1, port=port)] * 2
    runs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)
            for c in commands]
    try:
        outputs = [run.communicate(timeout=300) for run in runs]  # ~15 s on 2 idle cores; generous for a busy machine
    finally:
        for run in runs:
            run.kill()
    assert [run.returncode for run in runs] == [0, 0, 0], [err[-3000:] for _, err in outputs]
    assert sum(out.count("trained cbow") for out, _ in outputs[1:]) == 1  # rank 0's summary, on one node
    a, b = load_checkpoint(tmp_path / "one" / CHECKPOINT), load_checkpoint(tmp_path / "two" / CHECKPOINT)
    assert a["progress"]["words_done"] == b["progress"]["words_done"] > 0
    for table in ("inp", "out"):
        assert torch.equal(a["model"][table], b["model"][table]), table
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["ranks"] == 2 and metrics["corpus_words"] == count_words(corpus)[1]  # every token once


@pytest.mark.parametrize("local_world, local_rank, says", [(2, "0", False), (1, "0", True), (2, "1", False)])
def test_a_rank_that_lost_the_others_says_so_once_per_node_across_nodes(monkeypatch, capsys, local_world,
                                                                        local_rank, says):
    """A node killed whole prints nothing: across nodes the first rank of each other node prints
    the lost connection as one line (on one node the failing rank speaks, the others stay quiet)."""
    import typer

    from w2v_nce.cli import user_errors
    from w2v_nce.errors import RankFailed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world))
    monkeypatch.setenv("LOCAL_RANK", local_rank)

    def lose():
        raise RankFailed("lost the other ranks: Connection closed by peer [10.0.0.2]:41234")

    with pytest.raises(typer.Exit) as exit_:
        user_errors(lose)()
    assert exit_.value.exit_code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == (["error: lost the other ranks: Connection closed by peer [10.0.0.2]:41234"] if says else [])


def test_a_node_that_never_joins_fails_the_launcher_within_its_join_timeout(tmp_path):
    """One launcher of two: torchrun gives up after --rdzv-conf join_timeout (here 2 s; default
    600), exits non-zero, and names the cause (RendezvousTimeoutError); our command never starts."""
    (tmp_path / "c.txt").write_text("a b\n")
    result = subprocess.run(launcher("train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "run"),
                                     nnodes=2, nproc=1, port=_free_port(), join_timeout=2),
                            capture_output=True, text=True, timeout=120, env=ENV, cwd=REPO)  # the bound: no hang
    assert result.returncode != 0
    assert "RendezvousTimeoutError" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- every N-th unit (.gz)


class Pieces(corpus_module.Stream):
    def __init__(self, pieces):
        self.corpus, self.given = None, pieces

    def pieces(self, tokenizer="whitespace"):
        return iter(self.given)


def sliced_shard(pieces, index: int, count: int, unit_tokens: int):
    """Shard's pieces as first written (slicing the rest of a piece off at every unit): the reference."""
    unit = filled = 0
    for tokens, ends in pieces:
        while True:
            take = tokens[: unit_tokens - filled]
            tokens = tokens[len(take):]
            filled += len(take)
            done = filled == unit_tokens or (ends and not tokens)
            if unit % count == index and (take or done):
                yield take, done
            if done:
                unit, filled = unit + 1, 0
            if not tokens:
                break


def test_every_nth_unit_is_the_reference_and_units_of_whole_sentences(tmp_path):
    """Shard (kept for .gz) against its first, slicing version on random pieces (empty ones, ends
    alone, pieces longer than several units); and, on sentences given whole, part i holds units
    i, i + N, ... of the brute-force cut of each sentence into `unit` tokens."""
    rng = random.Random(5)
    for trial in range(200):
        pieces = [([f"w{trial}_{i}_{j}" for j in range(rng.choice([0, 0, 1, 2, 5, 13]))], rng.random() < 0.4)
                  for i in range(rng.randrange(1, 30))]
        unit, count = rng.choice([1, 2, 3, 4]), rng.choice([1, 2, 3])
        for index in range(count):
            got = list(read_corpus(Shard(Pieces(pieces), index, count, unit_tokens=unit)))
            assert got == list(sliced_shard(pieces, index, count, unit)), (pieces, unit, count, index)
    given = [[f"s{i}_{j}" for j in range(i % 7)] for i in range(40)]
    units = [s[k: k + 3] for s in given for k in range(0, max(len(s), 1), 3)]
    for index in range(3):
        assert [t for t, _ in read_corpus(Shard(given, index, 3, unit_tokens=3))] == units[index::3]
