#!/usr/bin/env python
"""Toy check of the project's NCE-family losses on a known conditional distribution.

Reproduces the toy experiment of "Noise contrastive estimation demystified" (section
"Comparison of NCE-related algorithms on a toy task") with the project's own objectives
(`w2v_nce.objectives.make_objective`); nothing here re-implements a loss.

Set-up
  * truth: C contexts with prior p(c), V outcomes, p(x|c) = softmax of fixed random logits,
    N(0, spread^2) per (c, x) (default spread 1.5), optionally on top of a Zipf-like base
    -zipf * log(rank) shared by all contexts (--zipf > 0 makes q peakier, like real words);
  * noise q(x): the marginal p(x) = Σ_c p(c) p(x|c) (word2vec-like), its ^0.75 power,
    or uniform;
  * model: a free score table s(x, c) = theta[c, x], initialised at 0, trained on
    minibatches of (c ~ p(c), x ~ p(.|c)). For every method the objective picks the
    candidates, the scores are gathered from theta, `loss_grad` returns d loss / d scores,
    which is scattered back onto theta and applied with Adam (learning rate decayed to 0).
    All methods see the same data minibatches.

Methods: softmax (exact partition function), nce (Local NCE, log Z fixed at 0),
rnce (Global / ranking NCE), is (importance-sampled partition function), and neg
(word2vec negative sampling: NOT an estimator of p(x|c); its optimum is
s = log p(x|c) / (k q(x)), so softmax(s) ∝ p/q and KL stays high unless q is uniform).

Reported per method: KL(p || softmax(theta[c])) averaged over contexts with weights p(c),
over training; and self-normalisation, log Z(c) = logsumexp_x theta[c, x], as its mean
and std over contexts. Local NCE should end with log Z ≈ 0 (exp(s) ≈ p(x|c) without
normalising). softmax, rnce and is are invariant to adding a constant to theta[c], so
their log Z is free to drift (for rnce/is the model is s up to a per-context constant);
the KL uses the normalised model, so it is unaffected.

What it shows with the defaults (C=20, V=100, k=50, 1500 steps of 1024; ~15 s on a shared 2-core box):
softmax, nce, rnce and is all reach KL < 0.01 nats (from 1.08 at the uniform start), Local NCE
ends with mean log Z ≈ 0.01, and neg stays at KL ≈ 0.1 with log Z ≈ 0.8.
Two of the project's losses are not consistent at finite k, which --check-truth measures
directly (expected gradient at theta = log p(x|c)) and other settings make visible in the KL:
  * rnce drops accidental hits (noise word == target) from the softmax; the truth is then not
    a fixed point, by an amount that grows with k q(x) for likely targets: KL floors of
    ~0.02 (seed 9), ~0.1 with --zipf 1 --k 100. Keeping the hits makes it consistent.
  * is leaves the target out of its estimate of Z, so its expected loss is unbounded below
    when p(x|c) > 1 - (1 - q(x))^k (x rarely drawn as noise): theta runs away
    (e.g. --k 10, or --noise uniform), and at larger k the self-normalised estimate keeps an
    O(1/k) bias.

Usage:  python scripts/toy_nce.py [--steps N] [--batch-size B] [--k K] [--json] [--out toy_nce.png]
        [--check-truth] [--noise marginal|unigram075|uniform] [--zipf Z] [--spread S] [--lr LR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from w2v_nce.atomic import atomic_path
from w2v_nce.objectives import make_objective
from w2v_nce.sampler import AliasSampler

METHODS = ("softmax", "nce", "rnce", "is", "neg")
LABELS = {
    "softmax": "softmax (exact Z)",
    "nce": "Local NCE (log Z = 0)",
    "rnce": "Global / ranking NCE",
    "is": "IS partition function",
    "neg": "neg sampling (not an estimator of p)",
}
NOISES = ("marginal", "unigram075", "uniform")


def make_truth(
    contexts: int, outcomes: int, seed: int, zipf: float = 0.0, spread: float = 1.5, noise: str = "marginal"
) -> dict[str, torch.Tensor]:
    """The true p(c), log p(x|c) and noise q(x), from a fixed seed (float64)."""
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}: choose one of {', '.join(NOISES)}")
    g = torch.Generator().manual_seed(seed)
    base = -zipf * torch.log(torch.arange(1, outcomes + 1, dtype=torch.float64))
    base = base[torch.randperm(outcomes, generator=g)]
    logits = base + spread * torch.randn(contexts, outcomes, generator=g, dtype=torch.float64)
    log_p = torch.log_softmax(logits, dim=1)
    p_c = torch.softmax(0.5 * torch.randn(contexts, generator=g, dtype=torch.float64), dim=0)
    marginal = p_c @ log_p.exp()
    q = {"marginal": marginal, "unigram075": marginal**0.75, "uniform": torch.ones(outcomes, dtype=torch.float64)}
    q = q[noise] / q[noise].sum()
    return {"p_c": p_c, "log_p": log_p, "q": q}


def _cdfs(p_c: torch.Tensor, log_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 CDFs of p(c) and of each p(.|c), for inverse-CDF sampling with searchsorted."""
    c_cdf = torch.cumsum(p_c, 0).float()
    x_cdf = torch.cumsum(log_p.exp(), 1).float()
    c_cdf[-1] = 1.0 + 1e-6  # guard the last bucket against rounding
    x_cdf[:, -1] = 1.0 + 1e-6
    return c_cdf, x_cdf


