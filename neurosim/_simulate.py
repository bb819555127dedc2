"""`simulate`: the public entry point of the event-driven simulator."""

import warnings

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from . import _clock, _engine, _lanes, _layered, _per_neuron
from ._checks import as_count, is_concrete, run_checks, traced_checks
from ._clock import CLOCK_HORIZON, OdeClock
from ._currents import as_current
from ._memory import release_after_compiling
from ._network import Network, Population, Projection, SpikeTrains
from ._solution import STATUS_MESSAGES, Solution, when
from ._system import NetworkSystem
from .neurons.base import AbstractNeuron

POPULATION = "neurons"
INPUT = "input"


class SimulationError(RuntimeError):
    """Raised when a simulation cannot finish. The partial result (spikes and records
    up to the failure) is kept in the `solution` attribute."""

    def __init__(self, message: str, solution: Solution):
        super().__init__(message)
        self.solution = solution


def _eventprop_check(network):
    """`gradients="eventprop"`: a clear error for what it cannot differentiate
    (`neurosim._eventprop.unsupported`)."""
    from . import _eventprop

    reason = _eventprop.unsupported(network)
    if reason is not None:
        raise _arg_error(
            "gradients",
            f"'eventprop' cannot differentiate this run: {reason}",
            "Use gradients=True (every parameter, forward and reverse mode).",
        )


def _arg_error(name: str, problem: str, fix: str) -> ValueError:
    return ValueError(f"simulate: `{name}` {problem}. {fix}")


def _as_float(x, dtype):
    return jnp.asarray(x, dtype)


def _check_times(t0, t1):
    if is_concrete((t0, t1)):
        if not np.isfinite(float(t1)):
            raise _arg_error(
                "t1", f"must be finite (got {float(t1)})", "Pass an end time in ms."
            )
        if float(t1) <= float(t0):
            raise _arg_error(
                "t1",
                f"must be greater than t0 (got t0={float(t0)}, t1={float(t1)})",
                "Times are in ms; pass t1 > t0.",
            )


def _single_population_network(
    neuron, n, current, weights, input_spikes, input_weights, dtype
):
    """The network equivalent of the single-population call."""
    if input_spikes is None and input_weights is not None:
        raise _arg_error(
            "input_weights", "was given without `input_spikes`", "Pass both or neither."
        )
    if input_spikes is not None and input_weights is None:
        raise _arg_error(
            "input_weights",
            "is required with `input_spikes`",
            "Pass an (n_inputs, n) array: row k holds the weights of input k onto each neuron.",
        )
    projections, inputs = [], {}
    if weights is not None:
        weights = jnp.asarray(weights, dtype)
        if weights.shape != (n, n):
            raise _arg_error(
                "weights",
                f"has shape {weights.shape}, expected ({n}, {n})",
                "Pass an (n, n) matrix, row = presynaptic neuron.",
            )
        projections.append(Projection(POPULATION, POPULATION, weights))
    if input_spikes is not None:
        try:
            times, sources = input_spikes
        except (TypeError, ValueError):
            raise _arg_error(
                "input_spikes",
                "must be a pair (times, indices)",
                "Pass two 1-D arrays of equal length.",
            ) from None
        input_weights = jnp.asarray(input_weights, dtype)
        if input_weights.ndim != 2 or input_weights.shape[1] != n:
            raise _arg_error(
                "input_weights",
                f"has shape {input_weights.shape}, expected (n_inputs, {n})",
                "Row k holds the weights of input k onto each of the n neurons.",
            )
        try:
            inputs[INPUT] = SpikeTrains(
                jnp.asarray(times, dtype), sources, input_weights.shape[0]
            )
        except ValueError as error:
            raise _arg_error(
                "input_spikes",
                f"is invalid: {error}",
                "Indices refer to rows of `input_weights`.",
            ) from None
        projections.append(Projection(INPUT, POPULATION, input_weights))
    population = Population(neuron, n, current)
    return Network({POPULATION: population}, projections, inputs)


def _merged_inputs(network: Network, t0, dtype):
    """All external spikes of the network, sorted by time, with global source ids.
    Refuses (concrete) spike times before `t0`."""
    times, sources, offset = [], [], 0
    for name, source in network.inputs.items():
        if is_concrete((source.times, t0)) and source.times.size:
            early = np.asarray(source.times) < float(t0)
            if np.any(early):
                where = "input_spikes" if name == INPUT else f"input {name!r}"
                raise _arg_error(
                    where,
                    f"has {int(early.sum())} spike time(s) before t0 = {float(t0)} ms "
                    f"(the first: {float(np.asarray(source.times)[early][0])})",
                    "Drop them or start the simulation earlier.",
                )
        times.append(jnp.asarray(source.times, dtype))
        sources.append(source.sources + offset)
        offset += source.num_sources
    if not times:
        return jnp.zeros((0,), dtype), jnp.zeros((0,), jnp.int32)
    times = jnp.concatenate(times)
    sources = jnp.concatenate(sources).astype(jnp.int32)
    order = jnp.argsort(times, stable=True)
    return times[order], sources[order]


