"""Orientation: reflect each draw of a trait whose loadings are all free so that it points the stated way."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nexusbayes.data.panel import Panel
from nexusbayes.model.roles import THETA, Roles
from nexusbayes.spec.document import Spec


def orient(tree: xr.DataTree, spec: Spec, panel: Panel, roles: Roles) -> xr.DataTree:
    """Reflect each draw of the traits with an ``orientation`` so that they point the stated way.

    A trait whose loadings are all free has a posterior that is exactly symmetric under the
    reflection theta_k -> -theta_k with every loading on trait k changing sign (the likelihood
    depends on their product, and every prior involved is symmetric), so choosing one of the two
    mirror images after sampling changes nothing but the labelling (the label-switching fix of
    mixture models, applied to a sign). Per draw, the orientation score is the mean trait of the
    ``higher`` regions minus that of the ``lower`` ones, each region averaged over its
    region-periods with data; draws with a negative score are reflected. What is reflected is what
    the roles registry says (:attr:`nexusbayes.model.roles.VariableRole.reflect`): the traits,
    loadings, non-centred innovations, both dimensions of a trait correlation or Cholesky factor
    (which keeps ``z @ chol.T`` consistent), the free loadings on the trait and the states of a
    one-trait walk, but not the scales or the persistence, which are invariant. The share of reflected
    draws per chain goes to the tree's attrs (``orientation_reflected_<trait>``): each chain stays in
    one mirror image, so a share strictly between 0 and 1 means a chain crossed between them (or the
    orienting regions do not separate).
    """
    if not spec.orientation:
        return tree
    post = tree["posterior"].to_dataset()
    theta = post[THETA]
    cells = np.zeros((len(panel.regions), len(panel.periods)), dtype=bool)
    cells[panel.frame["region_idx"].to_numpy(), panel.frame["period_idx"].to_numpy()] = True
    mask = xr.DataArray(cells, dims=("region", "period"), coords={"region": panel.regions, "period": panel.periods})
    for trait, how in spec.orientation.items():
        per_region = theta.sel(trait=trait).where(mask).mean("period")            # (chain, draw, region)
        score = xr.zeros_like(per_region.isel(region=0, drop=True))
        if how.higher:
            score = score + per_region.sel(region=how.higher).mean("region")
        if how.lower:
            score = score - per_region.sel(region=how.lower).mean("region")
        flip = xr.where(score < 0, -1.0, 1.0)                                       # (chain, draw)
        trait_sign = xr.where(post["trait"] == trait, flip, 1.0)                   # (chain, draw, trait)
        for name in list(post.data_vars):
            var = post[name]
            how_reflected = roles[name].reflect if name in roles else "none"
            if var.dtype.kind != "f" or how_reflected == "none":
                continue
            if how_reflected == "whole":
                post[name] = var * flip
            elif how_reflected == "trait":
                factor = trait_sign
                if "trait_" in var.dims:
                    factor = factor * trait_sign.rename(trait="trait_")
                post[name] = var * factor
            else:   # "labels": elements labelled indicator:trait
                label_dim = next(d for d in var.dims if d.endswith("_label"))
                on_trait = np.array([str(lab).rsplit(":", 1)[-1] == trait for lab in var[label_dim].values])
                post[name] = var * xr.where(xr.DataArray(on_trait, dims=label_dim), flip, 1.0)
        tree.attrs[f"orientation_reflected_{trait}"] = (flip < 0).mean("draw").values.tolist()
    tree["posterior"] = xr.DataTree(post)
    return tree
