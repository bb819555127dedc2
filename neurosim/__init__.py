"""neurosim: continuous-time, event-driven, differentiable spiking-neuron simulation.

Time is in ms everywhere. See `neurosim.simulate` and the models in `neurosim.neurons`.
"""

from . import inputs as inputs
from . import losses as losses
from . import networks as networks
from . import neurons as neurons
from ._batch import batch_map as batch_map
from ._io import load as load
from ._io import load_solution as load_solution
from ._io import save as save
from ._network import Network as Network
from ._network import Population as Population
from ._network import Projection as Projection
from ._network import SpikeTrains as SpikeTrains
from ._simulate import SimulationError as SimulationError
from ._simulate import simulate as simulate
from ._solution import Solution as Solution
from ._solvers import SequentialEuler as SequentialEuler
from .fit import fit as fit
from .neurons import EIF as EIF
from .neurons import FHNRS as FHNRS
from .neurons import IZHIKEVICH_BEHAVIOURS as IZHIKEVICH_BEHAVIOURS
from .neurons import LI as LI
from .neurons import LIF as LIF
from .neurons import AbstractNeuron as AbstractNeuron
from .neurons import AdaptiveCurrent as AdaptiveCurrent
from .neurons import AdEx as AdEx
from .neurons import Boomerang as Boomerang
from .neurons import CobaLIF as CobaLIF
from .neurons import CubaLIF as CubaLIF
from .neurons import Izhikevich as Izhikevich
from .neurons import Refractory as Refractory
from .neurons import SpikeAdaptiveThreshold as SpikeAdaptiveThreshold
from .neurons import VoltageAdaptiveThreshold as VoltageAdaptiveThreshold
from .neurons import WereRabbit as WereRabbit
from .neurons import float_array as float_array
from .neurons import izhikevich_behaviour as izhikevich_behaviour
from .neurons import parameter as parameter

__all__ = [
    "inputs",
    "losses",
    "networks",
    "neurons",
    "Network",
    "Population",
    "Projection",
    "SpikeTrains",
    "SimulationError",
    "simulate",
    "batch_map",
    "fit",
    "Solution",
    "save",
    "load",
    "load_solution",
    "SequentialEuler",
    "EIF",
    "FHNRS",
    "IZHIKEVICH_BEHAVIOURS",
    "LI",
    "LIF",
    "AbstractNeuron",
    "AdaptiveCurrent",
    "AdEx",
    "Boomerang",
    "CobaLIF",
    "CubaLIF",
    "Izhikevich",
    "Refractory",
    "SpikeAdaptiveThreshold",
    "VoltageAdaptiveThreshold",
    "WereRabbit",
    "float_array",
    "izhikevich_behaviour",
    "parameter",
]

__version__ = "0.1.0"