def _prepare_record(record, t0, t1, dtype):
    if record is None:
        return jnp.zeros((0,), dtype)
    record = jnp.asarray(record, dtype)
    if record.ndim == 0:
        record = record[None]
    if record.ndim != 1:
        raise _arg_error(
            "record",
            f"must be 1-D (got shape {record.shape})",
            "Pass a 1-D array of times in ms.",
        )
    if is_concrete((record, t0, t1)) and record.size:
        r = np.asarray(record)
        if np.any(np.isnan(r)):
            raise _arg_error(
                "record",
                f"holds NaN at index {int(np.argmax(np.isnan(r)))}",
                "Pass finite times in ms.",
            )
        if np.any(np.diff(r) < 0):
            raise _arg_error(
                "record",
                "must be sorted",
                "Pass times in increasing order, e.g. jnp.sort(record).",
            )
        if r[0] < float(t0) or r[-1] > float(t1):
            raise _arg_error(
                "record",
                f"has times outside [t0, t1] = [{float(t0)}, {float(t1)}]",
                "Record only within the simulated interval.",
            )
    return record


def _check_state(y0, reference, owner="y0"):
    ref_struct = jtu.tree_structure(reference)
    if jtu.tree_structure(y0) != ref_struct:
        raise _arg_error(
            owner,
            f"has structure {jtu.tree_structure(y0)}, expected {ref_struct}",
            "Start from `neuron.init_state(n)` and modify its fields (e.g. with eqx.tree_at).",
        )
    for got, want in zip(jtu.tree_leaves(y0), jtu.tree_leaves(reference)):
        if jnp.shape(got) != jnp.shape(want):
            raise _arg_error(
                owner,
                f"has a field of shape {jnp.shape(got)}, expected {jnp.shape(want)}",
                "Every state field holds one value per neuron.",
            )
    return jtu.tree_map(lambda got, want: jnp.asarray(got, want.dtype), y0, reference)


def _models(network: Network):
    """Each population's model and the models it wraps."""
    for pop in network.populations.values():
        neuron = pop.neuron
        while isinstance(neuron, AbstractNeuron):
            yield neuron
            neuron = getattr(neuron, "neuron", None)


def _default_tolerance(dtype, network: Network) -> float:
    """The default rtol and atol: 1e-6 in float32 (near what its precision can
    resolve); in float64 1e-9, or the tighter `float64_tolerance` of a model in the
    network (or wrapped by one). See `benchmarks/accuracy.py` for what they give."""
    needs = [type(m).float64_tolerance for m in _models(network)]
    needs = [tol for tol in needs if tol is not None]
    if jnp.dtype(dtype) != jnp.float64:
        if needs:
            names = sorted({type(m).__name__ for m in _models(network)})
            warnings.warn(
                f"simulate: {', '.join(names)} in float32: the spikes of models with a "
                "`float64_tolerance` (arrivals near a fixpoint) need float64, and in "
                "float32 are off by up to milliseconds or missed. Turn on "
                "`jax.config.update('jax_enable_x64', True)`.",
                stacklevel=3,
            )
        return 1e-6
    return min([1e-9, *needs])


def _default_controller(solver, rtol, atol, dt0):
    if isinstance(solver, dfx.AbstractAdaptiveSolver):
        return dfx.PIDController(rtol=rtol, atol=atol), True
    if dt0 is None:
        raise _arg_error(
            "dt0",
            f"is required with the fixed-step solver {type(solver).__name__}",
            "Pass the step size in ms, e.g. dt0=0.1.",
        )
    return dfx.ConstantStepSize(), False


def _checked_inside(system, t0, t1, input_times, input_sources, record):
    """The checks that matter for correctness, inside the computation, where traced
    values cannot be checked in Python (under `jax.jit`): a run with such an argument
    stops with this error instead of returning a wrong result. `t1` and `record` come
    back with the checks attached."""
    t1 = eqx.error_if(
        t1,
        ~jnp.isfinite(t1) | (t1 <= t0),
        "simulate: `t1` must be finite and greater than `t0` (a traced value was not). "
        "Times are in ms; pass t1 > t0.",
    )
    if input_times.size:
        num_sources = sum(s.num_sources for s in system.network.inputs.values())
        bad_source = (input_sources < 0) | (input_sources >= num_sources)
        bad_time = jnp.isnan(input_times) | (input_times < t0)
        t1 = eqx.error_if(
            t1,
            jnp.any(bad_source),
            f"simulate: an input spike's source lies outside [0, {num_sources}) (a "
            "traced value). Sources index the rows of the input weights.",
        )
        t1 = eqx.error_if(
            t1,
            jnp.any(bad_time),
            "simulate: an input spike time is NaN or before t0 (a traced value). "
            "Drop such spikes or start the simulation earlier.",
        )
    for conn in system.network.connections:
        if conn.delay is not None:
            # Padded synapses of per-synapse rows hold an infinite delay.
            real = True
            if conn.per_synapse_delay and conn.post_index is not None:
                real = conn.post_index < conn.n_post
            bad = (conn.delay < 0) | jnp.isnan(conn.delay) | (jnp.isinf(conn.delay) & real)
            t1 = eqx.error_if(
                t1,
                jnp.any(bad),
                f"Projection {conn.pre!r} -> {conn.post!r}: a `delay` is negative, NaN or "
                "infinite (a traced value). Delays are in ms, finite and >= 0.",
            )
    if record.size:
        bad = jnp.isnan(record) | (record < t0) | (record > t1)
        bad = jnp.any(bad) | jnp.any(jnp.diff(record) < 0)
        record = eqx.error_if(
            record,
            bad,
            "simulate: `record` must be sorted times within [t0, t1] (a traced value "
            "was not). Pass times in increasing order, e.g. jnp.sort(record).",
        )
    return t1, record


