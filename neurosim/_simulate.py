"""`simulate`: the public entry point of the event-driven simulator."""

import warnings

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from . import _engine
from ._checks import is_concrete
from ._currents import as_current
from ._solution import STATUS_MESSAGES, Solution
from ._system import AbstractSystem, PopulationSystem
from .neurons.base import AbstractNeuron


class SimulationError(RuntimeError):
    """Raised when a simulation cannot finish. The partial result (spikes and records
    up to the failure) is kept in the `solution` attribute."""

    def __init__(self, message: str, solution: Solution):
        super().__init__(message)
        self.solution = solution


def _arg_error(name: str, problem: str, fix: str) -> ValueError:
    return ValueError(f"simulate: `{name}` {problem}. {fix}")


def _as_float(x, dtype):
    return jnp.asarray(x, dtype)


def _check_times(t0, t1):
    if is_concrete((t0, t1)):
        if not np.isfinite(float(t1)):
            raise _arg_error("t1", f"must be finite (got {float(t1)})", "Pass an end time in ms.")
        if float(t1) <= float(t0):
            raise _arg_error(
                "t1",
                f"must be greater than t0 (got t0={float(t0)}, t1={float(t1)})",
                "Times are in ms; pass t1 > t0.",
            )


def _prepare_inputs(input_spikes, input_weights, n, dtype):
    if input_spikes is None:
        if input_weights is not None:
            raise _arg_error(
                "input_weights", "was given without `input_spikes`", "Pass both or neither."
            )
        return jnp.zeros((0,), dtype), jnp.zeros((0,), jnp.int32), None
    if input_weights is None:
        raise _arg_error(
            "input_weights",
            "is required with `input_spikes`",
            "Pass an (n_inputs, n) array: row k holds the weights of input k onto each neuron.",
        )
    try:
        times, sources = input_spikes
    except (TypeError, ValueError):
        raise _arg_error(
            "input_spikes", "must be a pair (times, indices)", "Pass two 1-D arrays of equal length."
        ) from None
    times = jnp.asarray(times, dtype)
    sources = jnp.asarray(sources, jnp.int32)
    input_weights = jnp.asarray(input_weights, dtype)
    if times.ndim != 1 or sources.shape != times.shape:
        raise _arg_error(
            "input_spikes",
            f"must hold two 1-D arrays of equal length (got shapes {times.shape}, {sources.shape})",
            "Pass (times, indices).",
        )
    if input_weights.ndim != 2 or input_weights.shape[1] != n:
        raise _arg_error(
            "input_weights",
            f"has shape {input_weights.shape}, expected (n_inputs, {n})",
            "Row k holds the weights of input k onto each of the n neurons.",
        )
    if is_concrete(sources) and sources.size:
        if int(sources.min()) < 0 or int(sources.max()) >= input_weights.shape[0]:
            raise _arg_error(
                "input_spikes",
                f"has indices outside [0, {input_weights.shape[0]})",
                "Indices refer to rows of `input_weights`.",
            )
    order = jnp.argsort(times, stable=True)
    return times[order], sources[order], input_weights


def _prepare_record(record, t0, t1, dtype):
    if record is None:
        return jnp.zeros((0,), dtype)
    record = jnp.asarray(record, dtype)
    if record.ndim == 0:
        record = record[None]
    if record.ndim != 1:
        raise _arg_error("record", f"must be 1-D (got shape {record.shape})", "Pass a 1-D array of times in ms.")
    if is_concrete((record, t0, t1)) and record.size:
        r = np.asarray(record)
        if np.any(np.diff(r) < 0):
            raise _arg_error("record", "must be sorted", "Pass times in increasing order, e.g. jnp.sort(record).")
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


@eqx.filter_jit
def _run_jit(system, t0, t1, y0, input_times, input_sources, record, dt0, config):
    return _engine.run(
        system,
        t0=t0,
        t1=t1,
        y0=y0,
        input_times=input_times,
        input_sources=input_sources,
        record_times=record,
        dt0=dt0,
        **config,
    )


