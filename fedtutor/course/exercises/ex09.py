"""Exercises of notebook 09: privacy defences (secret sharing, secure aggregation, DP-FedAvg).

The learner hands in functions; each check calls them on inputs it generates at check time
(fresh secrets, fresh updates, a budget drawn for this call) and compares with what only the
check holds, using ``fedtutor.privacy`` as the reference. Handing in the library's own
functions is refused: the exercise is to write them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import torch

from fedtutor.course.exercises._common import Wrong, call_learner, exercise, expect


def _fresh_seed() -> int:
    return random.SystemRandom().randrange(2**31)


def _library_names_used(function: Any) -> set[str]:
    """Names of ``fedtutor.privacy`` functions the function is, or calls through its globals."""
    import fedtutor.privacy as privacy

    taught = {"share", "reconstruct", "clip_update", "dp_mean", "DPAggregator", "secure_weighted_mean"}
    if getattr(function, "__module__", None) == privacy.__name__:
        return {getattr(function, "__name__", "?")}
    code, found = getattr(function, "__code__", None), set()
    if code is None:
        return found
    names = set(code.co_names)
    for name in names:
        value = function.__globals__.get(name)
        if value is privacy:  # privacy.share(...)
            found |= names & taught
        elif getattr(value, "__module__", None) == privacy.__name__ and getattr(value, "__name__", "") in taught:
            found.add(value.__name__)
    return found


def _expect_own(function: Any, name: str, signature: str) -> None:
    expect(
        callable(function),
        f"Pass your function {name} itself (a def or lambda: {signature}), not a {type(function).__name__}: "
        "the check calls it on inputs it generates.",
    )
    used = _library_names_used(function)
    expect(
        not used,
        f"{name} uses fedtutor.privacy's {', '.join(sorted(used))}: that is the reference the check compares "
        "against. Write it yourself in plain torch.",
    )


# ----------------------------------------------------------------------------- 09.2 additive secret sharing


def _edge_secrets(seed: int) -> torch.Tensor:
    from fedtutor.privacy import random_ring

    edges = torch.tensor([0, 1, -1, 52_000 << 16, 2**31, -(2**40), 2**62 + 12345, 2**63 - 1, -(2**63)])
    return torch.cat([edges, random_ring((300,), torch.Generator().manual_seed(seed))])  # (309,) int64


def _expect_shares(shares: Any, secret: torch.Tensor, parties: int) -> list[torch.Tensor]:
    expect(
        isinstance(shares, (list, tuple)),
        f"share(secret, {parties}, generator) should return a list of shares, got {type(shares).__name__}.",
    )
    expect(
        len(shares) == parties,
        f"share(secret, {parties}, generator) returned {len(shares)} shares; make one per party.",
    )
    for k, s in enumerate(shares):
        expect(isinstance(s, torch.Tensor), f"Share {k} should be a tensor, got {type(s).__name__}.")
        expect(
            s.dtype == torch.int64,
            f"Share {k} has dtype {s.dtype}; shares are ring elements (torch.int64): a float cannot hold all "
            "2^64 values exactly, and int64 + and - already wrap modulo 2^64.",
        )
        expect(s.shape == secret.shape, f"Share {k} has shape {tuple(s.shape)}, the secret {tuple(secret.shape)}.")
        expect(
            not torch.equal(s, secret),
            f"Share {k} is the secret itself: whoever holds it learns everything. Every share must look random.",
        )
    return list(shares)


def _expect_uniform(share_fn: Callable, parties: int, seed: int) -> None:
    from fedtutor.privacy import encode, ks_uniform, ring_to_unit

    for secret_value in (0.0, 1_000_000.0):
        secret = encode(torch.full((20_000,), secret_value))
        shares = _expect_shares(
            call_learner(share_fn, secret.clone(), parties, torch.Generator().manual_seed(seed), name="share"),
            secret,
            parties,
        )
        for k, s in enumerate(shares):
            unit = ring_to_unit(s)
            statistic, critical = ks_uniform(unit)
            expect(
                statistic < critical,
                f"With {parties} parties and the secret {secret_value:,.0f}, share {k} is not uniform on the ring: "
                f"its values span only {unit.min().item():.3f} to {unit.max().item():.3f} of it (0 to 1 = all "
                f"2^64 values; KS distance {statistic:.3f} > {critical:.3f}). Draw each random share from all "
                "2^64 int64 values, and let secret - sum(randoms) wrap around.",
            )


@exercise(
    "09.2",
    hint="share: draw parties - 1 uniformly random int64 tensors shaped like the secret (all 2^64 values: "
    "torch.empty(shape, dtype=torch.int64).random_(-2**63, None, generator=generator)); the last share is "
    "secret minus their sum. reconstruct: add them up. int64 wraps, so no % is needed.",
)
def _check_sharing(share: Any, reconstruct: Any) -> str:
    from fedtutor.privacy import share as reference_share

    _expect_own(share, "share", "share(secret, parties, generator) -> list of int64 tensors")
    _expect_own(reconstruct, "reconstruct", "reconstruct(shares) -> int64 tensor")
    seed = _fresh_seed()
    secret = _edge_secrets(seed)
    for parties in (2, 3, 5):
        shares = _expect_shares(
            call_learner(share, secret.clone(), parties, torch.Generator().manual_seed(seed + parties), name="share"),
            secret,
            parties,
        )
        back = call_learner(reconstruct, [s.clone() for s in shares], name="reconstruct")
        expect(isinstance(back, torch.Tensor) and back.dtype == torch.int64, "reconstruct should return int64.")
        expect(
            back.shape == secret.shape, f"reconstruct returned shape {tuple(back.shape)}, not {tuple(secret.shape)}."
        )
        wrong = (back != secret).nonzero().flatten()
        if len(wrong):
            small = secret.abs() < 2**31
            only_large = bool((back[small] == secret[small]).all())
            first = wrong[0].item()
            raise Wrong(
                f"With {parties} parties, reconstruct(share(s)) gave back {len(wrong)} of {len(secret)} fresh secrets "
                f"wrong, e.g. {secret[first].item()} came back as {back[first].item()}. "
                + (
                    "Small secrets work but large ones do not: the ring is all of int64 (modulo 2^64). Do not "
                    "reduce modulo a smaller number; int64's + and - already wrap."
                    if only_large
                    else "Keep every step in int64, whose + and - wrap modulo 2^64 (no float, no clamp)."
                )
            )
        reference = reference_share(secret, parties, torch.Generator().manual_seed(seed))
        back = call_learner(reconstruct, reference, name="reconstruct")
        expect(
            isinstance(back, torch.Tensor) and torch.equal(back, secret),
            f"Your reconstruct does not undo another correct sharing (the reference's, {parties} parties): "
            "add all the shares, in int64.",
        )
    first, again = (
        call_learner(share, secret.clone(), 3, torch.Generator().manual_seed(seed + 3), name="share") for _ in range(2)
    )
    expect(
        all(torch.equal(a, b) for a, b in zip(first, again, strict=True)),
        "share gave different shares for the same generator seed: draw the randomness from the generator argument.",
    )
    for parties in (2, 3):
        _expect_uniform(share, parties, seed)
    return (
        f"Your share/reconstruct gave back {len(secret)} fresh secrets (ring edges included) exactly for 2, 3 and "
        "5 parties, and every share of 20,000 copies of two secrets passed a uniformity test."
    )


# ----------------------------------------------------------------------------- 09.3 reused masks


@exercise(
    "09.3",
    hint="The masks are the same in both rounds, so they cancel in upload2 - upload1 (int64, wrapping). "
    "Subtract first, then decode.",
)
def _check_mask_reuse(leak: Any) -> str:
    from fedtutor.privacy import mask_update, pairwise_seeds

    _expect_own(leak, "leak", "leak(upload1, upload2) -> float tensor")
    seed = _fresh_seed()
    generator = torch.Generator().manual_seed(seed)
    seeds = pairwise_seeds(3, seed=seed)  # reused in both rounds: the lazy implementation
    update1, update2 = 3 * torch.randn(200, generator=generator), 3 * torch.randn(200, generator=generator)
    upload1 = mask_update(update1, 0, seeds, max_abs=20.0)
    upload2 = mask_update(update2, 0, seeds, max_abs=20.0)
    found = call_learner(leak, upload1.clone(), upload2.clone(), name="leak")
    expect(isinstance(found, torch.Tensor), f"leak should return a tensor, got {type(found).__name__}.")
    expect(found.dtype != torch.int64, "leak returned ring elements (int64): decode them to floats.")
    expect(found.numel() == 200, f"leak should return one number per coordinate (200), got {found.numel()}.")
    truth = (update2 - update1).double()
    found = found.detach().double().flatten()
    error = (found - truth).abs().max().item()
    expect(
        (found + truth).abs().max().item() > 1e-3 or error < 1e-4,
        "The sign is flipped: that is round 1 minus round 2. The question asks how the update changed.",
    )
    expect(
        error < 1e-2 or error > 10,
        f"Close, but off by up to {error:.2g}: you decoded each upload, then subtracted. Each upload is a huge "
        "random number (about 2^46 decoded) and float64 keeps only 53 bits of it; subtract in the ring first "
        "(int64, exact), then decode the small difference.",
    )
    expect(
        error < 1e-4,
        f"leak is off by up to {error:.3g} from the real change of the update (updates the check drew itself): "
        "subtract the two masked uploads, then decode.",
    )
    return "From two masked uploads with reused masks (drawn by the check), you recovered the change of the update."


# ----------------------------------------------------------------------------- 09.1 DP-FedAvg clip and noise


def _expect_clip(clip: Callable) -> None:
    generator = torch.Generator().manual_seed(_fresh_seed())
    for clip_norm in (0.5, 1.0, 3.0):
        for scale in (0.1, 0.9, 2.0, 10.0):
            update = torch.randn(300, generator=generator)
            update = update * (scale * clip_norm / update.norm())  # norm = scale * S
            out = call_learner(clip, update.clone(), clip_norm, name="clip_on_client")
            expect(isinstance(out, torch.Tensor), f"clip_on_client should return a tensor, got {type(out).__name__}.")
            expect(out.shape == update.shape, f"clip_on_client changed the shape to {tuple(out.shape)}.")
            norm, before = out.norm().item(), update.norm().item()
            expect(
                norm <= clip_norm * (1 + 1e-5),
                f"An update of norm {before:.3g} left clip_on_client with norm {norm:.3g} > S = {clip_norm}: each "
                "client must bound its own update before uploading it.",
            )
            cosine = torch.nn.functional.cosine_similarity(out, update, dim=0).item()
            expect(
                cosine > 0.9999,
                "Clipping changed the update's direction: scale the whole vector by min(1, S / ||u||) instead of "
                "clamping each coordinate.",
            )
            expect(
                scale >= 1 or torch.allclose(out, update),
                f"An update of norm {before:.3g}, already within S = {clip_norm}, came back with norm {norm:.3g}: "
                "clipping only shrinks updates that are too long.",
            )
            expect(
                scale < 1 or norm >= clip_norm * (1 - 1e-5),
                f"An update of norm {before:.3g} came back with norm {norm:.3g}, below S = {clip_norm}: scale it "
                "to exactly S (multiply by S / ||u||).",
            )
    zero = call_learner(clip, torch.zeros(5), 1.0, name="clip_on_client")
    expect(
        isinstance(zero, torch.Tensor) and bool(torch.isfinite(zero).all()) and torch.equal(zero, torch.zeros(5)),
        "clip_on_client(zeros, S) should return zeros, not NaN (0 / 0): leave an update within S unchanged.",
    )


def _expect_noisy_mean(noisy_mean: Callable, clip: Callable) -> None:
    seed = _fresh_seed()
    generator = torch.Generator().manual_seed(seed)
    clients, size, clip_norm, sigma = 8, 50_000, 0.7, 1.5
    raw = [torch.randn(size, generator=generator) * (0.2 + k) / math.sqrt(size) for k in range(clients)]
    clipped = [call_learner(clip, u, clip_norm, name="clip_on_client") for u in raw]  # what the clients upload
    mean = torch.stack(clipped).mean(dim=0)

    def run(noise_multiplier: float, generator: torch.Generator) -> object:
        """The learner's noisy_mean on fresh copies of the clipped updates (it may change them in place)."""
        copies = [c.clone() for c in clipped]
        return call_learner(noisy_mean, copies, clip_norm, noise_multiplier, generator, name="noisy_mean")

    out = run(0.0, torch.Generator())
    expect(isinstance(out, torch.Tensor), f"noisy_mean should return a tensor, got {type(out).__name__}.")
    expect(out.shape == mean.shape, f"noisy_mean should return one (P,) vector, got shape {tuple(out.shape)}.")
    if not torch.allclose(out, mean, atol=1e-6):
        total = torch.stack(clipped).sum(dim=0)
        clipped_total = total * min(1.0, clip_norm / total.norm().item())
        expect(not torch.allclose(out, total, atol=1e-5), "With no noise you returned the sum: divide by m.")
        expect(
            not torch.allclose(out, clipped_total / clients, atol=1e-6)
            and not torch.allclose(out, clipped_total, atol=1e-6),
            "You clipped the sum. DP-FedAvg clips each client's update, on the client, before it is sent "
            "(McMahan et al. 2018); the server averages the clipped updates as they are.",
        )
        raise Wrong(
            "With noise_multiplier = 0, noisy_mean should return the plain mean of the clipped updates it was "
            "given (every client weighted equally)."
        )

    out = run(sigma, torch.Generator().manual_seed(seed))
    noise = (out - mean).double()
    want, got = sigma * clip_norm / clients, noise.std().item()
    expect(got > 0, "The output equals the mean: no noise was added. Add N(0, (sigma * S / m)^2) to every coordinate.")
    for wrong_std, why in (
        (sigma * clip_norm, "sigma * S, the noise on the *sum*; on the mean it is divided by m"),
        (sigma / clients, "sigma / m: the noise also scales with the clip norm S"),
        (sigma, "sigma alone: the noise is sigma * S / m"),
    ):
        expect(abs(got / wrong_std - 1) > 0.03, f"Your noise has std {got:.4g}, that is {why} = {want:.4g}.")
    expect(
        abs(got / want - 1) < 0.03,
        f"Your noise has std {got:.4g}; with sigma = {sigma}, S = {clip_norm}, m = {clients} it should be "
        f"sigma * S / m = {want:.4g}.",
    )
    expect(
        abs(noise.mean().item()) < 5 * want / math.sqrt(size),
        f"The noise has mean {noise.mean().item():.3g}, not 0: it should be centred Gaussian noise.",
    )
    tails = ((noise / want).abs() > 2).double().mean().item()  # Gaussian: 4.55% beyond 2 std
    expect(
        0.035 < tails < 0.056,
        f"{tails:.1%} of the noise lies beyond 2 std, a Gaussian has 4.6%: draw it with "
        "torch.randn(..., generator=...).",
    )
    again = run(sigma, torch.Generator().manual_seed(seed))
    expect(
        torch.equal(out, again),
        "Two calls with generators of the same seed gave different noise: draw the noise from the generator "
        "argument, so that a run can be repeated.",
    )