@eqx.filter_jit
def _run_jit(system, t0, t1, y0, input_times, input_sources, record, dt0, config):
    t1, record = _checked_inside(system, t0, t1, input_times, input_sources, record)
    common = dict(
        t0=t0,
        t1=t1,
        y0=y0,
        input_times=input_times,
        input_sources=input_sources,
        record_times=record,
    )
    if config["lanes"]:
        keep = ("max_spikes", "max_iterations", "clock")
        out = _lanes.run(system, **common, **{key: config[key] for key in keep})
    elif config["exact"]:
        keep = ("max_spikes", "max_iterations", "gradients", "clock", "until")
        out = _per_neuron.run(system, **common, **{key: config[key] for key in keep})
    else:
        engine_config = {
            key: value
            for key, value in config.items()
            if key not in ("exact", "clock", "lanes")
        }
        engine_config["gradients"] = bool(engine_config["gradients"])
        out = _engine.run(system, **common, dt0=dt0, **engine_config)
    return out, _engine.locate_fault(system, out.t_final, out.final_state)


@eqx.filter_jit
def _run_layered_jit(
    system, t0, t1, y0, input_times, input_sources, record, max_spikes, until
):
    t1, record = _checked_inside(system, t0, t1, input_times, input_sources, record)
    out = _layered.run(
        system, t0=t0, t1=t1, y0=y0, record_times=record, max_spikes=max_spikes, until=until
    )
    return out, _engine.locate_fault(system, out.t_final, out.final_state)


def _report(solution: Solution, throw: bool) -> Solution:
    failed = (solution.status != _engine.FINISHED) & (solution.status != _engine.OVERFLOW)
    if not is_concrete(solution.status):
        if throw:
            messages = [
                f"simulate failed (status {code}): {STATUS_MESSAGES[code]}. Pass "
                "throw=False and read `Solution.message` for when and where."
                for code in range(len(STATUS_MESSAGES))
            ]
            solution = eqx.branched_error_if(solution, failed, solution.status, messages)
        return solution
    status = int(solution.status)
    if status == _engine.OVERFLOW:
        warnings.warn(
            f"simulate: the spike buffer (max_spikes={solution.spike_times.shape[0]}) filled "
            f"at {when(solution.t_final)} before t1; the simulation stopped there. "
            "Raise `max_spikes` to simulate further.",
            stacklevel=3,
        )
    if throw and bool(failed):
        raise SimulationError(
            f"simulate {solution.message}. The partial result is in `error.solution`; "
            "pass throw=False to get it returned instead.",
            solution,
        )
    return solution


