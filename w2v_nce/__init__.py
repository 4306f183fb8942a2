"""w2v-nce: word2vec CBOW embeddings trained with softmax, negative sampling, NCE or ranking NCE."""

__version__ = "0.1.0"