def run_system(
    system: AbstractSystem,
    *,
    t0,
    t1,
    y0,
    input_times,
    input_sources,
    record,
    max_spikes,
    solver,
    stepsize_controller,
    rtol,
    atol,
    dt0,
    max_solver_steps,
    max_iterations,
    throw,
) -> Solution:
    """Shared back end of `simulate` for any system (validated arguments)."""
    dtype = jtu.tree_leaves(y0)[0].dtype
    if not isinstance(max_spikes, int) or max_spikes < 1:
        raise _arg_error("max_spikes", f"must be a positive int (got {max_spikes!r})", "E.g. max_spikes=10_000.")
    solver = dfx.Tsit5() if solver is None else solver
    if stepsize_controller is None:
        stepsize_controller, adaptive = _default_controller(solver, rtol, atol, dt0)
    else:
        adaptive = not isinstance(stepsize_controller, dfx.ConstantStepSize)
        if not adaptive and dt0 is None:
            raise _arg_error("dt0", "is required with ConstantStepSize", "Pass the step size in ms.")
    if dt0 is None:
        dt0 = 0.05
    if max_iterations is None:
        max_iterations = 8 * max_spikes + 2 * (input_times.shape[0] + record.shape[0]) + 100_000
    config = dict(
        max_spikes=max_spikes,
        solver=solver,
        stepsize_controller=stepsize_controller,
        adaptive=adaptive,
        max_solver_steps=max_solver_steps,
        max_iterations=max_iterations,
    )
    out = _run_jit(
        system, _as_float(t0, dtype), _as_float(t1, dtype), y0, input_times, input_sources,
        record, _as_float(dt0, dtype), config,
    )
    solution = Solution(
        spike_times=out.spike_times,
        spike_neurons=out.spike_neurons,
        num_spikes=out.num_spikes,
        overflow=out.status == _engine.OVERFLOW,
        ts=record,
        states=out.records,
        t0=_as_float(t0, dtype),
        t_final=out.t_final,
        final_state=out.final_state,
        status=out.status,
        iterations=out.iterations,
        solver_steps=out.solver_steps,
    )
    return _report(solution, throw)


def _report(solution: Solution, throw: bool) -> Solution:
    failed = (solution.status != _engine.FINISHED) & (solution.status != _engine.OVERFLOW)
    if not is_concrete(solution.status):
        if throw:
            message = "simulate failed: " + "; or ".join(
                STATUS_MESSAGES[code] for code in (3, 4, 5)
            ) + ". Pass throw=False to inspect the partial Solution."
            solution = eqx.error_if(solution, failed, message)
        return solution
    status = int(solution.status)
    if status == _engine.OVERFLOW:
        warnings.warn(
            f"simulate: the spike buffer (max_spikes={solution.spike_times.shape[0]}) filled "
            f"at t={float(solution.t_final):.6g} ms before t1; the simulation stopped there. "
            "Raise `max_spikes` to simulate further.",
            stacklevel=3,
        )
    if throw and bool(failed):
        detail = STATUS_MESSAGES[status]
        if status == _engine.NONFINITE:
            detail += _nonfinite_detail(solution.final_state)
        raise SimulationError(
            f"simulate stopped at t={float(solution.t_final):.6g} ms: {detail}. The partial "
            "result is in `error.solution`; pass throw=False to get it returned instead.",
            solution,
        )
    return solution


def _nonfinite_detail(state) -> str:
    fields = getattr(type(state), "__dataclass_fields__", None)
    names = list(fields) if fields else [str(k) for k in range(len(jtu.tree_leaves(state)))]
    for name, leaf in zip(names, jtu.tree_leaves(state)):
        bad = np.flatnonzero(~np.isfinite(np.asarray(leaf)))
        if bad.size:
            return f" (first at neuron {int(bad[0])}, field `{name}` = {np.asarray(leaf)[bad[0]]})"
    return ""


