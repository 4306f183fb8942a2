"""Evaluations of word vectors: nearest neighbours, word analogies, word-pair similarity.

Each is a plain function returning plain data (`dataclasses.asdict` gives JSON), the input files
checked first so that a bad one is a clear error. Neighbours are gensim's own
`KeyedVectors.most_similar[_cosmul]`. Analogies and word pairs are
computed here, equal to gensim's `evaluate_word_analogies` and `evaluate_word_pairs` down to their
float32 rounding and tie-breaking (tests/test_evaluate.py: gensim's as the oracle), analogies 5-6x
faster (one matrix product per batch of questions; docs/performance.md measures all three), and
neither needs gensim for a Vectors (the GPU image has none):

>>> v = Vectors(["a", "b", "c"], np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
>>> [(w, round(s, 4)) for w, s in neighbors(v, "a", topn=2)]
[('b', 0.7071), ('c', 0.0)]

The default test sets are the copies gensim ships (questions-words.txt, wordsim353.tsv).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.linalg import get_blas_funcs

from w2v_nce.errors import UserError
from w2v_nce.vectors import Vectors

PathLike = str | os.PathLike

# gensim's matutils.unitvec normalises with float64 BLAS nrm2 and scal, whatever the input dtype.
_blas_nrm2 = get_blas_funcs(("nrm2",), (np.array([], dtype=float),))[0]
_blas_scal = get_blas_funcs(("scal",), (np.array([], dtype=float),))[0]

_ANALOGY_TOPN = 5  # gensim asks most_similar for 5 candidates ...
_ANALOGY_INPUTS = 3  # ... plus one per input word, which it then drops
_ANALOGY_SHORTLIST = _ANALOGY_TOPN + _ANALOGY_INPUTS
_BATCH_SCORES = 8_000_000  # float32 scores per batched matrix product (32 MB)
_BLOCK_ROWS = 64  # rows per block when shortlisting the best rows


@dataclass
class AnalogySection:
    """One ': name' block of the questions file. `answered` = questions with all 4 words known."""

    name: str
    correct: int
    incorrect: int
    answered: int
    questions: int
    accuracy: float  # correct / answered, 0.0 when nothing was answered (as gensim)


@dataclass
class AnalogyResult:
    questions_path: str
    sections: list[AnalogySection]  # gensim's trailing 'Total accuracy' pseudo-section left out
    accuracy: float
    correct: int
    answered: int
    questions: int
    coverage: float  # answered / questions


@dataclass
class SimilarityResult:
    pairs_path: str
    spearman: float
    spearman_pvalue: float
    pearson: float
    pearson_pvalue: float
    pairs_used: int
    pairs_total: int
    coverage: float  # pairs_used / pairs_total
    oov_ratio: float  # 1 - coverage; gensim reports 100 * this (a percentage)


# --------------------------------------------------------------------------- neighbours


def neighbors(vectors, positive: str | list[str], negative: list[str] | None = None, topn: int = 10,
              cosmul: bool = False, oov: bool = False) -> list[tuple[str, float]]:
    """The `topn` words nearest to the sum of `positive` minus `negative` words, best first, the
    query words left out: gensim's `most_similar` (3CosAdd), or `most_similar_cosmul` (3CosMul,
    Levy and Goldberg 2014) with `cosmul`. `vectors` is a Vectors or a gensim KeyedVectors; with
    `oov`, an unseen query word takes its n-grams' vector (a FastTextKeyedVectors)."""
    positive = [positive] if isinstance(positive, str) else list(positive)
    negative = list(negative or [])
    if not positive and not negative:
        raise UserError("give at least one query word")
    if topn < 1:
        raise UserError(f"topn must be at least 1, got {topn}")
    kv = as_keyed_vectors(vectors)
    for word in positive + negative:
        why = _unknown(kv, word, oov)
        if why is not None:
            raise UserError(why)
    query = kv.most_similar_cosmul if cosmul else kv.most_similar
    with warnings.catch_warnings():  # most_similar_cosmul calls gensim's own deprecated init_sims
        warnings.simplefilter("ignore", DeprecationWarning)
        found = query(positive=positive, negative=negative, topn=topn)
    return [(w, float(s)) for w, s in found]


