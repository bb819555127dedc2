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
    6: "a queue of delayed spikes filled (raise `max_in_flight`)",
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
        after `t_final` are NaN. Fields are read as attributes, `sol.states.v` (for a
        network `sol.states["exc"].v`), with or without `record_fields`; with it, the
        records are a `Record` of the named fields (also a mapping: `["v"]`).
    - `t0`: the start time (ms).
    - `t_final`: the time the simulation reached (t1 unless it stopped early).
    - `final_state`: the state at `t_final` (after the events at `t_final`).
    - `status`: 1 finished, 2 spike buffer full, 3 solver failure, 4 non-finite state,
        5 iteration limit (see `message`).
    - `iterations`, `solver_steps`: loop iterations and accepted ODE steps; on the
        exact path of the LIF family (no ODE solver), `solver_steps` counts the checks,
        iterations that touched one neuron and emitted nothing (cost).
    - `populations`: for a network, `(name, first global index, size)` of each
        population; None for a single population.
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
    populations: tuple | None = eqx.field(static=True, default=None)

    @property
    def message(self) -> str:
        return STATUS_MESSAGES[int(self.status)]

    def _slice(self, population: str | None) -> tuple[int, int]:
        if population is None:
            return 0, -1
        for name, offset, size in self.populations or ():
            if name == population:
                return offset, size
        known = [name for name, _, _ in self.populations or ()]
        raise KeyError(f"Solution: no population {population!r} (populations: {known}).")

    def spikes(self, population: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The recorded spikes as NumPy arrays `(times, neurons)`, padding removed. With
        a population name: that population's spikes, with indices local to it."""
        k = int(self.num_spikes)
        times, neurons = (
            np.asarray(self.spike_times[:k]),
            np.asarray(self.spike_neurons[:k]),
        )
        if population is None:
            return times, neurons
        offset, size = self._slice(population)
        mine = (neurons >= offset) & (neurons < offset + size)
        return times[mine], neurons[mine] - offset

    def spike_train(self, neuron: int, population: str | None = None) -> np.ndarray:
        """The spike times (ms) of one neuron, as a NumPy array."""
        times, neurons = self.spikes(population)
        return times[neurons == neuron]

    def spike_trains(
        self, population: str | None = None, n: int | None = None
    ) -> list[np.ndarray]:
        """Per-neuron spike trains (a list of arrays of times in ms)."""
        times, neurons = self.spikes(population)
        if n is None:
            n = (
                self._slice(population)[1]
                if population is not None
                else int(neurons.max(initial=-1)) + 1
            )
        return [times[neurons == k] for k in range(n)]

    def duration(self) -> float:
        """The simulated duration in ms (`t_final - t0`)."""
        return float(self.t_final) - float(self.t0)

    def rates(self, population_or_n) -> np.ndarray:
        """Mean firing rate (Hz) of each neuron over `[t0, t_final]`: pass a population
        name, or the number of neurons `n` for a single population."""
        if isinstance(population_or_n, str):
            _, neurons = self.spikes(population_or_n)
            n = self._slice(population_or_n)[1]
        else:
            _, neurons = self.spikes()
            n = population_or_n
        counts = np.bincount(neurons, minlength=n)[:n]
        return counts / (self.duration() / 1000.0)

    def population_rate(
        self, population: str | None = None, *, bin_ms: float = 1.0, n: int | None = None
    ):
        """The population rate (Hz per neuron) in bins of `bin_ms`: returns
        `(bin_starts, rate)`."""
        times, _ = self.spikes(population)
        if n is None:
            n = self._slice(population)[1] if population is not None else None
        if n is None:
            raise ValueError(
                "population_rate: pass `n` (the number of neurons) for a single population."
            )
        edges = np.arange(float(self.t0), float(self.t_final) + bin_ms, bin_ms)
        counts, _ = np.histogram(times, edges)
        return edges[:-1], counts / n / (bin_ms / 1000.0)
