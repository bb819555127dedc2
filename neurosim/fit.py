"""`fit`: gradient-based fitting of any neurosim model or network with optax.

`neurosim.fit` at the package level is the function; import the constraint helper
from this module: `from neurosim.fit import clip`.
"""

import sys
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax

__all__ = ["clip", "fit"]


def clip(where: Callable, lower=None, upper=None) -> Callable:
    """A constraint for `fit`: after each step, clip the leaves `where(params)` selects
    (a leaf or a tuple of leaves, as in `eqx.tree_at`) to `[lower, upper]` (a projection
    onto the feasible set).

    **Example:** positive time constants, `clip(lambda m: m.tau_mem, lower=1e-3)`.
    """
    if lower is None and upper is None:
        raise ValueError("clip: pass `lower`, `upper` or both.")

    def project(params):
        return eqx.tree_at(
            where, params, replace_fn=lambda leaf: jnp.clip(leaf, lower, upper)
        )

    return project


def _steps_and_batches(data, steps, epochs, batch_size):
    """`(number of steps, samples per step, number of samples)`."""
    if (steps is None) == (epochs is None):
        raise ValueError(
            "fit: pass exactly one of `steps` (optimizer steps) and `epochs` (passes "
            "over `data`)."
        )
    if data is None:
        if epochs is not None or batch_size is not None:
            raise ValueError(
                "fit: `epochs` and `batch_size` need `data`; without data pass `steps`."
            )
        return int(steps), None, None
    sizes = {
        jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in jtu.tree_leaves(data)
    }
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            "fit: every array of `data` must have the same leading axis (one entry per "
            f"sample); got leading sizes {sorted(map(str, sizes))}."
        )
    (num_samples,) = sizes
    batch = num_samples if batch_size is None else int(batch_size)
    if not 1 <= batch <= num_samples:
        raise ValueError(
            f"fit: `batch_size` is {batch_size} but `data` holds {num_samples} samples. "
            "Pass a batch size between 1 and the number of samples."
        )
    per_epoch = num_samples // batch
    return (
        (int(steps) if steps is not None else int(epochs) * per_epoch),
        batch,
        num_samples,
    )


def _as_constraint(constraints):
    if constraints is None:
        return None
    if callable(constraints):
        return constraints
    if isinstance(constraints, Sequence):
        for constraint in constraints:
            if not callable(constraint):
                raise TypeError(
                    f"fit: each of `constraints` must be a callable params -> params, got "
                    f"{constraint!r} (see `neurosim.fit.clip`)."
                )

        def all_of(params):
            for constraint in constraints:
                params = constraint(params)
            return params

        return all_of
    raise TypeError(
        "fit: `constraints` must be a callable params -> params or a list of them, got "
        f"{constraints!r} (see `neurosim.fit.clip`)."
    )


def fit(
    loss_fn: Callable,
    params,
    data=None,
    *,
    optimizer: optax.GradientTransformation | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    filter_spec=eqx.is_inexact_array,
    constraints=None,
    progress: bool = True,
    key=None,
):
    r"""Fit `params` (any PyTree: a neuron model, a `Network`, a tuple of them) by
    minimising a loss with an optax optimizer. Each step runs under `eqx.filter_jit`
    (compiled once, on the first step).

    **Arguments:**

    - `loss_fn`: `loss_fn(params, sample) -> scalar`, the loss of one sample; the batch
        loss is its mean over the batch, computed with `jax.vmap`. Without `data`,
        `loss_fn(params) -> scalar`.
    - `params`: the initial parameters.
    - `data`: a PyTree of arrays sharing a leading axis, one entry per sample (inputs
        and targets), or None.
    - `optimizer`: an optax transformation (default `optax.adam(1e-2)`).
    - `steps` or `epochs` (exactly one): the number of optimizer steps, or of passes
        over `data` (each epoch shuffles the samples and takes `len // batch_size`
        batches; the remainder of a shuffle is left out of that epoch).
    - `batch_size`: samples per step (default: all of `data`).
    - `filter_spec`: which leaves are fitted, as for `eqx.partition`: a PyTree of bools
        like `params` or a callable on leaves (default: every floating-point array).
        The other leaves stay bit-identical. To fit only some fields:
        `eqx.tree_at(lambda m: (m.tau_mem, m.v_th), jtu.tree_map(lambda _: False, model),
        replace=(True, True))`.
    - `constraints`: a callable `params -> params` applied after every step, or a list
        of them: a projection onto the feasible set, such as `clip(lambda m: m.tau_mem,
        lower=1e-3)` for positive time constants. It may change only fitted leaves.
    - `progress`: print the step and loss on stderr, about 20 times in a run (default
        True).
    - `key`: a `jax.random` key for the shuffling of batches (default key 0).

    **Returns:** `(params, history)`: the fitted parameters, and a NumPy array of the
    loss at each step (the batch loss before that step's update).

    **Example:**

    ```python
    fitted, history = neurosim.fit(loss, neurosim.LIF(tau_mem=12.0), steps=100)
    ```
    """
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    num_steps, batch, num_samples = _steps_and_batches(data, steps, epochs, batch_size)
    constraint = _as_constraint(constraints)
    key = jax.random.PRNGKey(0) if key is None else key
    trainable, frozen = eqx.partition(params, filter_spec)
    opt_state = optimizer.init(trainable)

    @eqx.filter_jit
    def step(trainable, frozen, opt_state, data, indices):
        def batch_loss(trainable):
            model = eqx.combine(trainable, frozen)
            if data is None:
                return loss_fn(model)
            batch_data = jtu.tree_map(lambda x: x[indices], data)
            return jnp.mean(jax.vmap(loss_fn, in_axes=(None, 0))(model, batch_data))

        loss, grads = eqx.filter_value_and_grad(batch_loss)(trainable)
        if isinstance(optimizer, optax.GradientTransformationExtraArgs):
            # Line searches (`optax.lbfgs`) evaluate the loss themselves.
            updates, opt_state = optimizer.update(
                grads, opt_state, trainable, value=loss, grad=grads, value_fn=batch_loss
            )
        else:
            updates, opt_state = optimizer.update(grads, opt_state, trainable)
        trainable = eqx.apply_updates(trainable, updates)
        if constraint is not None:
            constrained = constraint(eqx.combine(trainable, frozen))
            trainable = eqx.partition(constrained, filter_spec)[0]
        return trainable, opt_state, loss

    order = None
    history = np.empty(num_steps)
    every = max(1, num_steps // 20)
    for index in range(num_steps):
        indices = None
        if data is not None:
            per_epoch = num_samples // batch
            if index % per_epoch == 0:
                key, shuffle = jax.random.split(key)
                order = (
                    jax.random.permutation(shuffle, num_samples)
                    if batch < num_samples
                    else jnp.arange(num_samples)
                )
            start = (index % per_epoch) * batch
            indices = order[start : start + batch]
        trainable, opt_state, loss = step(trainable, frozen, opt_state, data, indices)
        history[index] = float(loss)
        if progress and (index % every == 0 or index == num_steps - 1):
            print(
                f"fit: step {index + 1}/{num_steps}  loss {history[index]:.6g}",
                file=sys.stderr,
                flush=True,
            )
    return eqx.combine(trainable, frozen), history
