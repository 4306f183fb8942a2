"""Command line: a thin typer layer over plain functions.

Every command turns a `UserError` into one line on stderr and exit status 2; option
errors caught by the parser are reported the same way by `main`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from w2v_nce.errors import RankFailed, UserError, reports_errors
from w2v_nce.objectives import LOSSES
from w2v_nce.windows import ARCHS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="word2vec (CBOW, skip-gram) with full softmax, hierarchical softmax, negative sampling, NCE and ranking NCE.",
)


# Choices derived from the tables that define them (the objectives, the example makers).
Loss = Enum("Loss", {name: name for name in LOSSES}, type=str)
Arch = Enum("Arch", {name: name for name in ARCHS}, type=str)


class Format(str, Enum):
    text = "text"
    binary = "binary"


def _fail(message: str, code: int = 2) -> None:
    if reports_errors():
        typer.echo(f"error: {message}", err=True)
    else:  # a torchrun rank but 0, which prints the run's one error line: let it, before torchrun stops it
        time.sleep(2)
    raise typer.Exit(code)


def user_errors(fn: Callable) -> Callable:
    """Report UserError (and Ctrl-C) as one line and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RankFailed:  # this torchrun rank lost the others: the run's error line is elsewhere
            raise typer.Exit(2)
        except UserError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


def _finite_or_null(data: Any) -> Any:
    """JSON has no inf or NaN: they become null (an overflowing perplexity, say)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite_or_null(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite_or_null(v) for v in data]
    return data


def _emit(result: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    if as_json:
        data = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result
        typer.echo(json.dumps(_finite_or_null(data), indent=2, allow_nan=False))
    else:
        typer.echo(text(result))


@app.command()
@user_errors
def train(
    corpus: list[Path] = typer.Argument(..., help="Text files (plain or .gz) or directories of them (every file "
                                         "inside, sorted): whitespace tokens, one sentence a line."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML preset (see configs/)."),
    out: Path = typer.Option(Path("runs/latest"), "--out", "-o", help="Output directory."),
    arch: Optional[Arch] = typer.Option(None, help="cbow: a window predicts its centre word; skipgram: each window word does."),
    loss: Optional[Loss] = typer.Option(None, help="Training objective."),
    dim: Optional[int] = typer.Option(None, help="Vector size."),
    window: Optional[int] = typer.Option(None, help="Maximum context window (dynamic, as word2vec)."),
    negatives: Optional[int] = typer.Option(None, help="Noise words per example."),
    min_count: Optional[int] = typer.Option(None, help="Drop words seen fewer times."),
    max_vocab: Optional[int] = typer.Option(None, help="Keep at most this many words (0 = no limit)."),
    sample: Optional[float] = typer.Option(None, help="Subsampling threshold (0 = off)."),
    epochs: Optional[int] = typer.Option(None, help="Passes over the corpus."),
    lr: Optional[float] = typer.Option(None, help="Starting learning rate (decays linearly)."),
    batch_size: Optional[int] = typer.Option(None, help="Examples (CBOW windows, skip-gram pairs) per SGD step."),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (0 = all cores)."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    log_z: Optional[float] = typer.Option(None, help="NCE: fixed log Z (or start value with --learn-log-z)."),
    learn_log_z: Optional[bool] = typer.Option(None, "--learn-log-z/--fixed-log-z", help="NCE: learn log Z."),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoint.pt."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train word vectors on CORPUS; write vectors.txt, checkpoint.pt, config.toml, metrics.json to OUT."""
    from w2v_nce.config import load_config
    from w2v_nce import fused
    from w2v_nce.train import CHECKPOINT, load_checkpoint, resolve_device, train as run_training

    overrides = dict(
        arch=arch.value if arch else None, loss=loss.value if loss else None, dim=dim, window=window, negatives=negatives, min_count=min_count,
        max_vocab=max_vocab, sample=sample, epochs=epochs, lr=lr, batch_size=batch_size, device=device,
        threads=threads, seed=seed, log_z=log_z, learn_log_z=learn_log_z,
    )
    if resume and not (out / CHECKPOINT).exists():
        typer.echo(f"note: no checkpoint in {out} yet: starting a new run", err=True)
        resume = False
    if resume:
        cfg = resume_config(load_checkpoint(out / CHECKPOINT)["config"], config, overrides)
    else:
        cfg = load_config(config, overrides)
    if cfg.loss == "is":
        typer.echo("warning: --loss is leaves the target out of its estimate of Z, so its loss is unbounded "
                   "below; on real text it diverges (docs/results.md): use rnce to train embeddings", err=True)
    if resolve_device(cfg.device).type == "cpu" and not (fused.AVAILABLE or fused.DISABLED):
        typer.echo("note: the fused CPU kernel was not built (no C compiler at install?): training runs "
                   "the PyTorch path, about 1.5x slower", err=True)
    metrics = run_training(corpus[0] if len(corpus) == 1 else corpus, out, cfg, resume=resume,
                           progress_bar=not quiet)
    if metrics is None:  # a torchrun rank other than 0: rank 0 reports
        return
    typer.echo(
        f"trained {metrics['arch']} with {metrics['loss']} on {metrics['words']:,} words in {metrics['seconds']:.1f}s "
        f"({metrics['words_per_sec']:,.0f} words/s on {metrics['device']}), "
        f"vocabulary {metrics['vocab_size']:,}, final loss {metrics['final_loss']:.4f}; "
        f"vectors in {out / 'vectors.txt'}"
    )