def _initial_states(network: Network, y0, single: bool):
    """Each population's initial state, all in one float dtype: the widest of the
    populations' (a float32 population beside a float64 one runs in float64)."""
    states = {
        name: pop.neuron.init_state(pop.n) for name, pop in network.populations.items()
    }
    if y0 is not None:
        states = _given_states(states, y0, single)
    floats = [
        leaf.dtype
        for leaf in jtu.tree_leaves(states)
        if jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    common = jnp.result_type(*floats) if floats else None
    return jtu.tree_map(
        lambda leaf: leaf.astype(common) if leaf.dtype in floats else leaf, states
    )


def _given_states(states, y0, single: bool):
    """`states` with those given in `y0` (checked against them)."""
    if single:
        states[POPULATION] = _check_state(y0, states[POPULATION])
        return states
    if not isinstance(y0, dict):
        raise _arg_error(
            "y0",
            "must be a dict population name -> state for a Network",
            "E.g. y0={'exc': state}.",
        )
    for name, state in y0.items():
        if name not in states:
            raise _arg_error(
                "y0",
                f"names {name!r}, which is not a population",
                f"Populations: {sorted(states)}.",
            )
        states[name] = _check_state(state, states[name], owner=f"y0[{name!r}]")
    return states


def _record_fields(network: Network, record_fields, single: bool):
    if record_fields is None:
        return None
    if single:
        record_fields = {POPULATION: record_fields}
    if not isinstance(record_fields, dict):
        raise _arg_error(
            "record_fields",
            "must be a dict population -> field names",
            "E.g. {'exc': ('v',)}.",
        )
    fields = {}
    for name, names in record_fields.items():
        if name not in network.populations:
            raise _arg_error(
                "record_fields",
                f"names {name!r}, which is not a population",
                f"Populations: {sorted(network.populations)}.",
            )
        names = (names,) if isinstance(names, str) else tuple(names)
        state = network.populations[name].neuron.init_state(1)
        for field in names:
            if not hasattr(state, field):
                raise _arg_error(
                    "record_fields",
                    f"asks for {name}.{field}, which is not a state field",
                    "Check the model's state class.",
                )
        fields[name] = names
    return fields


def simulate(
    model,
    *,
    t1,
    n: int | None = None,
    t0=0.0,
    current=None,
    weights=None,
    input_spikes=None,
    input_weights=None,
    y0=None,
    record=None,
    record_fields=None,
    max_spikes: int = 1000,
    max_in_flight: int = 4096,
    solver: dfx.AbstractSolver | None = None,
    stepsize_controller: dfx.AbstractStepSizeController | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    dt0=None,
    max_solver_steps: int = 16_384,
    max_iterations: int | None = None,
    locate_spikes: bool = True,
    exact: bool | None = None,
    clocks: str | None = None,
    gradients: bool | str = True,
    until_fired: str | bool | None = None,
    throw: bool = True,
) -> Solution:
    r"""Simulate a population of one model, or a `Network`, from `t0` to `t1` (ms),
    event by event.

    Between events the dynamics are integrated with a diffrax solver; every spike is
    located to root-finder precision on the solver's dense output, resets are applied,
    and spikes are delivered through the weights (at once, or after their delay). Works
    under `jax.jit`, `jax.vmap` and `jax.grad` (reverse mode): spike times are
    differentiable with respect to parameters, weights, currents and input spike times.

    **Arguments:**

    - `model`: a neuron model (e.g. `neurosim.LIF(tau_mem=10.0)`, parameters scalars
        or one value per neuron) simulated as one population of `n` neurons, or a
        `neurosim.Network`.
    - `t1`, `t0`: end and start time, ms (`t1 > t0`).
    - `n`: number of neurons (single model only).
    - `current`: (single model only; networks give each `Population` its own)
        external input added where the model takes its input current: a number, an
        `(n,)` array, a callable `t -> (n,)`, or a waveform from `neurosim.inputs`
        (which announces its discontinuities to the solver; a plain callable must be
        continuous, or use `neurosim.inputs.Function(fn, jumps=...)`).
    - `weights`: (single model) `(n, n)` recurrent weights, row = presynaptic neuron;
        when neuron `j` spikes, row `j` is passed to the targets' `receive` (for the
        LIF: added to `i`).
    - `input_spikes`, `input_weights`: (single model) external spike trains
        `(times, indices)` and an `(n_inputs, n)` weight matrix; input `k` arriving
        delivers row `k`.
    - `y0`: initial state (default `init_state`); for a network, a dict population
        name -> state (populations not named start from their default).
    - `record`: 1-D sorted array of times in `[t0, t1]` at which to store the state
        (left limits: the state just before any event at exactly that time).
    - `record_fields`: which state fields to record: a tuple of names (single model)
        or a dict population -> names; default everything. Either way the records
        are read as attributes: `sol.states.v`, `sol.states["exc"].v`.
    - `max_spikes`: size of the spike buffer. When it fills, the simulation stops
        (`Solution.overflow` is True, a warning says when); raise it and run again.
    - `max_in_flight`: capacity of each delayed projection's queue of spikes in
        flight.
    - `solver`: any diffrax solver (default `diffrax.Tsit5()`). Adaptive solvers use a
        PID step-size controller with `rtol`, `atol`; fixed-step ones (`diffrax.Euler()`)
        need `dt0` and take constant steps.
    - `stepsize_controller`: overrides the default controller.
    - `rtol`, `atol`: solver tolerances. The default depends on the run's dtype:
        1e-6 each in float32, 1e-9 each in float64 (`jax_enable_x64`), or 1e-11 for
        networks with a fixpoint model (`WereRabbit`, `Boomerang`: a model's
        `float64_tolerance`). In float64 every model's spike times are then within
        1e-3 ms of an accurate reference (the README's accuracy table). Spike times are accurate to about
        the solution's accuracy divided by the slope of the spike condition; use
        1e-11 or tighter in float64 for sub-nanosecond spike times.
    - `dt0`: initial step (adaptive, default 0.05 ms) or the constant step (fixed-step).
    - `max_solver_steps`: cap on ODE steps within one inter-event segment.
    - `max_iterations`: cap on event-loop iterations (spikes, inputs, records,
        scheduled changes; for independent neurons on their own clocks, see `clocks`,
        a solver step of every neuron); the default is generous. It is part of the
        compiled program: on per-neuron clocks the default grows with `t1 - t0`, in
        doublings, so a new `t1` within a doubling of the span does not compile again.
    - `locate_spikes`: True (default) finds each spike time by root finding within
        the solver step. False stops at the end of the step on which the condition
        turned positive and spikes there: the convention of clock-driven simulators
        and published figure scripts (use it with a fixed-step solver to reproduce
        them).
    - `gradients`: True (default) makes the run differentiable. On the exact path
        (LIF family, synapses that jump a synaptic current, constant or piecewise
        constant currents) the loop runs forward without derivatives and logs its
        events; derivatives come from replaying them in closed form (the adjoint
        pass, `neurosim._replay`), in forward mode (`jax.jvp`, `jax.jacfwd`) and
        reverse mode, with memory per event, and only when the run is
        differentiated. Elsewhere, and with `"checkpointed"`, the event loop is a
        checkpointed loop differentiated in reverse mode (`jax.grad` only).
        `"whole"` is the replay with each step compiled whole on XLA's CPU backend
        (networks without delays or jumping currents, populations of at most 2048
        neurons; elsewhere the usual replay): about 1.6x faster value and gradient
        of one run, but not for `jax.vmap` batches, whose steps XLA cannot compile
        whole once a batch's reductions reach 4096 entries (a batch of 35 over 120
        neurons fails to compile). `"eventprop"` walks the logged events backward
        with the adjoint written out (EventProp; `neurosim._eventprop`), each event
        costing its own neurons' work: value and gradient of a 100-neuron recurrent
        network in 1.8x its forward run (4x with True), of CUBA at 4000 neurons in
        3.3x (100x). It is reverse mode only (a `jax.custom_vjp`), with respect to
        connection weights and delays, neuron parameters, current values, input
        spike times and initial states, of losses of spike times, final and
        recorded states, for LIF-family networks without delta synapses; an error
        names anything else it is asked to differentiate. False
        uses a plain `lax.while_loop`, about 1.5x faster for runs that are never
        differentiated (parameter sweeps, large networks), whose ODE segments take
        the solver's steps without `diffeqsolve` (`neurosim._segment`); `jax.grad`
        through it then fails.
        The gradient is that of the spikes the run produced: each spike time is
        differentiated at its threshold crossing (implicit function theorem), with
        respect to neuron parameters, weights, delays (scalar or per synapse),
        currents and input spike times. A spike that appears or vanishes as a
        parameter changes makes a loss on spike times discontinuous; the gradient
        does not see that jump (a spike that is not in the buffer contributes no
        derivative, a silent neuron none at all), and near a grazing crossing it is
        large, as the spike time's own derivative is. No NaN from an unused branch
        (an overflowing exponential, equal time constants) reaches a gradient.
    - `exact`: None (default) integrates networks of the LIF family (`LIF`,
        `CubaLIF`, `LI`) with piecewise-constant currents in closed form, with no ODE
        solver, when no `solver` or `stepsize_controller` is given and
        `locate_spikes` is True: spike times are the roots of the closed-form
        solution (to a few ulps) and `rtol`/`atol` do not apply. False always uses
        the ODE solver; True requires the closed form (an error says why it does not
        apply). `"layered"` computes first spikes layer by layer, without the event
        loop, for feed-forward networks of fire-once neurons (time-to-first-spike
        models): projections between populations form no cycle, every spiking
        neuron has `t_ref >= t1 - t0` (checked when the run executes if traced),
        populations of the LIF family with constant currents, synapses onto
        synaptic currents (no `target="v"`), delays scalar or per synapse (one
        synapse per neuron pair), and `max_spikes` at least the number of spiking
        neurons. Each population's arrivals are sorted per neuron, the closed form
        is advanced between them and every interval is searched at once by the
        event loop's crossing predictor: the same spike times (to rounding),
        records and final states as `exact=True`, vectorised over neurons and a
        `vmap` batch, differentiable by plain autodiff (`gradients` does not
        apply). A network that does not qualify raises a ValueError that names
        why. `iterations` counts the search's rounds, `solver_steps` is 0.
    - `clocks`: how models without a closed form (Izhikevich, AdEx, `CobaLIF`, your
        own) are integrated. `"network"` solves every neuron together and stops all
        of them at every spike: the right choice where spikes reach many neurons
        (dense or all-to-all coupling). `"neuron"` gives each neuron its own clock:
        it is solved alone (its own adaptive steps) from its last event to its next
        spike or check, and an event advances, jumps and predicts again only the
        neurons it reaches, inside the exact event loop (with the closed-form
        populations of the same network). Its cost grows with the events each
        neuron receives, not with the network's size. The default (None) takes
        per-neuron clocks for a forward run (`gradients=False`) of a network with
        more than 50 neurons per target of a spike (the widest row of its
        projections, padded to a multiple of 8 past 8 targets; measured on COBA with
        80 targets per spike: about equal at 4000 neurons, per-neuron clocks 3x
        faster at 16 000, `benchmarks/clocks.py`), the network's clock otherwise. Per-neuron clocks need an adaptive solver,
        `locate_spikes=True`, piecewise-constant currents and models that do not
        disarm on a spike (not `Boomerang`, `WereRabbit`, `FHNRS`). With
        `exact=False` the LIF family is solved per neuron too (no closed form).
        Gradients come from the checkpointed loop (reverse mode).
        A population whose neurons never reach each other (no projections, no input
        spikes, a constant current; a parameter sweep) runs, in a forward run
        (`gradients=False`), as lanes of one loop: each iteration takes one solver
        step of every neuron at its own time (`neurosim._lanes`). That is also the
        default (`clocks=None`) for such a population of more than one neuron: 1024
        Izhikevich neurons over 1 s took 0.66 s, against 5.0 s on the network's
        clock and 0.99 s for `jax.vmap` over one-neuron runs.
    - `until_fired`: end the run once every neuron of a population has fired at
        least once: the population's name, or True for every spiking neuron (of the
        model, or of the network). Time-to-first-spike models need no more of the
        run. `t_final` is then the time of the last of those first spikes (the other
        events at that same instant are applied too), `final_state` the state after
        them, records after it are NaN, and `status` is 1 (finished); a population
        that is not complete by `t1` runs to `t1` as usual. Every path applies it
        (exact, ODE, layered), with gradients; independent neurons then run on the
        network's loop rather than as lanes. None (default) runs to `t1`.
    - `throw`: raise a `SimulationError` on failure (default). With `throw=False`
        the partial `Solution` is returned and `status` says what went wrong.

    **Returns:** a `neurosim.Solution`. For a network, `spike_neurons` are global
    indices (populations in the order given); `Solution.spikes(name)` gives a
    population's spikes with local indices, and `states` is a dict per population.

    **Example:**

    ```python
    import neurosim as ns
    sol = ns.simulate(ns.LIF(tau_mem=10.0, v_th=1.0), n=1, t1=100.0, current=1.5)
    times, neurons = sol.spikes()      # times = k * 10 ln 3 ms
    ```
    """
    release_after_compiling()  # the compiler's freed pages (`neurosim._memory`)
    single = not isinstance(model, Network)
    _check_arguments(
        model,
        single,
        t0=t0,
        t1=t1,
        n=n,
        current=current,
        weights=weights,
        input_spikes=input_spikes,
        input_weights=input_weights,
        max_spikes=max_spikes,
        max_in_flight=max_in_flight,
        tolerances=dict(rtol=rtol, atol=atol, dt0=dt0),
    )
    n = None if n is None else int(n)
    max_spikes, max_in_flight = int(max_spikes), int(max_in_flight)
    if single:
        dtype = jtu.tree_leaves(model.init_state(1))[0].dtype
        network = _single_population_network(
            model, n, as_current(current), weights, input_spikes, input_weights, dtype
        )
    else:
        network = model
    if gradients not in (True, False, "checkpointed", "whole", "eventprop"):
        raise ValueError(
            "simulate: `gradients` must be True, False, 'whole', 'eventprop' or "
            f"'checkpointed'; got {gradients!r}."
        )
    deferred = _check_populations(network, t0, single)
    if gradients == "eventprop":
        _eventprop_check(network)
    states = _initial_states(network, y0, single)
    dtype = jtu.tree_leaves(states)[0].dtype
    record = _prepare_record(record, t0, t1, dtype)
    input_times, input_sources = _merged_inputs(network, t0, dtype)
    system = NetworkSystem(
        network=network,
        record_fields=_record_fields(network, record_fields, single),
        queue_size=max_in_flight,
    )
    until = _until_mask(until_fired, network, system, single)
    clock_all = clocks == "neuron" and exact is False
    exact_arg = exact
    _check_clocks(clocks, exact, system, locate_spikes)
    if clocks == "neuron":
        exact = True  # the exact loop, closed form where it applies (not with False)
    else:
        exact = _closed_form_path(exact, system, solver, stepsize_controller, locate_spikes)
    if exact == "layered":
        deferred += _layered.check(network, t0, t1, max_spikes)
    t0, t1 = _as_float(t0, dtype), _as_float(t1, dtype)
    for bad, message in deferred:
        t1 = eqx.error_if(t1, bad, message)
    inputs = (system, t0, t1, states, input_times, input_sources, record)
    if exact == "layered":
        out, fault = _run_layered_jit(*inputs, max_spikes, until)
    else:
        default = _default_tolerance(dtype, network)
        rtol, atol = (default if x is None else x for x in (rtol, atol))
        solver, stepsize_controller, adaptive, dt0 = _integration(
            solver, stepsize_controller, rtol, atol, dt0
        )
        clock = None
        # A network of the LIF family alone needs no ODE solve per neuron (unless
        # `exact=False` asks for one): its closed form already runs per neuron, and
        # its gradients then come from the replay.
        solved = clock_all or not all(
            _per_neuron.closed_form(pop.neuron) for pop in network.populations.values()
        )
        own = OdeClock(
            solver=solver,
            controller=stepsize_controller,
            max_steps=max_solver_steps,
            cap=CLOCK_HORIZON,
            # The LIF family solved per neuron too: asked for (`exact=False` with
            # `clocks="neuron"`), or a network left to the ODE solver (default lanes).
            everywhere=clock_all or (clocks is None and not solved),
        )
        if clocks == "neuron" and solved:
            if not adaptive:
                raise _arg_error(
                    "clocks",
                    "'neuron' needs an adaptive solver (each neuron takes its own steps)",
                    "Leave `solver`/`stepsize_controller` out, or pass an adaptive "
                    "solver such as diffrax.Tsit5().",
                )
            clock = own
        elif (
            clocks is None
            and exact_arg is None
            and solved
            and gradients is False
            and adaptive
            and locate_spikes
            and _neuron_clocks_pay(system, own)
        ):
            # A sparse network in a forward run: each neuron on its own clock costs
            # the events it receives, the network's clock every neuron per event.
            clock, exact = own, True
        elif (
            clocks is None
            and gradients is False
            and not exact
            and adaptive
            and locate_spikes
            and system.num_neurons > 1
            and until is None
            and _lanes.applies(system, input_times, own, gradients)
        ):
            # Neurons that never reach each other, in a forward run: each on its own
            # clock (`neurosim._lanes`). One neuron alone is on its own clock either
            # way, and under `jax.vmap` the network's loop is the faster for it (a
            # batch of 1024 one-neuron Izhikevich runs: 1.0 against 5.0 s).
            clock, exact = own, True
        lanes = (
            bool(exact)
            and until is None
            and _lanes.applies(system, input_times, clock, gradients)
        )
        if gradients == "eventprop" and (exact == "layered" or not exact or lanes):
            raise _arg_error(
                "gradients",
                "'eventprop' differentiates the exact loop of the LIF family's closed "
                "form, which this run does not take",
                "Use gradients=True, or leave `exact` and `clocks` at their defaults.",
            )
        if max_iterations is None:
            max_iterations = (
                8 * max_spikes + 2 * (input_times.shape[0] + record.shape[0]) + 100_000
            )
            if clock is not None:
                max_iterations += _checks_bound(network, t0, t1, clock.cap)
            if lanes:  # an iteration is a step of every lane: tens per spike
                max_iterations += 32 * max_spikes
        config = dict(
            max_spikes=max_spikes,
            solver=solver,
            stepsize_controller=stepsize_controller,
            adaptive=adaptive,
            max_solver_steps=max_solver_steps,
            max_iterations=max_iterations,
            locate_spikes=locate_spikes,
            gradients=gradients,
            exact=exact,
            clock=clock,
            lanes=lanes,
            until=until,
        )
        out, fault = _run_jit(*inputs, _as_float(dt0, dtype), config)
    solution = _solution(out, fault, network, record, t0, single)
    return _report(solution, throw)


class _Mask(eqx.Module):
    """A static boolean mask over the network's neurons (global order), hashable so
    that it can sit in a jitted function's static configuration."""

    bits: tuple = eqx.field(static=True)

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.bits, bool)


