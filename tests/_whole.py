"""What keeps a loop from being compiled whole, read off its traced program (shared by
tests/test_cpu.py and tests/test_engine_whole.py)."""

import jax
import jax.numpy as jnp

from neurosim import _cpu, _per_neuron


def blockers_of_the_loop(monkeypatch, run, loop=_per_neuron):
    """What `blockers` finds in the program of the marked call of `loop`'s module
    (`_per_neuron`, `_engine`) in `run()` (traced, not compiled)."""
    found = []

    def spy(fn):
        def traced(*args):
            shapes = jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), args
            )
            found.append(_cpu.blockers(jax.make_jaxpr(fn)(*shapes).jaxpr))
            return _cpu.one_kernel(fn)(*args)

        return traced

    monkeypatch.setattr(loop, "one_kernel", spy)
    jax.clear_caches()  # trace `simulate`'s jitted core again
    jax.eval_shape(run)
    monkeypatch.undo()
    (blockers,) = found
    return blockers