RESUMABLE = {"epochs", "device", "threads", "batch_size", "chunk_tokens", "sync_every", "sync_rows", "sync_divisor",
             "sync_scale_lr", "dist_timeout"}


def resume_config(saved: dict, config: Optional[Path], overrides: dict):
    """The checkpoint's config with the overrides that do not change the model applied."""
    from w2v_nce.config import apply_overrides, Config, load_config

    base = apply_overrides(Config(), saved)
    asked = {k: v for k, v in overrides.items() if v is not None}
    if config is not None:
        from_file = dataclasses.asdict(load_config(config))
        asked = {**{k: v for k, v in from_file.items() if from_file[k] != saved.get(k)}, **asked}
    changed = sorted(k for k, v in asked.items() if k not in RESUMABLE and v != saved.get(k))
    if changed:
        raise UserError(f"cannot change {changed[0]!r} when resuming (only {', '.join(sorted(RESUMABLE))})")
    return apply_overrides(base, asked)


@app.command()
@user_errors
def export(
    checkpoint: Path = typer.Argument(..., help="checkpoint.pt written by train."),
    out: Path = typer.Option(..., "--out", "-o", help="Output vectors file."),
    format: Format = typer.Option(Format.text, "--format", "-f", help="word2vec text or binary."),
) -> None:
    """Export a checkpoint's input vectors in word2vec format (gensim's load_word2vec_format reads it)."""
    from w2v_nce.train import load_checkpoint, vectors_from_checkpoint
    from w2v_nce.vectors import save_word2vec

    vectors = vectors_from_checkpoint(load_checkpoint(checkpoint))
    save_word2vec(vectors, out, binary=format is Format.binary)
    typer.echo(f"wrote {len(vectors):,} vectors of size {vectors.dim} to {out} ({format.value})")


