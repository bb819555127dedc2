import contextlib

import jax
import pytest


@contextlib.contextmanager
def _precision(x64: bool):
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", x64)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def x64():
    """Run a test in float64 (gradient and accuracy checks)."""
    with _precision(True):
        yield


@pytest.fixture(scope="module")
def float64():
    """Run a whole test module in float64 (for module-scoped simulation fixtures)."""
    with _precision(True):
        yield


@pytest.fixture
def float32():
    """Run a test in float32, also inside a float64 module."""
    with _precision(False):
        yield


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module: a whole run compiles a few
    thousand, and holding them all grows the process by gigabytes."""
    yield
    jax.clear_caches()
