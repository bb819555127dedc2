"""Input waveforms (currents) and spike-train generators."""

from ._currents import AbstractCurrent as AbstractCurrent
from ._currents import Constant as Constant
from ._currents import Function as Function
from ._currents import PiecewiseConstant as PiecewiseConstant
from ._currents import PiecewiseLinear as PiecewiseLinear
from ._currents import PulseTrain as PulseTrain
from ._currents import Ramp as Ramp
from ._currents import Step as Step
from ._currents import Sum as Sum
from ._currents import as_current as as_current
from ._spikes import poisson_spikes as poisson_spikes

__all__ = [
    "AbstractCurrent",
    "Constant",
    "Function",
    "PiecewiseConstant",
    "PiecewiseLinear",
    "PulseTrain",
    "Ramp",
    "Step",
    "Sum",
    "as_current",
    "poisson_spikes",
]
