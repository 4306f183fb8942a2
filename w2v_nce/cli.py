"""Command line: a thin typer layer over plain functions.

Every command turns a `UserError` into one line on stderr and exit status 2; option
errors caught by the parser are reported the same way by `main`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import os
import sys
import time
import typing
import warnings
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from w2v_nce.config import FIELDS, PHRASE_CONNECTORS, PHRASE_SCORINGS, TOKENIZERS  # a leaf: no torch
from w2v_nce.errors import RankFailed, UserError, reports_errors, reports_lost_ranks

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="word2vec (CBOW, skip-gram) with full softmax, hierarchical softmax, negative sampling, NCE and ranking NCE.",
)


def choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """An option's choices as the Enum click shows and checks (its members are the values)."""
    return Enum(name, {v: v for v in values}, type=str)


Format = choices("Format", ("text", "binary", "fasttext"))
VECTORS_HELP = "word2vec text or binary file, a run directory (train --out), or a fastText .bin."
OOV_HELP = ("Give unseen words the mean of their character n-grams' vectors (a run trained with --subwords, "
            "or a fastText .bin).")


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
        except RankFailed as exc:  # this torchrun rank lost the others: the run's error line is elsewhere,
            if reports_lost_ranks():  # unless a whole node died
                typer.echo(f"error: {exc}", err=True)
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


def _config_option(f: dataclasses.Field) -> inspect.Parameter:
    """The `train` option of one Config field: its name, help and choices come from the field."""
    from w2v_nce.config import field_type

    kind = field_type(f.name)
    if f.metadata["choices"]:
        kind = choices(f.name.title().replace("_", ""), f.metadata["choices"])
    elif typing.get_origin(kind) is tuple:  # given once per value: --phrase-threshold 200 --phrase-threshold 100
        kind = list[typing.get_args(kind)[0]]
    dashed = f.name.replace("_", "-")
    flag = f.metadata["flag"] or (f"--{dashed}/--no-{dashed}" if kind is bool else f"--{dashed}")
    default = "automatic" if f.default is None else str(f.default).lower() if kind is bool else str(f.default)
    panel = "Phrases (config keys)" if f.name.startswith("phrase") else "Training options (config keys)"
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[kind],
                             default=typer.Option(None, flag, help=f.metadata["help"], show_default=default,
                                                  rich_help_panel=panel))


def _phrase_option(name: str, flag: str) -> Any:
    """The `phrases` command's option declared by the Config field phrase_NAME (`train --phrase-NAME`)."""
    f = FIELDS[f"phrase_{name}"]
    return typer.Option(None, flag, help=f.metadata["help"], show_default=f.default is not None and str(f.default))