def simulate(
    neuron: AbstractNeuron,
    *,
    n: int,
    t1,
    t0=0.0,
    current=None,
    weights=None,
    input_spikes=None,
    input_weights=None,
    y0=None,
    record=None,
    max_spikes: int = 1000,
    solver: dfx.AbstractSolver | None = None,
    stepsize_controller: dfx.AbstractStepSizeController | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    dt0=None,
    max_solver_steps: int = 16_384,
    max_iterations: int | None = None,
    throw: bool = True,
) -> Solution:
    r"""Simulate `n` neurons of one model from `t0` to `t1` (ms), event by event.

    Between events the model's `dynamics` are integrated with a diffrax solver; every
    spike is located to root-finder precision on the solver's dense output, the model's
    `reset` is applied, and spikes are delivered through `weights`. Works under
    `jax.jit`, `jax.vmap` and `jax.grad` (reverse mode): spike times are differentiable
    with respect to parameters, weights, currents and input spike times.

    **Arguments:**

    - `neuron`: the model, e.g. `neurosim.LIF(tau_mem=10.0)`; its parameters are
        scalars or one value per neuron.
    - `n`: number of neurons.
    - `t1`, `t0`: end and start time, ms (`t1 > t0`).
    - `current`: external input, added where the model takes its input current: a
        number, an `(n,)` array, a callable `t -> (n,)`, or a waveform from
        `neurosim.inputs` (which announces its discontinuities to the solver; a plain
        callable must be continuous, or use `neurosim.inputs.Function(fn, jumps=...)`).
    - `weights`: `(n, n)` recurrent weights, row = presynaptic neuron; when neuron `j`
        spikes, row `j` is passed to the targets' `receive` (for LIF: added to `i`).
    - `input_spikes`, `input_weights`: external spike trains `(times, indices)` and an
        `(n_inputs, n)` weight matrix; input `k` arriving delivers row `k`.
    - `y0`: initial state (default `neuron.init_state(n)`).
    - `record`: 1-D sorted array of times in `[t0, t1]` at which to store the state.
    - `max_spikes`: size of the spike buffer. When it fills, the simulation stops
        (`Solution.overflow` is True, a warning says when); raise it and run again.
    - `solver`: any diffrax solver (default `diffrax.Tsit5()`). Adaptive solvers use a
        PID step-size controller with `rtol`, `atol`; fixed-step ones (`diffrax.Euler()`)
        need `dt0` and take constant steps.
    - `stepsize_controller`: overrides the default controller.
    - `rtol`, `atol`: solver tolerances (default 1e-6 each). Spike times are accurate
        to about the solution's accuracy divided by the slope of the spike condition;
        use 1e-10 or tighter in float64 for sub-nanosecond spike times.
    - `dt0`: initial step (adaptive, default 0.05 ms) or the constant step (fixed-step).
    - `max_solver_steps`: cap on ODE steps within one inter-event segment.
    - `max_iterations`: cap on event-loop iterations (spikes, inputs, records,
        scheduled changes); the default is generous.
    - `throw`: raise a `SimulationError` on failure (default). With `throw=False`
        the partial `Solution` is returned and `status` says what went wrong.

    **Returns:** a `neurosim.Solution`.

    **Example:**

    ```python
    import neurosim as ns
    sol = ns.simulate(ns.LIF(tau_mem=10.0, v_th=1.0), n=1, t1=100.0, current=1.5)
    times, neurons = sol.spikes()      # times = k * 10 ln 3 ms
    ```
    """
    if not isinstance(neuron, AbstractNeuron):
        raise _arg_error(
            "neuron", f"must be a neurosim neuron model (got {type(neuron).__name__})",
            "Pass e.g. neurosim.LIF().",
        )
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise _arg_error("n", f"must be a positive int (got {n!r})", "Pass the number of neurons.")
    _check_times(t0, t1)
    if is_concrete(neuron):
        neuron.validate(n)
    reference = neuron.init_state(n)
    dtype = jtu.tree_leaves(reference)[0].dtype
    y0 = reference if y0 is None else _check_state(y0, reference)
    current = as_current(current)
    probe = jax.eval_shape(lambda c: c(jnp.asarray(t0, dtype)), current)
    if probe.shape not in ((), (n,)):
        raise _arg_error(
            "current", f"gives values of shape {probe.shape}", f"Expected a scalar or ({n},)."
        )
    if weights is not None:
        weights = jnp.asarray(weights, dtype)
        if weights.shape != (n, n):
            raise _arg_error(
                "weights", f"has shape {weights.shape}, expected ({n}, {n})",
                "Pass an (n, n) matrix, row = presynaptic neuron.",
            )
    input_times, input_sources, input_weights = _prepare_inputs(
        input_spikes, input_weights, n, dtype
    )
    record = _prepare_record(record, t0, t1, dtype)
    system = PopulationSystem(
        neuron=neuron, n=n, current=current, weights=weights, input_weights=input_weights
    )
    return run_system(
        system,
        t0=t0,
        t1=t1,
        y0=y0,
        input_times=input_times,
        input_sources=input_sources,
        record=record,
        max_spikes=max_spikes,
        solver=solver,
        stepsize_controller=stepsize_controller,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        max_solver_steps=max_solver_steps,
        max_iterations=max_iterations,
        throw=throw,
    )
