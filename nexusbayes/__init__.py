"""nexusbayes: Bayesian measurement of state capability and willingness to address the terrorism-trafficking nexus.

The flow is data -> spec -> model -> fit -> types and transitions:

>>> import nexusbayes as nb
>>> sorted(nb.TYPES)
['captured', 'degraded', 'failed', 'hegemonic']

See :func:`fit` for fitting, :class:`Fit` for results, :func:`load` for saved fits.
"""

from nexusbayes.constants import TYPES
from nexusbayes.data import Panel, load_panel
from nexusbayes.diagnostics import Diagnostics, SamplingWarning, diagnose
from nexusbayes.errors import DataError, FitFileError, NexusBayesError, OutputExistsError, SpecError
from nexusbayes.fit import Fit, fit, load
from nexusbayes.model import build_model
from nexusbayes.simulate import simulate
from nexusbayes.spec import AnchoredThreshold, Indicator, Spec, load_spec

__all__ = [
    "TYPES", "AnchoredThreshold", "DataError", "Diagnostics", "Fit", "FitFileError", "Indicator",
    "NexusBayesError", "OutputExistsError", "Panel", "SamplingWarning", "Spec", "SpecError", "build_model",
    "diagnose", "fit", "load", "load_panel", "load_spec", "simulate",
]