def _scatter(dscores: torch.Tensor, c: torch.Tensor, cand, shape: tuple[int, int]) -> torch.Tensor:
    """Sum d loss / d scores back onto the score table theta[c, x] (scores were gathered from it)."""
    grad = torch.zeros(shape, dtype=dscores.dtype)
    if cand.ids is None:  # whole vocabulary: scores = theta[c]
        grad.index_add_(0, c, dscores)
    else:  # scores = theta[c, ids]
        grad.index_put_((c[:, None].expand_as(cand.ids), cand.ids), dscores, accumulate=True)
    return grad


def weighted_kl(log_p: torch.Tensor, p_c: torch.Tensor, theta: torch.Tensor) -> float:
    """Σ_c p(c) KL(p(.|c) || softmax(theta[c]))."""
    log_m = torch.log_softmax(theta.double(), dim=1)
    kl = (log_p.exp() * (log_p - log_m)).sum(1)
    return float((p_c * kl).sum())


def log_z_stats(theta: torch.Tensor) -> tuple[float, float]:
    """Mean and std over contexts of log Z(c) = logsumexp_x theta[c, x]."""
    log_z = torch.logsumexp(theta.double(), dim=1)
    return float(log_z.mean()), float(log_z.std(unbiased=False))


def run(
    steps: int = 1500,
    batch_size: int = 1024,
    k: int = 50,
    contexts: int = 20,
    outcomes: int = 100,
    seed: int = 0,
    lr: float = 0.1,
    noise: str = "marginal",
    methods: tuple[str, ...] = METHODS,
    eval_every: int | None = None,
    zipf: float = 0.0,
    spread: float = 1.5,
) -> dict:
    """Train one score table per method on the same data; returns per-method curves.

    Result: {"steps": [...eval steps...], "truth": {...entropies...},
             method: {"kl": [...], "log_z_mean": float, "log_z_std": float,
                      "log_z_curve": [...], "kl_final": float, "seconds": float}}.
    """
    torch.manual_seed(seed)
    truth = make_truth(contexts, outcomes, seed, zipf=zipf, spread=spread, noise=noise)
    p_c, log_p, q = truth["p_c"], truth["log_p"], truth["q"]
    sampler = AliasSampler(q.numpy())
    eval_every = eval_every or max(1, steps // 50)
    eval_steps = sorted({0, *range(eval_every, steps, eval_every), steps})

    c_cdf, x_cdf = _cdfs(p_c, log_p)

    objectives = {m: make_objective(m, sampler, k, log_z=0.0, learn_log_z=False) for m in methods}
    thetas = {m: torch.zeros(contexts, outcomes, requires_grad=True) for m in methods}
    optims = {m: torch.optim.Adam([thetas[m]], lr=lr) for m in methods}
    scheds = {
        m: torch.optim.lr_scheduler.LambdaLR(optims[m], lambda t: max(0.0, 1.0 - t / steps)) for m in methods
    }
    noise_gens = {m: torch.Generator().manual_seed(seed * 1000 + 7 + i) for i, m in enumerate(methods)}
    data_gen = torch.Generator().manual_seed(seed * 1000 + 1)
    seconds = dict.fromkeys(methods, 0.0)
    curves = {m: {"kl": [], "log_z_curve": []} for m in methods}

    def record(m):
        with torch.no_grad():
            curves[m]["kl"].append(weighted_kl(log_p, p_c, thetas[m]))
            curves[m]["log_z_curve"].append(log_z_stats(thetas[m])[0])

    for m in methods:
        record(m)
    for step in range(1, steps + 1):
        # data minibatch shared by all methods: c ~ p(c), x ~ p(.|c), by inverse CDF
        c = torch.searchsorted(c_cdf, torch.rand(batch_size, generator=data_gen))
        u = torch.rand(batch_size, 1, generator=data_gen)
        x = torch.searchsorted(x_cdf[c], u).squeeze(1)
        for m in methods:
            t0 = time.perf_counter()
            obj, theta = objectives[m], thetas[m]
            cand = obj.candidates(x, noise_gens[m])
            with torch.no_grad():
                scores = theta[c] if cand.ids is None else theta[c[:, None], cand.ids]
                _, dscores = obj.loss_grad(scores.clone(), cand)
                grad = _scatter(dscores, c, cand, tuple(theta.shape)) / batch_size  # of the mean loss
            theta.grad = grad
            optims[m].step()
            scheds[m].step()
            seconds[m] += time.perf_counter() - t0
        if step in eval_steps:
            for m in methods:
                record(m)

    out = {
        "steps": eval_steps,
        "config": dict(steps=steps, batch_size=batch_size, k=k, contexts=contexts, outcomes=outcomes,
                       seed=seed, lr=lr, noise=noise, zipf=zipf, spread=spread),
        "truth": {
            "mean_entropy_p_x_given_c": float((p_c * -(log_p.exp() * log_p).sum(1)).sum()),
            "entropy_q": float(-(q * q.log()).sum()),
        },
    }
    for m in methods:
        mean, std = log_z_stats(thetas[m].detach())
        out[m] = {
            "kl": curves[m]["kl"],
            "kl_final": curves[m]["kl"][-1],
            "log_z_curve": curves[m]["log_z_curve"],
            "log_z_mean": mean,
            "log_z_std": std,
            "seconds": seconds[m],
        }
    return out


def grad_at_truth(
    method: str,
    contexts: int = 20,
    outcomes: int = 100,
    seed: int = 0,
    k: int = 50,
    noise: str = "marginal",
    zipf: float = 0.0,
    spread: float = 1.5,
    batches: int = 20,
    batch_size: int = 20000,
    remove_accidental_hits: bool = True,
) -> dict:
    """Fixed-point check: the expected gradient of the loss at theta = log p(x|c).

    A loss that is consistent for p(x|c) (up to a per-context constant) has
    E[d loss / d theta] = 0 there, whatever k. Monte Carlo over `batches` independent
    batches of the per-context mean gradient g(c, x); returns
      bias: sqrt(max(0, Σ_c p(c) Σ_x (mean² - se²))), an unbiased estimate of the size
            of the expected gradient (se² removes the Monte Carlo noise),
      noise: sqrt(Σ_c p(c) Σ_x se²), the Monte Carlo error of that estimate,
      worst: (c, x, mean gradient, p(x|c), q(x)) for the cell with the largest |mean|.
    For a consistent loss, bias is only Monte Carlo error, of order noise * (2 / (C V)) ** 0.25
    (about noise / 5 for C V = 2000); a biased loss gives bias well above noise.
    """
    truth = make_truth(contexts, outcomes, seed, zipf=zipf, spread=spread, noise=noise)
    p_c, log_p, q = truth["p_c"], truth["log_p"], truth["q"]
    sampler = AliasSampler(q.numpy())
    obj = make_objective(method, sampler, k, remove_accidental_hits=remove_accidental_hits)
    theta = log_p.float()
    g = torch.Generator().manual_seed(seed * 1000 + 99)
    c_cdf, x_cdf = _cdfs(p_c, log_p)
    per_batch = []
    for _ in range(batches):
        c = torch.searchsorted(c_cdf, torch.rand(batch_size, generator=g))
        x = torch.searchsorted(x_cdf[c], torch.rand(batch_size, 1, generator=g)).squeeze(1)
        cand = obj.candidates(x, g)
        scores = theta[c] if cand.ids is None else theta[c[:, None], cand.ids]
        _, d = obj.loss_grad(scores.clone(), cand)
        grad = _scatter(d.double(), c, cand, (contexts, outcomes))
        counts = torch.bincount(c, minlength=contexts).clamp(min=1).double()
        per_batch.append(grad / counts[:, None])
    stack = torch.stack(per_batch)
    mean, se2 = stack.mean(0), stack.var(0) / batches
    w = p_c[:, None]
    worst = int(mean.abs().argmax())
    wc, wx = worst // outcomes, worst % outcomes
    return {
        "bias": float((w * (mean**2 - se2)).sum().clamp(min=0).sqrt()),
        "noise": float((w * se2).sum().sqrt()),
        "worst": (wc, wx, float(mean[wc, wx]), float(log_p[wc, wx].exp()), float(q[wx])),
    }


def format_table(res: dict) -> str:
    steps = res["steps"]
    methods = [m for m in METHODS if m in res]
    n = len(steps) - 1
    picks = sorted({0, n // 10, n // 4, n // 2, n})
    head = f"{'method':<38}" + "".join(f"{'KL@' + str(steps[i]):>11}" for i in picks)
    head += f"{'mean logZ':>11}{'std logZ':>10}{'sec':>7}"
    lines = [head, "-" * len(head)]
    for m in methods:
        r = res[m]
        row = f"{LABELS[m]:<38}" + "".join(f"{r['kl'][i]:>11.4g}" for i in picks)
        row += f"{r['log_z_mean']:>11.3f}{r['log_z_std']:>10.3f}{r['seconds']:>7.1f}"
        lines.append(row)
    t = res["truth"]
    lines.append(
        f"KL in nats, Σ_c p(c) KL(p(.|c) || softmax θ[c]); truth: mean H(p(.|c)) = "
        f"{t['mean_entropy_p_x_given_c']:.3f}, H(q) = {t['entropy_q']:.3f}. "
        "softmax/rnce/is: log Z free (shift-invariant losses); neg is not expected to converge to p."
    )
    return "\n".join(lines)


def plot(res: dict, path: str) -> bool:
    """KL vs step (log y) and mean log Z vs step; False (with a notice) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib not installed: skipping the plot {path}", file=sys.stderr)
        return False
    steps = res["steps"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for m in (m for m in METHODS if m in res):
        style = "--" if m == "neg" else "-"
        ax1.plot(steps, res[m]["kl"], style, label=LABELS[m])
        ax2.plot(steps, res[m]["log_z_curve"], style, label=LABELS[m])
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("KL(p || p_model)  [nats]")
    ax1.set_title("KL to the true p(x|c)")
    ax2.axhline(0.0, color="grey", lw=0.8)
    ax2.set_xlabel("step")
    ax2.set_ylabel("mean over c of log Z(c)")
    ax2.set_title("self-normalisation: log Σ_x exp s(x,c)")
    ax1.legend(fontsize=8)
    cfg = res["config"]
    fig.suptitle(f"toy NCE: C={cfg['contexts']}, V={cfg['outcomes']}, k={cfg['k']}, B={cfg['batch_size']}, "
                 f"noise={cfg['noise']}, seed={cfg['seed']}")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--k", type=int, default=50, help="noise words per example")
    ap.add_argument("--contexts", type=int, default=20)
    ap.add_argument("--outcomes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.1, help="Adam learning rate, decayed linearly to 0")
    ap.add_argument("--noise", choices=NOISES, default="marginal")
    ap.add_argument("--zipf", type=float, default=0.0,
                    help="weight of a Zipf-like base, -zipf*log(rank), shared by all contexts (peakier noise q)")
    ap.add_argument("--spread", type=float, default=1.5, help="std of the context-specific logit noise")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    ap.add_argument("--out", default="toy_nce.png", help="PNG path ('' to skip the plot)")
    ap.add_argument("--json", action="store_true", help="print the final numbers as JSON on stdout (table to stderr)")
    ap.add_argument("--check-truth", action="store_true",
                    help="also estimate each loss's expected gradient at theta = log p(x|c) (0 if consistent)")
    args = ap.parse_args(argv)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {bad}")

    torch.set_num_threads(1)  # tiny tensors: extra threads only add overhead
    t0 = time.perf_counter()
    res = run(args.steps, args.batch_size, args.k, args.contexts, args.outcomes, args.seed,
              lr=args.lr, noise=args.noise, methods=methods, zipf=args.zipf, spread=args.spread)
    wall = time.perf_counter() - t0
    table = format_table(res) + f"\ntotal {wall:.1f} s"
    fixed = {}
    if args.check_truth:
        lines = ["", "expected gradient at theta = log p(x|c) (Monte Carlo; 0 for a consistent loss):",
                 f"{'method':<38}{'bias':>9}{'MC noise':>10}   worst cell (c, x, E grad, p(x|c), q(x))"]
        for m in methods:
            fixed[m] = grad_at_truth(m, args.contexts, args.outcomes, args.seed, args.k, args.noise,
                                     args.zipf, args.spread)
            c, x, g, p, q = fixed[m]["worst"]
            lines.append(f"{LABELS[m]:<38}{fixed[m]['bias']:>9.4f}{fixed[m]['noise']:>10.4f}"
                         f"   ({c}, {x}, {g:+.4f}, {p:.4f}, {q:.4f})")
        table += "\n".join(lines)
    print(table, file=sys.stderr if args.json else sys.stdout)
    if args.out:
        plot(res, args.out)
    if args.json:
        final = {m: {"kl_final": res[m]["kl_final"], "log_z_mean": res[m]["log_z_mean"],
                     "log_z_std": res[m]["log_z_std"], **({"grad_at_truth": fixed[m]} if fixed else {})}
                 for m in methods}
        print(json.dumps({"config": res["config"], "seconds": wall, **final}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
