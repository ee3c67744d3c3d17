"""An embedded Laplace approximation: the latent field integrated out, NUTS on the rest (experimental).

Given the other parameters ``phi`` (on the unconstrained scale, as PyMC samples them), the latent values
``x`` are approximated by a Gaussian at their conditional mode::

    x* = argmax_x f(x, phi),   H = d2f/dx2 at x*,   x | phi ~ N(x*, (-H)^-1)
    log p(phi | y) ~ f(x*, phi) + n/2 log(2 pi) - 1/2 log det(-H)

with ``f`` the model's joint log density (Jacobians of the transforms included). The mode is found by
damped Newton steps from the previous mode; the gradient of the approximate marginal to ``phi`` is exact
for the approximation (implicit differentiation: ``dx*/dphi = (-H)^-1 d2f/dx dphi``; the log determinant's
derivative ``tr((-H)^-1 dH)`` through third derivatives, as the gradient of ``sum(A * H)`` with ``A``
held fixed). NUTS (nutpie, from Python functions) samples ``phi``; each draw's latent values are drawn from
its conditional Gaussian.

The Hessian is dense here (one vectorised Jacobian of the gradient): the cost grows as ``n^3`` in the latent
values, so this serves small panels only. Which variables are latent is the caller's choice; their
conditional mode must exist. That holds for the centred walk's states (``dynamics.centred``, whose free
vector fixes the states' own location and scale), not for the non-centred innovations, whose likelihood is
unchanged when all are scaled together, so the conditional mode collapses to 0 (see
``benchmarks/HISTORY.md``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import scipy.linalg
from pytensor.graph.replace import graph_replace

#: Newton iterations stop when the largest step is below this (unconstrained scale).
NEWTON_TOL = 1e-9
#: And give up after this many.
NEWTON_MAX = 60


@dataclass
class Counts:
    """What the approximation cost: calls of the marginal, Newton iterations, seconds in each part."""

    marginal: int = 0
    newton: int = 0
    seconds_mode: float = 0.0
    seconds_gradient: float = 0.0


@dataclass
class EmbeddedLaplace:
    """The latent values of ``model`` integrated out by a Laplace approximation given the other parameters.

    Parameters
    ----------
    model : pymc.Model
    latent : dict
        Value variable name -> the number of its leading (flattened) entries that are latent (``None``:
        all of them). Every other entry of every value variable is in ``phi``.
    compile_mode : str, optional
        PyTensor's compilation mode for the functions (``"FAST_COMPILE"`` skips the C compilation: slower
        calls, compiled in seconds).

    Examples
    --------
    >>> import pymc as pm
    >>> with pm.Model() as m:
    ...     mu = pm.Normal("mu", 0, 1)
    ...     x = pm.Normal("x", mu, 1, shape=3)
    ...     _ = pm.Normal("y", x, 0.5, observed=[0.1, 0.2, 0.3])
    >>> la = EmbeddedLaplace(m, {"x": None})
    >>> la.n_latent, la.n_phi
    (3, 1)
    """

    model: pm.Model
    latent: dict
    compile_mode: str | None = None
    counts: Counts = field(default_factory=Counts)

    def __post_init__(self):
        point = self.model.initial_point()
        values = self.model.value_vars
        x, phi = pt.vector("x"), pt.vector("phi")
        self._layout = []                         # (name, shape, n_latent, x offset, phi offset)
        replace = {}
        nx = nphi = 0
        for v in values:
            shape = point[v.name].shape
            size = int(np.prod(shape))
            k = size if self.latent.get(v.name, 0) is None else int(self.latent.get(v.name, 0))
            self._layout.append((v.name, shape, k, nx, nphi))
            flat = pt.concatenate([x[nx:nx + k], phi[nphi:nphi + size - k]]) if 0 < k < size else (
                x[nx:nx + k] if k else phi[nphi:nphi + size])
            replace[v] = flat.reshape(shape) if shape else flat[0]
            nx, nphi = nx + k, nphi + size - k
        unknown = set(self.latent) - {v.name for v in values}
        if unknown:
            raise ValueError(f"latent names {sorted(unknown)} are not value variables of the model; "
                             f"choose from {[v.name for v in values]}")
        self.n_latent, self.n_phi = nx, nphi
        self._start = self.split(point)
        f = graph_replace(self.model.logp(), replace)
        gx, gphi = pt.grad(f, [x, phi])
        hess = pytensor.gradient.jacobian(gx, x, vectorize=True)
        held = pt.matrix("held")                  # (-H)^-1, held fixed: d/d(.) of sum(held * -H) = d log det(-H)
        dlogdet_x, dlogdet_phi = pt.grad(-(held * hess).sum(), [x, phi])
        w = pt.vector("w")
        cross = pt.grad((w * gx).sum(), phi)
        self._x, self._phi, self._replace = x, phi, replace
        self._newton = pytensor.function([x, phi], [f, gx, hess], trust_input=True, mode=self.compile_mode)
        self._parts = pytensor.function([x, phi, held], [gphi, dlogdet_x, dlogdet_phi], trust_input=True,
                                        mode=self.compile_mode)
        self._cross = pytensor.function([x, phi, w], cross, trust_input=True, mode=self.compile_mode)

    # --- layout ---------------------------------------------------------------------------------------
    def split(self, point: dict) -> tuple[np.ndarray, np.ndarray]:
        """(x, phi) from a point of value variables (name -> array)."""
        xs, ps = [], []
        for name, _shape, k, _, _ in self._layout:
            flat = np.asarray(point[name], dtype=float).ravel()
            xs.append(flat[:k])
            ps.append(flat[k:])
        return np.concatenate(xs), np.concatenate(ps)

    def join(self, x: np.ndarray, phi: np.ndarray) -> dict:
        """A point of value variables (name -> array) from (x, phi)."""
        out = {}
        for name, shape, k, ox, op in self._layout:
            size = int(np.prod(shape))
            out[name] = np.concatenate([x[ox:ox + k], phi[op:op + size - k]]).reshape(shape)
        return out

    @property
    def start(self) -> tuple[np.ndarray, np.ndarray]:
        """The model's initial point, split."""
        return self._start[0].copy(), self._start[1].copy()

    def phi_names(self) -> list[str]:
        """A label per entry of ``phi`` (``name[i]``)."""
        return [f"{name}[{i}]" for name, shape, k, _, _ in self._layout for i in range(k, int(np.prod(shape)))]

    # --- the approximation ------------------------------------------------------------------------------
    def conditional_mode(self, phi: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """Conditional mode ``x*`` by damped Newton from ``x0``: (x*, f, H, Cholesky factor of -H)."""
        t0 = time.process_time()
        x = x0.copy()
        f, g, h = self._newton(x, phi)
        damping = 0.0
        for _ in range(NEWTON_MAX):
            self.counts.newton += 1
            chol = _cholesky(-h, damping)
            if chol is None:
                damping = max(1e-3, 10 * damping)
                continue
            step = scipy.linalg.cho_solve((chol, True), g)
            scale = 1.0
            while True:
                x_new = x + scale * step
                f_new, g_new, h_new = self._newton(x_new, phi)
                if np.isfinite(f_new) and f_new >= f - 1e-10 * abs(f):
                    break
                scale /= 2
                if scale < 1e-8:
                    raise FloatingPointError("the conditional mode's Newton steps do not increase the density")
            x, f, g, h = x_new, f_new, g_new, h_new
            damping = damping / 10 if damping > 1e-6 else 0.0
            if np.max(np.abs(scale * step)) < NEWTON_TOL:
                break
        chol = _cholesky(-h, 0.0)
        if chol is None:
            raise FloatingPointError("the Hessian at the conditional mode is not negative definite")
        self.counts.seconds_mode += time.process_time() - t0
        return x, f, h, chol

    def marginal(self, phi: np.ndarray, x0: np.ndarray, gradient: bool = True):
        """Approximate log p(phi, y) and its gradient; also the mode and Cholesky factor of -H.

        Returns (value, gradient or None, x*, chol).
        """
        self.counts.marginal += 1
        x, f, _h, chol = self.conditional_mode(phi, x0)
        logdet = 2.0 * np.log(np.diag(chol)).sum()
        value = f + 0.5 * self.n_latent * np.log(2 * np.pi) - 0.5 * logdet
        if not gradient:
            return value, None, x, chol
        t0 = time.process_time()
        held = scipy.linalg.cho_solve((chol, True), np.eye(self.n_latent))
        gphi, dld_x, dld_phi = self._parts(x, phi, held)
        w = scipy.linalg.cho_solve((chol, True), dld_x)           # (-H)^-1 d logdet/dx
        grad = gphi - 0.5 * (dld_phi + self._cross(x, phi, w))
        self.counts.seconds_gradient += time.process_time() - t0
        return value, grad, x, chol

    def conditional_draw(self, x: np.ndarray, chol: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A draw of the latent values from N(x*, (-H)^-1), given the Cholesky factor of -H."""
        return x + scipy.linalg.solve_triangular(chol.T, rng.standard_normal(len(x)), lower=False)

    def deterministics(self, names: list[str]):
        """A function (x, phi) -> the model's variables ``names`` (values on their own scale)."""
        outputs = self.model.replace_rvs_by_values([self.model[n] for n in names])
        outputs = graph_replace(outputs, self._replace)
        fn = pytensor.function([self._x, self._phi], outputs, on_unused_input="ignore", mode=self.compile_mode)
        return lambda x, phi: dict(zip(names, fn(x, phi), strict=True))


def _cholesky(matrix: np.ndarray, damping: float) -> np.ndarray | None:
    """Lower Cholesky factor of ``matrix + damping * I``, or None when it is not positive definite."""
    try:
        return scipy.linalg.cholesky(matrix + damping * np.eye(len(matrix)), lower=True)
    except np.linalg.LinAlgError:
        return None


def nutpie_model(laplace: EmbeddedLaplace, names: list[str]):
    """A nutpie model (from Python functions) of ``phi`` under the approximate marginal.

    Its draws hold ``phi`` and the model's variables ``names``, these computed from a draw of the latent
    values from their conditional Gaussian at each draw of ``phi``. Sample it with
    :func:`nexusbayes.inference.sample.sample_compiled` (one core: the functions hold the last mode per chain).
    """
    from nutpie.compiled_pyfunc import from_pyfunc

    values = laplace.deterministics(names)
    x_start, phi_start = laplace.start
    x_start, _, _, _ = laplace.conditional_mode(phi_start, x_start)
    shapes = {n: np.shape(v) for n, v in values(x_start, phi_start).items()}

    def make_logp_fn():
        state = {"x": x_start.copy()}

        def logp(phi, **_):
            try:
                value, grad, x, _ = laplace.marginal(phi, state["x"])
            except FloatingPointError:
                return -np.inf, np.zeros_like(phi)
            state["x"] = x
            return float(value), np.asarray(grad, dtype="float64", order="C")
        return logp

    def make_expand_fn(seed1, seed2, chain):
        rng = np.random.default_rng([seed1, seed2, chain])
        state = {"x": x_start.copy()}

        def expand(phi, **_):
            _, _, x, chol = laplace.marginal(phi, state["x"], gradient=False)
            state["x"] = x
            out = values(laplace.conditional_draw(x, chol, rng), phi)
            out = {n: np.asarray(v, dtype="float64", order="C") for n, v in out.items()}
            out["phi"] = np.asarray(phi, dtype="float64", order="C")
            return out
        return expand

    def initial(seed):
        rng = np.random.default_rng(seed)
        return phi_start + rng.uniform(-0.1, 0.1, size=len(phi_start))

    return from_pyfunc(laplace.n_phi, make_logp_fn, make_expand_fn, [np.dtype("float64")] * (len(names) + 1),
                       [shapes[n] for n in names] + [(laplace.n_phi,)], list(names) + ["phi"],
                       make_initial_point_fn=initial)
