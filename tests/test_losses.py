"""`neurosim.losses`: each loss against a hand computation, van Rossum against a direct
numerical integration of the filtered difference, and finite values and gradients on
padded buffers with missing spikes."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurosim import losses

INF = np.inf


def test_first_spike_cross_entropy_by_hand():
    times = jnp.array([3.0, 5.0, INF])
    # The silent neuron counts as firing tau after the latest spike: at 5 + 2 = 7.
    logits = np.array([-3.0, -5.0, -7.0]) / 2.0
    want = -(logits[1] - math.log(np.exp(logits).sum()))
    np.testing.assert_allclose(
        losses.first_spike_cross_entropy(times, 1, tau=2.0), want, rtol=1e-6
    )
    explicit = -(-1.5 - math.log(np.exp([-1.5, -2.5, -5.0]).sum()))
    np.testing.assert_allclose(
        losses.first_spike_cross_entropy(times, 0, tau=2.0, t_silent=10.0),
        explicit,
        rtol=1e-6,
    )
    # A batch of samples, one label each.
    batch = losses.first_spike_cross_entropy(
        jnp.stack([times, times]), jnp.array([1, 0]), tau=2.0
    )
    np.testing.assert_allclose(batch[0], want, rtol=1e-6)


def test_spike_time_mse_by_hand():
    spikes = jnp.array([[1.0, 4.0, 9.0], [2.0, INF, INF]])
    targets = jnp.array([[1.5, 4.0, INF], [2.0, 6.0, INF]])
    # Pairs: 0.5², 0, extra spike 9 against t_missing 20: 11², 0, missing 6: 14², 0.
    want = (0.25 + 121.0 + 196.0) / 6
    np.testing.assert_allclose(
        losses.spike_time_mse(spikes, targets, t_missing=20.0), want, rtol=1e-6
    )
    with pytest.raises(ValueError, match="Pad both to the same"):
        losses.spike_time_mse(spikes, targets[:, :2], t_missing=20.0)


def test_counts_and_membrane_readouts_by_hand():
    np.testing.assert_allclose(
        losses.spike_count_loss(jnp.array([3, 0], jnp.int32), jnp.array([1.0, 2.0])),
        (4.0 + 4.0) / 2,
    )
    soft = losses.soft_spike_counts(jnp.array([1.0, 9.0, 10.0, INF]), t_end=10.0, width=1.0)
    np.testing.assert_allclose(
        soft, 1 / (1 + math.exp(-9)) + 1 / (1 + math.exp(-1)) + 0.5, rtol=1e-6
    )
    v = jnp.array([[0.1, -1.0], [0.7, -0.5], [0.2, jnp.nan], [jnp.nan, jnp.nan]])
    np.testing.assert_allclose(losses.max_membrane(v), [0.7, -0.5])
    np.testing.assert_allclose(losses.final_membrane(v), [0.2, -0.5])
    grad = jax.grad(lambda v: jnp.sum(losses.max_membrane(v) + losses.final_membrane(v)))(v)
    np.testing.assert_array_equal(grad, [[0, 0], [1, 2], [1, 0], [0, 0]])


def _filtered(times, grid, tau):
    out = np.zeros_like(grid)
    for t in times[np.isfinite(times)]:
        out += np.where(grid >= t, np.exp(-(grid - t) / tau), 0.0)
    return out


def test_van_rossum_equals_the_integral_of_the_filtered_difference():
    tau = 3.0
    a = np.array([1.0, 4.0, 4.5, INF])
    b = np.array([2.0, 8.0, INF])
    # Trapezoid integration of (f_a - f_b)² / tau on a fine grid, far into the tail.
    grid = np.linspace(0.0, 120.0, 600_001)
    difference = (_filtered(a, grid, tau) - _filtered(b, grid, tau)) ** 2
    integral = np.trapezoid(difference, grid) / tau
    got = losses.van_rossum_distance(jnp.asarray(a), jnp.asarray(b), tau=tau, squared=True)
    np.testing.assert_allclose(got, integral, rtol=1e-4)
    np.testing.assert_allclose(
        losses.van_rossum_distance(jnp.asarray(a), jnp.asarray(b), tau=tau),
        math.sqrt(integral),
        rtol=1e-4,
    )
    # One spike against none: 1/sqrt(2). Per-neuron trains broadcast.
    np.testing.assert_allclose(
        losses.van_rossum_distance(
            jnp.array([[5.0, INF], [INF, INF]]), jnp.full((2, 1), INF), tau=tau
        ),
        [1 / math.sqrt(2), 0.0],
        rtol=1e-6,
    )


def test_every_loss_is_finite_with_a_finite_gradient_on_missing_spikes():
    times = jnp.array([[2.0, INF, INF], [INF, INF, INF], [1.0, 3.0, INF]])
    targets = jnp.array([[2.5, 5.0, INF], [4.0, INF, INF], [INF, INF, INF]])
    v_max = jnp.array([1.0, 0.6, 1.0])
    first = times[:, 0]
    all_silent = jnp.full(3, INF)

    def every_loss(times, v_max):
        first = times[:, 0]
        surrogate = losses.silent_surrogate(
            first, v_max, v_th=1.0, t_silent=20.0, slope=5.0
        )
        return jnp.stack(
            [
                losses.first_spike_cross_entropy(first, 1),
                losses.first_spike_cross_entropy(jnp.full(3, INF), 0),
                losses.first_spike_cross_entropy(surrogate, 1, tau=2.0),
                losses.spike_time_mse(times, targets, t_missing=20.0),
                jnp.sum(losses.van_rossum_distance(times, targets, tau=2.0)),
                jnp.sum(losses.van_rossum_distance(times, times, tau=2.0)),
                losses.spike_count_loss(
                    losses.soft_spike_counts(times, t_end=20.0, width=1.0),
                    jnp.array([1.0, 2.0, 0.0]),
                ),
                jnp.sum(surrogate),
            ]
        )

    values = every_loss(times, v_max)
    assert np.all(np.isfinite(values)), values
    jacobian = jax.jit(jax.jacrev(every_loss, argnums=(0, 1)))(times, v_max)
    for part in jacobian:
        assert np.all(np.isfinite(part))
    # The surrogate gives the silent neuron a gradient through its membrane maximum:
    # d(sum of surrogate times)/d v_max = -slope for it, 0 for the neurons that fired.
    np.testing.assert_array_equal(jacobian[1][-1], [0.0, -5.0, 0.0])
    # All outputs silent: the cross-entropy is log(n), the uniform guess.
    np.testing.assert_allclose(
        losses.first_spike_cross_entropy(all_silent, 0), math.log(3), rtol=1e-6
    )
    np.testing.assert_allclose(
        losses.silent_surrogate(first, v_max, v_th=1.0, t_silent=20.0, slope=5.0),
        [2.0, 22.0, 1.0],
    )
