"""pypose's SO(3) Lie group Functions (https://github.com/pypose/pypose), fuzzed.

A rotation is a unit quaternion ``[x, y, z, w]`` (pypose's layout). The references follow the
textbook maps (Sola, Deray & Atchuthan, "A micro Lie theory", 2018): ``Exp(phi) = [sin(t/2)
phi / t, cos(t/2)]`` with ``t = |phi|``, ``Log(q) = 2 atan(|v| / w) v / |v|``, the Hamilton
product, the conjugate as inverse, and ``q p q*`` as the action on a point.

pypose documents its gradients as tangent-space ones: the gradient of a group-valued input is
taken along a left perturbation ``Exp(d) X`` (three numbers, padded with a zero for ``w``), and
the cotangent of a group-valued output is read the same way. `_perturbed` and `_tangent` write
that convention as plain math, so autograd and ``jax.vjp`` give the same numbers; second
derivatives have no such reading, so these targets are checked to first order.

    pip install -e ".[examples]" && fuzzgrad fuzz examples/pypose_ops.py
"""

from __future__ import annotations

from _arrays import cross, stop, xp
from pypose.lietensor.operation import SO3_Act, SO3_Inv, SO3_Log, SO3_Mul, so3_Exp

import fuzzgrad as fg

# --- the documented math --------------------------------------------------------------------


def _parts(q):
    return q[..., :3], q[..., 3:]


def qmul(a, b):
    """The Hamilton product of quaternions ``[v, w]``."""
    (av, aw), (bv, bw) = _parts(a), _parts(b)
    n = xp(a)
    v = aw * bv + bw * av + cross(av, bv)
    return n.concatenate([v, aw * bw - n.sum(av * bv, axis=-1, keepdims=True)], axis=-1)


def conj(q):
    """The conjugate, which is the inverse of a unit quaternion."""
    v, w = _parts(q)
    return xp(q).concatenate([-v, w], axis=-1)


def _perturbed(q):
    """``q`` in value; in derivative, ``Exp(d) q`` at ``d = 0`` with ``d`` standing for q's
    first three entries (``Exp(d) = [d / 2, 1]`` to first order) and none along ``w``."""
    n = xp(q)
    d = q[..., :3] - stop(q[..., :3])
    return qmul(n.concatenate([d / 2, n.ones_like(d[..., :1])], axis=-1), stop(q))


def _tangent(q):
    """``q`` in value; in derivative, the left perturbation ``d`` with ``q = Exp(d) q0``, read
    as ``2 vec(q q0*)`` (0 along ``w``): the cotangent convention of a group-valued output."""
    n = xp(q)
    d = 2 * qmul(q, conj(stop(q)))[..., :3]
    return stop(q) + n.concatenate([d - stop(d), n.zeros_like(d[..., :1])], axis=-1)


def _norm(v):
    """|v| and a copy that is 1 where |v| is 0, safe to divide by and differentiate."""
    n = xp(v)
    sq = n.sum(v * v, axis=-1, keepdims=True)
    return n.sqrt(n.where(sq > 0, sq, 1.0)), sq > 0


def exp(phi):
    n = xp(phi)
    t, nonzero = _norm(phi)
    sq = n.sum(phi * phi, axis=-1, keepdims=True)
    imag = n.where(nonzero, n.sin(t / 2) / t, 0.5 - sq / 48)
    real = n.where(nonzero, n.cos(t / 2), 1 - sq / 8)
    return n.concatenate([imag * phi, real], axis=-1)


def log(q):
    n = xp(q)
    v, w = _parts(q)
    t, nonzero = _norm(v)
    sq = n.sum(v * v, axis=-1, keepdims=True)
    # the angle in [-pi, pi]: atan(|v| / w); at w = 0 (a half turn, where Log jumps to -pi)
    # the value +pi and the derivative of the side w >= 0 (a convention: pypose picks that side)
    angle = n.where(w < 0, n.arctan2(-t, -w), n.arctan2(t, w))
    w0 = n.where(nonzero, 1.0, w)  # the series for |v| = 0, kept off the other branch's w
    return n.where(nonzero, 2 * angle / t, 2 / w0 - 2 * sq / (3 * w0**3)) * v


def act(q, p):
    """q p q*, with the point p as the quaternion [p, 0]."""
    n = xp(p)
    q = q * n.ones_like(p[..., :1])  # broadcast the batch dims
    point = n.concatenate([p, n.zeros_like(p[..., :1])], axis=-1)
    return qmul(qmul(q, point), conj(q))[..., :3]


# --- the registrations ----------------------------------------------------------------------

rotations = fg.tensor("*batch 4", structure="unit_rows")
vectors = fg.tensor("*batch 3", low=-3, high=3)
first_order = dict(max_order=1)
BOOLEAN_MASK = "P1: declares generate_vmap_rule=True, but torch.func.vmap over it raises"

fg.register(
    so3_Exp,
    reference=lambda phi: _tangent(exp(phi)),
    jax_reference=lambda phi: _tangent(exp(phi)),
    inputs=[vectors],
    xfail={"vmap": BOOLEAN_MASK},
    **first_order,
)
for function, reference, inputs in [
    (SO3_Log, lambda q: log(_perturbed(q)), [rotations]),
    (SO3_Act, lambda q, p: act(_perturbed(q), p), [rotations, vectors]),
    (SO3_Mul, lambda a, b: _tangent(qmul(_perturbed(a), _perturbed(b))), [rotations, rotations]),
    (SO3_Inv, lambda q: _tangent(conj(_perturbed(q))), [rotations]),
]:
    fg.register(
        function, reference=reference, jax_reference=reference, inputs=inputs, **first_order
    )
