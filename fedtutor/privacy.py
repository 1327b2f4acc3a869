"""Privacy in federated learning: what an update leaks, and two ways to leak less.

Four small tools, each the from-scratch core of a published idea:

- **Gradient inversion** (Zhu et al. 2019, "Deep Leakage from Gradients"; label trick from Zhao et al. 2020,
  iDLG): optimize a dummy image until its gradient matches the one a client sent. Shows that "the data never
  leaves the device" is not the same as "the data is private".
- **Additive secret sharing** over the ring Z_{2^64} with fixed-point encoding of floats: a secret splits
  into random-looking shares that sum back to it; shares add like secrets.
- **Secure aggregation** by pairwise masking (the core of Bonawitz et al. 2017): each client hides its
  update under masks that cancel in the sum, so the server learns only the total.
- **DP-FedAvg** (McMahan et al. 2018): clip each client's update to norm S, add Gaussian noise of std
  sigma * S to the sum, plus the privacy accountant that turns sigma into (epsilon, delta).

Everything is plain torch on flat 1-D update vectors (``federated.flat_params`` turns a model into one).
``SecureAggregator`` and ``DPAggregator`` plug the last two into the FedAvg engine through its aggregation
hook: ``federated.FedAvg(aggregator=...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fedtutor.data import denormalize
from fedtutor.speedups import intra_op_threads

__all__ = ["DPAggregator", "SecureAggregator", "clip_update", "decode", "dp_epsilon", "dp_mean", "encode"]
__all__ += ["example_gradients", "image_mse", "infer_label", "invert_gradients", "mask_update", "reconstruct"]
__all__ += ["share", "ssim"]

# ----------------------------------------------------------------------------- gradient inversion


def example_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The gradient a client would upload after one FedSGD step on ``(x, y)``, one tensor per parameter."""
    loss = F.cross_entropy(model(x), y)
    return [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]


def infer_label(gradients: list[torch.Tensor]) -> int:
    """iDLG: read a single example's label straight off the last layer's weight gradient.

    With softmax cross-entropy, dL/dW_last[c] = (p_c - [c == y]) * h, where h >= 0 are the ReLU activations
    feeding the last layer. Every row is >= 0 except the true class's, whose factor p_y - 1 is negative:
    the most negative row is the label."""
    matrices = [g for g in gradients if g.dim() == 2]
    if not matrices:
        raise ValueError("infer_label needs the gradient of a final linear layer (a 2-D weight); none was given.")
    return int(matrices[-1].sum(dim=1).argmin())  # (classes, hidden) -> one sum per class


@dataclass
class Inversion:
    """Result of ``invert_gradients``: the final guess and the way there."""

    image: torch.Tensor  # (1, *input_shape), normalized like the training data
    label: int
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (iteration, image)
    losses: list[float] = field(default_factory=list)  # gradient distance at the start of each iteration


