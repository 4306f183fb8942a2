"""w2v-nce: word2vec (CBOW, skip-gram) trained with full softmax, hierarchical softmax, negative
sampling, NCE or ranking NCE.

`from w2v_nce import Word2Vec` is the Python API (w2v_nce.api), and `StopTraining` what its epoch
callbacks raise to stop; `w2v-nce` the command line.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # imported on first use: `w2v-nce --help` and the CLI's start need no torch
    if name == "Word2Vec":
        from w2v_nce.api import Word2Vec

        return Word2Vec
    if name == "StopTraining":
        from w2v_nce.train import StopTraining

        return StopTraining
    raise AttributeError(f"module 'w2v_nce' has no attribute {name!r}")


__all__ = ["StopTraining", "Word2Vec", "__version__"]
