"""One segment of the network clock without `diffrax.diffeqsolve`, for forward runs.

The network clock (`neurosim._engine`) integrates every neuron together from one event
to the next: one solve per segment, which stops at the first upward crossing of any
neuron's spike condition. In a busy network a segment is one or two solver steps (COBA,
4000 neurons: 1119 steps in 1090 segments), and `diffeqsolve`'s own work around them
(its loop, saving, event bookkeeping, `optimistix`'s root find) adds to each. A
forward run takes the segment here instead: the solver's own `step` in a
plain `while` loop, diffrax's I controller (the same norm, safety factor and limits as
the run's `PIDController`), the crossing located on the step's dense output by Newton's
method kept inside the bracket (the event root finder's tolerance), and the record
times inside the segment read from the dense output of the step that contains them,
as `SaveAt(ts=...)` reads them. Differentiated runs, fixed steps and other controllers
keep `diffeqsolve`. Measured (benchmarks/HISTORY.md, stop 25): the 1000-neuron
Izhikevich (2003) network without delays 0.90 -> 0.79 s, with 1 ms delays 1.65 ->
1.58 s, COBA 4000 over 50 ms 2.33 -> 2.16 s; first calls 0.6-1.2 s shorter. The steps
themselves are most of a segment's cost.
"""

import diffrax as dfx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx

from . import _clock, _cpu

# Newton iterations of a crossing, at most (bisection where Newton leaves the bracket).
ROOT_ITERATIONS = 40


def applies(solver, controller, adaptive, locate_spikes, gradients) -> bool:
    """Whether a segment can be taken here: a forward run on an adaptive solver with
    dense output under a plain PID controller (integral term only, RMS norm, no step
    limits), spikes at their crossings."""
    return (
        not gradients
        and adaptive
        and locate_spikes
        and isinstance(solver, dfx.AbstractAdaptiveSolver)
        and isinstance(controller, dfx.PIDController)
        and controller.pcoeff == 0
        and controller.dcoeff == 0
        and controller.dtmin is None
        and controller.dtmax is None
        and controller.norm is optx.rms_norm
    )


def _stage_loop_step(tableau, vf, t0, t1, y0, state):
    """One step of an explicit Runge-Kutta method (`neurosim._clock.unrolled`): the
    step of diffrax's solver (`(y1, error, dense, state1)`, the same values to
    rounding) with its stages in a loop that stores each one by a dynamic update
    (diffrax's loop stores them by scatters, which a loop compiled whole cannot
    hold). Written out instead (`neurosim._clock._erk_step`), XLA fuses the stages of
    many neurons into the stacked dense output and computes each again for every
    stage after it (2-3x slower on 1000 Izhikevich neurons)."""
    first, f0 = state
    dtype = jtu.tree_leaves(y0)[0].dtype
    h = t1 - t0
    stages = len(tableau.c) + 1
    f0 = jtu.tree_map(lambda new, old: jnp.where(first, new, old), vf(t0, y0), f0)
    lower = np.zeros((stages, stages))
    for i, row in enumerate(tableau.a_lower):
        lower[i + 1, : len(row)] = row
    lower = jnp.asarray(lower, dtype)
    nodes = jnp.asarray(np.concatenate([[0.0], tableau.c]), dtype)

    def combined(weights, k):
        return jtu.tree_map(
            lambda y, k: y + sum(weights[j] * k[j] for j in range(stages)), y0, k
        )

    k0 = jtu.tree_map(
        lambda f: jnp.concatenate(
            [(h * f)[None], jnp.zeros((stages - 1,) + f.shape, f.dtype)]
        ),
        f0,
    )

    def stage(i, carry):
        k, _ = carry
        y_i = combined(lower[i], k)
        f_i = vf(t0 + nodes[i] * h, y_i)
        k = jtu.tree_map(
            lambda k, f: lax.dynamic_update_slice(k, (h * f)[None], (i,) + (0,) * f.ndim),
            k,
            f_i,
        )
        return k, (y_i, f_i)

    k, (y1, f1) = lax.fori_loop(1, stages, stage, (k0, (y0, f0)))
    b_error = jnp.asarray(tableau.b_error, dtype)
    error = jtu.tree_map(lambda k: sum(b_error[j] * k[j] for j in range(stages)), k)
    return y1, error, dict(y0=y0, y1=y1, k=k), (jnp.asarray(False), f1)


def _rms(tree):
    leaves = jtu.tree_leaves(tree)
    # (Folded where a leaf reaches the limit of a loop compiled whole: `_cpu.fold`.)
    total = sum(_cpu.fold(jnp.add, leaf.reshape(-1) ** 2) for leaf in leaves)
    return jnp.sqrt(total / sum(leaf.size for leaf in leaves))