def _until_mask(until_fired, network, system, single) -> "_Mask | None":
    """`until_fired` as the neurons that must all have fired (None: run to t1), or a
    ValueError naming the argument."""
    if until_fired is None or until_fired is False:
        return None
    spiking = np.asarray(system.spiking_mask, bool)
    if until_fired is True:
        if not spiking.any():
            raise _arg_error(
                "until_fired",
                "is True, but no neuron of this model can fire",
                "Leave it out (None) for a non-spiking model.",
            )
        return _Mask(tuple(bool(x) for x in spiking))
    if not isinstance(until_fired, str):
        raise _arg_error(
            "until_fired",
            f"must be None, True or a population's name (got {until_fired!r})",
            "Pass e.g. until_fired='out'.",
        )
    if single:
        raise _arg_error(
            "until_fired",
            f"names a population ({until_fired!r}), but a single model has none",
            "Pass until_fired=True to end once every neuron has fired.",
        )
    pops = network.populations
    if until_fired not in pops:
        raise _arg_error(
            "until_fired",
            f"names no population of this network (got {until_fired!r}; it has "
            f"{', '.join(repr(name) for name in pops)})",
            "Pass one of those names, or True for every spiking neuron.",
        )
    if not pops[until_fired].neuron.spiking:
        raise _arg_error(
            "until_fired",
            f"names population {until_fired!r}, whose "
            f"{type(pops[until_fired].neuron).__name__} neurons never fire",
            "Name a spiking population.",
        )
    mask = np.zeros(system.num_neurons, bool)
    start = network.offsets[until_fired]
    mask[start : start + pops[until_fired].n] = True
    return _Mask(tuple(bool(x) for x in mask))


