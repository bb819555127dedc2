"""`neurosim.batch_map`: a batch as a sequence of single runs gives each run's own
spikes (bit for bit against the runs called one by one), the gradients of `jax.vmap`,
and clear errors for arguments without a common batch axis. The batch split over a
mesh of devices is checked in tests/_sharded_run.py (four host devices)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _sharded_run import trial

import neurosim as ns

KEYS = jax.random.split(jax.random.PRNGKey(3), 6)
TAUS = jnp.linspace(6.0, 18.0, 6)


@functools.cache
def _single():
    return jax.jit(trial)


def test_each_run_of_the_sequence_equals_the_run_alone():
    times, counts = jax.jit(ns.batch_map(trial))(KEYS, TAUS)
    assert times.shape == (6, 512) and counts.shape == (6,)
    for k in range(6):
        alone_times, alone_count = _single()(KEYS[k], TAUS[k])
        assert int(counts[k]) == int(alone_count) > 0, k
        np.testing.assert_array_equal(np.asarray(times[k]), np.asarray(alone_times))
    # Runs of different lengths: the batch is not one run repeated.
    assert len(set(np.asarray(counts).tolist())) > 1


def test_steps_of_several_samples_agree_with_the_runs_alone():
    """`batch_size=4` runs the batch as two steps under `jax.vmap` (4, then 2 padded
    to 4 by `lax.map`): the spikes of the runs alone, to the rounding of the batched
    loop."""
    times, counts = jax.jit(ns.batch_map(trial, batch_size=4))(KEYS, TAUS)
    for k in range(6):
        alone_times, alone_count = _single()(KEYS[k], TAUS[k])
        assert int(counts[k]) == int(alone_count), k
        got, ref = np.asarray(times[k]), np.asarray(alone_times)
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))
        finite = np.isfinite(ref)
        np.testing.assert_allclose(got[finite], ref[finite], rtol=0, atol=1e-4)


def test_gradients_equal_those_of_vmap(x64):
    """The gradient of a batch's summed spike times with respect to each sample's
    time constant, through the sequence and through `jax.vmap`, in float64."""

    def loss(tau, key):
        times, _ = trial(key, tau)
        return jnp.sum(jnp.where(jnp.isfinite(times), times, 0.0))

    taus, keys = TAUS[:3].astype(jnp.float64), KEYS[:3]
    sequence = jax.jit(jax.grad(lambda t: jnp.sum(ns.batch_map(loss)(t, keys))))(taus)
    batched = jax.jit(jax.grad(lambda t: jnp.sum(jax.vmap(loss)(t, keys))))(taus)
    assert np.all(np.abs(np.asarray(batched)) > 1.0)
    np.testing.assert_allclose(np.asarray(sequence), np.asarray(batched), rtol=1e-9)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((KEYS, TAUS[:4]), {}, ValueError, r"leading axes differ \(\[4, 6\]\)"),
        ((KEYS, 10.0), {}, ValueError, r"argument\[1\] has no batch axis"),
        ((KEYS, TAUS), {"batch_size": 0}, ValueError, "`batch_size` must be a positive"),
        ((KEYS, TAUS), {"mesh": "cpu"}, TypeError, "`mesh` must be a jax.sharding.Mesh"),
    ],
    ids=["sizes", "scalar", "batch_size", "mesh"],
)
def test_arguments_without_a_common_batch_are_refused_by_name(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        ns.batch_map(trial, **kwargs)(*args)


def test_a_model_without_closed_form_runs_alone_in_the_sequence_too():
    """Izhikevich populations (the ODE solver's loop) with different reset increments:
    each run of the sequence equals the run alone bit for bit."""

    def run(d):
        sol = ns.simulate(
            ns.Izhikevich(d=d), n=5, t1=60.0, current=jnp.linspace(6.0, 14.0, 5),
            max_spikes=200, gradients=False,
        )  # fmt: skip
        return sol.spike_times, sol.num_spikes

    ds = jnp.array([2.0, 5.0, 8.0])
    times, counts = jax.jit(ns.batch_map(run))(ds)
    alone = jax.jit(run)
    for k in range(3):
        alone_times, alone_count = alone(ds[k])
        assert int(counts[k]) == int(alone_count) > 5, k
        np.testing.assert_array_equal(np.asarray(times[k]), np.asarray(alone_times))
    assert len(set(np.asarray(counts).tolist())) > 1
