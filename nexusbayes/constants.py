"""Shared defaults, in one place: diagnostic thresholds, interval width, type names."""

#: Largest acceptable rank-normalised split R-hat (Vehtari et al. 2021).
RHAT_MAX = 1.01
#: Smallest acceptable bulk and tail effective sample size (Vehtari et al. 2021).
ESS_MIN = 400
#: Quantiles whose ESS the tail ESS is the smaller of (Vehtari et al. 2021, and Stan's ``posterior``; ArviZ 1
#: defaults to its ``stats.ci_prob`` instead, 0.11 and 0.89).
TAIL_ESS_QUANTILES = (0.05, 0.95)
#: Smallest acceptable E-BFMI per chain (Betancourt 2016).
BFMI_MIN = 0.3
#: Largest acceptable share of draws that hit the maximum tree depth.
TREEDEPTH_MAX_SHARE = 0.01
#: Width of credible intervals reported by default.
CI_PROB = 0.9

#: The memo's four capacity types (Table 1), in the order (capability, willingness) =
#: (high, high), (high, low), (low, high), (low, low).
TYPES = ("hegemonic", "captured", "degraded", "failed")

#: Pareto k above which a PSIS-LOO observation is flagged as unreliable (Vehtari et al. 2024).
PARETO_K_MAX = 0.7
#: Number of prior predictive draws kept with every fit (cheap forward sampling, for the report).
PRIOR_PREDICTIVE_DRAWS = 200
#: Draws × observations computed at once for the log-likelihood and posterior predictive after a fit
#: (bounds the temporaries at about 64 MB per array, whatever the panel's size).
POSTPROCESS_CHUNK_VALUES = 2**22
#: Periods ahead that a run (``nexusbayes fit``) and a report forecast by default (see
#: :mod:`nexusbayes.report.forecasts` for why one).
FORECAST_PERIODS = 1
#: The kinds of sensitivity sweep (:func:`nexusbayes.workflows.sweeps.sweep_tasks`).
SWEEP_KINDS = ("prior_scale", "leave_one_indicator_out", "per_country")
