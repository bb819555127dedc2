"""An opt-in setting of XLA's CPU backend for the exact event loop.

XLA's CPU runtime runs a loop body as a sequence of small compiled kernels, with a
dispatch between each. It can instead compile a whole `while` loop into one function
(its "small while loop hoisting"), but only where a process-wide option allows it, and
only for loops without scatters or library fusions. `fuse_cpu_loops()` sets that option
(before JAX starts); the exact event loop of the LIF family then writes its tables
without scatters so that it qualifies (`loops_fused()`). Results are the same either
way; on the CUBA benchmark an event costs about a third less (benchmarks/HISTORY.md).
"""

import os

import jax

FLAGS = (
    # Compile every while loop below this many bytes accessed into one function.
    "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000000",
    # No YNNPACK fusions (a loop holding one cannot be compiled whole).
    "--xla_cpu_experimental_ynn_fusion_type=",
)


def fuse_cpu_loops() -> None:
    """Let XLA's CPU backend compile each event loop into a single function: fewer
    dispatches per event, the same results. Call it before JAX's first computation
    (it sets `XLA_FLAGS`, which XLA reads once per process):

    ```python
    import neurosim as ns
    ns.fuse_cpu_loops()
    sol = ns.simulate(network, t1=1000.0, gradients=False)
    ```

    It applies to the whole process: other JAX programs' `while` loops are compiled
    whole too, and their reductions do not use YNNPACK. Only forward runs
    (`gradients=False`) of the LIF family's exact loop change their form for it,
    without delayed projections or projections that reach a neuron twice from one
    source.
    """
    from jax._src import xla_bridge

    if tuple(jax.__version_info__[:2]) < (0, 10):
        # Older XLA versions abort on flags they do not know.
        raise RuntimeError(
            f"fuse_cpu_loops: needs jax >= 0.10 (its XLA flags were checked with jax "
            f"0.10.2); this is jax {jax.__version__}. Upgrade jax, or run without it."
        )
    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            "fuse_cpu_loops: JAX has already started its backends, so XLA will not read "
            "new flags; call fuse_cpu_loops() before the first JAX computation (right "
            "after `import neurosim`), or set XLA_FLAGS='" + " ".join(FLAGS) + "' in "
            "the environment."
        )
    current = os.environ.get("XLA_FLAGS", "")
    if "--xla_backend_extra_options" in current and FLAGS[0] not in current:
        raise ValueError(
            "fuse_cpu_loops: XLA_FLAGS already sets --xla_backend_extra_options; add "
            "xla_cpu_small_while_loop_byte_threshold=1000000000 to that option yourself "
            "(comma-separated), and --xla_cpu_experimental_ynn_fusion_type= ."
        )
    missing = [flag for flag in FLAGS if flag not in current.split()]
    os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()


def loops_fused() -> bool:
    """Whether this process asked XLA to compile whole loops (`fuse_cpu_loops`, or the
    same flags in the environment) and computes on the CPU."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    return all(flag in flags for flag in FLAGS) and jax.default_backend() == "cpu"
