"""The public modules name their public API in `__all__`: every name there exists, no
foreign module is public, and the packages a user browses (`dir`, tab completion)
show nothing else (no `jnp`, `np`)."""

import importlib
import types

import pytest

import neurosim as ns

MODULES = [
    "neurosim",
    "neurosim.fit",
    "neurosim.inputs",
    "neurosim.losses",
    "neurosim.networks",
    "neurosim.neurons",
    "neurosim.neurons.adaptation",
    "neurosim.neurons.adex",
    "neurosim.neurons.base",
    "neurosim.neurons.boomerang",
    "neurosim.neurons.fhn",
    "neurosim.neurons.izhikevich",
    "neurosim.neurons.lif",
    "neurosim.neurons.refractory",
    "neurosim.neurons.wererabbit",
    "neurosim.nir",
    "neurosim.plot",
]
# The modules a user explores with dir() or tab completion.
BROWSED = ["neurosim", "neurosim.inputs", "neurosim.networks", "neurosim.neurons"]


def _is_own_submodule(value, module) -> bool:
    return isinstance(value, types.ModuleType) and value.__name__.startswith(
        module.__name__ + "."
    )


@pytest.mark.parametrize("name", MODULES)
def test_every_name_in_all_exists_and_no_foreign_module_is_public(name):
    module = importlib.import_module(name)
    assert isinstance(module.__all__, list) and module.__all__
    assert len(set(module.__all__)) == len(module.__all__), "duplicates in __all__"
    for public in module.__all__:
        assert hasattr(module, public), f"{name}.__all__ names {public!r}, not defined"
        value = getattr(module, public)
        if isinstance(value, types.ModuleType):
            assert _is_own_submodule(value, module), f"{name}.{public} is a module"


@pytest.mark.parametrize("name", BROWSED)
def test_dir_shows_only_the_public_api_and_own_submodules(name):
    module = importlib.import_module(name)
    extra = [
        public
        for public in dir(module)
        if not public.startswith("_")
        and public not in module.__all__
        and not _is_own_submodule(getattr(module, public), module)
    ]
    assert extra == [], f"{name} exposes {extra} outside __all__"


def test_star_import_gives_the_models_and_the_simulator():
    namespace: dict = {}
    exec("from neurosim import *", namespace)
    for public in ("simulate", "LIF", "CobaLIF", "Refractory", "parameter", "networks"):
        assert namespace[public] is getattr(ns, public)
    assert "jnp" not in namespace and "np" not in namespace
