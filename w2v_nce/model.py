"""The model: input vectors (the embeddings users keep), output rows, optional output bias.

An example's input is a bag of words: its context for CBOW, one context word for skip-gram
(a bag of one). The model scores candidate output rows for a batch of bags: h(c) is the mean
of the bag's input vectors and s(x, c) = <h(c), out[x]> + bias[x]. It knows neither the
architecture nor the loss: the loss says how many output rows there are (one per word, or
the V - 1 inner nodes of hierarchical softmax), and the step (w2v_nce.steps) applies the updates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from w2v_nce.tensor_ops import take


class Model:
    def __init__(self, vocab_size: int, dim: int, bias: bool, device: torch.device, generator: torch.Generator,
                 bias_init: torch.Tensor | None = None, out_rows: int | None = None):
        # gensim 4's initialisation: inputs uniform in ±1/dim (word2vec.c uses ±0.5/dim; on the
        # full wiki17m gensim's range scored higher, docs/results.md), outputs zero. The bias
        # starts at `bias_init` (the trainer gives log unigram probabilities: the untrained model
        # is then the unigram distribution, already normalised), else zero.
        out_rows = vocab_size if out_rows is None else out_rows
        self.inp = (torch.rand(vocab_size, dim, generator=generator, device=device) * 2 - 1) / dim
        self.out = torch.zeros(out_rows, dim, device=device)
        self.bias = None
        if bias:
            self.bias = torch.zeros(out_rows, device=device) if bias_init is None else bias_init.to(device, torch.float32)

    def context_vectors(self, context: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """h = mean of each example's bag of input vectors: [B, dim]."""
        return F.embedding_bag(context, self.inp, offsets[:-1], mode="mean")

    def scores(self, h: torch.Tensor, ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of candidates `ids` [B, K] (or of every output row if None), and their
        output vectors ([B, K, dim], or the full table)."""
        if ids is None:
            out = self.out
            s = h @ out.T
            if self.bias is not None:
                s += self.bias
        else:
            out = F.embedding(ids, self.out)  # faster than self.out[ids] on CPU
            s = torch.bmm(out, h[:, :, None]).squeeze(2)
            if self.bias is not None:
                s += take(self.bias, ids)
        return s, out

    def align_rows(self, floats: int = 16) -> None:
        """Lay each table's rows `floats` apart (16: every row starts a 64-byte cache line, so that
        the CPU kernel's vector loads never straddle two lines); values and shapes stay, the tables
        become views of row-padded storage whose padding nothing reads."""
        width = -(-self.inp.shape[1] // floats) * floats
        for name in ("inp", "out"):
            table = getattr(self, name)
            if len(table) > 1 and table.stride(0) == width:
                continue
            full = torch.zeros(len(table), width, device=table.device)  # the allocator aligns to 64 bytes
            full[:, : table.shape[1]] = table
            setattr(self, name, full[:, : table.shape[1]])

    def state_dict(self) -> dict:
        return {"inp": self.inp.cpu(), "out": self.out.cpu(), "bias": None if self.bias is None else self.bias.cpu()}

    def load_state_dict(self, state: dict) -> None:
        device = self.inp.device
        for name in ("inp", "out"):
            if tuple(state[name].shape) != tuple(getattr(self, name).shape):
                raise ValueError(f"{name} has shape {tuple(state[name].shape)}, expected {tuple(getattr(self, name).shape)}")
        self.inp.copy_(state["inp"].to(device, torch.float32))  # in place: the tables keep their row layout
        self.out.copy_(state["out"].to(device, torch.float32))
        self.bias = None if state["bias"] is None else state["bias"].to(device, torch.float32).contiguous()
