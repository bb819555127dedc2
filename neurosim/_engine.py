"""The event loop.

```
t, y = t0, y0
while t < t1:
    if some neuron is already past its condition (after a jump): handle it at t
    else:
        t_next = min(next input spike, next scheduled change, t1)
        solve from t to t_next, stopping at the first upward crossing of
            max_i c_i,  c_i = spike condition (armed) or re-arm condition (disarmed)
        store the states at the record times passed (from the solver's dense output)
        if stopped by a crossing: record the spikes, reset, deliver, disarm/re-arm
        else: apply scheduled changes, deliver the input spikes due at t_next
```

Record times are not segment boundaries (a restart there would cost time and would
shift a fixed-step grid); at most `RECORD_WINDOW` of them are saved per segment, so a
segment also ends at the `RECORD_WINDOW`-th pending record time.

Each segment is one `diffrax.diffeqsolve` in *local* time (0 to t_next - t), so the
root finder works on small numbers and its tolerance can match the resolution of the
absolute time; forward runs on an adaptive solver take the same steps in a plain loop
instead (`neurosim._segment`). The step size is carried from one segment to the next.
The outer loop is a checkpointed `equinox.internal.while_loop`, so reverse-mode
gradients flow through spike times, resets and deliveries. Forward runs on an explicit
Runge-Kutta solver compile the loop into one function on the CPU (`neurosim._cpu`),
with its queue, delivery and buffer updates written without scatters.
"""

from dataclasses import replace

import diffrax as dfx
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, Float, Int, PyTree

from . import _clock, _segment
from ._clip_floor import diffeqsolve
from ._cpu import (
    compiles_whole,
    fold,
    one_kernel,
    put_row,
    set_rows,
    whole_unless_batched,
)
from ._root import event_root_finder
from ._solvers import GridStepSize
from ._system import NetworkSystem

# Status codes of a run (see Solution.status).
RUNNING = 0
FINISHED = 1
OVERFLOW = 2
SOLVER_FAILED = 3
NONFINITE = 4
ITERATION_LIMIT = 5
QUEUE_OVERFLOW = 6

INPUT_WINDOW = 8
RECORD_WINDOW = 8


class _Carry(eqx.Module):
    t: Float[Array, ""]
    y: PyTree
    aux: PyTree
    armed: Bool[Array, " N"]
    dt: Float[Array, ""]  # step size carried across segments
    input_ptr: Int[Array, ""]
    record_ptr: Int[Array, ""]
    spike_times: Float[Array, " S"]
    spike_neurons: Int[Array, " S"]
    num_spikes: Int[Array, ""]
    records: PyTree
    status: Int[Array, ""]
    iterations: Int[Array, ""]
    solver_steps: Int[Array, ""]
    # Writes into the large buffers above, requested by an iteration's branches and
    # applied outside them: a buffer passed through `lax.cond` would be copied.
    spike_t: Float[Array, ""]
    spike_slot: Int[Array, " N"]
    record_slots: Int[Array, " W"]
    record_values: PyTree
    # With `until_fired`: which neurons have fired, and the run's end (t1 until the
    # last of the named neurons fires; the events at that instant still apply).
    fired: Bool[Array, " N"] | None = None
    t_end: Float[Array, ""] | None = None


class RunOutput(eqx.Module):
    t_final: Float[Array, ""]
    final_state: PyTree
    armed: Bool[Array, " N"]
    spike_times: Float[Array, " S"]
    spike_neurons: Int[Array, " S"]
    num_spikes: Int[Array, ""]
    records: PyTree
    status: Int[Array, ""]
    iterations: Int[Array, ""]
    solver_steps: Int[Array, ""]


def _vector_field(tau, y, args):
    system, t_start, t_left, _ = args
    # Evaluate inputs strictly before the segment end: a current that jumps at t_next
    # (right-continuous) must not leak its new value into this segment.
    t = jnp.minimum(t_start + tau, t_left)
    return system.vector_field(t, y)