def invert_gradients(
    model: nn.Module,
    target: list[torch.Tensor],
    input_shape: tuple[int, ...] = (1, 28, 28),
    label: int | None = None,
    iterations: int = 30,
    seed: int = 0,
    snapshot_at: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 20),
) -> Inversion:
    """Deep Leakage from Gradients: find an input whose gradient on ``model`` equals ``target``.

    Minimizes D(x') = sum over parameters ||grad(x') - target||^2 over a dummy image x' that starts as noise,
    with L-BFGS (second-order, as in the paper). D depends on x' through the gradient, so each step
    differentiates a gradient: ``create_graph=True``. The label comes from ``infer_label`` unless given."""
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}.")
    params = list(model.parameters())
    if [t.shape for t in target] != [p.shape for p in params]:
        raise ValueError(
            f"target must hold one gradient per parameter of the model, shaped like it ({len(params)} tensors); "
            f"got {len(target)}. Compute it with example_gradients(model, x, y) on the same model."
        )
    label = infer_label(target) if label is None else label
    y = torch.tensor([label])
    dummy = torch.randn((1, *input_shape), generator=torch.Generator().manual_seed(seed)).requires_grad_(True)
    optimizer = torch.optim.LBFGS([dummy], lr=1.0, max_iter=1, max_eval=25, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        grads = torch.autograd.grad(F.cross_entropy(model(dummy), y), params, create_graph=True)
        distance = sum(((g - t) ** 2).sum() for g, t in zip(grads, target, strict=True))
        (dummy.grad,) = torch.autograd.grad(distance, dummy)  # only the image moves, never the model
        return distance.detach()

    result = Inversion(image=dummy.detach().clone(), label=label)
    result.snapshots.append((0, result.image))
    with intra_op_threads(1):  # one image: every op is tiny, threads cost more than they save
        for it in range(1, iterations + 1):
            result.losses.append(optimizer.step(closure).item())
            if it in snapshot_at or it == iterations:
                result.snapshots.append((it, dummy.detach().clone()))
    result.image = dummy.detach().clone()
    return result


def image_mse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared error between two normalized images, on the pixel scale [0, 1]."""
    return F.mse_loss(denormalize(a), denormalize(b)).item()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> float:
    """Structural similarity (Wang et al. 2004) of two normalized images, 1.0 = identical. Compares local means,
    contrasts and correlation in sliding ``window`` x ``window`` patches:
    SSIM = (2 mu_a mu_b + c1)(2 cov_ab + c2) / ((mu_a^2 + mu_b^2 + c1)(var_a + var_b + c2))."""
    a, b = denormalize(a).reshape(1, 1, *a.shape[-2:]), denormalize(b).reshape(1, 1, *b.shape[-2:])

    def local_mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, window, stride=1)

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a, var_b = local_mean(a * a) - mu_a**2, local_mean(b * b) - mu_b**2
    cov = local_mean(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2  # the paper's stabilizers for a dynamic range of 1
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return score.mean().item()


# ----------------------------------------------------------------------------- fixed point and secret sharing
# The ring is Z_{2^64}, stored in torch.int64: two's complement addition and subtraction wrap modulo 2^64,
# which is exactly ring arithmetic (CrypTen relies on the same). An element v stands for the signed integer
# in [-2^63, 2^63); a float x is encoded as round(x * 2^FRAC_BITS).

FRAC_BITS = 16  # precision: floats are rounded to multiples of 2^-16 ~ 1.5e-5


def fixed_point_limit(frac_bits: int = FRAC_BITS) -> float:
    """Largest magnitude a fixed-point value (or a sum of them) may reach: 2^(63 - frac_bits)."""
    return 2.0 ** (63 - frac_bits)


def encode(x: torch.Tensor, frac_bits: int = FRAC_BITS, max_abs: float | None = None) -> torch.Tensor:
    """Floats -> ring elements (int64). Raises ``OverflowError`` instead of silently wrapping."""
    if not 0 <= frac_bits <= 52:
        raise ValueError(f"frac_bits must be between 0 and 52 (float64 precision), got {frac_bits}.")
    x = torch.as_tensor(x, dtype=torch.float64)
    bad = ~torch.isfinite(x)
    if bad.any():
        first = int(bad.flatten().nonzero()[0])
        raise ValueError(
            f"Cannot encode {int(bad.sum())} of {x.numel()} value(s): NaN or infinite (the first at flat index "
            f"{first} is {x.flatten()[first].item()}). Fixed point holds finite numbers only."
        )
    limit = fixed_point_limit(frac_bits)
    if max_abs is not None and not 0 < max_abs < limit:
        raise ValueError(f"max_abs must be positive and below the fixed-point range {limit:g}, got {max_abs}.")
    bound = limit if max_abs is None else max_abs
    too_big = x.abs() >= limit if max_abs is None else x.abs() > max_abs
    if too_big.any():
        raise OverflowError(
            f"{int(too_big.sum())} value(s) exceed the fixed-point range ±{bound:g} (largest |x| = "
            f"{x.abs().max().item():g}); encoding would wrap around the ring and decode to garbage. "
            "Fix: clip or rescale the values, or use fewer fractional bits."
        )
    return torch.round(x * 2.0**frac_bits).to(torch.int64)  # exact: scaling by 2^k loses no bits


def decode(v: torch.Tensor, frac_bits: int = FRAC_BITS) -> torch.Tensor:
    """Ring elements (int64) -> float64, reading each as a signed fixed-point number.
    Exact while |v| < 2^53 (float64's mantissa), i.e. |x| < 2^37 ~ 1.4e11 with 16 fractional bits."""
    if v.dtype != torch.int64:
        raise TypeError(f"decode expects ring elements (torch.int64), got {v.dtype}.")
    return v.to(torch.float64) / 2.0**frac_bits


def random_ring(shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniformly random ring elements: every one of the 2^64 values equally likely."""
    return torch.empty(shape, dtype=torch.int64).random_(-(2**63), None, generator=generator)


def share(secret: torch.Tensor, parties: int = 2, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Split encoded ``secret`` into ``parties`` additive shares that sum to it modulo 2^64.

    The first parties - 1 shares are uniform random r_i (from ``generator``, or torch's global one); the last
    is secret - sum(r_i). For any secret, any parties - 1 of the shares are independent uniform values: they
    reveal nothing."""
    if secret.dtype != torch.int64:
        raise TypeError(f"share() takes ring elements (torch.int64); got {secret.dtype}. Call encode(x) first.")
    if parties < 2:
        raise ValueError(f"Secret sharing needs at least 2 parties, got {parties}.")
    randoms = [random_ring(secret.shape, generator) for _ in range(parties - 1)]
    return [*randoms, secret - sum(randoms)]  # int64 arithmetic wraps: this is mod 2^64


def reconstruct(shares: list[torch.Tensor]) -> torch.Tensor:
    """Add all shares (mod 2^64) to get the secret back."""
    if not isinstance(shares, (list, tuple)) or not shares:
        raise ValueError(f"Expected a non-empty list of shares (one int64 tensor per party), got {shares!r}.")
    if any(not isinstance(s, torch.Tensor) or s.dtype != torch.int64 for s in shares):
        raise TypeError("Shares are ring elements (torch.int64 tensors), as share() returns them.")
    if len({s.shape for s in shares}) > 1:
        raise ValueError(f"All shares of one secret have its shape; got {[tuple(s.shape) for s in shares]}.")
    return torch.stack(list(shares)).sum(dim=0)


def ring_to_unit(v: torch.Tensor) -> torch.Tensor:
    """Map ring elements to [0, 1) (v / 2^64 as unsigned), to test or plot their distribution."""
    return (v.to(torch.float64) + 2.0**63) / 2.0**64


def ks_uniform(u: torch.Tensor) -> tuple[float, float]:
    """Kolmogorov-Smirnov test of ``u`` against Uniform(0, 1): (statistic D, critical value at 0.1%).
    D is the largest gap between the empirical CDF and the line F(t) = t. If the values are
    uniform, D exceeds sqrt(ln(2 / 0.001) / 2) / sqrt(n) only 0.1% of the time."""
    u, n = u.flatten().sort().values.double(), u.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64)
    statistic = max((i / n - u).max().item(), (u - (i - 1) / n).max().item())
    return statistic, math.sqrt(math.log(2 / 0.001) / 2) / math.sqrt(n)


# ----------------------------------------------------------------------------- secure aggregation
# Pairwise masking (Bonawitz et al. 2017, without its dropout recovery): every pair of clients i < j shares
# a random seed s_ij. Client i uploads  enc(x_i) + sum_{j>i} PRG(s_ij) - sum_{j<i} PRG(s_ji). Each mask is
# added by one client of the pair and subtracted by the other, so in the sum over all clients every mask
# cancels and the server gets sum_i enc(x_i); each single upload is a uniformly random ring element.
# The PRG here is torch's generator (a Mersenne Twister): right for a simulation, but not a cryptographic
# PRG; real implementations expand seeds with AES-CTR or ChaCha20.


def pairwise_seeds(clients: int, seed: int = 0) -> dict[tuple[int, int], int]:
    """One secret seed per pair of clients (i, j), i < j. In the real protocol i and j derive s_ij by
    Diffie-Hellman key agreement through the server, which therefore never learns it; here one generator
    deals them, to keep the simulation short."""
    generator = torch.Generator().manual_seed(seed)
    pairs = [(i, j) for i in range(clients) for j in range(i + 1, clients)]
    return {pair: int(torch.randint(0, 2**62, (1,), generator=generator)) for pair in pairs}


def mask_update(
    update: torch.Tensor, client: int, seeds: dict[tuple[int, int], int], max_abs: float, frac_bits: int = FRAC_BITS
) -> torch.Tensor:
    """Client side: encode the (flattened) update and add this client's pairwise masks."""
    if not any(client in pair for pair in seeds):
        clients = sorted({k for pair in seeds for k in pair})
        raise ValueError(
            f"Client {client} has no seeds in this table (clients {clients}): its update would go out "
            "unmasked. Deal seeds for every client of the round with pairwise_seeds(clients)."
        )
    masked = encode(update.flatten(), frac_bits, max_abs)  # (P,) int64
    for (i, j), pair_seed in seeds.items():
        if client in (i, j):
            mask = random_ring(masked.shape, torch.Generator().manual_seed(pair_seed))  # PRG(s_ij)
            masked = masked + mask if client == i else masked - mask
    return masked


class SecureAggregationServer:
    """The server's side: it receives masked uploads and can only ever compute their sum.
    ``received`` holds everything the server has seen. It works against an honest-but-curious
    server with every client reporting; ``total`` refuses to run when someone dropped out."""

    def __init__(self, clients: int, max_abs: float, frac_bits: int = FRAC_BITS) -> None:
        if clients < 2:
            raise ValueError(
                f"Secure aggregation needs at least 2 clients (the sum of one is its update), got {clients}."
            )
        if not max_abs > 0:
            raise ValueError(f"max_abs must be positive (the public bound on every |value|), got {max_abs}.")
        if clients * max_abs >= fixed_point_limit(frac_bits):
            raise OverflowError(
                f"The sum of {clients} values of size up to {max_abs:g} could reach {clients * max_abs:g}, beyond "
                f"the fixed-point range ±{fixed_point_limit(frac_bits):g}: it would wrap. Fix: lower max_abs "
                "(clip the updates) or use fewer fractional bits."
            )
        self.clients, self.max_abs, self.frac_bits = clients, max_abs, frac_bits
        self.received: dict[int, torch.Tensor] = {}

    def receive(self, client: int, masked: torch.Tensor) -> None:
        if masked.dtype != torch.int64:
            raise TypeError(
                f"Expected a masked upload (torch.int64 ring elements), got {masked.dtype}: use mask_update."
            )
        if not 0 <= client < self.clients:
            raise ValueError(f"Unknown client {client}; this round has clients 0..{self.clients - 1}.")
        if client in self.received:
            raise ValueError(f"Client {client} already uploaded this round.")
        if self.received and masked.shape != next(iter(self.received.values())).shape:
            raise ValueError(f"Client {client} sent shape {tuple(masked.shape)}, unlike the other uploads.")
        self.received[client] = masked

    def total(self) -> torch.Tensor:
        """The sum of all clients' updates (float64), exact up to fixed-point rounding."""
        missing = sorted(set(range(self.clients)) - set(self.received))
        if missing:
            raise RuntimeError(
                f"Client(s) {missing} never uploaded: their masks do not cancel, so the sum would be random "
                "noise. This simplified protocol cannot recover from dropouts; Bonawitz et al. 2017 add "
                "secret-shared seeds so the survivors can remove a dropped client's masks."
            )
        return decode(reconstruct(list(self.received.values())), self.frac_bits)


def secure_weighted_mean(
    updates: list[torch.Tensor],
    weights: list[float] | None = None,
    max_abs: float = 1e3,
    seed: int = 0,
    frac_bits: int = FRAC_BITS,
) -> tuple[torch.Tensor, SecureAggregationServer]:
    """FedAvg's weighted mean of flat updates, computed through secure aggregation; returns (mean, server).
    Weights (e.g. sample counts) are public, as in FedAvg: each client scales its own update by
    its share w_k / sum(w) before masking, so the masked sum is the mean."""
    weights = [1.0] * len(updates) if weights is None else [float(w) for w in weights]
    for k, (update, w) in enumerate(zip(updates, weights, strict=False)):
        if not math.isfinite(w) or not torch.isfinite(update).all():
            what = f"its weight is {w}" if not math.isfinite(w) else "its update has NaN or inf (a diverged step?)"
            raise ValueError(f"Client {k} cannot be aggregated: {what}.")
    if len(weights) != len(updates) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"Need one non-negative weight per update, not all zero; got {weights} for {len(updates)}.")
    seeds = pairwise_seeds(len(updates), seed)
    server = SecureAggregationServer(len(updates), max_abs, frac_bits)
    for k, (update, w) in enumerate(zip(updates, weights, strict=True)):
        server.receive(k, mask_update(update * (w / sum(weights)), k, seeds, max_abs, frac_bits))
    return server.total().to(updates[0].dtype).reshape(updates[0].shape), server


# ----------------------------------------------------------------------------- differential privacy
# DP-FedAvg (McMahan et al. 2018), with every selected client weighted equally. Clipping bounds how much one
# client can move the sum: adding or removing a client changes it by at most S in L2 norm (its sensitivity).
# The Gaussian mechanism then adds noise of std sigma * S to the sum, i.e. sigma * S / m to the mean over
# the m clients of the round (m fixed and public).


def _check_dp(clip_norm: float, noise_multiplier: float) -> None:
    if not clip_norm > 0 or not math.isfinite(clip_norm):
        raise ValueError(f"clip_norm must be a positive number (the L2 bound S on each update), got {clip_norm}.")
    if not noise_multiplier >= 0 or not math.isfinite(noise_multiplier):
        raise ValueError(f"noise_multiplier must be >= 0 (sigma; 0 means no noise), got {noise_multiplier}.")


def clip_update(update: torch.Tensor, clip_norm: float) -> torch.Tensor:
    """Scale ``update`` down to L2 norm at most ``clip_norm``: u * min(1, S / ||u||), direction kept."""
    _check_dp(clip_norm, 0.0)
    norm = update.norm().item()
    return update * min(1.0, clip_norm / norm) if norm > 0 else update.clone()


def dp_mean(
    updates: list[torch.Tensor], clip_norm: float, noise_multiplier: float, generator: torch.Generator
) -> torch.Tensor:
    """The DP-FedAvg server step: mean of the clipped updates + N(0, (sigma * S / m)^2) per coordinate."""
    _check_dp(clip_norm, noise_multiplier)
    if not updates:
        raise ValueError("dp_mean needs at least one client update.")
    mean = torch.stack([clip_update(u, clip_norm) for u in updates]).mean(dim=0)
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
    return mean + noise * (noise_multiplier * clip_norm / len(updates))


def dp_epsilon(noise_multiplier: float, rounds: int, delta: float = 1e-5) -> float:
    """Client-level epsilon of ``rounds`` DP-FedAvg rounds in which every client takes part.

    Neighbouring runs differ in one client's update being there or replaced by zero: the clipped sum moves
    by at most S, the noise is sigma * S. (If one client's data is *replaced* by any other, the sum can move
    by 2S: pass noise_multiplier / 2 for that guarantee.)

    Accountant: Renyi DP of the Gaussian mechanism (Mironov 2017). One round is (alpha, alpha / (2 sigma^2))-RDP
    for every order alpha > 1; rounds add up; converting with epsilon = rdp + log(1/delta) / (alpha - 1) and
    the best alpha gives the closed form epsilon = T / (2 sigma^2) + sqrt(2 T log(1/delta)) / sigma. It ignores
    the amplification that sampling a fraction of the clients would give, so it is an upper bound."""
    _check_dp(1.0, noise_multiplier)
    if rounds < 1 or not 0 < delta < 1:
        raise ValueError(f"Need rounds >= 1 and 0 < delta < 1, got rounds={rounds}, delta={delta}.")
    if noise_multiplier == 0:
        return math.inf
    return rounds / (2 * noise_multiplier**2) + math.sqrt(2 * rounds * math.log(1 / delta)) / noise_multiplier


# ----------------------------------------------------------------------------- plugging into FedAvg
# Both classes fit the engine's aggregation hook, ``FedAvg(aggregator=...)``: they are called once per round
# with the returned clients' flat deltas (K x (P,)) and sample counts (K,), and return the (P,) step.
# Make a fresh one per run: they count rounds to draw fresh randomness each round.


class SecureAggregator:
    """FedAvg's weighted mean, computed by secure aggregation among the clients that returned.

    Every round uses fresh pairwise seeds: with reused masks the server could subtract a client's uploads from
    two rounds and see the difference of its updates. ``last_server`` is the latest round's server, to look at
    what it received. A round where fewer than two clients returned is skipped (a zero step, said in one
    line): the sum of one upload is that update."""

    def __init__(self, max_abs: float = 1e3, seed: int = 0, frac_bits: int = FRAC_BITS) -> None:
        self.max_abs, self.seed, self.frac_bits = max_abs, seed, frac_bits
        self.rounds = 0
        self.skipped: list[int] = []  # rounds with fewer than two returned clients
        self.last_server: SecureAggregationServer | None = None

    def __call__(self, deltas: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        self.rounds += 1
        if len(deltas) < 2:
            print(f"SecureAggregator: round {self.rounds} skipped, {len(deltas)} client(s) returned (need 2).")
            self.skipped.append(self.rounds)
            return torch.zeros_like(deltas[0])
        round_seed = (self.seed << 20) + self.rounds
        mean, self.last_server = secure_weighted_mean(
            deltas, weights.tolist(), self.max_abs, round_seed, self.frac_bits
        )
        return mean


class DPAggregator:
    """DP-FedAvg's server step: clip every delta to ``clip_norm``, average, add Gaussian noise.

    The sample counts are ignored on purpose: weighting by n_k would let one large client move the mean by
    more than S / m, and the noise is calibrated to exactly that bound. ``norms`` collects every delta's L2
    norm before clipping, to see what the clip cuts."""

    def __init__(self, clip_norm: float, noise_multiplier: float, seed: int = 0) -> None:
        _check_dp(clip_norm, noise_multiplier)
        self.clip_norm, self.noise_multiplier, self.seed = clip_norm, noise_multiplier, seed
        self.rounds = 0
        self.norms: list[float] = []

    def __call__(self, deltas: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        self.rounds += 1
        self.norms += [d.norm().item() for d in deltas]
        generator = torch.Generator().manual_seed((self.seed << 20) + self.rounds)
        return dp_mean(deltas, self.clip_norm, self.noise_multiplier, generator)
