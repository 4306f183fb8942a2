"""w2v-nce: word2vec (CBOW, skip-gram) trained with full softmax, hierarchical softmax, negative
sampling, NCE or ranking NCE."""

__version__ = "0.1.0"