@exercise(
    "09.1",
    hint="clip_on_client: u * min(1, S / ||u||) (and leave a zero update alone). noisy_mean: stack the clipped "
    "updates, take the mean over clients, add torch.randn(shape, generator=generator) * sigma * S / m.",
)
def _check_dp_step(clip_on_client: Any, noisy_mean: Any) -> str:
    _expect_own(clip_on_client, "clip_on_client", "clip_on_client(update, clip_norm) -> tensor")
    _expect_own(noisy_mean, "noisy_mean", "noisy_mean(clipped, clip_norm, noise_multiplier, generator) -> tensor")
    _expect_clip(clip_on_client)
    _expect_noisy_mean(noisy_mean, clip_on_client)
    return (
        "clip_on_client kept 12 fresh updates within S (direction kept, short ones untouched); noisy_mean returned "
        "the mean plus Gaussian noise of std sigma * S / m (within 3%), reproducibly from the generator."
    )


# ----------------------------------------------------------------------------- 09.4 noise for a privacy budget


@exercise(
    "09.4",
    hint="dp_epsilon(sigma, rounds, delta) falls as sigma grows: start at sigma = 0.01 and step by 0.01 "
    "(round(sigma + 0.01, 2) keeps it exact) until epsilon is within the budget.",
)
def _check_noise_for_budget(smallest_sigma: Any) -> str:
    from fedtutor.privacy import dp_epsilon

    expect(
        callable(smallest_sigma),
        f"Pass your function smallest_sigma itself, not a {type(smallest_sigma).__name__}: the check calls it on "
        "budgets it draws.",
    )
    rng = random.Random(_fresh_seed())
    budgets = [(round(rng.uniform(2, 10), 1), rng.randrange(20, 200), 10.0 ** -rng.randrange(5, 7)) for _ in range(3)]
    for epsilon, rounds, delta in budgets:
        sigma = call_learner(smallest_sigma, epsilon, rounds, delta, name="smallest_sigma")
        expect(
            isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma > 0,
            f"smallest_sigma should return a positive number, got {sigma!r}.",
        )
        eps = dp_epsilon(sigma, rounds, delta)
        expect(
            eps <= epsilon + 1e-9,
            f"For a budget of epsilon = {epsilon} over {rounds} rounds (delta = {delta:g}) you chose sigma = "
            f"{sigma:g}, which spends epsilon = {eps:.2f}: too little noise.",
        )
        expect(
            sigma <= 0.01 or dp_epsilon(sigma - 0.01, rounds, delta) > epsilon,
            f"For epsilon = {epsilon} over {rounds} rounds, sigma = {sigma:g} is within the budget, but so is "
            f"{sigma - 0.01:.2f}: find the smallest (to 0.01); more noise than needed costs accuracy.",
        )
    shown = ", ".join(f"epsilon {e} over {r} rounds" for e, r, _ in budgets)
    return f"smallest_sigma found the least noise (to 0.01) for 3 budgets drawn now: {shown}."
