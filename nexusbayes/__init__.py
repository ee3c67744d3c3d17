"""nexusbayes: Bayesian measurement of state capability and willingness to address the terrorism-trafficking nexus.

The flow is data -> spec -> model -> fit -> types and transitions:

>>> import nexusbayes as nb
>>> sorted(nb.TYPES)
['captured', 'degraded', 'failed', 'hegemonic']

See :func:`fit` for fitting, :class:`Fit` for results, :func:`load` for saved fits,
:func:`compare` (and :mod:`nexusbayes.compare`) for comparisons between countries and regions,
:mod:`nexusbayes.datasets` for loaders of public data sets.
"""

import warnings as _warnings

from nexusbayes import datasets
from nexusbayes.compare import compare, rank_probabilities, sharing_check, type_distribution
from nexusbayes.constants import TYPES
from nexusbayes.data import Panel, load_panel
from nexusbayes.diagnostics import Diagnostics, SamplingWarning, diagnose
from nexusbayes.errors import DataError, FitFileError, NexusBayesError, OutputExistsError, SpecError
from nexusbayes.fit import Fit, fit, load
from nexusbayes.model import build_model
from nexusbayes.simulate import simulate
from nexusbayes.spec import AnchoredThreshold, Indicator, Spec, load_spec

# PyTensor warns (five lines, once per process, when it first compiles an operation to C) that it found no BLAS
# library, as with every pip-installed PyTensor. nexusbayes samples with numba (nutpie) and draws forward samples
# in Python; only small side computations use the C backend, so the warning is noise here. Only it is silenced.
_warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation", category=UserWarning)

__all__ = [
    "TYPES", "AnchoredThreshold", "DataError", "Diagnostics", "Fit", "FitFileError", "Indicator",
    "NexusBayesError", "OutputExistsError", "Panel", "SamplingWarning", "Spec", "SpecError", "build_model",
    "compare", "datasets", "diagnose", "fit", "load", "load_panel", "load_spec", "rank_probabilities",
    "sharing_check", "simulate", "type_distribution",
]