def _unknown(kv, word: str, oov: bool) -> str | None:
    """Why `word` has no vector (None: it has one), with `oov` from its n-grams when it is unseen."""
    from w2v_nce.fasttext_io import can_answer, has_subwords, unknown_word

    if word in kv.key_to_index or (oov and can_answer(kv, word)):
        return None
    if oov:
        return unknown_word(kv, word)
    if not has_subwords(kv):
        return f"word '{word}' is not in the vocabulary"
    return f"word '{word}' is not in the vocabulary (--oov gives it its character n-grams' vector)"


def check_oov(kv, oov: bool, source: str) -> None:
    """--oov needs vectors that give unseen words one: a UserError for those that cannot."""
    from w2v_nce.fasttext_io import has_subwords

    if oov and not has_subwords(as_keyed_vectors(kv)):
        raise UserError(f"--oov needs subwords, and '{source}' has none: give a run trained with --subwords or "
                        "its fastText .bin (w2v-nce export RUN --format fasttext)")


def as_keyed_vectors(vectors):
    """A gensim KeyedVectors for `vectors` (a Vectors, or a KeyedVectors already)."""
    return vectors.keyed_vectors() if isinstance(vectors, Vectors) else vectors


def _words_and_matrix(vectors) -> tuple[list[str], np.ndarray]:
    if isinstance(vectors, Vectors):
        return vectors.words, vectors.matrix
    return list(vectors.index_to_key), np.asarray(vectors.vectors, dtype=np.float32)


# --------------------------------------------------------------------------- analogies


def analogy(
    vectors,
    questions_path: PathLike | None = None,
    restrict_vocab: int | None = 30000,
    case_insensitive: bool = True,
    oov: bool = False,
) -> AnalogyResult:
    """Accuracy on "a is to b as c is to d" questions by 3CosAdd, as gensim's `evaluate_word_analogies`.

    gensim's rules, mirrored exactly:
    - only the first `restrict_vocab` words count; a question with any other word is skipped;
    - with `case_insensitive`, words are compared upper-cased, and a word stands for the first
      (most frequent) of its case variants;
    - the answer is the first of the 5 words nearest to unit(b) + unit(c) - unit(a) (rows
      a, b, c themselves dropped first) that is not a case variant of a, b or c; if all 5 are,
      the 5th counts (and is wrong).
    Instead of one matrix-vector product per question, scores come from one matrix product per
    batch; questions whose top candidates are closer than float32 rounding could separate are
    recomputed exactly as gensim does, so ties break the same way.
    With `oov` (a FastTextKeyedVectors), a question whose answer is among the first words is also
    answered when a, b or c is not: such a word, as written, takes its vector from the model (its
    n-grams' if unseen), the rest of the rule unchanged.
    """
    path = Path(questions_path) if questions_path is not None else _gensim_test_data("questions-words.txt")
    fold = str.upper if case_insensitive else str
    written = _read_questions(path, str)
    sections = [(name, [tuple(fold(w) for w in q) for q in questions]) for name, questions in written]
    words, matrix = _words_and_matrix(vectors)
    keys = _restricted_keys(words, restrict_vocab)
    first_row = _first_rows(keys, fold)
    canonical = np.fromiter((first_row[fold(k)] for k in keys), dtype=np.int64, count=len(keys))

    asked = [
        (number, *(first_row[w] for w in question))
        for number, (_, questions) in enumerate(sections)
        for question in questions
        if all(w in first_row for w in question)
    ]
    section_of, a, b, c, expected = np.array(asked, dtype=np.int64).reshape(-1, 5).T
    predicted = _predict_analogies(matrix[: len(keys)], canonical, a, b, c)
    right = predicted == expected
    if oov:
        extra = _unseen_analogies(as_keyed_vectors(vectors), matrix[: len(keys)], canonical, first_row, written, fold)
        section_of = np.concatenate([section_of, np.array([n for n, _ in extra], dtype=np.int64)])
        right = np.concatenate([right, np.array([ok for _, ok in extra], dtype=bool)])

    results = []
    for number, (name, questions) in enumerate(sections):
        mine = section_of == number
        correct, answered = int(right[mine].sum()), int(mine.sum())
        accuracy = _ratio(correct, answered)
        results.append(AnalogySection(name, correct, answered - correct, answered, len(questions), accuracy))
    total = sum(len(q) for _, q in sections)
    correct = int(right.sum())
    return AnalogyResult(
        questions_path=str(path),
        sections=results,
        accuracy=_ratio(correct, len(right)),
        correct=correct,
        answered=len(right),
        questions=total,
        coverage=_ratio(len(right), total),
    )


