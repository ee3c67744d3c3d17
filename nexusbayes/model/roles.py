"""The role of every model variable, declared where the variable is created and read by every consumer.

A variable's role says what it is (a latent state, a scale, a loading, ...), which spec prior sets it,
whether it is a hyperparameter (ranked by SBC, plotted in the report's sampling checks) and how it
changes when a trait is reflected (:func:`nexusbayes.model.orient.orient`). Nothing downstream reads
meaning into a variable's name: orientation, SBC, the report, the sweeps and the sampler's start-failure
message all ask the registry.

Examples
--------
>>> from nexusbayes.model.build import Model
>>> from nexusbayes.model.simulate import simulate
>>> sim = simulate(n_regions=3, n_periods=3, seed=1)
>>> roles = Model(sim.spec, sim.panel).roles
>>> roles["theta"].role, roles["region_innovation_sd"].prior
('trait', 'innovation_region_sd')
>>> sorted(roles.prior_fields(["loading_pos", "sigma_normal"]))
['loading', 'noise_sd']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Literal

import pymc as pm

#: What a variable is.
#: ``latent``: non-centred innovations and states (z, starts, walks), read through the traits they make;
#: ``trait``: the standardised traits (``theta``, ``country_theta``); ``scale``: SDs of the latent process
#: and of rater shifts; ``dynamics``: persistence (``ar_phi``); ``correlation``: trait correlation and its
#: Cholesky factor; ``loading``, ``intercept``, ``cutpoint``: item parameters; ``nuisance``: a family's
#: noise or dispersion; ``offset``: country offsets of indicators not comparable across countries; ``effect``:
#: coefficients of covariates on the traits (a latent regression, :mod:`nexusbayes.model.covariates`), which
#: change sign with the trait they act on.
Role = Literal["latent", "trait", "scale", "dynamics", "correlation", "loading", "intercept", "cutpoint",
               "nuisance", "offset", "effect"]

#: How a variable changes when a trait is reflected (theta_k -> -theta_k): ``trait`` (its ``trait`` and
#: ``trait_`` dims change sign), ``labels`` (its elements labelled ``indicator:trait`` or
#: ``covariate:trait`` on the reflected trait change sign), ``whole`` (all of it changes sign: the states of
#: a one-trait model) or ``none`` (invariant: scales, persistence, cut-points, ...).
Reflection = Literal["trait", "labels", "whole", "none"]

#: The roles whose variables are ranked by SBC and summarised as hyperparameters.
HYPER_ROLES = frozenset({"scale", "dynamics", "correlation", "loading", "intercept", "cutpoint", "nuisance",
                         "offset", "effect"})
#: The roles the report's sampling checks (rank plots, traces) show: the scales of the model.
SCALE_ROLES = frozenset({"scale", "dynamics", "correlation", "nuisance"})

#: The attribute of a fit's DataTree that keeps the registry (JSON), so a saved fit knows its roles.
TREE_ATTR = "nexusbayes_roles"

#: The canonical names of the variables that analyses read.
THETA, COUNTRY_THETA, LOADING, INTERCEPT, TRAIT_CORR = "theta", "country_theta", "loading", "intercept", "trait_corr"


def cutpoints_name(key: str) -> str:
    """The name of the cut-points of ordinal likelihood term ``key``."""
    return f"cutpoints_{key}"


@dataclass(frozen=True)
class VariableRole:
    """One variable's entry in the registry.

    Attributes
    ----------
    name : str
    role : Role
    prior : str or None
        The ``[priors]`` field of the spec that sets its prior scale, if any.
    reflect : Reflection
    free : bool
        A free random variable (sampled) rather than a deterministic function of others.
    ranked : bool
        Ranked by SBC and listed as a hyperparameter: free variables of :data:`HYPER_ROLES`, and the
        deterministics declared so (the trait correlation, ranked in place of its Cholesky factor).
    """

    name: str
    role: Role
    prior: str | None
    reflect: Reflection
    free: bool
    ranked: bool


def declare(variable, role: Role, *, prior: str | None = None, reflect: Reflection = "none",
            ranked: bool | None = None):
    """Record ``variable``'s role in the registry of the model being built, and return the variable.

    Call it where the variable is created, inside a ``with pm.Model()`` block.

    Parameters
    ----------
    variable : TensorVariable
        A named model variable (free or deterministic).
    role, prior, reflect
        See :class:`VariableRole`.
    ranked : bool, optional
        Default: a free variable whose role is in :data:`HYPER_ROLES`.
    """
    model = pm.Model.get_context()
    free = variable in model.free_RVs
    if ranked is None:
        ranked = free and role in HYPER_ROLES
    registry = model.__dict__.setdefault("_nexusbayes_roles", {})
    registry[variable.name] = VariableRole(name=variable.name, role=role, prior=prior, reflect=reflect, free=free,
                                           ranked=ranked)
    return variable


class Roles:
    """The registry of a model: :class:`VariableRole` by variable name.

    Built from a PyMC model whose variables were declared (:func:`declare`), or read back from a fit's
    DataTree (:meth:`from_attrs`). Every free variable and deterministic must be declared.
    """

    def __init__(self, entries: Iterable[VariableRole]):
        self._entries = {entry.name: entry for entry in entries}

    @classmethod
    def of(cls, model: pm.Model) -> Roles:
        """The registry of a built model; raises if a variable was created without a role."""
        registry = getattr(model, "_nexusbayes_roles", {})
        missing = [v.name for v in [*model.free_RVs, *model.deterministics] if v.name not in registry]
        if missing:
            raise RuntimeError(f"model variables without a declared role: {missing} (declare them where they "
                               "are created: nexusbayes.model.roles.declare)")
        return cls(registry.values())

    @classmethod
    def from_attrs(cls, attrs: dict) -> Roles | None:
        """The registry stored in a DataTree's attrs (:meth:`to_attr`), or None when there is none."""
        text = attrs.get(TREE_ATTR)
        return None if text is None else cls(VariableRole(**entry) for entry in json.loads(text))

    def to_attr(self) -> str:
        """The registry as JSON, for a DataTree's attrs (key :data:`TREE_ATTR`)."""
        return json.dumps([asdict(entry) for entry in self._entries.values()])

    def __getitem__(self, name: str) -> VariableRole:
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[VariableRole]:
        return iter(self._entries.values())

    def names(self, *roles: Role) -> list[str]:
        """The variables with any of ``roles`` (all when none is given), in declaration order."""
        return [e.name for e in self if not roles or e.role in roles]

    def ranked(self) -> list[str]:
        """The hyperparameters ranked by SBC (see :attr:`VariableRole.ranked`)."""
        return [e.name for e in self if e.ranked]

    def scales(self) -> list[str]:
        """The hyperparameters the report's sampling checks show: ranked, with a role in :data:`SCALE_ROLES`."""
        return [e.name for e in self if e.role in SCALE_ROLES and e.ranked]

    def prior_fields(self, names: Iterable[str]) -> list[str]:
        """The spec's ``[priors]`` fields that set the priors of variables ``names`` (each once, in order)."""
        fields = [self._entries[n].prior for n in names if n in self._entries]
        return list(dict.fromkeys(f for f in fields if f is not None))

    def used_prior_fields(self) -> list[str]:
        """Every ``[priors]`` field the model uses."""
        return self.prior_fields(self._entries)