def _signed_conditions(system: NetworkSystem, t, y, armed):
    spike, rearm = system.conditions(t, y)
    signed = jnp.where(armed, spike, rearm)
    return jnp.where(system.spiking_mask, signed, -jnp.ones_like(signed))


def _event_condition(t, y, args, **kwargs):
    # diffrax passes `t` (local time within the segment) by keyword.
    system, t_start, t_left, armed = args
    t_abs = jnp.minimum(t_start + t, t_left)
    return fold(jnp.maximum, _signed_conditions(system, t_abs, y, armed))


def _event_condition_or_nonfinite(t, y, args, **kwargs):
    """`_event_condition`, positive also on a non-finite state: a fixed-step solver
    accepts such steps (an adaptive one rejects them), and the segment must end where
    the failure happened."""
    condition = _event_condition(t, y, args, **kwargs)
    return jnp.where(_all_finite(y), condition, jnp.ones_like(condition))


def _select(pred, on_true: PyTree, on_false: PyTree) -> PyTree:
    return jtu.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _all_finite(y) -> Bool[Array, ""]:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jtu.tree_leaves(y)]
    return jnp.all(jnp.stack(leaves))


def _next_bits(a, step):
    """The float `step` (+1 or -1) integers of bits away from `a >= 0`."""
    bits = jnp.dtype(f"int{jnp.finfo(a.dtype).bits}")
    return lax.bitcast_convert_type(lax.bitcast_convert_type(a, bits) + step, a.dtype)


def spacing_above(a):
    """`nextafter(a, inf) - a` for `a >= 0` (from the bits of `a`: `jnp.nextafter`
    lowers to a few dozen operations)."""
    return _next_bits(a, 1) - a


def spacing_below(t):
    """`t - nextafter(t, -inf)` for finite `t`, from the bits of `|t|`."""
    a = jnp.abs(t)
    return jnp.where(t > 0, a - _next_bits(a, -1), _next_bits(a, 1) - a)


def _probe_times(t):
    """`t` and times 1, 2, 4, ... 2048 spacings after it. An adaptive solver creeps up
    to a time where the dynamics turn non-finite (a current that becomes NaN) with ever
    smaller steps and fails there: the dynamics are probed just past it."""
    t_const = lax.stop_gradient(t)
    spacing = t_const - jnp.nextafter(t_const, -jnp.inf)
    return jnp.concatenate([t[None], t + spacing * 2.0 ** jnp.arange(12, dtype=t.dtype)])


def _nonfinite_per_neuron(tree, probe_axis: bool):
    """For each leaf of `tree` (leading axis: neurons, after the probe axis if any),
    which neurons hold a non-finite value."""
    out = []
    for leaf in jtu.tree_leaves(tree):
        bad = ~jnp.isfinite(leaf)
        if probe_axis:
            bad = jnp.any(bad, axis=0)
        out.append(
            jnp.any(bad.reshape(bad.shape[0], -1), axis=1) if bad.ndim else bad[None]
        )
    return out


def locate_fault(system: NetworkSystem, t, y) -> Int[Array, " 3"]:
    """Where a run went non-finite: `(leaf, neuron, kind)` for the first leaf of `y`
    (in `jax.tree_util` order) and its first neuron whose state (kind 0) or time
    derivative at or just after `t` (kind 1) is not finite; `(-1, -1, -1)` if none."""
    dtype = jtu.tree_leaves(y)[0].dtype
    probes = _probe_times(jnp.asarray(t, dtype))
    derivatives = jax.vmap(system.vector_field, in_axes=(0, None))(probes, y)
    # A derivative that does not depend on the state (a constant, broadcast to every
    # neuron) would otherwise be checked by XLA's constant folding, element by element
    # at compile time: 2.4 s per such leaf for 64 000 neurons.
    derivatives = lax.optimization_barrier(derivatives)
    found, where = [], []
    for kind, bads in (
        (0, _nonfinite_per_neuron(y, False)),
        (1, _nonfinite_per_neuron(derivatives, True)),
    ):
        for leaf, bad in enumerate(bads):
            found.append(jnp.any(bad))
            where.append(jnp.asarray([leaf, jnp.argmax(bad), kind], jnp.int32))
    first = jnp.argmax(jnp.stack(found))
    return jnp.where(jnp.any(jnp.stack(found)), jnp.stack(where)[first], -1)


