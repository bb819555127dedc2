"""The exact event loop as one compiled function on XLA's CPU backend.

XLA's CPU runtime runs the body of a loop as a sequence of small compiled kernels,
with a dispatch between each. An event of the exact loop (`neurosim._per_neuron`) is
about 80 such kernels over a hundred lanes each, so the dispatches cost about a third
of it. XLA can compile a *call* into a single function instead: its own pass for small
`while` loops marks their calls `xla_cpu_small_call`, and the CPU backend then emits
the callee as one function, loops and all. `one_kernel` marks the call of the exact
loop that way (and keeps XLA from inlining it) through JAX's `set_xla_metadata`. Only
that call changes; nothing is set for the process, and other programs are compiled as
before.

Such a function cannot hold a scatter, so the loop takes a form without one where it
is compiled whole (forward runs without repeated targets, of the closed form or of
ODE models solved per neuron by the lean stepper of `neurosim._clock`); under
`jax.vmap` batched indices would turn its row updates back into scatters, so a batched
call runs the usual loop (`_per_neuron.run`). The results are the same either way (bit
for bit in tests/test_cpu.py); on the CUBA benchmark an event costs about 40% less
(benchmarks/HISTORY.md).
"""

import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.experimental.xla_metadata import set_xla_metadata

# The XLA of this JAX compiles marked calls whole (checked with jax 0.10.2); older ones
# may inline the call (harmless) or reject what it holds.
MIN_JAX = (0, 10)


def compiles_whole() -> bool:
    """Whether a call marked by `one_kernel` is compiled into one function here: XLA's
    CPU backend, in a JAX recent enough."""
    recent = tuple(jax.__version_info__[:2]) >= MIN_JAX
    return recent and jax.default_backend() == "cpu"


def one_kernel(fn):
    """`fn` (a function of pytrees of arrays) called as one function that XLA's CPU
    backend compiles whole. `fn` must hold no scatter (XLA cannot compile one into such
    a function: a compile error says so)."""

    def marked(*args):
        closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
        num_consts = len(closed.consts)
        # Every operand of the call opaque to constant folding: XLA cannot compile a
        # call whole with an operand it folded into a constant (arrays closed over
        # under an outer `jit`; its IR emitter aborts the process). An optimization
        # barrier hides where an operand comes from without copying it (a subtraction
        # of an unseen zero did the same and copied every operand: 90 MiB at
        # N = 64 000 on CUBA).
        operands = lax.optimization_barrier(
            [jnp.asarray(x) for x in [*closed.consts, *jtu.tree_leaves(args)]]
        )

        def call(*operands):
            consts, leaves = operands[:num_consts], operands[num_consts:]
            return jax.core.eval_jaxpr(closed.jaxpr, consts, *leaves)

        out = jax.jit(call)(*operands)
        out = set_xla_metadata(out, xla_cpu_small_call="true", inlineable="false")
        return jtu.tree_unflatten(jtu.tree_structure(shapes), out)

    return marked
