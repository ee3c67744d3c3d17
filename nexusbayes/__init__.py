"""nexusbayes: Bayesian measurement of state capability and willingness to address the terrorism-trafficking nexus.

The flow is data -> spec -> model -> fit -> types and transitions:

>>> import nexusbayes as nb
>>> sorted(nb.TYPES)
['captured', 'degraded', 'failed', 'hegemonic']

See :func:`fit` for fitting, :class:`Fit` for results, :func:`load` for saved fits,
:func:`compare` (and :mod:`nexusbayes.analysis.compare`) for comparisons between countries and regions,
:mod:`nexusbayes.data.datasets` for loaders of public data sets.
"""

import importlib as _importlib
import warnings as _warnings

#: Where each name of the public API lives; imported when first used, so that ``import nexusbayes`` (and
#: ``nexusbayes --help``) does not import PyMC.
_API = {
    "AnchoredThreshold": "nexusbayes.spec.sections",
    "DataError": "nexusbayes.errors",
    "Diagnostics": "nexusbayes.analysis.diagnostics",
    "Fit": "nexusbayes.fit",
    "FitFileError": "nexusbayes.errors",
    "Indicator": "nexusbayes.spec.sections",
    "NexusBayesError": "nexusbayes.errors",
    "OutputExistsError": "nexusbayes.errors",
    "Panel": "nexusbayes.data.panel",
    "SamplingWarning": "nexusbayes.analysis.diagnostics",
    "Spec": "nexusbayes.spec.document",
    "SpecError": "nexusbayes.errors",
    "TYPES": "nexusbayes.constants",
    "build_model": "nexusbayes.model.build",
    "compare": "nexusbayes.analysis.compare",
    "compare_models": "nexusbayes.analysis.model_choice",
    "datasets": "nexusbayes.data.datasets",
    "diagnose": "nexusbayes.analysis.diagnostics",
    "fit": "nexusbayes.fit",
    "load": "nexusbayes.fit",
    "load_panel": "nexusbayes.data.read",
    "load_spec": "nexusbayes.spec.document",
    "rank_probabilities": "nexusbayes.analysis.compare",
    "regress": "nexusbayes.workflows.conditional",
    "sharing_check": "nexusbayes.workflows.sharing",
    "simulate": "nexusbayes.model.simulate",
    "type_distribution": "nexusbayes.analysis.compare",
    "write_report": "nexusbayes.report",
    "Model": "nexusbayes.model.build",
    "sample": "nexusbayes.inference.sample",
}

# PyTensor warns (five lines, once per process, when it first compiles an operation to C) that it found no BLAS
# library, as with every pip-installed PyTensor. nexusbayes samples with numba (nutpie) and draws forward samples
# in Python; only small side computations use the C backend, so the warning is noise here. Only it is silenced.
_warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation", category=UserWarning)

__all__ = [
    "TYPES", "AnchoredThreshold", "DataError", "Diagnostics", "Fit", "FitFileError", "Indicator",
    "NexusBayesError", "OutputExistsError", "Panel", "SamplingWarning", "Spec", "SpecError", "build_model",
    "compare", "compare_models", "datasets", "diagnose", "fit", "load", "load_panel", "load_spec", "rank_probabilities",
    "regress", "sharing_check", "simulate", "type_distribution", "write_report", "Model", "sample",
]


def __getattr__(name: str):
    """Import a name of the public API on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'nexusbayes' has no attribute {name!r}")
    module = _importlib.import_module(_API[name])
    value = getattr(module, name, module)   # a name the module defines, else the module itself (datasets)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names and those of the public API."""
    return sorted([*globals(), *_API])