def _predict_analogies(
    matrix: np.ndarray, canonical: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> np.ndarray:
    """gensim's answer (a canonical row, -1 for none) to each question (a, b, c rows)."""
    n_rows, dim = matrix.shape
    norms = np.linalg.norm(matrix, axis=1)  # exactly gensim's fill_norms()
    predicted = np.full(len(a), -1, dtype=np.int64)
    depth = _ANALOGY_SHORTLIST + 1  # one more, to see the gap below the shortlist
    if n_rows < 2 * depth:
        for q in range(len(a)):
            predicted[q] = _analogy_exact(matrix, norms, canonical, a[q], b[q], c[q])
        return predicted

    # Both our scores and gensim's are float32 dot products of unit vectors, each off the true
    # cosine by at most dim * 2**-24; a ranking decided by larger gaps is the same as gensim's.
    margin = 4 * dim * 2.0**-24 + 1e-6
    # The best `depth` rows lie in the `depth` blocks of rows with the highest maxima, so only
    # those blocks are ranked. Zero rows (NaN for gensim) and padding score 0 here, and a
    # question that ranks one of them high is recomputed exactly.
    block = _BLOCK_ROWS if n_rows >= 4 * depth * _BLOCK_ROWS else 1
    padded = -(-n_rows // block) * block
    unit = np.zeros((padded, dim), dtype=np.float32)
    suspect = np.ones(padded, dtype=bool)
    suspect[:n_rows] = ~(norms > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit[:n_rows] = matrix / norms[:, None]
        mean = (unit[b] + unit[c]) - unit[a]  # gensim's float32 sum, in its order
        mean = mean.astype(np.float64) / 3.0
        mean *= 1.0 / np.linalg.norm(mean, axis=1, keepdims=True)
        mean = mean.astype(np.float32)
    unit[suspect] = 0.0

    batch = max(1, _BATCH_SCORES // padded)
    for start in range(0, len(a), batch):
        stop = min(start + batch, len(a))
        scores = mean[start:stop] @ unit.T
        maxima = scores.reshape(stop - start, block, -1).max(axis=1)  # block j: rows j + k * n_blocks
        blocks = np.argpartition(-maxima, depth - 1, axis=1)[:, :depth]
        rows = (blocks[:, :, None] + np.arange(0, padded, padded // block)).reshape(stop - start, -1)
        row_scores = scores.take(rows + np.arange(0, scores.size, padded)[:, None])  # flat indices
        best = np.argpartition(-row_scores, depth - 1, axis=1)[:, :depth]
        top, top_scores = np.take_along_axis(rows, best, axis=1), np.take_along_axis(row_scores, best, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        gaps = -np.diff(np.take_along_axis(top_scores, order, axis=1), axis=1)
        clear = np.logical_and.accumulate(gaps > margin, axis=1)  # NaN gaps are not clear
        clear &= ~suspect[top].any(axis=1, keepdims=True)
        for i, q in enumerate(range(start, stop)):
            if clear[i, 0]:  # else its shortlist may hold padding rows, which name no word
                answer, decided_at = _analogy_answer(top[i], canonical, a[q], b[q], c[q])
                if clear[i, decided_at]:
                    predicted[q] = answer
                    continue
            predicted[q] = _analogy_exact(matrix, norms, canonical, a[q], b[q], c[q])
    return predicted


def _unseen_analogies(kv, matrix: np.ndarray, canonical: np.ndarray, first_row: dict[str, int], written,
                      fold) -> list[tuple[int, bool]]:
    """(section, right) of the questions only `oov` answers: the answer among the rows, some of
    a, b, c not, each with a vector in `kv`. One at a time, as gensim's most_similar computes."""
    from w2v_nce.fasttext_io import can_answer

    norms = np.linalg.norm(matrix, axis=1)
    found = []
    for number, (_, questions) in enumerate(written):
        for question in questions:
            keys = [fold(w) for w in question]
            if all(k in first_row for k in keys) or keys[3] not in first_row:
                continue
            if not all(k in first_row or can_answer(kv, w) for k, w in zip(keys[:3], question[:3])):
                continue
            # a row stands for a word of the first ones; an unseen word, for no row (-2, -3, -4)
            rows = [first_row.get(k, -2 - i) for i, k in enumerate(keys[:3])]
            vecs = [matrix[r] if r >= 0 else kv.get_vector(w) for r, w in zip(rows, question[:3])]
            abc = np.stack(vecs).astype(matrix.dtype)
            mean = _query_vector(abc, np.linalg.norm(abc, axis=1), [1, 2], [0])  # b + c - a, as gensim
            with np.errstate(divide="ignore", invalid="ignore"):
                scores = np.dot(matrix, mean) / norms
            ranked = _top_rows(scores, _ANALOGY_SHORTLIST)
            found.append((number, _analogy_answer(ranked, canonical, *rows)[0] == first_row[keys[3]]))
    return found


def _analogy_answer(ranked, canonical: np.ndarray, a: int, b: int, c: int) -> tuple[int, int]:
    """gensim's pick from candidate rows `ranked` (best first): (canonical answer, its rank).

    >>> _analogy_answer([1, 7, 3, 4], np.arange(9), a=1, b=2, c=3)
    (7, 1)
    """
    inputs = (a, b, c)
    answer, rank, kept = -1, 0, 0
    for rank, row in enumerate(ranked[:_ANALOGY_SHORTLIST]):
        if row in inputs:  # most_similar drops the input rows
            continue
        kept += 1
        answer = int(canonical[row])
        if answer not in inputs or kept == _ANALOGY_TOPN:  # evaluation skips their case variants
            break
    return answer, rank


def _analogy_exact(
    matrix: np.ndarray, norms: np.ndarray, canonical: np.ndarray, a: int, b: int, c: int
) -> int:
    """One question the way gensim computes it, bit for bit (used for near-ties)."""
    mean = _query_vector(matrix, norms, [b, c], [a])
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.dot(matrix, mean) / norms
    ranked = _top_rows(scores, _ANALOGY_SHORTLIST)
    return _analogy_answer(ranked, canonical, a, b, c)[0]


# --------------------------------------------------------------------------- word pairs


def similarity(
    vectors,
    pairs_path: PathLike | None = None,
    case_insensitive: bool = True,
    restrict_vocab: int | None = 300000,
    oov: bool = False,
) -> SimilarityResult:
    """Spearman and Pearson correlation of cosine similarity with human scores of word pairs, as
    gensim's `evaluate_word_pairs` computes them, to the bit (a tab-separated "word1 word2 score"
    file, '#' lines are comments, pairs with a word outside the first `restrict_vocab` skipped and
    counted in `oov_ratio`, case folded as in `analogy`). Blank lines are skipped; other malformed lines,
    which gensim silently skips, are errors here. With `oov` (a FastTextKeyedVectors), a word outside
    the first `restrict_vocab` takes its vector from the model as written (its n-grams' if unseen)
    and the pair counts, with gensim's cosine.
    """
    path = Path(pairs_path) if pairs_path is not None else _gensim_test_data("wordsim353.tsv")
    fold = str.upper if case_insensitive else str
    if oov:
        return _similarity_unseen(as_keyed_vectors(vectors), path, fold, restrict_vocab)
    pairs = _read_pairs(path, fold)
    words, rows = (vectors.words, vectors.matrix) if isinstance(vectors, Vectors) else (vectors.index_to_key,
                                                                                       vectors.vectors)
    first = _first_rows(_restricted_keys(words, restrict_vocab), fold)  # gensim's ok_vocab
    gold, model = [], []
    for w1, w2, score in pairs:
        if w1 in first and w2 in first:
            gold.append(score)
            model.append(float(np.dot(_unitvec(rows[first[w1]]), _unitvec(rows[first[w2]]))))  # gensim's similarity()
    if len(gold) < 2:  # a correlation needs two pairs (scipy's pearsonr raises on fewer)
        raise UserError(f"pairs file '{path}': {'no pair has' if not gold else 'only one pair has'} both words in "
                        "the vocabulary")
    return _correlation(path, gold, model, len(pairs))


def _correlation(path: Path, gold: list[float], model: list[float], total: int) -> SimilarityResult:
    """Spearman and Pearson of the model's cosines against the gold scores, as evaluate_word_pairs."""
    from scipy import stats

    spearman, pearson = stats.spearmanr(gold, model), stats.pearsonr(gold, model)
    return SimilarityResult(pairs_path=str(path), spearman=float(spearman[0]), spearman_pvalue=float(spearman[1]),
                            pearson=float(pearson[0]), pearson_pvalue=float(pearson[1]), pairs_used=len(gold),
                            pairs_total=total, coverage=len(gold) / total, oov_ratio=(total - len(gold)) / total)


def _similarity_unseen(kv, path: Path, fold, restrict_vocab: int | None) -> SimilarityResult:
    from w2v_nce.fasttext_io import can_answer

    pairs = _read_pairs(path, str)
    first = _first_rows(_restricted_keys(kv.index_to_key, restrict_vocab), fold)

    def vector(word: str) -> np.ndarray | None:
        if fold(word) in first:
            return kv.vectors[first[fold(word)]]
        return kv.get_vector(word) if can_answer(kv, word) else None

    gold, model = [], []
    for w1, w2, score in pairs:
        v1, v2 = vector(w1), vector(w2)
        if v1 is not None and v2 is not None:
            gold.append(score)
            model.append(float(np.dot(_unitvec(v1), _unitvec(v2))))  # gensim's similarity()
    if len(gold) < 2:
        raise UserError(f"pairs file '{path}': fewer than two pairs have vectors for both words")
    return _correlation(path, gold, model, len(pairs))


def epoch_scores(vectors) -> dict:
    """The per-epoch evaluation of `--eval-each-epoch`: analogy accuracy (restrict_vocab=30000)
    with its coverage and WordSim-353's Spearman, on gensim's copies of the test sets; None
    for a score the vocabulary cannot answer yet."""
    scores: dict = {}
    try:
        result = analogy(vectors)
        scores.update(analogy=result.accuracy if result.answered else None, analogy_coverage=result.coverage)
    except (UserError, ValueError):
        scores.update(analogy=None, analogy_coverage=0.0)
    try:
        scores["ws353"] = similarity(vectors).spearman
    except UserError:
        scores["ws353"] = None
    return scores


# --------------------------------------------------------------------------- gensim's arithmetic


def _unitvec(vec: np.ndarray) -> np.ndarray:
    """gensim's matutils.unitvec for a dense vector: float64 BLAS, result in the input dtype."""
    length = _blas_nrm2(vec) if vec.size else 0.0
    return _blas_scal(1.0 / length, vec).astype(vec.dtype) if length > 0.0 else vec


def _query_vector(
    matrix: np.ndarray, norms: np.ndarray, positive: list[int], negative: list[int]
) -> np.ndarray:
    """gensim's most_similar query: unit of the mean of ±unit rows, with its exact dtypes."""
    mean = np.zeros(matrix.shape[1], dtype=matrix.dtype)
    weights = np.concatenate((np.ones(len(positive)), -1.0 * np.ones(len(negative))))
    total = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for weight, row in zip(weights, positive + negative):
            mean += weight * (matrix[row] / norms[row])
            total += abs(weight)
        mean = mean / total  # float64 from here on: `total` is a numpy float64
    return _unitvec(mean).astype(np.float32)


def _top_rows(scores: np.ndarray, topn: int) -> np.ndarray:
    """gensim's matutils.argsort(scores, topn, reverse=True), same partition and tie order."""
    negated = -scores
    if topn >= negated.size:
        return np.argsort(negated)[:topn]
    candidates = np.argpartition(negated, topn)[:topn]
    return candidates.take(np.argsort(negated.take(candidates)))


# --------------------------------------------------------------------------- helpers and files


def _restricted_keys(words: list[str], restrict_vocab: int | None) -> list[str]:
    if restrict_vocab is not None and restrict_vocab < 1:
        raise UserError(f"restrict_vocab must be at least 1, got {restrict_vocab}")
    return words[:restrict_vocab]


def _first_rows(keys: list[str], fold) -> dict[str, int]:
    """Each folded key's first row among `keys` (gensim's rule: a word stands for its first, most
    frequent, case variant)."""
    first: dict[str, int] = {}
    for row, key in enumerate(keys):
        first.setdefault(fold(key), row)
    return first


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _gensim_test_data(filename: str) -> Path:
    """The path gensim.test.utils.datapath(filename) gives, without importing gensim."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"no file given, and gensim (which ships the default {filename}) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data" / filename


def _read_lines(path: Path, kind: str):
    """(line number, text) of each line, split on '\\n' only; UserError on I/O or UTF-8 trouble."""
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise UserError(f"{kind} file '{path}' line {number}: not valid UTF-8") from None
    except FileNotFoundError:
        raise UserError(f"{kind} file '{path}' does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read {kind} file '{path}': {exc.strerror or exc}") from None


def _read_questions(path: Path, fold) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """[(section name, [(a, b, c, d) folded])] from a questions-words.txt style file."""
    sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    for number, line in _read_lines(path, "questions"):
        if line.startswith(": "):
            sections.append((line.lstrip(": ").strip(), []))  # gensim strips ':' and ' ' chars
            continue
        words = line.split()
        if not words:
            continue
        where = f"questions file '{path}' line {number}"
        if not sections:
            raise UserError(f"{where}: question before the first ': section' line")
        if len(words) != 4:
            raise UserError(f"{where}: expected 4 words, found {len(words)}")
        sections[-1][1].append(tuple(fold(w) for w in words))
    if not any(questions for _, questions in sections):
        raise UserError(f"questions file '{path}' has no questions")
    return sections


def _read_pairs(path: Path, fold) -> list[tuple[str, str, float]]:
    """[(word1, word2, score)] from a wordsim353.tsv style file, words folded."""
    pairs = []
    for number, line in _read_lines(path, "pairs"):
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        where = f"pairs file '{path}' line {number}"
        if len(fields) != 3:
            raise UserError(f"{where}: expected 3 tab-separated fields, found {len(fields)}")
        try:
            score = float(fields[2])
        except ValueError:
            raise UserError(f"{where}: score '{fields[2].strip()[:20]}' is not a number") from None
        pairs.append((fold(fields[0]), fold(fields[1]), score))
    if not pairs:
        raise UserError(f"pairs file '{path}' has no pairs")
    return pairs
