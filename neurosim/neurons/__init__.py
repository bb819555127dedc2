"""Neuron models, one family per file."""

from .adaptation import AdaptiveCurrent as AdaptiveCurrent
from .adaptation import SpikeAdaptiveThreshold as SpikeAdaptiveThreshold
from .adaptation import VoltageAdaptiveThreshold as VoltageAdaptiveThreshold
from .adex import EIF as EIF
from .adex import AdEx as AdEx
from .adex import AdExState as AdExState
from .base import AbstractNeuron as AbstractNeuron
from .base import float_array as float_array
from .base import parameter as parameter
from .boomerang import Boomerang as Boomerang
from .boomerang import BoomerangState as BoomerangState
from .fhn import FHNRS as FHNRS
from .fhn import FHNRSState as FHNRSState
from .izhikevich import IZHIKEVICH_BEHAVIOURS as IZHIKEVICH_BEHAVIOURS
from .izhikevich import Izhikevich as Izhikevich
from .izhikevich import IzhikevichBehaviour as IzhikevichBehaviour
from .izhikevich import IzhikevichState as IzhikevichState
from .izhikevich import izhikevich_behaviour as izhikevich_behaviour
from .lif import LI as LI
from .lif import LIF as LIF
from .lif import CobaLIF as CobaLIF
from .lif import CobaLIFState as CobaLIFState
from .lif import CubaLIF as CubaLIF
from .lif import CubaLIFState as CubaLIFState
from .lif import LIFState as LIFState
from .lif import LIState as LIState
from .refractory import Refractory as Refractory
from .refractory import RefractoryState as RefractoryState
from .wererabbit import WereRabbit as WereRabbit
from .wererabbit import WereRabbitState as WereRabbitState

__all__ = [
    "AdaptiveCurrent",
    "SpikeAdaptiveThreshold",
    "VoltageAdaptiveThreshold",
    "EIF",
    "AdEx",
    "AdExState",
    "AbstractNeuron",
    "float_array",
    "parameter",
    "Boomerang",
    "BoomerangState",
    "FHNRS",
    "FHNRSState",
    "IZHIKEVICH_BEHAVIOURS",
    "Izhikevich",
    "IzhikevichBehaviour",
    "IzhikevichState",
    "izhikevich_behaviour",
    "LI",
    "LIF",
    "CobaLIF",
    "CobaLIFState",
    "CubaLIF",
    "CubaLIFState",
    "LIFState",
    "LIState",
    "Refractory",
    "RefractoryState",
    "WereRabbit",
    "WereRabbitState",
]