def _count(name, value, example) -> int:
    """`value` as a positive Python int (NumPy integers too), or a ValueError."""
    try:
        return as_count("simulate", name, value, example)
    except ValueError:
        raise _arg_error(name, f"must be a positive int (got {value!r})", example) from None


def _check_arguments(
    model, single, *, t0, t1, n, max_spikes, max_in_flight, tolerances, **unused
):
    """The arguments that can be checked before anything is built: the model, `n`, the
    times, the buffer sizes, the tolerances; with a Network, the single-model
    arguments (`unused`) must not be given."""
    if single:
        if not isinstance(model, AbstractNeuron):
            raise _arg_error(
                "model",
                f"must be a neurosim neuron model or Network (got {type(model).__name__})",
                "Pass e.g. neurosim.LIF() with n=..., or a neurosim.Network.",
            )
        _count("n", n, "Pass the number of neurons.")
    else:
        for name, value in (("n", n), *unused.items()):
            if value is not None:
                raise _arg_error(
                    name,
                    "is not used with a Network",
                    "Give sizes and currents to each Population, weights to Projections, "
                    "and spike inputs as the network's `inputs`.",
                )
    _check_times(t0, t1)
    _count("max_spikes", max_spikes, "E.g. max_spikes=10_000.")
    _count("max_in_flight", max_in_flight, "E.g. 4096.")
    for name in ("rtol", "atol"):
        value = tolerances[name]
        if (
            value is not None
            and is_concrete(value)
            and not (np.isfinite(value) and float(value) > 0)
        ):
            raise _arg_error(
                name, f"must be a positive finite number (got {value!r})", "E.g. 1e-6."
            )
    dt0 = tolerances["dt0"]
    if dt0 is not None and is_concrete(dt0) and not float(dt0) > 0:
        raise _arg_error("dt0", f"must be > 0 ms (got {dt0!r})", "E.g. dt0=0.1.")