def run(
    system: NetworkSystem,
    *,
    t0,
    t1,
    y0: PyTree,
    input_times: Float[Array, " K"],
    input_sources: Int[Array, " K"],
    record_times: Float[Array, " R"],
    max_spikes: int,
    solver: dfx.AbstractSolver,
    stepsize_controller: dfx.AbstractStepSizeController,
    dt0,
    adaptive: bool,
    max_solver_steps: int,
    max_iterations: int,
    locate_spikes: bool = True,
    gradients: bool = True,
    until=None,
    whole: bool | None = None,
) -> RunOutput:
    """Run the event loop (pure; call it under jit). See the module docstring.
    `until`: the neurons whose first spikes end the run (`simulate`'s
    `until_fired`), or None. `whole`: compile the loop into one function
    (`neurosim._cpu`); None (default) where it can be (`compilable_whole`) and the
    backend does so. Either way the results are the same (to rounding where
    simultaneous deliveries add onto one neuron). Under `jax.vmap` the loop runs in its
    usual form."""
    options = dict(
        max_spikes=max_spikes,
        solver=solver,
        stepsize_controller=stepsize_controller,
        adaptive=adaptive,
        max_solver_steps=max_solver_steps,
        max_iterations=max_iterations,
        locate_spikes=locate_spikes,
        gradients=gradients,
    )
    args = (t0, t1, y0, input_times, input_sources, record_times, dt0, until)
    can = compilable_whole(solver, stepsize_controller, adaptive, locate_spikes, gradients)
    if whole is None:
        whole = can and compiles_whole()
    elif whole and not can:
        raise ValueError(
            "whole=True: this loop cannot be compiled whole (it needs a forward run, "
            "gradients=False, on an explicit Runge-Kutta solver with an adaptive step)."
        )
    if not whole:
        return _run(system, *args, whole=False, **options)
    arrays, static = eqx.partition((system, options), eqx.is_array)

    def run_form(arrays, *args, whole):
        system, options = eqx.combine(arrays, static)
        return _run(system, *args, whole=whole, **options)

    return whole_unless_batched(run_form, arrays, *args)


def compilable_whole(solver, controller, adaptive, locate_spikes, gradients) -> bool:
    """Whether the loop has a form without scatters (`neurosim._cpu`): a forward run
    whose segments take their steps in `neurosim._segment`, on an explicit Runge-Kutta
    solver whose stages are written out there (diffrax's step stores them by
    scatters)."""
    return _segment.applies(
        solver, controller, adaptive, locate_spikes, gradients
    ) and _clock.unrolled(solver)


