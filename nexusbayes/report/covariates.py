"""The report's covariate section: the effects table, a forest plot of it, and the transitions they change."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from nexusbayes.analysis.typology import interval_names
from nexusbayes.constants import CI_PROB
from nexusbayes.fit import Fit
from nexusbayes.report.figures import RC

#: What the effects table says, above it on the page.
EFFECTS_NOTE = (f"Effects of the covariates on the traits: posterior mean, {CI_PROB:.0%} interval and P(effect > 0). "
                "Per SD of the covariate (over the region-periods the model uses), in SDs of the standardised "
                "trait; a step effect is per year, on the trait's change from one period to the next. Per raw unit: "
                "the same over covariate_sd. Effects hold the latent path fixed: they are associations in a latent "
                "regression, not causal effects unless the covariate is as good as randomly assigned.")


def covariate_tables(fit: Fit) -> dict[str, pd.DataFrame]:
    """The covariate tables by file stem.

    ``covariate_effects`` and, with a typology and step covariates, ``covariate_transitions`` (P(change of
    type) per country at the covariate's 10th and 90th percentiles).
    """
    if fit.spec.covariates is None:
        return {}
    out = {"covariate_effects": fit.covariate_effects()}
    steps = [name for name, e in fit.spec.covariates.columns.items() if e.on == "step"]
    if fit.spec.has_typology and steps:
        out["covariate_transitions"] = pd.concat([fit.covariate_transitions(name) for name in steps],
                                                 ignore_index=True)
    return out


def effects_forest(effects: pd.DataFrame) -> Figure:
    """Forest plot of the effects per SD of the covariate: mean and interval, one row per covariate and trait."""
    low, high = interval_names()
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(5.6, 0.9 + 0.32 * len(effects)), layout="constrained")
        y = list(range(len(effects)))[::-1]
        ax.errorbar(effects["mean"], y, xerr=[effects["mean"] - effects[low], effects[high] - effects["mean"]],
                    fmt="o", color="black", markersize=4, capsize=2, linewidth=1)
        ax.axvline(0.0, color="grey", linestyle="--", linewidth=0.8)
        ax.set_yticks(y, [f"{r.label} ({r.on}) → {r.trait}" for r in effects.itertuples()])
        ax.set_xlabel("effect per SD of the covariate (trait SDs)")
    return fig


def covariate_section(fit: Fit, results: dict[str, pd.DataFrame], tables: dict[str, pd.DataFrame]
                      ) -> dict[str, tuple[str, Figure]]:
    """Add the covariate tables to the page's ``tables`` and return the section's figure (none without them)."""
    found = {stem: results[stem] for stem in ("covariate_effects", "covariate_transitions") if stem in results}
    tables.update(found)
    if "covariate_effects" not in found:
        return {}
    return {"covariate_effects": (EFFECTS_NOTE, effects_forest(found["covariate_effects"]))}