@app.command()
@user_errors
def neighbors(
    vectors: Path = typer.Argument(..., help="word2vec text or binary file."),
    word: str = typer.Argument(...),
    topn: int = typer.Option(10, help="How many neighbours."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Nearest neighbours of WORD by cosine similarity."""
    from w2v_nce.evaluate import neighbors as find
    from w2v_nce.vectors import load_word2vec

    found = find(load_word2vec(vectors), word, topn)
    _emit(
        {"word": word, "neighbors": [{"word": w, "similarity": s} for w, s in found]},
        as_json,
        lambda r: "\n".join(f"{n['similarity']:.4f}  {n['word']}" for n in r["neighbors"]),
    )


@app.command()
@user_errors
def analogy(
    vectors: Path = typer.Argument(..., help="word2vec text or binary file."),
    questions: Optional[Path] = typer.Argument(None, help="Analogy questions (default: gensim's questions-words)."),
    restrict_vocab: int = typer.Option(30000, help="Only the most frequent N words count (gensim convention)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Analogy accuracy (3CosAdd), per section and in total, with coverage; equals gensim's numbers."""
    from w2v_nce.evaluate import analogy as evaluate
    from w2v_nce.vectors import load_word2vec

    def text(r) -> str:
        rows = [f"{s.name:32s} {s.accuracy:7.2%}  {s.correct:5d}/{s.answered:<5d} of {s.questions}" for s in r.sections]
        rows.append(f"{'total':32s} {r.accuracy:7.2%}  {r.correct:5d}/{r.answered:<5d} of {r.questions}"
                    f"  coverage {r.coverage:.1%}")
        return "\n".join(rows)

    _emit(evaluate(load_word2vec(vectors), questions, restrict_vocab=restrict_vocab), as_json, text)


@app.command()
@user_errors
def similarity(
    vectors: Path = typer.Argument(..., help="word2vec text or binary file."),
    pairs: Optional[Path] = typer.Argument(None, help="Word pairs with scores (default: gensim's wordsim353)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Spearman correlation of cosine similarity with human scores, with coverage; equals gensim's."""
    from w2v_nce.evaluate import similarity as evaluate
    from w2v_nce.vectors import load_word2vec

    _emit(
        evaluate(load_word2vec(vectors), pairs),
        as_json,
        lambda r: f"spearman {r.spearman:.4f}  pearson {r.pearson:.4f}  "
        f"pairs {r.pairs_used}/{r.pairs_total} (coverage {r.coverage:.1%})",
    )


@app.command()
@user_errors
def predict(
    run: Path = typer.Argument(..., help="Run directory written by train (--out)."),
    context: list[str] = typer.Argument(..., help="Context words."),
    topn: int = typer.Option(10, help="How many words."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The most probable words given CONTEXT, with p(word | context) (losses softmax, hs, nce...)."""
    from w2v_nce.api import Word2Vec

    found = Word2Vec.load(run).predict(context, topn=topn)
    _emit(
        {"context": context, "predictions": [{"word": w, "probability": p} for w, p in found]},
        as_json,
        lambda r: "\n".join(f"{p['probability']:.4f}  {p['word']}" for p in r["predictions"]),
    )


@app.command()
@user_errors
def diagnose(
    checkpoint: Path = typer.Argument(..., help="checkpoint.pt written by train."),
    heldout: Path = typer.Argument(..., help="Held-out corpus (not trained on)."),
    max_examples: int = typer.Option(20000, help="Use at most this many held-out examples."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Held-out full-softmax cross-entropy and the self-normalisation of the raw scores (log Z)."""
    from w2v_nce.diagnose import diagnose as run_diagnose
    from w2v_nce.train import load_checkpoint

    _emit(
        run_diagnose(load_checkpoint(checkpoint), heldout, max_examples=max_examples),
        as_json,
        lambda r: "\n".join(f"{k:26s} {v}" for k, v in dataclasses.asdict(r).items()),
    )


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point: parser errors become one `error:` line too.

    typer raises click's exceptions (or, from typer 0.22, its vendored copies of them), so
    they are recognised by what they carry rather than by class.
    """
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="w2v-nce", standalone_mode=False)
    except Exception as exc:
        kind = type(exc).__name__
        if kind == "Exit":
            return exc.exit_code
        if kind == "Abort":
            print("error: interrupted", file=sys.stderr)
            return 130
        if hasattr(exc, "format_message"):  # a usage error: bad option, missing argument...
            if exc.format_message():  # empty after `no_args_is_help` has printed the help
                print(f"error: {exc.format_message()}", file=sys.stderr)
            return getattr(exc, "exit_code", 2) or 2
        if os.environ.get("W2V_NCE_DEBUG"):
            raise
        # A defect of ours, not bad input: still one line, with what to do about it.
        print(f"error: internal error ({kind}: {exc}); rerun with W2V_NCE_DEBUG=1 for the traceback and "
              "report it", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
