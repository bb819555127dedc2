"""Extra diffrax solvers."""

from typing import ClassVar

import diffrax as dfx
import jax.numpy as jnp
import jax.tree_util as jtu


class SequentialEuler(dfx.AbstractSolver):
    """Euler's method that updates the fields of the state one after the other, each
    from the vector field evaluated with the fields before it already updated
    (Gauss-Seidel order: the order of the state's fields).

    For the Izhikevich state `(v, u)` this is the scheme of Izhikevich's figure scripts:
    `v += dt * f(v, u)`, then `u += dt * g(v_new, u)`. First order, fixed step only
    (pass `dt0` to `simulate`); one vector-field evaluation per field and step; linear
    interpolation between steps.

    **Example:**

    ```python
    import neurosim as ns
    panel = ns.izhikevich_behaviour("tonic_bursting")
    sol = ns.simulate(panel.neuron, n=1, t1=panel.t1, current=panel.current,
                      solver=ns.SequentialEuler(), dt0=panel.dt)
    ```
    """

    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: ClassVar = dfx.LocalLinearInterpolation

    def order(self, terms):
        return 1

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        control = terms.contr(t0, t1)
        old, treedef = jtu.tree_flatten(y0)
        new = list(old)
        for k in range(len(old)):
            partial = jtu.tree_unflatten(treedef, new)
            new[k] = old[k] + jtu.tree_leaves(terms.vf_prod(t0, partial, args, control))[k]
        y1 = jtu.tree_unflatten(treedef, new)
        return y1, None, dict(y0=y0, y1=y1), None, dfx.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class GridStepSize(dfx.AbstractStepSizeController):
    """Fixed steps on a global grid: the steps of a segment that starts at absolute
    time `t_start` end on the points `origin + k * dt`, whatever the segment bounds.

    The event loop solves segment by segment (from event to event, in local time); a
    plain constant step would restart its grid at every segment start (and diffrax's
    `ConstantStepSize` spreads a segment evenly, shortening every step). Keeping the
    global grid makes a fixed-step run take the same steps as a clock-driven simulator
    with step `dt`, however many inputs, records or scheduled changes split the run;
    a segment that starts off the grid (after a spike located within a step) first
    takes the partial step back onto it.
    """

    t_start: object
    origin: object
    dt: object

    def wrap(self, direction):
        return self

    def _next_grid_point(self, tau):
        """The first grid point strictly after local time `tau`, in local time."""
        position = (self.t_start + tau - self.origin) / self.dt
        # Within rounding of a grid point counts as on it (the grid times themselves are
        # rounded: in float32 at 1e5 steps the position is only good to ~1e-2 steps).
        slack = jnp.maximum(1e-3, 32 * jnp.finfo(position.dtype).eps * jnp.abs(position))
        index = jnp.floor(position + slack) + 1
        return self.origin + index * self.dt - self.t_start

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        return self._next_grid_point(t0), None

    def adapt_step_size(
        self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
    ):
        next_t1 = self._next_grid_point(t1)
        return True, t1, next_t1, False, None, dfx.RESULTS.successful