def _run(
    system: NetworkSystem,
    t0,
    t1,
    y0,
    input_times,
    input_sources,
    record_times,
    dt0,
    until,
    *,
    max_spikes: int,
    solver,
    stepsize_controller,
    adaptive: bool,
    max_solver_steps: int,
    max_iterations: int,
    locate_spikes: bool,
    gradients: bool,
    whole: bool,
) -> RunOutput:
    """`run`, with the loop in its scatter-free form compiled into one function
    (`whole`) or in its usual form."""
    num = system.num_neurons
    dtype = jtu.tree_leaves(y0)[0].dtype
    t0 = jnp.asarray(t0, dtype)
    t1 = jnp.asarray(t1, dtype)
    any_spiking = bool(system.spiking_mask.any())
    num_inputs = input_times.shape[0]
    num_records = record_times.shape[0]
    window = min(INPUT_WINDOW, max(num_inputs, 1))
    neuron_index = jnp.arange(num, dtype=jnp.int32)
    inf = jnp.asarray(jnp.inf, dtype)
    until = None if until is None else jnp.asarray(until.array)
    # Forward runs take each segment without `diffeqsolve` where they can.
    lean = _segment.applies(solver, stepsize_controller, adaptive, locate_spikes, gradients)

    def end_of(carry):
        return t1 if until is None else carry.t_end

    def next_input_time(ptr):
        if num_inputs == 0:
            return inf
        return jnp.where(
            ptr < num_inputs, input_times[jnp.minimum(ptr, num_inputs - 1)], inf
        )

    record_window = min(RECORD_WINDOW, max(num_records, 1))

    def pending_records(ptr):
        """The next `record_window` record times (inf past the end) and their slots."""
        slots = ptr + jnp.arange(record_window)
        times = record_times[jnp.minimum(slots, num_records - 1)]
        return jnp.where(slots < num_records, times, inf), slots

    def handle_spikes(carry: _Carry, t, y, fired, rearm) -> _Carry:
        count = jnp.sum(fired, dtype=jnp.int32)
        slot = carry.num_spikes + jnp.cumsum(fired, dtype=jnp.int32) - 1
        slot = jnp.where(fired, slot, max_spikes)
        overflow = carry.num_spikes + count > max_spikes
        y, aux = system.on_spikes(
            t, y, carry.aux, fired, differentiable=gradients, whole=whole
        )
        armed = jnp.where(fired & system.disarm_mask, False, carry.armed)
        armed = jnp.where(rearm, True, armed)
        if until is not None:
            done = jnp.all(carry.fired | ~until)
            fired_now = carry.fired | fired
            ends = ~done & jnp.all(fired_now | ~until)
            carry = replace(carry, fired=fired_now, t_end=jnp.where(ends, t, carry.t_end))
        return replace(
            carry,
            t=t,
            y=y,
            aux=aux,
            armed=armed,
            spike_t=t,
            spike_slot=slot,
            num_spikes=jnp.minimum(carry.num_spikes + count, max_spikes),
            status=jnp.where(overflow, OVERFLOW, carry.status),
        )

    def handle_due(carry: _Carry) -> _Carry:
        signed = _signed_conditions(system, carry.t, carry.y, carry.armed)
        due = signed > 0
        return handle_spikes(carry, carry.t, carry.y, due & carry.armed, due & ~carry.armed)

    def handle_breakpoint(carry: _Carry, t_next, y) -> _Carry:
        y, aux = system.apply_internal(t_next, y, carry.aux, whole=whole)
        input_ptr = carry.input_ptr
        if num_inputs > 0:
            positions = input_ptr + jnp.arange(window)
            clipped = jnp.minimum(positions, num_inputs - 1)
            valid = (positions < num_inputs) & (input_times[clipped] == t_next)
            y = system.on_input(y, input_sources[clipped], valid, whole=whole)
            input_ptr = input_ptr + jnp.sum(valid, dtype=input_ptr.dtype)
        t_end = end_of(carry)
        finished = (t_next >= t_end) & (next_input_time(input_ptr) > t_end)
        return replace(
            carry,
            t=t_next,
            y=y,
            aux=aux,
            input_ptr=input_ptr,
            status=jnp.where(finished, FINISHED, carry.status),
        )

    def advance(carry: _Carry, hold: Bool[Array, ""], internal) -> _Carry:
        """One segment; a zero-length one where `hold` (a batch element that runs
        `advance` only because another one needs it: see `body`). `internal`: the next
        scheduled change (`next_internal_time`, read once by `body`)."""
        t = carry.t
        t_next = jnp.minimum(
            jnp.minimum(end_of(carry), next_input_time(carry.input_ptr)), internal
        )
        if num_records > 0:
            record_t, record_slots = pending_records(carry.record_ptr)
            bound = record_t[-1]
            if not adaptive:
                # End on the last grid point before the window's last record time, so
                # that records never split a fixed step (unless they are denser than
                # the window per step).
                aligned = t0 + jnp.floor((bound - t0) / carry.dt + 1e-6) * carry.dt
                bound = jnp.where(aligned > t, aligned, bound)
            t_next = jnp.minimum(t_next, bound)
        t_next = jnp.maximum(jnp.where(hold, t, t_next), t)
        length = t_next - t
        t_next_const = lax.stop_gradient(t_next)
        ulp = spacing_below(t_next_const)
        t_left = jnp.where(length > 0, t_next - ulp, t_next)

        # Record times ahead, in the segment's local time (clipped to its end).
        local = jnp.clip(record_t - t, 0.0, length) if num_records > 0 else None

        def _diffrax_segment(t, t_left, length, carry):
            args = (system, t, t_left, carry.armed)
            if any_spiking:
                # Without a root finder diffrax stops at the end of the step on which the
                # condition turned positive: the clock-driven convention.
                event = dfx.Event(
                    _event_condition if adaptive else _event_condition_or_nonfinite,
                    root_finder=event_root_finder(dtype, t_next) if locate_spikes else None,
                    direction=True,
                )
            else:
                event = None
            if num_records > 0:
                saveat = dfx.SaveAt(ts=local, t1=True)
            else:
                saveat = dfx.SaveAt(t1=True)
            if adaptive:
                controller = stepsize_controller
            else:
                controller = GridStepSize(t_start=t, origin=t0, dt=carry.dt)
            sol = diffeqsolve(
                dfx.ODETerm(_vector_field),
                solver,
                t0=jnp.zeros((), dtype),
                t1=length,
                dt0=carry.dt,
                y0=carry.y,
                args=args,
                stepsize_controller=controller,
                event=event,
                max_steps=max_solver_steps,
                throw=False,
                saveat=saveat,
            )
            # After an event diffrax drops the saves past it and moves the final state
            # forward: it is the last finite entry.
            last = jnp.sum(jnp.isfinite(sol.ts)) - 1
            y_end = jtu.tree_map(lambda leaf: leaf[last], sol.ys)
            hit = sol.result == dfx.RESULTS.event_occurred
            ok = hit | (sol.result == dfx.RESULTS.successful)
            tau = sol.ts[last]
            steps = sol.stats["num_accepted_steps"]
            saved = jtu.tree_map(lambda leaf: leaf[:-1], sol.ys)
            return hit, ok, tau, y_end, saved, last, steps

        def _lean_segment(t, t_left, length, carry):
            args = (system, t, t_left, carry.armed)
            if any_spiking:

                def condition(s, y):
                    return _event_condition(s, y, args)
            else:

                def condition(s, y):
                    return -jnp.ones((), dtype)

            finder = event_root_finder(dtype, t_next)
            return _segment.solve(
                dfx.ODETerm(_vector_field),
                solver,
                stepsize_controller,
                args,
                carry.y,
                length,
                carry.dt,
                condition,
                local,
                max_solver_steps,
                (finder.rtol, finder.atol),
                whole=whole,
            )

        segment = _lean_segment if lean else _diffrax_segment
        hit, ok, tau, y_end, saved, last, steps = segment(t, t_left, length, carry)
        t_event = jnp.minimum(t + tau, t_next)
        t_stop = t_next
        if num_records > 0:
            # Saved before the stop (left limits at the stop time itself); entries
            # clipped to the segment end for later record times are not due yet.
            passed = (jnp.arange(record_window) < last) & (record_t <= t_stop)
            slots = jnp.where(passed, record_slots, num_records).astype(jnp.int32)
            carry = replace(
                carry,
                record_slots=slots,
                record_values=system.observe(saved),
                record_ptr=carry.record_ptr + jnp.sum(passed, dtype=carry.record_ptr.dtype),
            )
        if adaptive:
            span = jnp.where(hit, tau, length)
            dt = jnp.where(
                steps >= 2, span / jnp.maximum(steps, 1), jnp.maximum(carry.dt, span)
            )
        else:
            dt = carry.dt
        carry = replace(carry, dt=dt, solver_steps=carry.solver_steps + steps)

        def on_event(carry):
            signed = _signed_conditions(system, t_event, y_end, carry.armed)
            crossing = (signed >= fold(jnp.maximum, signed)) | (signed >= 0)
            crossing = crossing & system.spiking_mask
            return handle_spikes(
                carry, t_event, y_end, crossing & carry.armed, crossing & ~carry.armed
            )

        def on_failure(carry):
            # Stop at the last accepted step (where the state is still finite, unless a
            # fixed-step solver stepped into NaN): NONFINITE when the state or the
            # dynamics at or just after it are not finite (a NaN parameter or current:
            # more steps would not help), SOLVER_FAILED when the solver ran out of steps.
            derivatives = jax.vmap(system.vector_field, in_axes=(0, None))(
                _probe_times(t_event), y_end
            )
            finite = _all_finite(y_end) & _all_finite(derivatives)
            status = jnp.where(finite, SOLVER_FAILED, NONFINITE)
            return replace(carry, t=t_event, y=y_end, status=status.astype(jnp.int32))

        failed = ~ok | ~_all_finite(y_end)
        branch = jnp.where(failed, 2, jnp.where(hit, 0, 1))
        carry = lax.switch(
            branch,
            [on_event, lambda c: handle_breakpoint(c, t_stop, y_end), on_failure],
            carry,
        )
        status = jnp.where(_all_finite(carry.y), carry.status, NONFINITE)
        status = jnp.where(system.failed(carry.aux), QUEUE_OVERFLOW, status)
        return replace(carry, status=status)

    def body(carry: _Carry) -> _Carry:
        signed = _signed_conditions(system, carry.t, carry.y, carry.armed)
        any_due = jnp.any(signed > 0) if any_spiking else jnp.asarray(False)
        # Everything that happens at this instant (input spikes, delayed deliveries,
        # scheduled changes, a few per iteration) is applied before the neurons above
        # threshold fire, as in the exact loop.
        internal = system.next_internal_time(carry.t, carry.y, carry.aux, whole)
        pending_now = (next_input_time(carry.input_ptr) <= carry.t) | (internal <= carry.t)
        any_due = any_due & ~pending_now
        # A record at this instant takes the state before the neurons above threshold
        # fire (the left limit; at `t0` they may be above it from the start): a
        # zero-length segment stores it first.
        if num_records > 0:
            record_now = pending_records(carry.record_ptr)[0][0] <= carry.t
            hold_for_record = any_due & record_now
            any_due = any_due & ~record_now
        else:
            hold_for_record = jnp.asarray(False)
        big = (carry.spike_times, carry.spike_neurons, carry.records)
        small = replace(
            carry,
            spike_times=None,
            spike_neurons=None,
            records=None,
            spike_slot=jnp.full((num,), max_spikes, jnp.int32),
            record_slots=jnp.full((record_window,), num_records, jnp.int32),
        )
        # Not `lax.cond(any_due, handle_due, advance, small)`: under `jax.vmap` a
        # batched predicate turns that cond into a select of both branches, and a cond
        # nested in one (diffrax's, around the event root find) then gets a batched
        # predicate in the reverse pass, which transposes all its branches for every
        # element, those not taken on residuals filled with zeros. The root find's
        # implicit adjoint would then solve a linear system built from zeros (the
        # interpolation over a zero-length step is 0/0) and raise on the NaN. So each
        # branch runs when some element needs it (predicates reduced over the batch
        # keep `lax.cond` a branch) and the elements pick their result with a select;
        # a due element makes a zero-length segment in `advance` (finite partials).
        # Without vmap exactly one of `handle_due` and `advance` runs, as before.
        advanced = lax.cond(
            eqxi.unvmap_any(~any_due),
            lambda c: advance(c, hold=any_due | hold_for_record, internal=internal),
            lambda c: c,
            small,
        )
        small = lax.cond(
            eqxi.unvmap_any(any_due),
            lambda c: _select(any_due, handle_due(c), advanced),
            lambda c: advanced,
            small,
        )
        spike_times, spike_neurons, records = big
        if whole:
            # The spikes stored in this iteration fill the slots from the count before
            # it: one reduction and two row updates per spike, none without one.
            slots = small.spike_slot
            first = carry.num_spikes
            count = small.num_spikes - carry.num_spikes

            def write(k, buffers):
                times, neurons = buffers
                i = jnp.min(jnp.where(slots == first + k, neuron_index, num))
                return put_row(times, first + k, small.spike_t), put_row(
                    neurons, first + k, i
                )

            spike_times, spike_neurons = lax.fori_loop(
                0, count, write, (spike_times, spike_neurons)
            )
        else:
            spike_times = spike_times.at[small.spike_slot].set(small.spike_t, mode="drop")
            spike_neurons = spike_neurons.at[small.spike_slot].set(
                neuron_index, mode="drop"
            )
        if num_records > 0:
            records = jtu.tree_map(
                lambda buf, new: (
                    set_rows(buf, small.record_slots, new)
                    if whole
                    else buf.at[small.record_slots].set(new, mode="drop")
                ),
                records,
                small.record_values,
            )
        return replace(
            small,
            spike_times=spike_times,
            spike_neurons=spike_neurons,
            records=records,
            iterations=small.iterations + 1,
        )

    def cond(carry: _Carry):
        return carry.status == RUNNING

    records = jtu.tree_map(
        lambda leaf: jnp.full((num_records,) + leaf.shape, jnp.nan, leaf.dtype),
        system.observe(y0),
    )
    init = _Carry(
        t=t0,
        y=y0,
        aux=system.init_aux(dtype),
        armed=jnp.ones((num,), bool),
        dt=jnp.asarray(dt0, dtype),
        input_ptr=jnp.asarray(0, jnp.int32),
        record_ptr=jnp.asarray(0, jnp.int32),
        spike_times=jnp.full((max_spikes,), jnp.inf, dtype),
        spike_neurons=jnp.full((max_spikes,), -1, jnp.int32),
        num_spikes=jnp.asarray(0, jnp.int32),
        records=records,
        status=jnp.asarray(RUNNING, jnp.int32),
        iterations=jnp.asarray(0, jnp.int32),
        solver_steps=jnp.asarray(0, jnp.int32),
        spike_t=t0,
        spike_slot=jnp.full((num,), max_spikes, jnp.int32),
        record_slots=jnp.full((record_window,), num_records, jnp.int32),
        record_values=jtu.tree_map(
            lambda leaf: jnp.zeros((record_window,) + leaf.shape, leaf.dtype),
            system.observe(y0),
        ),
    )
    if until is not None:
        init = replace(init, fired=jnp.zeros((num,), bool), t_end=t1)
    # The checkpointed loop supports reverse-mode autodiff and costs about 1.5x in the
    # forward pass; the plain loop is for runs that are never differentiated.
    kind = "checkpointed" if gradients else "lax"
    if whole:

        def loop(init):
            return lax.while_loop(
                lambda c: cond(c) & (c.iterations < max_iterations), body, init
            )

        final = one_kernel(loop)(init)
    else:
        final = eqxi.while_loop(cond, body, init, max_steps=max_iterations, kind=kind)
    status = jnp.where(final.status == RUNNING, ITERATION_LIMIT, final.status)
    return RunOutput(
        t_final=final.t,
        final_state=final.y,
        armed=final.armed,
        spike_times=final.spike_times,
        spike_neurons=final.spike_neurons,
        num_spikes=final.num_spikes,
        records=final.records,
        status=status,
        iterations=final.iterations,
        solver_steps=final.solver_steps,
    )
