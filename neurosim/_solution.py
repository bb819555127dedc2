"""The result of a simulation."""

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree

STATUS_MESSAGES = {
    0: "running",
    1: "finished",
    2: "spike buffer full: raise `max_spikes`",
    3: "the ODE solver failed inside a segment (raise `max_solver_steps`, or loosen rtol/atol)",
    4: "the state became non-finite (NaN or inf)",
    5: "the event loop reached `max_iterations` before t1 (raise `max_iterations`)",
}


class Solution(eqx.Module):
    """What `simulate` returns.

    **Fields:**

    - `spike_times`: `(max_spikes,)` spike times in ms, sorted, padded with `+inf`.
    - `spike_neurons`: `(max_spikes,)` index of the neuron of each spike, padded with -1.
    - `num_spikes`: number of recorded spikes.
    - `overflow`: True when a spike did not fit in the buffer; the simulation then
        stopped at `t_final` (< t1). Raise `max_spikes` and run again.
    - `ts`: the record times (ms), as passed in `record` (empty when none).
    - `states`: the state at each record time, a PyTree like the model's state with a
        leading axis of length `len(ts)`; the value at a record time is the left limit
        (the state just before any spike, input or reset at exactly that time). Entries
        after `t_final` are NaN.
    - `t0`: the start time (ms).
    - `t_final`: the time the simulation reached (t1 unless it stopped early).
    - `final_state`: the state at `t_final` (after the events at `t_final`).
    - `status`: 1 finished, 2 spike buffer full, 3 solver failure, 4 non-finite state,
        5 iteration limit (see `message`).
    - `iterations`, `solver_steps`: loop iterations and accepted ODE steps (cost).
    """

    spike_times: Float[Array, " S"]
    spike_neurons: Int[Array, " S"]
    num_spikes: Int[Array, ""]
    overflow: Bool[Array, ""]
    ts: Float[Array, " R"]
    states: PyTree
    t0: Float[Array, ""]
    t_final: Float[Array, ""]
    final_state: PyTree
    status: Int[Array, ""]
    iterations: Int[Array, ""]
    solver_steps: Int[Array, ""]

    @property
    def message(self) -> str:
        return STATUS_MESSAGES[int(self.status)]

    def spikes(self) -> tuple[np.ndarray, np.ndarray]:
        """The recorded spikes as NumPy arrays `(times, neurons)`, padding removed."""
        k = int(self.num_spikes)
        return np.asarray(self.spike_times[:k]), np.asarray(self.spike_neurons[:k])

    def spike_train(self, neuron: int) -> np.ndarray:
        """The spike times (ms) of one neuron, as a NumPy array."""
        times, neurons = self.spikes()
        return times[neurons == neuron]

    def rates(self, n: int) -> np.ndarray:
        """Mean firing rate (Hz) of each of `n` neurons over `[t0, t_final]`."""
        _, neurons = self.spikes()
        duration_s = (float(self.t_final) - float(self.t0)) / 1000.0
        counts = np.bincount(neurons, minlength=n)[:n]
        return counts / duration_s
