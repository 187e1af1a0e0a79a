"""Update rules as small composable transformations (optax-style), batched over runs.

A :class:`Transform` is a pair ``init(params) -> state`` and
``update(direction, state, info) -> (direction, state)``. Directions are *ascent* directions of
shape ``(R, d)``; ``chain`` composes transforms left to right, and the last one (``scale``,
``heun`` or ``midpoint``) turns the direction into the parameter increment:
``theta <- theta + increment``.
``info`` carries what some rules need besides the gradient (PG-SOM's Hessian diagonal, the
natural gradient's Fisher-vector product). States are NamedTuples named after the math.

The rules (alpha = effective learning rate, ``g`` the REINFORCE estimate of grad J):

* ``pg``       theta <- theta + alpha g
* ``adam``     m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  theta <- theta + alpha m_hat/(sqrt(v_hat)+eps)
* ``hessian``  (PG-SOM, Algorithm 1) the same with v <- b2 v + (1-b2) h^2, h the diag-Hessian
  estimate of J; option ``second_moment="abs"``: v <- b2 v + (1-b2)|h|, step m_hat/(v_hat+eps);
  option ``second_moment="signed"``: v <- b2 v + (1-b2) h (signed EMA), step m_hat/(|v_hat|+eps)
* ``npg``      theta <- theta + alpha (F + lambda I)^-1 g  (conjugate gradient)
* ``rk``       RK2 on d theta/dt = grad J, k1 = g(theta), k2 = g(theta~). ``heun`` (default):
  theta~ = theta + alpha k1, theta <- theta + alpha/2 (k1 + k2). Two calls of ``update``: the
  first moves to theta~, the second from theta~ to theta + alpha/2 (k1 + k2), i.e. by
  alpha/2 (k2 - k1). ``midpoint`` (option ``rk_rule="midpoint"``): theta~ = theta + alpha/2 k1,
  theta <- theta + alpha k2; the first call moves by alpha/2 k1, the second by
  alpha k2 - alpha/2 k1.

``clip_by_global_norm`` placed first clips every gradient evaluation (both RK stages). With
``hessian``, clipping acts on g only; h is used as estimated.

The reconstruction of each rule from the paper's text, and the options the paper leaves open:
docs/design.md, 'Algorithms' and 'Choices the paper leaves open'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from pgsom.config import AlgoConfig


class UpdateInfo(NamedTuple):
    """Extra inputs of ``update`` besides the ascent direction."""

    hessian: torch.Tensor | None = None  # (R, d) diag-Hessian estimate h
    fvp: Callable[[torch.Tensor], torch.Tensor] | None = None  # v -> F v per run


class Transform(NamedTuple):
    init: Callable[[torch.Tensor], Any]
    update: Callable[[torch.Tensor, Any, UpdateInfo], tuple[torch.Tensor, Any]]


class EmptyState(NamedTuple):
    pass


class MomentsState(NamedTuple):
    """Adam-style moments: ``count`` steps taken, first moment ``m``, second moment ``v``."""

    count: torch.Tensor  # (R, 1) float64
    m: torch.Tensor  # (R, d)
    v: torch.Tensor  # (R, d)


class HeunState(NamedTuple):
    """RK2 bookkeeping (``heun`` and ``midpoint``): ``stage`` 0 awaits k1, 1 awaits k2; ``k1`` the
    first-stage slope."""

    stage: int
    k1: torch.Tensor


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


def _unit(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def scale(step_size: float) -> Transform:
    """u -> step_size * u (ascent: the increment has the direction's sign)."""
    _positive("step_size", step_size)
    return Transform(lambda params: EmptyState(), lambda u, state, info: (step_size * u, state))


def clip_by_global_norm(max_norm: float) -> Transform:
    """Rescale each run's direction to norm ``max_norm`` when it is longer (per run)."""
    _positive("max_norm", max_norm)

    def update(u, state, info):
        norm = u.norm(dim=-1, keepdim=True)
        factor = torch.where(norm > max_norm, max_norm / norm, torch.ones_like(norm))
        return u * factor, state

    return Transform(lambda params: EmptyState(), update)


def _init_moments(params: torch.Tensor) -> MomentsState:
    zeros = torch.zeros_like(params)
    return MomentsState(torch.zeros(params.shape[0], 1, dtype=torch.float64), zeros, zeros.clone())


_DENOMINATORS = {"sqrt": torch.sqrt, "plain": lambda v: v, "abs": torch.abs}
"""What the step divides by, before adding eps: sqrt(v_hat), v_hat, or |v_hat|."""


def _moment_step(u, state: MomentsState, second, b1, b2, eps, denominator: str):
    count = state.count + 1
    m = b1 * state.m + (1 - b1) * u
    v = b2 * state.v + (1 - b2) * second
    m_hat = m / (1 - b1**count).to(u.dtype)
    v_hat = v / (1 - b2**count).to(u.dtype)
    denom = _DENOMINATORS[denominator](v_hat) + eps
    return m_hat / denom, MomentsState(count, m, v)


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Transform:
    """Adam's direction m_hat / (sqrt(v_hat) + eps), v tracking g^2 (torch.optim.Adam's rule)."""
    _unit("beta1", b1), _unit("beta2", b2), _positive("eps", eps)
    return Transform(
        _init_moments, lambda u, state, info: _moment_step(u, state, u * u, b1, b2, eps, denominator="sqrt")
    )


_SECOND_MOMENTS = {
    "square": (lambda h: h * h, "sqrt"),
    "abs": (torch.abs, "plain"),
    "signed": (lambda h: h, "abs"),
}
"""second_moment -> (what v tracks as a function of h, the step's denominator)."""


def scale_by_hessian_moments(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, second_moment: str = "square"
) -> Transform:
    """PG-SOM's direction m_hat / (denominator + eps), v <- b2 v + (1-b2) x:

    * ``square`` (default, as AdaHessian): x = h^2, denominator sqrt(v_hat);
    * ``abs``: x = |h|, denominator v_hat;
    * ``signed``: x = h (the signed EMA of h, no square, no abs), denominator |v_hat|.
    """
    _unit("beta1", b1), _unit("beta2", b2), _positive("eps", eps)
    if second_moment not in _SECOND_MOMENTS:
        raise ValueError(f"second_moment must be one of {tuple(_SECOND_MOMENTS)}, got {second_moment!r}")
    tracked, denominator = _SECOND_MOMENTS[second_moment]

    def update(u, state, info):
        if info.hessian is None:
            raise ValueError("scale_by_hessian_moments needs info.hessian (the diag-Hessian estimate)")
        return _moment_step(u, state, tracked(info.hessian), b1, b2, eps, denominator)

    return Transform(_init_moments, update)


def scale_by_natural_gradient(damping: float = 0.1, cg_iters: int = 10) -> Transform:
    """(F + damping I)^-1 u by conjugate gradient, F given as ``info.fvp``."""
    from pgsom.estimators import damped_solve

    _positive("damping", damping)

    def update(u, state, info):
        if info.fvp is None:
            raise ValueError("scale_by_natural_gradient needs info.fvp (a Fisher-vector product)")
        return damped_solve(info.fvp, u, damping, cg_iters), state

    return Transform(lambda params: EmptyState(), update)


def heun(step_size: float) -> Transform:
    """Heun's two-stage RK2 increment: alpha k1 to theta~, then alpha/2 (k2 - k1) to
    theta + alpha/2 (k1 + k2) (see module docstring); ``state.stage`` says which call is next."""
    _positive("step_size", step_size)

    def update(u, state: HeunState, info):
        if state.stage == 0:
            return step_size * u, HeunState(1, u)
        return 0.5 * step_size * (u - state.k1), HeunState(0, torch.zeros_like(u))

    return Transform(lambda params: HeunState(0, torch.zeros_like(params)), update)


def midpoint(step_size: float) -> Transform:
    """The midpoint rule's two-stage RK2 increment: alpha/2 k1 to theta~, then
    alpha k2 - alpha/2 k1 to theta + alpha k2 (see module docstring); ``state.stage`` says which
    call is next."""
    _positive("step_size", step_size)

    def update(u, state: HeunState, info):
        if state.stage == 0:
            return 0.5 * step_size * u, HeunState(1, u)
        return step_size * u - 0.5 * step_size * state.k1, HeunState(0, torch.zeros_like(u))

    return Transform(lambda params: HeunState(0, torch.zeros_like(params)), update)


def chain(*transforms: Transform) -> Transform:
    """Apply ``transforms`` in order; the state is the tuple of their states."""

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(u, state, info):
        new_states = []
        for t, s in zip(transforms, state):
            u, s = t.update(u, s, info)
            new_states.append(s)
        return u, tuple(new_states)

    return Transform(init, update)


def make_rule(algo: AlgoConfig) -> Transform:
    """The update rule of a configured method, clipping first when ``clip_norm`` is set."""
    lr = algo.effective_lr
    head = [clip_by_global_norm(algo.clip_norm)] if algo.clip_norm is not None else []
    if algo.method == "pg":
        body = [scale(lr)]
    elif algo.method == "adam":
        body = [scale_by_adam(algo.beta1, algo.beta2, algo.eps), scale(lr)]
    elif algo.method == "hessian":
        body = [scale_by_hessian_moments(algo.beta1, algo.beta2, algo.eps, algo.second_moment), scale(lr)]
    elif algo.method == "npg":
        body = [scale_by_natural_gradient(algo.npg_damping, algo.npg_cg_iters), scale(lr)]
    elif algo.method == "rk":
        body = [heun(lr) if algo.rk_rule == "heun" else midpoint(lr)]
    else:  # pragma: no cover - AlgoConfig validates
        raise ValueError(f"unknown method {algo.method!r}")
    return chain(*head, *body)


def select_state(state: Any, index: torch.Tensor) -> Any:
    """The rows ``index`` of every (R, ...) tensor in a (nested) transform state."""
    if isinstance(state, torch.Tensor):
        return state[index]
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(select_state(s, index) for s in state))
    if isinstance(state, tuple):
        return tuple(select_state(s, index) for s in state)
    return state