def _check_populations(network: Network, t0, single: bool) -> list:
    """Each population's parameters and the shape of its current. Checks of traced
    parameters are returned as `(bad, message)`, to be attached to the run."""
    with traced_checks() as deferred:
        for pop in network.populations.values():
            run_checks(pop.neuron)
            pop.neuron.validate(pop.n)
            if isinstance(pop.current, eqx.Module):
                run_checks(pop.current)
    for name, pop in network.populations.items():
        probe = eqx.filter_eval_shape(lambda c: c(jnp.asarray(t0, float)), pop.current)
        if probe.shape not in ((), (pop.n,)):
            where = "current" if single else f"Population {name!r} current"
            raise _arg_error(
                where,
                f"gives values of shape {probe.shape}",
                f"Expected a scalar or ({pop.n},).",
            )
    return deferred


def _check_clocks(clocks, exact, system, locate_spikes) -> None:
    """The refusals of `clocks`, by name."""
    if clocks is None or clocks == "network":
        return
    if clocks != "neuron":
        raise _arg_error(
            "clocks",
            f"must be None, 'network' or 'neuron' (got {clocks!r})",
            "'neuron' gives each neuron its own clock; 'network' (default) solves "
            "them together.",
        )
    if exact == "layered":
        raise _arg_error(
            "clocks", "'neuron' does not apply with exact='layered'", "Leave one out."
        )
    if not locate_spikes:
        raise _arg_error(
            "locate_spikes",
            "must be True with clocks='neuron' (each spike at its crossing)",
            "Leave it out, or use clocks='network'.",
        )
    problem = _per_neuron.clock_problem(system)
    if problem is not None:
        raise _arg_error(
            "clocks",
            f"'neuron' cannot run this network: {problem}",
            "Use clocks='network'.",
        )


# Per-neuron clocks are the default for a coupled network without a closed form (in a
# forward run) when it has more than this many neurons per target of a spike. Measured
# with a fan-out of 80 (float32): on a sparse Izhikevich network (no quiet times) of
# 4000 neurons, 50 ms, 1.63-1.67 s per neuron against 1.81 s on the network's clock;
# at 2000 neurons and 40 targets, 0.60-0.70 against 0.44 s.
NEURON_CLOCKS_RATIO = 50
# The same where every model solved per neuron has quiet times
# (`AbstractNeuron.quiet_time`): most targets of a spike then need no prediction.
# COBA (`benchmarks/clocks.py --fan-out 80 --t1 50`), per-neuron over network time:
# 1.22 at 500 neurons, 0.70 at 1000, 0.38 at 2000, and 0.15-0.20 at 4000 (p = 0.02).
QUIET_CLOCKS_RATIO = 10


