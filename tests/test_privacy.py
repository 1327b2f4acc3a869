"""Tests for fedtutor.privacy: gradient inversion, secret sharing, secure aggregation, DP-FedAvg."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedtutor.models import MLP2NN
from fedtutor.privacy import (
    FRAC_BITS,
    DPAggregator,
    SecureAggregationServer,
    SecureAggregator,
    clip_update,
    decode,
    dp_epsilon,
    dp_mean,
    encode,
    example_gradients,
    fixed_point_limit,
    image_mse,
    infer_label,
    invert_gradients,
    ks_uniform,
    mask_update,
    pairwise_seeds,
    random_ring,
    reconstruct,
    ring_to_unit,
    secure_weighted_mean,
    share,
    ssim,
)

RESOLUTION = 2.0**-FRAC_BITS  # fixed-point rounding error is at most half of this per value


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """A few real MNIST training images of different classes, (N, 1, 28, 28) and (N,)."""
    from fedtutor.data import load_tensors

    x, y = load_tensors()
    idx = torch.tensor([0, 600, 1200, 2600, 4900])  # MNIST-mini is sorted by class: 500 per class
    return x[idx], y[idx]


# ----------------------------------------------------------------------------- gradient inversion


def test_infer_label_reads_the_label_off_the_gradient(digits):
    torch.manual_seed(0)
    model = MLP2NN()
    x, y = digits
    assert len(set(y.tolist())) == len(y)  # really different labels, so a constant guess fails
    for xi, yi in zip(x, y, strict=True):
        assert infer_label(example_gradients(model, xi[None], yi[None])) == int(yi)


def test_dlg_reconstructs_the_image_from_its_gradient(digits):
    torch.manual_seed(0)
    model = MLP2NN()
    x, y = digits[0][1:2], digits[1][1:2]
    result = invert_gradients(model, example_gradients(model, x, y), iterations=25, seed=1)
    assert result.label == int(y)
    start = result.snapshots[0][1]
    assert image_mse(start, x) > 0.1  # it starts as noise...
    assert image_mse(result.image, x) < 1e-3  # ...and ends as the digit
    assert ssim(result.image, x) > 0.95
    assert result.losses[-1] < 1e-3 * result.losses[0]
    assert [it for it, _ in result.snapshots][:3] == [0, 1, 2] and result.snapshots[-1][0] == 25


def test_dlg_is_deterministic_given_a_seed(digits):
    torch.manual_seed(0)
    model = MLP2NN()
    target = example_gradients(model, digits[0][:1], digits[1][:1])
    a = invert_gradients(model, target, iterations=3, seed=4).image
    b = invert_gradients(model, target, iterations=3, seed=4).image
    assert torch.equal(a, b)


def test_ssim_and_mse_tell_same_from_different(digits):
    a, b = digits[0][0:1], digits[0][3:4]
    assert ssim(a, a) == pytest.approx(1.0) and image_mse(a, a) == 0.0
    assert ssim(a, b) < 0.5 and image_mse(a, b) > 0.05


def test_dlg_moves_only_the_image_never_the_model(digits):
    torch.manual_seed(0)
    model = MLP2NN()
    before = [p.detach().clone() for p in model.parameters()]
    threads = torch.get_num_threads()
    invert_gradients(model, example_gradients(model, digits[0][:1], digits[1][:1]), iterations=2)
    assert torch.get_num_threads() == threads  # it runs single-threaded, then restores the setting
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_gradient_attacks_reject_bad_input():
    model = MLP2NN()
    grads = [p.detach() for p in model.parameters()]
    with pytest.raises(ValueError, match="iterations"):
        invert_gradients(model, grads, iterations=0)
    with pytest.raises(ValueError, match="one gradient per parameter"):
        invert_gradients(model, grads[:-1])
    with pytest.raises(ValueError, match="final linear layer"):
        infer_label([torch.ones(3)])


# ----------------------------------------------------------------------------- fixed point


def test_int64_arithmetic_wraps_modulo_2_to_the_64():
    """The whole ring implementation rests on this."""
    top, bottom = torch.tensor([2**63 - 1]), torch.tensor([-(2**63)])
    assert (top + 1).item() == -(2**63)
    assert (bottom - 1).item() == 2**63 - 1
    assert torch.stack([top, top, torch.tensor([2])]).sum(0).item() == 0  # 2 * (2^63 - 1) + 2 = 2^64 = 0


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_encode_decode_round_trip_is_within_half_a_resolution_step(x):
    back = decode(encode(torch.tensor([x], dtype=torch.float64))).item()
    assert abs(back - x) <= RESOLUTION / 2 + 1e-9 * abs(x)


def test_encode_detects_overflow_instead_of_wrapping():
    limit = fixed_point_limit()
    assert limit == 2.0 ** (63 - FRAC_BITS)
    encode(torch.tensor([limit / 2, -limit / 2]))  # fine
    with pytest.raises(OverflowError, match="fixed-point range"):
        encode(torch.tensor([1.0, limit]))
    with pytest.raises(OverflowError, match="1 value"):
        encode(torch.tensor([0.5, -3.0]), max_abs=2.0)
    with pytest.raises(ValueError, match="NaN"):
        encode(torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="max_abs must be positive and below"):
        encode(torch.tensor([1.0]), max_abs=2 * limit)  # a bound the ring cannot hold
    with pytest.raises(ValueError, match="frac_bits"):
        encode(torch.tensor([1.0]), frac_bits=60)
    with pytest.raises(TypeError, match="int64"):
        decode(torch.tensor([1.0]))


# ----------------------------------------------------------------------------- secret sharing


@pytest.mark.parametrize("parties", [2, 3, 5])
def test_shares_reconstruct_exactly_even_at_the_ring_edges(parties):
    secret = torch.tensor([0, 1, -1, 2**63 - 1, -(2**63), 123456789])
    shares = share(secret, parties, generator(parties))
    assert len(shares) == parties
    assert torch.equal(reconstruct(shares), secret)
    assert not any(torch.equal(s, secret) for s in shares)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=2**31),
)
def test_adding_shares_adds_the_secrets(values, seed):
    a = torch.tensor(values, dtype=torch.float64)
    b = a.flip(0) * -0.5 + 3.25
    shares_a, shares_b = share(encode(a), 3, generator(seed)), share(encode(b), 3, generator(seed + 1))
    shares_sum = [sa + sb for sa, sb in zip(shares_a, shares_b, strict=True)]  # each party adds its own two
    assert torch.equal(reconstruct(shares_sum), encode(a) + encode(b))  # exact, in the ring
    assert torch.allclose(decode(reconstruct(shares_sum)), a + b, rtol=0, atol=RESOLUTION)


@pytest.mark.parametrize("secret", [0.0, 1234.5, -fixed_point_limit() / 2])
def test_a_single_share_is_uniform_whatever_the_secret(secret):
    draws = 20_000
    encoded = encode(torch.full((draws,), secret))  # the same secret, shared 20,000 times
    first, second = share(encoded, 2, generator(7))
    for one_share in (first, second):
        statistic, critical = ks_uniform(ring_to_unit(one_share))
        assert statistic < critical, f"share distribution depends on the secret {secret}: D={statistic:.4f}"
        # chi-square on the lowest byte: the encoding of a round number has all-zero low bits
        counts = torch.bincount((one_share & 0xFF).long(), minlength=256).double()
        chi2 = ((counts - draws / 256) ** 2 / (draws / 256)).sum().item()
        assert chi2 < 330.5, f"low byte not uniform: chi2={chi2:.0f} (255 dof, 0.1% critical value 330.5)"


def test_the_independence_test_catches_a_leaky_sharing():
    """Negative control: masks drawn from a small range let the secret show through, and the KS test sees it."""
    secret = encode(torch.full((20_000,), 1234.5))
    leaky_mask = torch.randint(0, 2**40, secret.shape, generator=generator(0))
    statistic, critical = ks_uniform(ring_to_unit(secret - leaky_mask))
    assert statistic > 10 * critical


def test_share_without_a_generator_follows_the_global_seed():
    secret = encode(torch.tensor([1.0, 2.0]))
    torch.manual_seed(3)
    first = share(secret)
    torch.manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(first, share(secret), strict=True))
    assert not torch.equal(first[0], share(secret)[0])  # the next call draws fresh randomness


def test_share_rejects_bad_input():
    with pytest.raises(TypeError, match="encode"):
        share(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="at least 2 parties"):
        share(encode(torch.tensor([1.5])), parties=1)


# ----------------------------------------------------------------------------- secure aggregation


def updates(clients: int = 5, size: int = 1000, seed: int = 0) -> list[torch.Tensor]:
    g = generator(seed)
    return [torch.randn(size, generator=g, dtype=torch.float64) * (k + 1) for k in range(clients)]


def test_secure_sum_equals_plain_sum_to_fixed_point_precision():
    ups = updates()
    seeds = pairwise_seeds(len(ups), seed=3)
    server = SecureAggregationServer(len(ups), max_abs=100.0)
    for k, u in enumerate(ups):
        server.receive(k, mask_update(u, k, seeds, max_abs=100.0))
    total = server.total()
    assert torch.allclose(total, sum(ups), rtol=0, atol=len(ups) * RESOLUTION / 2)


def test_the_server_only_sees_uniformly_random_uploads():
    ups = [
        torch.zeros(20_000, dtype=torch.float64),
        torch.full((20_000,), 7.0),
        torch.arange(20_000.0) % 40 / 4 - 5,
    ]  # multiples of 1/4
    seeds = pairwise_seeds(3, seed=0)
    server = SecureAggregationServer(3, max_abs=10.0)
    for k, u in enumerate(ups):
        server.receive(k, mask_update(u, k, seeds, max_abs=10.0))
    for k, seen in server.received.items():
        assert not torch.equal(seen, encode(ups[k]))
        statistic, critical = ks_uniform(ring_to_unit(seen))
        assert statistic < critical, f"client {k}'s upload is not uniform (D={statistic:.4f})"
    assert torch.equal(server.total(), sum(ups))  # these values are exact in fixed point


def test_masks_cancel_exactly():
    seeds = pairwise_seeds(4, seed=1)
    masked = [mask_update(torch.zeros(50), k, seeds, max_abs=1.0) for k in range(4)]
    assert all(m.abs().max() > 2**40 for m in masked)  # each looks random...
    assert torch.equal(reconstruct(masked), torch.zeros(50, dtype=torch.int64))  # ...the sum is exactly 0


def test_secure_weighted_mean_matches_fedavg_weighting():
    ups = updates(clients=4, size=300)
    weights = [10, 30, 50, 10]
    mean, server = secure_weighted_mean(ups, weights, max_abs=50.0, seed=2)
    expected = sum(w * u for w, u in zip(weights, ups, strict=True)) / sum(weights)
    assert torch.allclose(mean, expected, rtol=0, atol=len(ups) * RESOLUTION)
    assert sorted(server.received) == [0, 1, 2, 3]
    assert all(s.dtype == torch.int64 for s in server.received.values())


def test_a_dropped_client_is_reported_not_silently_summed():
    seeds = pairwise_seeds(3)
    server = SecureAggregationServer(3, max_abs=1.0)
    server.receive(0, mask_update(torch.ones(4) * 0.5, 0, seeds, max_abs=1.0))
    server.receive(2, mask_update(torch.ones(4) * 0.5, 2, seeds, max_abs=1.0))
    with pytest.raises(RuntimeError, match=r"Client\(s\) \[1\] never uploaded"):
        server.total()


def test_secure_aggregation_rejects_overflow_and_bad_uploads():
    seeds = pairwise_seeds(2)
    with pytest.raises(OverflowError, match="max_abs|fixed-point range"):
        mask_update(torch.tensor([0.5, 3.0]), 0, seeds, max_abs=1.0)  # a client over the public bound
    with pytest.raises(OverflowError, match="would wrap"):
        SecureAggregationServer(clients=1000, max_abs=fixed_point_limit() / 100)  # the sum could overflow
    with pytest.raises(ValueError, match="at least 2 clients"):
        SecureAggregationServer(clients=1, max_abs=1.0)
    with pytest.raises(ValueError, match="max_abs must be positive"):
        SecureAggregationServer(clients=2, max_abs=0.0)
    server = SecureAggregationServer(2, max_abs=1.0)
    with pytest.raises(TypeError, match="masked upload"):
        server.receive(0, torch.ones(3))  # a plain float update: refused
    with pytest.raises(ValueError, match="Unknown client 5"):
        server.receive(5, random_ring((3,), generator()))
    server.receive(0, random_ring((3,), generator()))
    with pytest.raises(ValueError, match="already uploaded"):
        server.receive(0, random_ring((3,), generator()))
    with pytest.raises(ValueError, match="shape"):
        server.receive(1, random_ring((4,), generator()))
    with pytest.raises(ValueError, match="weight"):
        secure_weighted_mean(updates(2), weights=[1.0])


# ----------------------------------------------------------------------------- differential privacy


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=1e-3, max_value=1e3), st.floats(min_value=1e-2, max_value=10), st.integers(0, 2**31))
def test_clipping_bounds_the_norm_and_keeps_the_direction(scale, clip_norm, seed):
    u = torch.randn(100, generator=generator(seed), dtype=torch.float64) * scale
    clipped = clip_update(u, clip_norm)
    assert clipped.norm() <= clip_norm * (1 + 1e-9)
    assert torch.allclose(clipped.norm(), min(u.norm(), torch.tensor(clip_norm, dtype=torch.float64)))
    assert torch.nn.functional.cosine_similarity(clipped, u, dim=0) > 1 - 1e-9
    if u.norm() <= clip_norm:
        assert torch.equal(clipped, u)  # small updates pass untouched


def test_dp_mean_without_noise_is_the_mean_of_clipped_updates():
    ups = [torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4]), torch.tensor([0.0, 0.0])]  # norms 5, 0.5, 0
    result = dp_mean(ups, clip_norm=1.0, noise_multiplier=0.0, generator=generator())
    assert torch.allclose(result, (torch.tensor([0.6, 0.8]) + torch.tensor([0.3, 0.4])) / 3)


@pytest.mark.parametrize(("noise_multiplier", "clients"), [(1.0, 10), (0.5, 4), (3.0, 1)])
def test_dp_mean_noise_has_std_sigma_times_s_over_m(noise_multiplier, clients):
    size, clip_norm = 200_000, 2.0
    u = torch.full((size,), 1e-4)  # norm 0.045 < S: clipping leaves it alone, the rest is noise
    noise = dp_mean([u] * clients, clip_norm, noise_multiplier, generator(1)) - u
    expected_std = noise_multiplier * clip_norm / clients
    # the sample std of n Gaussians is within 4 / sqrt(2n) ~ 0.6% of the truth with overwhelming odds
    assert noise.std().item() == pytest.approx(expected_std, rel=4 / math.sqrt(2 * size))
    assert abs(noise.mean().item()) < 5 * expected_std / math.sqrt(size)
    gaussian_cdf = torch.special.ndtr((noise / expected_std).double())  # uniform if the noise is N(0, std^2)
    statistic, critical = ks_uniform(gaussian_cdf)
    assert statistic < critical


def test_dp_rejects_invalid_parameters():
    u = [torch.ones(3)]
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="clip_norm must be a positive number"):
            dp_mean(u, clip_norm=bad, noise_multiplier=1.0, generator=generator())
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="noise_multiplier must be >= 0"):
            dp_mean(u, clip_norm=1.0, noise_multiplier=bad, generator=generator())
    with pytest.raises(ValueError, match="clip_norm"):
        clip_update(torch.ones(3), 0)
    with pytest.raises(ValueError, match="at least one"):
        dp_mean([], 1.0, 1.0, generator())
    with pytest.raises(ValueError, match="rounds"):
        dp_epsilon(1.0, rounds=0)


def test_dp_epsilon_matches_a_numeric_search_over_renyi_orders():
    """The closed form against a brute-force minimization of the RDP-to-DP conversion."""
    for sigma, rounds, delta in [(1.0, 1, 1e-5), (1.1, 100, 1e-5), (4.0, 20, 1e-6)]:
        orders = torch.linspace(1.001, 2000, 2_000_000, dtype=torch.float64)
        brute = (rounds * orders / (2 * sigma**2) + math.log(1 / delta) / (orders - 1)).min().item()
        assert dp_epsilon(sigma, rounds, delta) == pytest.approx(brute, rel=1e-6)
    assert dp_epsilon(2.0, 10) < dp_epsilon(1.0, 10)  # more noise, more privacy
    assert dp_epsilon(1.0, 100) > dp_epsilon(1.0, 10)  # more rounds, less privacy
    assert dp_epsilon(0.0, 1) == math.inf


# ----------------------------------------------------------------------------- the FedAvg hook


def test_secure_aggregator_trains_the_same_model_as_plain_fedavg(digits):
    from fedtutor.data import load_tensors
    from fedtutor.federated import FedAvg, flat_params, make_clients, run_federated

    x, y = load_tensors()
    parts = [torch.arange(k * 500, k * 500 + 40) for k in range(4)]  # 4 small clients, one digit each
    clients, test = make_clients(x, y, parts), (x[::50], y[::50])
    models = []
    for aggregator in (None, SecureAggregator(max_abs=10.0, seed=1)):
        torch.manual_seed(0)
        models.append(MLP2NN())
        strategy = FedAvg(fraction=1.0, epochs=1, batch_size=10, lr=0.05, aggregator=aggregator)
        run_federated(models[-1], clients, test, strategy, rounds=1, progress=False, live=False, workers=1)
    plain, secure = (flat_params(m) for m in models)
    assert not torch.equal(plain, flat_params(MLP2NN()))  # it did train
    # one round from the same start: the models differ only by the rounding of 4 encoded updates
    assert (plain - secure).abs().max() <= 4 * RESOLUTION / 2 + 1e-6
    assert aggregator.rounds == 1 and all(v.dtype == torch.int64 for v in aggregator.last_server.received.values())


def test_secure_aggregator_draws_fresh_masks_every_round():
    aggregator = SecureAggregator(max_abs=10.0)
    deltas, weights = updates(3, 50), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    first = aggregator(deltas, weights)
    seen_first = dict(aggregator.last_server.received)
    second = aggregator(deltas, weights)
    assert torch.allclose(first, second, rtol=0, atol=3 * RESOLUTION)  # same sum...
    assert not torch.equal(seen_first[0], aggregator.last_server.received[0])  # ...under different masks


def test_dp_aggregator_clips_weights_clients_equally_and_records_norms():
    aggregator = DPAggregator(clip_norm=1.0, noise_multiplier=0.0)
    deltas = [torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.5])]
    result = aggregator(deltas, torch.tensor([1.0, 100.0], dtype=torch.float64))  # sample counts ignored
    assert torch.allclose(result, (torch.tensor([0.6, 0.8]) + torch.tensor([0.0, 0.5])) / 2)
    assert aggregator.norms == [5.0, 0.5]
    noisy = DPAggregator(clip_norm=1.0, noise_multiplier=1.0, seed=3)
    assert not torch.equal(noisy(deltas, torch.ones(2)), noisy(deltas, torch.ones(2)))  # fresh noise each round
    with pytest.raises(ValueError, match="clip_norm"):
        DPAggregator(clip_norm=-1.0, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="noise_multiplier"):
        DPAggregator(clip_norm=1.0, noise_multiplier=-1.0)


# ----------------------------------------------------------------------------- edge cases (issue 13)


def test_reconstruct_explains_bad_share_lists():
    shares = share(encode(torch.ones(3)), 3, generator(0))
    with pytest.raises(ValueError, match="non-empty list of shares"):
        reconstruct([])
    with pytest.raises(ValueError, match=r"\(3,\), \(2,\)"):
        reconstruct([shares[0], shares[1][:2]])
    with pytest.raises(TypeError, match="int64"):
        reconstruct([s.double() for s in shares])


def test_mask_update_refuses_a_client_outside_the_seed_table():
    seeds = pairwise_seeds(3, seed=0)
    with pytest.raises(ValueError, match=r"Client 5 has no seeds.*\[0, 1, 2\].*unmasked"):
        mask_update(torch.ones(4), 5, seeds, max_abs=10.0)
    with pytest.raises(ValueError, match="no seeds"):
        mask_update(torch.ones(4), 0, pairwise_seeds(1), max_abs=10.0)  # one client: no pairs at all


def test_secure_aggregator_skips_a_round_with_one_returned_client(capsys):
    aggregator = SecureAggregator(max_abs=10.0)
    step = aggregator([torch.tensor([1.0, 2.0])], torch.tensor([5.0], dtype=torch.float64))
    assert torch.equal(step, torch.zeros(2)) and aggregator.skipped == [1]
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "round 1 skipped, 1 client(s) returned" in out
    step = aggregator([torch.ones(2), torch.ones(2)], torch.ones(2, dtype=torch.float64))  # the run goes on
    assert torch.allclose(step, torch.ones(2, dtype=step.dtype), atol=1e-4) and aggregator.skipped == [1]


def test_secure_aggregation_of_a_federated_run_with_dropouts_goes_on(capsys):
    from fedtutor.data import load_tensors
    from fedtutor.federated import FedAvg, make_clients, run_federated

    x, y = load_tensors()
    clients = make_clients(x, y, [torch.arange(k * 500, k * 500 + 20) for k in range(3)])
    aggregator = SecureAggregator(max_abs=100.0)
    strategy = FedAvg(fraction=1.0, epochs=1, batch_size=10, lr=0.05, dropout=0.6, aggregator=aggregator)
    history = run_federated(MLP2NN(), clients, (x[::100], y[::100]), strategy, rounds=6, progress=False, live=False)
    assert len(history.records) == 6 and aggregator.skipped  # some round had fewer than two clients
    assert "skipped" in capsys.readouterr().out


def test_nan_messages_say_what_is_nan():
    with pytest.raises(ValueError, match=r"1 of 3 value\(s\): NaN or infinite.*index 1 is nan"):
        encode(torch.tensor([1.0, float("nan"), 2.0]))
    updates = [torch.ones(2), torch.ones(2)]
    with pytest.raises(ValueError, match="Client 1 cannot be aggregated: its weight is nan"):
        secure_weighted_mean(updates, [1.0, float("nan")])
    with pytest.raises(ValueError, match="Client 0 .* update has NaN"):
        secure_weighted_mean([torch.tensor([float("nan"), 0.0]), torch.ones(2)], [1.0, 1.0])
