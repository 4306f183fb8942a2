"""Download text8 (the first 10^8 bytes of English Wikipedia, 17M tokens) for larger runs.

    python scripts/fetch_text8.py [--out data/text8]

Needs internet. The file is one 100 MB line; `w2v-nce train data/text8 --config configs/text8.toml`
streams it in bounded memory.
"""

from __future__ import annotations

import argparse
import io
import sys
import urllib.request
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from w2v_nce.atomic import atomic_path  # noqa: E402

URL = "http://mattmahoney.net/dc/text8.zip"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/text8"))
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    if args.out.exists():
        print(f"{args.out} already exists")
        return 0
    try:
        print(f"downloading {args.url} ...", file=sys.stderr)
        with urllib.request.urlopen(args.url, timeout=60) as response:
            payload = response.read()
        with zipfile.ZipFile(io.BytesIO(payload)) as archive, atomic_path(args.out) as tmp:
            tmp.write_bytes(archive.read("text8"))
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        print(f"error: could not fetch text8 from {args.url}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
