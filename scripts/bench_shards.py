#!/usr/bin/env python
"""What one rank of N reads to count its shard: the whole corpus (one process), every N-th unit of
the stream (`Shard`, what a .gz gets), or its byte range (`ByteRange`, plain files).

A .gz corpus is decompressed into a temporary plain file first (--max-mb keeps a prefix of it);
each row times `count_tokens` of rank 0's part (counting and encoding read a shard the same way),
one JSON line per row, in CPU seconds (what a busy machine changes least) and wall seconds. Ranks
run one after the other here: the times are one rank's reading, not a run's.

Usage:
  python scripts/bench_shards.py ../shared/corpora/wiki17m.txt.gz --ranks 2 8
  python scripts/bench_shards.py ../shared/corpora/wiki17m.txt.gz --ranks 2 --max-mb 5
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from w2v_nce.corpus import ByteRange, Shard, count_tokens, gzipped  # noqa: E402


def timed(name: str, corpus) -> dict:
    began, cpu = time.perf_counter(), time.process_time()
    _, tokens = count_tokens(corpus)
    return {"read": name, "tokens": tokens, "cpu_seconds": round(time.process_time() - cpu, 2),
            "wall_seconds": round(time.perf_counter() - began, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--max-mb", type=float, default=0, help="keep this many MB of the text (0: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        plain = args.corpus
        if gzipped(plain) or args.max_mb:
            plain = Path(scratch) / "corpus.txt"
            opener = gzip.open if gzipped(args.corpus) else open
            with opener(args.corpus, "rb") as src, open(plain, "wb") as dst:
                if args.max_mb:
                    dst.write(src.read(int(args.max_mb * 1e6)))
                else:
                    shutil.copyfileobj(src, dst, 1 << 22)
        rows = [{"ranks": 1, **timed("whole", plain)}]
        for n in args.ranks:
            rows.append({"ranks": n, **timed("every N-th unit (Shard)", Shard(plain, 0, n))})
            rows.append({"ranks": n, **timed("byte range (ByteRange)", ByteRange(plain, 0, n))})
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