def _has_quiet_time(pop: Population) -> bool:
    """Whether the model of `pop` offers a quiet time (`AbstractNeuron.quiet_time`)."""
    neuron = pop.neuron

    def quiet():
        state = neuron.init_state(pop.n)
        dtype = jtu.tree_leaves(state)[0].dtype
        return neuron.quiet_time(0.0, state, jnp.zeros((pop.n,), dtype))

    return jax.eval_shape(quiet) is not None


def _neuron_clocks_pay(system: NetworkSystem, clock) -> bool:
    """Whether per-neuron clocks are the faster default: a network of more than one
    neuron that they can run, compiled whole (the lean stepper, each target reached
    once per spike), with more than `NEURON_CLOCKS_RATIO` neurons per target of a
    spike (the width of its delivery plans' rows, `DeliveryPlan.width`: the longest
    row padded to a multiple of 8 past 8 targets; dense rows reach every neuron), or
    `QUIET_CLOCKS_RATIO` where every model solved per neuron has quiet times."""
    network = system.network
    if not network.connections or not network.distinct_targets:
        return False
    if not _clock.lean(clock) or _per_neuron.clock_problem(system) is not None:
        return False
    widths = [plan.width for plan in network.plans]
    solved = [
        pop
        for pop in network.populations.values()
        if not _per_neuron.closed_form(pop.neuron)
    ]
    quiet = all(_has_quiet_time(pop) for pop in solved if pop.neuron.spiking)
    ratio = QUIET_CLOCKS_RATIO if quiet else NEURON_CLOCKS_RATIO
    return ratio * max(widths) < network.num_neurons


def _checks_bound(network: Network, t0, t1, cap) -> int:
    """Room in `max_iterations` for the checks of neurons on their own clocks: about
    four per neuron and horizon cap (a silent neuron is checked once per cap).

    The number of caps is rounded up to a power of two: `max_iterations` is part of
    the compiled program, and a run that changes `t1` within a doubling of its span
    (a notebook's 600 -> 1000 ms) reuses it instead of compiling again."""
    try:
        span = float(t1) - float(t0)
    except (TypeError, jax.errors.ConcretizationTypeError):
        span = 1000.0
    caps = int(span / cap) + 2
    return 4 * network.num_neurons * (1 << (caps - 1).bit_length())


def _closed_form_path(exact, system, solver, stepsize_controller, locate_spikes) -> bool:
    """Whether the exact loop runs (`exact`: None chooses, True requires it), or
    `"layered"` (checked by `_layered.check`)."""
    if isinstance(exact, str):
        if exact != "layered":
            raise _arg_error(
                "exact",
                f"must be None, True, False or 'layered' (got {exact!r})",
                "None chooses the closed form where it applies; 'layered' computes "
                "first spikes of feed-forward fire-once networks.",
            )
        for name, value in (
            ("solver", solver),
            ("stepsize_controller", stepsize_controller),
        ):
            if value is not None:
                raise _arg_error(
                    name,
                    'is not used with exact="layered" (closed form, no ODE solver)',
                    "Leave it out.",
                )
        if not locate_spikes:
            raise _arg_error(
                "locate_spikes",
                'must be True with exact="layered" (spikes at their exact crossings)',
                "Leave it out.",
            )
        return exact
    if exact is None:
        return (
            solver is None
            and stepsize_controller is None
            and locate_spikes
            and _per_neuron.supported(system)
        )
    if exact and not _per_neuron.supported(system):
        raise _arg_error(
            "exact",
            "needs every population to be of the LIF family (LIF, CubaLIF, LI, or a "
            "subclass that keeps their equations) with a piecewise-constant current",
            "Pass exact=None (automatic) or exact=False to integrate with an ODE solver.",
        )
    return bool(exact)


def _integration(solver, stepsize_controller, rtol, atol, dt0):
    """The ODE path's solver, step size controller, whether it is adaptive, and the
    first step (defaults: Tsit5, a PID controller at `rtol`/`atol`, 0.05 ms)."""
    solver = dfx.Tsit5() if solver is None else solver
    if stepsize_controller is None:
        stepsize_controller, adaptive = _default_controller(solver, rtol, atol, dt0)
    else:
        adaptive = not isinstance(stepsize_controller, dfx.ConstantStepSize)
        if not adaptive and dt0 is None:
            raise _arg_error(
                "dt0", "is required with ConstantStepSize", "Pass the step size in ms."
            )
    return solver, stepsize_controller, adaptive, 0.05 if dt0 is None else dt0


def _solution(out, fault, network: Network, record, t0, single: bool) -> Solution:
    """The `Solution` of a run's output (a single model's records and final state
    without the population level)."""
    recorded, final_state = out.records, out.final_state
    if single:
        recorded = recorded[POPULATION]
        final_state = final_state[POPULATION]
    slices = tuple(
        (name, offset, network.populations[name].n)
        for name, offset in network.offsets.items()
    )
    return Solution(
        spike_times=out.spike_times,
        spike_neurons=out.spike_neurons,
        num_spikes=out.num_spikes,
        overflow=out.status == _engine.OVERFLOW,
        ts=record,
        states=recorded,
        t0=t0,
        t_final=out.t_final,
        final_state=final_state,
        status=out.status,
        iterations=out.iterations,
        solver_steps=out.solver_steps,
        fault=fault,
        populations=None if single else slices,
    )