def train(
    corpus: list[str] = typer.Argument(..., help="Text files (plain or .gz), directories of them (every file "
                                        "inside, sorted) or - for standard input: one sentence a line."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML preset (see configs/)."),
    out: Path = typer.Option(Path("runs/latest"), "--out", "-o", help="Output directory."),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoint.pt."),
    init: Optional[Path] = typer.Option(None, "--init", help="Continue the run in this directory on CORPUS: its "
                                        "tables and settings, into OUT (a new directory; RUN is only read)."),
    update_vocab: bool = typer.Option(False, "--update-vocab", help="With --init: add CORPUS's new words seen "
                                      "min-count times, merge the counts (gensim's build_vocab(update=True)); "
                                      "without it new words are ignored."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    **options: Any,
) -> None:
    """Train word vectors on CORPUS; write vectors.txt, checkpoint.pt, config.toml, metrics.json to OUT.

    Every training option is a config key (a TOML preset sets the same keys; options given here win)."""
    from w2v_nce.config import Config, apply_overrides, asked

    given = asked(config, {k: v.value if isinstance(v, Enum) else v for k, v in options.items()})
    cfg = apply_overrides(Config(), given)  # resuming or continuing, train() applies the run's own settings first
    if update_vocab and init is None:
        raise UserError("--update-vocab grows the vocabulary of a trained run: give it with --init RUN")
    if resume and not (out / "checkpoint.pt").exists():
        typer.echo(f"note: no checkpoint in {out} yet: starting a new run", err=True)
    if cfg.loss == "is":
        typer.echo("warning: --loss is leaves the target out of its estimate of Z, so its loss is unbounded "
                   "below; on real text it diverges (docs/results.md): use rnce to train embeddings", err=True)
    from w2v_nce import fused  # torch, from here on
    from w2v_nce.train import resolve_device, train as run_training

    if resolve_device(cfg.device).type == "cpu" and not (fused.AVAILABLE or fused.DISABLED):
        typer.echo("note: the fused CPU kernel was not built (no C compiler at install?): training runs "
                   "the PyTorch path, about 1.5x slower", err=True)
    paths = ["-" if p == "-" else Path(p) for p in corpus]
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = lambda message, *_: typer.echo(f"warning: {message}", err=True)  # one line each
        metrics = run_training(paths[0] if len(paths) == 1 else paths, out, cfg, resume=resume,
                               progress_bar=not quiet, asked=given, init=init, update_vocab=update_vocab)
    if metrics is None:  # a torchrun rank other than 0: rank 0 reports
        return
    kept = ""
    if metrics["best_epoch"] is not None:
        stopped = f", stopped early ({metrics['stopped']})" if metrics["stopped"] else ""
        kept = (f"; held-out {metrics['heldout_measure']} best at epoch {metrics['best_epoch']}"
                f" ({metrics['best_heldout']:.4f}){stopped}, whose vectors are kept")
    typer.echo(
        f"trained {metrics['arch']} with {metrics['loss']} on {metrics['words']:,} words in {metrics['seconds']:.1f}s "
        f"({metrics['words_per_sec']:,.0f} words/s on {metrics['device']}, {metrics['step']} step), "
        f"vocabulary {metrics['vocab_size']:,}, final loss {metrics['final_loss']:.4f}{kept}; "
        f"vectors in {out / 'vectors.txt'}"
    )


def _shorthand_option(name: str, help: str) -> inspect.Parameter:
    """The `train` flag of a config shorthand (config.SHORTHANDS): --subwords."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[bool],
                             default=typer.Option(None, f"--{name}", help=help, show_default=False,
                                                  rich_help_panel="Training options (config keys)"))


def _register_train() -> None:
    from w2v_nce.config import SHORTHANDS, Config

    fixed = [p for p in inspect.signature(train).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    hints = typing.get_type_hints(train)
    fixed = [p.replace(annotation=hints[p.name]) for p in fixed]
    train.__signature__ = inspect.Signature(fixed + [_config_option(f) for f in dataclasses.fields(Config)]
                                            + [_shorthand_option(k, h) for k, (h, _) in SHORTHANDS.items()])
    app.command()(user_errors(train))


_register_train()


Which = choices("Which", ("input", "output"))


@app.command()
@user_errors
def export(
    checkpoint: Path = typer.Argument(..., help="A run directory or its checkpoint.pt (written by train)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file."),
    format: Format = typer.Option(Format.text, "--format", "-f", help="word2vec text or binary, or fasttext: "
                                  "Facebook's .bin (fastText's load_model and gensim's load_facebook_model read it; "
                                  "with subwords, it gives unseen words their vectors)."),
    which: Which = typer.Option(Which.input, "--which", help="input: the word vectors (word2vec's syn0); "
                                "output: the output rows (syn1neg), for the losses that have one per word."),
) -> None:
    """Export a run's vectors in word2vec format (gensim's load_word2vec_format reads it), or its
    whole model in fastText's .bin."""
    from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint, vectors_from_checkpoint

    state = load_checkpoint(checkpoint / CHECKPOINT if checkpoint.is_dir() else checkpoint)
    if format is Format.fasttext:
        from w2v_nce.fasttext_io import save_fasttext_bin

        if which is not Which.input:
            raise UserError("--format fasttext writes the whole model (input and output rows): leave out --which")
        save_fasttext_bin(state, out)
        cfg = state["config"]
        typer.echo(f"wrote the fastText model of {len(state['words']):,} words"
                   + (f" and {cfg['buckets']:,} n-gram buckets" if cfg.get("maxn") else "") + f" to {out}")
        return
    from w2v_nce.vectors import save_word2vec

    vectors = vectors_from_checkpoint(state, which.value)
    save_word2vec(vectors, out, binary=format is Format.binary)
    typer.echo(f"wrote {len(vectors):,} {which.value} vectors of size {vectors.dim} to {out} ({format.value})")


MULTI_WORD_OPTIONS = ("--positive", "-p", "--negative", "-n")  # each takes the words that follow it (expand_multi_word)


@app.command()
@user_errors
def neighbors(
    vectors: Path = typer.Argument(..., help=VECTORS_HELP),
    word: Optional[str] = typer.Argument(None, help="The word whose neighbours to list (same as --positive WORD)."),
    positive: list[str] = typer.Option([], "--positive", "-p", help="Words to add: --positive king woman."),
    negative: list[str] = typer.Option([], "--negative", "-n", help="Words to subtract: --negative man."),
    cosmul: bool = typer.Option(False, "--cosmul", help="3CosMul (gensim's most_similar_cosmul) instead of 3CosAdd."),
    topn: int = typer.Option(10, help="How many neighbours."),
    oov: bool = typer.Option(False, "--oov", help=OOV_HELP),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Nearest neighbours by cosine similarity of WORD, or of the positive words minus the negative
    ones (a − b + c analogies): gensim's most_similar / most_similar_cosmul."""
    from w2v_nce.evaluate import check_oov, neighbors as find
    from w2v_nce.fasttext_io import open_vectors

    plus = ([word] if word else []) + list(positive)
    kv = open_vectors(vectors)
    check_oov(kv, oov, str(vectors))
    found = find(kv, plus, list(negative), topn, cosmul, oov=oov)
    _emit(
        {"positive": plus, "negative": list(negative), "cosmul": cosmul,
         "neighbors": [{"word": w, "similarity": s} for w, s in found]},
        as_json,
        lambda r: "\n".join(f"{n['similarity']:.4f}  {n['word']}" for n in r["neighbors"]),
    )


@app.command()
@user_errors
def analogy(
    vectors: Path = typer.Argument(..., help=VECTORS_HELP),
    questions: Optional[Path] = typer.Argument(None, help="Analogy questions (default: gensim's questions-words)."),
    restrict_vocab: int = typer.Option(30000, help="Only the most frequent N words count (gensim convention; 0: all "
                                       "words, as word2vec's compute-accuracy without a threshold)."),
    oov: bool = typer.Option(False, "--oov", help="Also answer questions whose a, b or c is not among the first "
                             "words (unseen words take their n-grams' vectors; needs subwords)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Analogy accuracy (3CosAdd), per section and in total, with coverage; equals gensim's numbers.
    Words are compared case-insensitively, so mixed-case sets (questions-phrases.txt's New_York_Times)
    meet a lowercased corpus."""
    from w2v_nce.evaluate import analogy as evaluate, check_oov
    from w2v_nce.fasttext_io import open_vectors

    def text(r) -> str:
        rows = [f"{s.name:32s} {s.accuracy:7.2%}  {s.correct:5d}/{s.answered:<5d} of {s.questions}" for s in r.sections]
        rows.append(f"{'total':32s} {r.accuracy:7.2%}  {r.correct:5d}/{r.answered:<5d} of {r.questions}"
                    f"  coverage {r.coverage:.1%}")
        return "\n".join(rows)

    kv = open_vectors(vectors)
    check_oov(kv, oov, str(vectors))
    _emit(evaluate(kv, questions, restrict_vocab=restrict_vocab or None, oov=oov), as_json, text)


@app.command()
@user_errors
def similarity(
    vectors: Path = typer.Argument(..., help=VECTORS_HELP),
    pairs: Optional[Path] = typer.Argument(None, help="Word pairs with scores (default: gensim's wordsim353)."),
    oov: bool = typer.Option(False, "--oov", help="Score every pair: unseen words take their n-grams' vectors "
                             "(needs subwords)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Spearman correlation of cosine similarity with human scores, with coverage; equals gensim's."""
    from w2v_nce.evaluate import check_oov, similarity as evaluate
    from w2v_nce.fasttext_io import open_vectors

    kv = open_vectors(vectors)
    check_oov(kv, oov, str(vectors))
    _emit(
        evaluate(kv, pairs, oov=oov),
        as_json,
        lambda r: f"spearman {r.spearman:.4f}  pearson {r.pearson:.4f}  "
        f"pairs {r.pairs_used}/{r.pairs_total} (coverage {r.coverage:.1%})",
    )


@app.command()
@user_errors
def vectors(
    source: Path = typer.Argument(..., help=VECTORS_HELP),
    words: list[str] = typer.Argument(None, help="Words (default: the words of standard input)."),
) -> None:
    """Print each word's vector, 'word v1 v2 ...' a line, as fastText's print-word-vectors: a known
    word's own, and with subwords an unseen word's from its character n-grams."""
    from w2v_nce.evaluate import as_keyed_vectors
    from w2v_nce.fasttext_io import open_vectors, word_vector

    kv = as_keyed_vectors(open_vectors(source))
    stream = words if words else (w for line in sys.stdin for w in line.split())
    for word in stream:
        typer.echo(word + " " + " ".join(f"{v:.5g}" for v in word_vector(kv, word).tolist()))


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
    from w2v_nce.checkpoint import load_checkpoint
    from w2v_nce.diagnose import diagnose as run_diagnose

    _emit(
        run_diagnose(load_checkpoint(checkpoint), heldout, max_examples=max_examples),
        as_json,
        lambda r: "\n".join(f"{k:26s} {v}" for k, v in dataclasses.asdict(r).items()),
    )


@app.command()
@user_errors
def plot(
    run: Path = typer.Argument(..., help="Run directory written by train (--out)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="PNG file (default: RUN/training.png)."),
) -> None:
    """Draw a run's training curves (loss, words/s, LR; analogy and WS353 with --eval-each-epoch)."""
    from w2v_nce.plot import plot_run

    typer.echo(f"wrote {plot_run(run, out)}")


Scoring = choices("Scoring", PHRASE_SCORINGS)
Connectors = choices("Connectors", PHRASE_CONNECTORS)
Tokenizer = choices("Tokenizer", TOKENIZERS)


@app.command()
@user_errors
def phrases(
    corpus: list[str] = typer.Argument(..., help="Text files (plain or .gz), directories of them (every file "
                                        "inside, sorted) or - for standard input: one sentence a line."),
    out: Path = typer.Option(..., "--out", "-o", help="The corpus with its phrases joined, one sentence a line."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Where to save the phrase model (JSON).",
                                         show_default="OUT.phrases.json"),
    apply: Optional[Path] = typer.Option(None, "--apply", help="Join the phrases of this saved model instead of "
                                         "learning new ones."),
    passes: Optional[int] = typer.Option(None, help="Passes; each joins the last one's output into longer phrases.",
                                         show_default="2"),
    min_count: Optional[int] = _phrase_option("min_count", "--min-count"),
    threshold: Optional[list[float]] = _phrase_option("threshold", "--threshold"),
    scoring: Optional[Scoring] = _phrase_option("scoring", "--scoring"),
    delimiter: Optional[str] = _phrase_option("delimiter", "--delimiter"),
    connectors: Optional[Connectors] = _phrase_option("connectors", "--connectors"),
    max_vocab: Optional[int] = _phrase_option("max_vocab", "--max-vocab"),
    tokenizer: Tokenizer = typer.Option(Tokenizer.whitespace, help=FIELDS["tokenizer"].metadata["help"]),
) -> None:
    """Detect phrases (word2phrase, gensim's Phrases) in CORPUS and write it with them joined ("new_york")
    to OUT, and the model to OUT.phrases.json; or, with --apply MODEL, join a saved model's phrases."""
    from w2v_nce.phrases import phrase_corpus

    given = dict(passes=passes, min_count=min_count, threshold=threshold or None, scoring=scoring,
                 delimiter=delimiter, connectors=connectors, max_vocab=max_vocab)
    options = {k: v.value if isinstance(v, Enum) else v for k, v in given.items() if v is not None}
    paths = ["-" if p == "-" else Path(p) for p in corpus]
    phrase_corpus(paths[0] if len(paths) == 1 else paths, out, model, apply, report=typer.echo,
                  tokenizer=tokenizer.value, **options)


def expand_multi_word(argv: list[str]) -> list[str]:
    """`--positive king woman` as click needs it, `--positive king --positive woman`: the words
    after one of MULTI_WORD_OPTIONS, up to the next option, each get the option.

    >>> expand_multi_word(["neighbors", "v.txt", "--positive", "king", "woman", "-n", "man", "--json"])
    ['neighbors', 'v.txt', '--positive', 'king', '--positive', 'woman', '-n', 'man', '--json']
    """
    if not argv or str(argv[0]) != "neighbors":
        return argv
    expanded, current = [], None
    for arg in argv:
        if str(arg).startswith("-") and str(arg) != "-":
            current = arg if arg in MULTI_WORD_OPTIONS else None
        elif current is not None and expanded[-1] != current:
            expanded.append(current)
        expanded.append(arg)
    return expanded


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point: parser errors become one `error:` line too.

    typer raises click's exceptions (or, from typer 0.22, its vendored copies of them), so
    they are recognised by what they carry rather than by class.
    """
    command = typer.main.get_command(app)
    try:
        args = expand_multi_word(sys.argv[1:] if argv is None else argv)
        code = command.main(args=args, prog_name="w2v-nce", standalone_mode=False)
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
