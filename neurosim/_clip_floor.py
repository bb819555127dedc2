"""A diffrax solve traced without its hundred-step chain of `prevbefore`.

Before its loop, `diffrax.diffeqsolve` computes `t1` less 100 units in the last place
(the time past which a step is rounded to `t1`) as a chain of 100
`equinox.internal.prevbefore` calls, each a `jnp.nextafter` of a few dozen operations.
Every solve neuron computes traces that chain again: thousands of operations in each
compiled function, which XLA's simplifier goes over many times without settling. The
gradient through per-neuron Izhikevich solves (tests/test_clocks.py) took 10.3-11.1 s
to trace and 16-19 s to compile with it, 8.5 s and 12 s with the chain in one step
(benchmarks/HISTORY.md, stop 29).

`cheap_clip_floor()` is a context for neurosim's calls of `diffeqsolve` (all of them
through `diffeqsolve` here): while it is open, the name `eqxi` inside `diffrax._integrate` stands for a proxy whose
`prevbefore` returns its argument for the first 99 calls of each chain and the
hundredth value, from the bits, on the last. The value is the chain's, bit for bit,
for every `t1` but the positive ones within 100 units of the smallest normal number
(tests/test_solver_trace.py compares them; a solve's `t1` is a length of time, 0 or at
least 1e-38). Where diffrax's code is not the one this was written for, the context
does nothing, and the solves are traced as diffrax writes them.
"""

import contextlib
import inspect
import threading

import diffrax as dfx
import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp

CHAIN = 100
_LINE = "t1_clip_floor = eqxi.prevbefore(t1_clip_floor)"


def _known_diffrax():
    try:
        import diffrax._integrate as integrate

        source = inspect.getsource(integrate)
        loop = inspect.getsource(integrate.loop)
    except (ImportError, AttributeError, OSError, TypeError):
        return None
    if (
        source.count("prevbefore") != 1
        or f"for _ in range({CHAIN}):\n        {_LINE}" not in loop
        or integrate.eqxi is not eqxi
    ):
        return None
    return integrate


@jax.custom_jvp
def below(x):
    """`x` after `CHAIN` calls of `equinox.internal.prevbefore` (see the module)."""
    bits = jnp.dtype(f"int{jnp.finfo(x.dtype).bits}")
    magnitude = lax.bitcast_convert_type(jnp.abs(x), bits)
    tiny = lax.bitcast_convert_type(jnp.asarray(jnp.finfo(x.dtype).tiny, x.dtype), bits)
    infinity = lax.bitcast_convert_type(jnp.asarray(jnp.inf, x.dtype), bits)

    def value(b):
        return lax.bitcast_convert_type(b, x.dtype)

    down = value(magnitude - CHAIN)  # positive: toward zero
    away = -value(jnp.minimum(magnitude + CHAIN, infinity))  # negative: toward -inf
    # The chain's first call gives -tiny at 0 (and at denormals, read as 0).
    from_zero = -value(tiny + (CHAIN - 1))
    out = jnp.where(x > 0, down, away)
    out = jnp.where(x == 0, from_zero, out)
    return jnp.where(jnp.isnan(x), x, out)


@below.defjvp
def _below_jvp(primals, tangents):
    return below(primals[0]), tangents[0]


class _Proxy:
    """`equinox.internal` as `diffrax._integrate` sees it inside the context."""

    def __init__(self):
        self._calls = threading.local()

    def __getattr__(self, name):
        return getattr(eqxi, name)

    def reset(self):
        self._calls.n = 0

    def prevbefore(self, x):
        n = getattr(self._calls, "n", 0) + 1
        if n < CHAIN:
            self._calls.n = n
            return x
        self._calls.n = 0
        return below(x)


_INTEGRATE = _known_diffrax()
_PROXY = _Proxy()
_LOCK = threading.Lock()
_OPEN = [0]  # contexts open in every thread: the proxy stays while any is
_DEPTH = threading.local()  # contexts open in this thread


@contextlib.contextmanager
def cheap_clip_floor():
    """Trace the `diffeqsolve` calls inside with the chain in one step (see the
    module); a no-op where diffrax is not the known version."""
    if _INTEGRATE is None:
        yield
        return
    depth = getattr(_DEPTH, "n", 0)
    if depth == 0:
        _PROXY.reset()
    _DEPTH.n = depth + 1
    with _LOCK:
        _OPEN[0] += 1
        _INTEGRATE.eqxi = _PROXY
    try:
        yield
    finally:
        _DEPTH.n = depth
        if depth == 0:
            _PROXY.reset()
        with _LOCK:
            _OPEN[0] -= 1
            if _OPEN[0] == 0:
                _INTEGRATE.eqxi = eqxi


def diffeqsolve(*args, **kwargs):
    """`diffrax.diffeqsolve`, traced inside `cheap_clip_floor()`."""
    with cheap_clip_floor():
        return dfx.diffeqsolve(*args, **kwargs)
