"""The result of a simulation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree

from ._checks import is_concrete

STATUS_MESSAGES = {
    0: "running",
    1: "finished",
    2: "spike buffer full: raise `max_spikes`",
    3: "the ODE solver ran out of steps inside a segment (raise `max_solver_steps`, "
    "loosen rtol/atol, or use a solver for stiff problems)",
    4: "the state or its time derivative became non-finite (NaN or inf)",
    5: "the event loop reached `max_iterations` before t1 (raise `max_iterations`)",
    6: "a queue of delayed spikes filled (raise `max_in_flight`)",
}


def when(t) -> str:
    """`t=... ms`; a time traced by a transformation (`jax.jvp` outside jit) whose
    status is concrete has no value to print."""
    return f"t={float(t):.9g} ms" if is_concrete(t) else "a traced time"


def _leaf_names(state) -> list[tuple[str | None, str]]:
    """(population or None, field name) of each leaf of a state, in tree order."""
    names = []
    for path, _ in jtu.tree_flatten_with_path(state)[0]:
        population, field = None, []
        for key in path:
            if isinstance(key, jtu.DictKey):
                population = str(key.key)
            elif isinstance(key, jtu.GetAttrKey):
                field.append(key.name)
            else:
                field.append(jtu.keystr((key,)))
        names.append((population, ".".join(field) or "state"))
    return names


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
        5 iteration limit, 6 a delay queue filled. `message` says it in words, with
        where and why; under `jax.jit` or `jax.vmap`, where no warning or error text
        can be printed, read it from the returned `Solution`.
    - `iterations`, `solver_steps`: loop iterations and accepted ODE steps; on the
        exact path of the LIF family (no ODE solver), `solver_steps` counts the checks,
        iterations that touched one neuron and emitted nothing (cost); with
        `clocks="neuron"`, the checks plus the accepted steps of every neuron's own
        solves (summed over neurons). For independent neurons run as lanes (see
        `simulate`'s `clocks`), an iteration is one step attempt of every neuron.
    - `fault`: where a run that went non-finite did so, `(leaf, neuron, kind)`: the
        leaf of `final_state` (tree order), the neuron (local to its population), and
        0 when the state itself is not finite or 1 when its time derivative is not;
        `(-1, -1, -1)` when both are finite. `message` puts it in words.
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
    fault: Int[Array, " 3"] | None = None
    populations: tuple | None = eqx.field(static=True, default=None)

    @property
    def message(self) -> str:
        """What happened, in words: how far the run got, and for a failure, why and
        where (the neuron and field that went non-finite) with the fix that applies.
        For a batch of runs (`jax.vmap`), one line per run."""
        status = np.asarray(self.status)
        if status.ndim:
            return "\n".join(
                f"run {index[0] if len(index) == 1 else index}: " + self._run(index).message
                for index in np.ndindex(status.shape)
            )
        status = int(status)
        at = when(self.t_final)
        if status == 1:
            return f"finished at {at} with {int(self.num_spikes)} spikes"
        if status == 2:
            return (
                f"stopped at {at}: the spike buffer (max_spikes="
                f"{self.spike_times.shape[-1]}) filled before t1; raise `max_spikes`"
            )
        text = f"stopped at {at}: {STATUS_MESSAGES[status]}"
        if status in (3, 4) and self.fault is not None and int(self.fault[0]) >= 0:
            text += self._fault_detail()
        return text

    def _run(self, index) -> "Solution":
        """One run of a batch of runs."""
        return jtu.tree_map(lambda x: x[index], self)

    def _fault_detail(self) -> str:
        leaf, neuron, kind = (int(x) for x in np.asarray(self.fault))
        population, field = _leaf_names(self.final_state)[leaf]
        who = f"neuron {neuron}" + (f" of population {population!r}" if population else "")
        if kind == 0:
            values = np.asarray(jtu.tree_leaves(self.final_state)[leaf])
            values = values[neuron].ravel() if values.ndim else values.ravel()
            value = values[np.argmax(~np.isfinite(values))]
            return f"; first at {who}, field `{field}` = {value}"
        return (
            f"; the time derivative of `{field}` at {who} is not finite there: a NaN or "
            "infinite parameter, current or weight (more solver steps would not help)"
        )

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

    def save(self, path):
        """Write this result to the folder `path`: spikes as CSV (`spikes.csv`: time in
        ms, population, neuron), record times and state traces as `solution.npz`.
        `neurosim.load_solution(path)` reads it back; see `neurosim._io.save_solution`."""
        from ._io import save_solution

        return save_solution(self, path)

    def to_dataframe(self):
        """The spikes as a `pandas.DataFrame` (columns `time` in ms, `population`,
        `neuron` within its population). Needs pandas, which neurosim does not
        require."""
        from ._io import solution_dataframe

        return solution_dataframe(self)

    # Jit-safe, differentiable accessors: arrays of a static shape, no NumPy.

    def _local_spikes(self, population: str | None, n: int | None, caller: str):
        """`(times, local neuron index, n)` of the spikes of one population (or of all
        neurons), as arrays of the buffer's length: a spike of another population or a
        padding entry has index `n` (out of range) and time `+inf`."""
        if population is not None:
            offset, size = self._slice(population)
        elif self.populations is not None:
            offset, size = 0, sum(size for _, _, size in self.populations)
        else:
            leaves = jtu.tree_leaves(self.final_state)
            offset, size = 0, (int(jnp.shape(leaves[0])[-1]) if leaves else None)
        if n is None:
            n = size
        elif size is not None and n != size:
            raise ValueError(
                f"Solution.{caller}: `n` is {n} but the population has {size} neurons. "
                "Leave `n` out, or pass the population's size."
            )
        if n is None:
            raise ValueError(
                f"Solution.{caller}: the number of neurons is unknown (no final state). "
                "Pass `n`."
            )
        local = self.spike_neurons - offset
        recorded = jnp.arange(self.spike_times.shape[-1]) < self.num_spikes
        mine = recorded & (self.spike_neurons >= 0) & (local >= 0) & (local < n)
        return jnp.where(mine, self.spike_times, jnp.inf), jnp.where(mine, local, n), n

    def _per_run(self, method, *args):
        """Apply `method` to each run of a batch (`jax.vmap` of `simulate` gives every
        field a leading batch axis); a single run directly."""
        if self.spike_times.ndim == 1:
            return method(self, *args)
        return jax.vmap(lambda run: run._per_run(method, *args))(self)

    def first_spike_times(self, population: str | None = None, n: int | None = None):
        """The time (ms) of the first spike of each neuron, `(n,)`, `+inf` for a neuron
        that did not fire. Works under `jax.jit`, `jax.vmap` and `jax.grad`, and is
        differentiable with respect to the spike times (a segment minimum over the
        padded buffer).

        **Arguments:**

        - `population`: a population name (indices local to it), or None for all
            neurons (a single population, or a network's global indices).
        - `n`: the number of neurons; known from the solution (its populations, or
            the final state of a single population), so it only needs to be passed for
            a solution without a final state. It must be a Python int.

        For a batch of runs (the result of `jax.vmap(simulate)`), returns `(batch, n)`.
        """

        def first(run):
            times, local, size = run._local_spikes(population, n, "first_spike_times")
            return jax.ops.segment_min(times, local, num_segments=size + 1)[:size]

        return self._per_run(first)

    def padded_spike_trains(
        self, k: int, population: str | None = None, n: int | None = None
    ):
        """The first `k` spike times (ms) of each neuron, `(n, k)`, in order, padded
        with `+inf` where a neuron fired fewer than `k` times. Jit-safe and
        differentiable with respect to the spike times (`k` must be a Python int).
        `population` and `n` as in `first_spike_times`."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(
                f"Solution.padded_spike_trains: `k` must be a positive Python int, got {k!r}."
            )

        def trains(run):
            times, local, size = run._local_spikes(population, n, "padded_spike_trains")
            # Stable sort by neuron: each neuron's spikes stay in time order, and a
            # spike's rank is its position minus where its neuron's block starts.
            order = jnp.argsort(local, stable=True)
            sorted_local = local[order]
            start = jnp.searchsorted(sorted_local, sorted_local, side="left")
            rank = jnp.arange(local.shape[0]) - start
            out = jnp.full((size, k), jnp.inf, times.dtype)
            return out.at[sorted_local, rank].set(times[order], mode="drop")

        return self._per_run(trains)

    def kth_spike_times(self, k: int, population: str | None = None, n: int | None = None):
        """The time (ms) of spike number `k` of each neuron, counting from 0
        (`kth_spike_times(0)` is `first_spike_times()`), `(n,)`, `+inf` where a neuron
        fired `k` times or fewer. Jit-safe and differentiable; `k` a Python int;
        `population` and `n` as in `first_spike_times`."""
        if not isinstance(k, int) or k < 0:
            raise ValueError(
                f"Solution.kth_spike_times: `k` must be a Python int >= 0, got {k!r}."
            )
        return self.padded_spike_trains(k + 1, population, n)[..., k]

    def spike_counts(self, population: str | None = None, n: int | None = None):
        """The number of recorded spikes of each neuron, `(n,)` int32. Jit-safe
        (integer counts carry no gradient); `population` and `n` as in
        `first_spike_times`."""

        def counts(run):
            _, local, size = run._local_spikes(population, n, "spike_counts")
            ones = jnp.ones(local.shape, jnp.int32)
            return jax.ops.segment_sum(ones, local, num_segments=size + 1)[:size]

        return self._per_run(counts)
