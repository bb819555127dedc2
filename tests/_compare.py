"""Shared assertion: two simulations give the same spikes."""

import numpy as np


def assert_same_spikes(actual, expected, *, at_least: int, atol: float):
    """The same number of spikes (at least `at_least`), from the same neurons in the
    same order, at times within `atol` ms."""
    assert int(actual.num_spikes) == int(expected.num_spikes) >= at_least
    np.testing.assert_array_equal(actual.spike_neurons, expected.spike_neurons)
    finite = np.isfinite(np.asarray(expected.spike_times))
    np.testing.assert_allclose(
        np.asarray(actual.spike_times)[finite],
        np.asarray(expected.spike_times)[finite],
        rtol=0,
        atol=atol,
    )