def solve(
    term,
    solver,
    controller,
    args,
    y0,
    length,
    dt0,
    condition,
    local,
    max_steps,
    tol,
    whole=False,
):
    """The segment from local time 0 to `length`, stopping at the first upward crossing
    of `condition(s, y)` (its value at 0 must be at most 0 for a crossing to count), with
    the states at the local record times `local` (sorted, within `[0, length]`).

    Returns `(hit, ok, tau, y_end, saved, last, steps)` as the engine reads them from
    `diffeqsolve`: whether it crossed, whether it succeeded, the local end time (the
    crossing, or the last accepted time on a failure), the state there, the states at
    `local` (those past the end are not filled), how many of them lie at or before the
    end, and the accepted steps. `tol = (rtol, atol)` of the crossing's time.

    Explicit Runge-Kutta solvers (`neurosim._clock.unrolled`: Tsit5, the default,
    Dopri5, Dopri8) take their steps in `_stage_loop_step`, others diffrax's `step`.
    `whole`: in the form of a loop compiled whole (`neurosim._cpu`), which needs the
    former (diffrax's step stores its stages by scatters)."""
    dtype = length.dtype
    zero = jnp.zeros((), dtype)
    rtol = jnp.asarray(controller.rtol, dtype)
    atol = jnp.asarray(controller.atol, dtype)
    order = controller.error_order
    order = solver.order(term) if order is None else order
    exponent = controller.icoeff / (order + 1)
    safety, factormin, factormax = (
        controller.safety,
        controller.factormin,
        controller.factormax,
    )
    state0 = solver.init(term, zero, jnp.maximum(length, dt0), y0, args)
    window = 0 if local is None else local.shape[0]
    stage_loop = _clock.unrolled(solver)
    if whole and not stage_loop:
        raise ValueError("a segment compiled whole needs an explicit Runge-Kutta solver")

    def read(dense, s0, s1, at):
        interpolation = solver.interpolation_cls(t0=s0, t1=s1, **dense)
        return jax.vmap(interpolation.evaluate)(at)

    def cond(c):
        return ~c["done"] & (c["iterations"] < max_steps)

    def body(c):
        s, y = c["s"], c["y"]
        h = jnp.minimum(c["h"], length - s)
        last = h >= length - s
        s1 = jnp.where(last, length, s + h)
        if stage_loop:
            y1, error, dense, state1 = _stage_loop_step(
                solver.tableau, lambda s, y: term.vf(s, y, args), s, s1, y, c["state"]
            )
        else:
            y1, error, dense, state1, _ = solver.step(
                term, s, s1, y, args, c["state"], False
            )
        scale = jtu.tree_map(
            lambda a, b: atol + rtol * jnp.maximum(jnp.abs(a), jnp.abs(b)), y, y1
        )
        norm = _rms(jtu.tree_map(lambda e, w: e / w, error, scale))
        finite = jnp.isfinite(norm)
        accept = finite & (norm <= 1.0)
        factor = jnp.where(
            norm == 0, factormax, safety * jnp.where(finite, norm, jnp.inf) ** -exponent
        )
        factor = jnp.clip(factor, factormin, jnp.where(accept, factormax, 1.0))
        c1 = condition(s1, y1)
        crossed = accept & (c["c"] <= 0) & (c1 > 0)

        def locate(_):
            interpolation = solver.interpolation_cls(t0=s, t1=s1, **dense)

            def value(x):
                return condition(x, interpolation.evaluate(x))

            def newton(carry):
                lo, hi, x, _, k = carry
                f, df = jax.jvp(value, (x,), (jnp.ones_like(x),))
                lo = jnp.where(f <= 0, x, lo)
                hi = jnp.where(f > 0, x, hi)
                step = x - f / df
                inside = (step > lo) & (step < hi) & jnp.isfinite(step)
                new = jnp.where(inside, step, 0.5 * (lo + hi))
                new = jnp.where(f == 0, x, new)
                width = tol[1] + tol[0] * jnp.abs(new)
                done = (jnp.abs(new - x) < width) | (hi - lo < width) | (f == 0)
                return lo, hi, new, done, k + 1

            # From the secant point of the bracket.
            x0 = s - c["c"] * (s1 - s) / (c1 - c["c"])
            x0 = jnp.where((x0 > s) & (x0 < s1), x0, 0.5 * (s + s1))
            init = (s, s1, x0, jnp.asarray(False), jnp.asarray(0))
            root = lax.while_loop(lambda r: ~r[3] & (r[4] < ROOT_ITERATIONS), newton, init)[
                2
            ]
            return root, interpolation.evaluate(root)

        root, y_root = lax.cond(crossed, locate, lambda _: (s1, y1), None)
        end = jnp.where(crossed, root, s1)
        new = dict(c)
        if window:
            due = accept & (local > s) & (local <= end)
            values = lax.cond(
                jnp.any(due),
                lambda _: read(dense, s, s1, local),
                lambda _: c["saved"],
                None,
            )
            new["saved"] = jtu.tree_map(
                lambda v, old: jnp.where(due.reshape((-1,) + (1,) * (v.ndim - 1)), v, old),
                values,
                c["saved"],
            )
        new.update(
            s=jnp.where(accept, end, s),
            y=jtu.tree_map(lambda a, b: jnp.where(accept, a, b), y_root, y),
            state=jtu.tree_map(lambda a, b: jnp.where(accept, a, b), state1, c["state"]),
            c=jnp.where(accept, c1, c["c"]),
            h=h * factor,
            steps=c["steps"] + accept.astype(jnp.int32),
            hit=crossed,
            done=crossed | (accept & last),
            iterations=c["iterations"] + 1,
        )
        return new

    carry = dict(
        s=zero,
        y=y0,
        state=state0,
        c=condition(zero, y0),
        h=jnp.minimum(dt0, length),
        steps=jnp.zeros((), jnp.int32),
        hit=jnp.asarray(False),
        done=length <= 0,
        iterations=jnp.zeros((), jnp.int32),
    )
    if window:
        # Record times at the segment's start: its state as given.
        at_start = local <= 0
        carry["saved"] = jtu.tree_map(
            lambda leaf: jnp.where(
                at_start.reshape((-1,) + (1,) * leaf.ndim), leaf[None], jnp.nan
            ).astype(leaf.dtype),
            y0,
        )
    final = lax.while_loop(cond, body, carry)
    tau = final["s"]
    saved = final.get("saved")
    last = jnp.sum(local <= tau, dtype=jnp.int32) if window else jnp.asarray(0, jnp.int32)
    return final["hit"], final["done"], tau, final["y"], saved, last, final["steps"]
