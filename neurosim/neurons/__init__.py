"""Neuron models, one family per file."""

from .base import AbstractNeuron as AbstractNeuron
from .lif import LI as LI
from .lif import CubaLIF as CubaLIF
from .lif import CubaLIFState as CubaLIFState
from .lif import LIF as LIF
from .lif import LIFState as LIFState
from .lif import LIState as LIState
from .izhikevich import IZHIKEVICH_BEHAVIOURS as IZHIKEVICH_BEHAVIOURS
from .izhikevich import Izhikevich as Izhikevich
from .izhikevich import IzhikevichBehaviour as IzhikevichBehaviour
from .izhikevich import IzhikevichState as IzhikevichState
from .izhikevich import izhikevich_behaviour as izhikevich_behaviour
