"""Batches of simulations as a sequence of single runs (`batch_map`).

Under `jax.vmap` an event loop runs in its batched form: every operation of an
iteration for all the batch's runs at once, until the longest run ends, a kernel per
operation on the CPU (batched indices turn the loop's row updates into scatters, which
a loop compiled into one function cannot hold). Run one after another instead
(`jax.lax.map`), each run is the unbatched loop, compiled whole where it can be
(`neurosim/_cpu.py`), and stops at its own end. `batch_map` does that, and splits the
batch over the devices of a mesh first where one is given (`jax.shard_map`, each device
mapping over its own part), since XLA cannot spread the iterations of a `lax.map` over
devices.
"""

from collections.abc import Callable

import jax
import jax.tree_util as jtu
from jax.sharding import Mesh, PartitionSpec


def batch_map(
    fun: Callable, *, batch_size: int | None = None, mesh: Mesh | None = None
) -> Callable:
    """`fun` over the leading axis of every argument, like `jax.vmap(fun)`, computed as
    a sequence of single calls.

    The returned function takes the arguments of `fun` with a batch axis in front of
    every array (the same length for all) and returns the results stacked along a
    leading axis, as `jax.vmap(fun)` would. It composes with `jax.jit` and `jax.grad`.

    Where it pays: forward runs of the event loop on a CPU (parameter sweeps, trials),
    where each single run is compiled into one function and ends at its own time.
    `benchmarks/batches.py` on 2 CPU cores, batches of 32: trials of a 20-neuron LIF
    layer with Poisson inputs in 0.34x the time of `jax.vmap` (first call 5.5 s
    against 10.4 s), populations of 50 Izhikevich neurons in 0.47x. The value and
    gradient of the trials took 1.30x the time of `jax.vmap`'s, and the first-spike
    layers of `exact="layered"` are vectorised over the batch already: keep
    `jax.vmap` for gradients, there, and on GPUs and TPUs.

    Args:
        fun: the function of one sample (for example a closure over a network that
            calls `neurosim.simulate`). Values shared by the whole batch are closed
            over, not passed.
        batch_size: how many samples each step of the sequence runs together under
            `jax.vmap` (`jax.lax.map`'s `batch_size`). Default: 1 on a CPU (the
            single runs one by one), the whole batch elsewhere (then it is
            `jax.vmap`).
        mesh: a `jax.sharding.Mesh` to split the batch over, along all its axes: each
            device runs its part of the batch as above, and the results stay split
            the same way. The batch size must be a multiple of the mesh's size.
    """
    if not callable(fun):
        raise TypeError(f"batch_map: `fun` must be callable, got {type(fun).__name__}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(
            f"batch_map: `batch_size` must be a positive int or None, got {batch_size!r}"
        )
    if mesh is not None and not isinstance(mesh, Mesh):
        raise TypeError(
            f"batch_map: `mesh` must be a jax.sharding.Mesh or None, got "
            f"{type(mesh).__name__}"
        )

    def mapped(*args):
        size = _batch_size_of(args)
        if mesh is None:
            platform = jax.default_backend()
            return _sequence(fun, args, size, batch_size, platform)
        if size % mesh.size:
            raise ValueError(
                f"batch_map: a batch of {size} cannot be split evenly over the mesh's "
                f"{mesh.size} devices; pass a batch whose size is a multiple of "
                f"{mesh.size}, or no `mesh`"
            )
        platform = mesh.devices.flat[0].platform
        spec = PartitionSpec(tuple(mesh.axis_names))
        local = size // mesh.size

        def shard(*part):
            return _sequence(fun, part, local, batch_size, platform)

        return jax.shard_map(
            shard, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False
        )(*args)

    return mapped


def _batch_size_of(args) -> int:
    sizes = set()
    for path, leaf in jtu.tree_leaves_with_path(args):
        shape = getattr(leaf, "shape", None)
        if shape is None or len(shape) == 0:
            raise ValueError(
                f"batch_map: argument{jtu.keystr(path)} has no batch axis (shape "
                f"{shape if shape is not None else type(leaf).__name__}); every array "
                "argument needs the batch in front. Close over values shared by the "
                "batch instead of passing them"
            )
        sizes.add(shape[0])
    if not sizes:
        raise ValueError("batch_map: no array arguments, so no batch to map over")
    if len(sizes) > 1:
        raise ValueError(
            f"batch_map: the arguments' leading axes differ ({sorted(sizes)}); every "
            "array argument needs the same batch size in front"
        )
    return sizes.pop()


def _sequence(fun, args, size, batch_size, platform):
    if batch_size is None:
        batch_size = 1 if platform == "cpu" else size
    if batch_size >= size:
        return jax.vmap(fun)(*args)
    return jax.lax.map(
        lambda sample: fun(*sample), args, batch_size=batch_size if batch_size > 1 else None
    )
