"""The fused training kernel: CartPole episodes of every run and their per-episode estimates,
compiled with numba, with no Python or numpy call per step.

The reference implementation is the torch closed-form code (:mod:`pgsom.estimators`,
:mod:`pgsom.policy`) with the numpy CartPole (:class:`pgsom.envs.CartPoleBatch`); the kernel
computes the same quantities for a softmax policy with one tanh hidden layer
(``PolicySpec(4, 2, (H,))``) and ``tests/test_kernels.py`` checks it against them:

* :func:`rollout`: for each active run, one episode of gymnasium's CartPole-v1 (float64 state,
  float32 observations, termination at |x| > x_threshold or |theta| > theta_threshold, reward 1
  per step, truncation at ``max_steps``), acting with the float32 policy
  ``softmax(W2 tanh(W1 x + b1) + b2)`` (:func:`_policy`: the logits' sums over hidden units in
  :data:`LANES` interleaved partial sums, added in a fixed order) by inverse-CDF sampling of
  pre-drawn uniforms (action = number of cumulative probabilities <= u). It stores
  observations, hidden activations and logits for the learning side.
* :func:`estimates`: per run, from the stored episode (or activations recomputed at another
  parameter by :func:`forward`) and float32 advantages ``A_t``:
  ``g_J = sum_t A_t s_t`` (s_t = grad log pi(a_t|s_t)), the entropy gradient
  ``grad sum_t H(pi(.|s_t))``, the score sum ``S = sum_t s_t`` and the exact diagonal
  ``diag grad^2 sum_t A_t log pi(a_t|s_t)`` (the closed form of
  :func:`pgsom.estimators.surrogate_diag_hessian_exact`).
* :func:`fisher_vector_product`: ``F v`` with F the mean over the episode's steps of
  ``J_t^T M_t J_t`` (M_t = delta delta^T, empirical; or diag p - p p^T, expected).

Every kernel takes, last, ``sel``: the row positions this call computes (int64; :func:`every`
for all). Rows are independent (each reads and writes only its own rows), so
:class:`RowSplit` runs one call's rows on several threads by the same serial code, which
releases the GIL; the numbers do not depend on the split.

Numerics: the policy acts in float32 as the numpy actor does; the learning side works in
float64 from the stored float32 values and returns float32. Sums over time run in step order
over the episode's real steps only, so a run's numbers never depend on its batch or padding.
The code is compiled without fast-math (no reassociation, no FMA contraction) for the fixed
target of the portable numerics mode (``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` in
:data:`pgsom.numerics.PORTABLE_ENV`), so AVX2 and AVX-512 machines run the same instructions;
``exp``/``log``/``tanhf``/``sin``/``cos`` come from glibc's libm, which picks the same (FMA)
variants on every machine the guarantee covers.

Parameter layout (as :mod:`pgsom.policy`): ``W1`` (H, O) row-major, ``b1`` (H), ``W2`` (A, H),
``b2`` (A).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

__all__ = ["tanh_f32", "rollout", "forward", "estimates", "fisher_vector_product", "step_scores", "empirical_fvp",
           "RowSplit", "CARTPOLE_OBS", "CARTPOLE_ACTIONS", "LANES"]


CARTPOLE_OBS = 4
CARTPOLE_ACTIONS = 2

_JIT = {"cache": True, "nogil": True, "boundscheck": False, "fastmath": False, "error_model": "numpy"}


_LN2_HI = 0.693147180369123816490  # ln 2 split so that k * _LN2_HI is exact for |k| < 2^20
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700
_TANH_SMALL = 0.0625


@njit(inline="always", **_JIT)
def _tanh_reduce(x):
    """``y = 2 min(|x|, 9.1) = k ln2 + r``: returns (r, k), |r| <= ln2 / 2."""
    y = 2.0 * min(abs(x), 9.1)
    k = np.int32(y * _INV_LN2 + 0.5)  # y >= 0: truncation rounds to nearest (int32: vectorisable)
    kf = np.float64(k)
    return (y - kf * _LN2_HI) - kf * _LN2_LO, k


@njit(inline="always", **_JIT)
def _tanh_exp_poly(r):
    """exp(-r) by its Taylor series to r^9 (Horner)."""
    return 1.0 + r * (-1.0 + r * (1.0 / 2 + r * (-1.0 / 6 + r * (1.0 / 24 + r * (-1.0 / 120 + r * (
        1.0 / 720 + r * (-1.0 / 5040 + r * (1.0 / 40320 + r * (-1.0 / 362880)))))))))


@njit(inline="always", **_JIT)
def _tanh_scale(k):
    """``2^-k`` (0 <= k <= 26) as a product of exact powers of two."""
    scale = 1.0
    scale *= 0.5 if (k & 1) else 1.0
    scale *= 0.25 if (k & 2) else 1.0
    scale *= 0.0625 if (k & 4) else 1.0
    scale *= 0.00390625 if (k & 8) else 1.0
    scale *= 1.52587890625e-05 if (k & 16) else 1.0
    return scale


@njit(inline="always", **_JIT)
def _tanh_finish(x, er, scale):
    """tanh from ``er = exp(-r)`` and ``scale = 2^-k``: ``e = exp(-y) = er 2^-k`` (exact: a
    power of two, no underflow), then ``sign(x) (1 - e) / (1 + e)``, or the odd series for
    |x| < 1/16; rounded to float32."""
    e = er * scale
    large = (1.0 - e) / (1.0 + e)
    large = math.copysign(large, x)
    x2 = x * x
    small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))))
    return np.float32(small if abs(x) < _TANH_SMALL else large)


@njit(inline="always", **_JIT)
def tanh_f32(z):
    """tanh of a float32, computed in float64 with arithmetic only and rounded to float32.

    |z| < 1/16: the odd Taylor series to z^7 (truncation < 1e-11 relative). Otherwise
    ``sign(z) (1 - e) / (1 + e)`` with ``e = exp(-2|z|)``, the exponential by range reduction
    (``y = k ln2 + r``, |r| <= ln2/2, ln 2 in two parts) and its Taylor series to r^9 (< 1e-11), times
    ``2^-k`` built from exact powers of two; |z| >= 9.1 gives +-1 (tanh rounds to 1 in float32
    there). Within one float32 ulp of the exact tanh (tested on a dense grid), the same bits on
    every machine (no library call, no fast-math), and free of calls, so loops over hidden units
    vectorise. :func:`tanh_f32_inplace` computes it over an array in stages (the same
    operations on each element, so the same bits).
    """
    x = np.float64(z)
    r, k = _tanh_reduce(x)
    return _tanh_finish(x, _tanh_exp_poly(r), _tanh_scale(k))


@njit(inline="always", **_JIT)
def tanh_f32_inplace(z, rbuf, sbuf):
    """``z[j] = tanh_f32(z[j])`` for a float32 array, in three loops over the elements (range
    reduction; polynomial and ``2^-k``; the rest) with ``rbuf`` (float64) and ``sbuf`` (int64)
    of z's size as scratch: each loop body is short, so the processor overlaps many elements'
    dependency chains, and ``2^-k`` is built from its bits (``(1023 - k) << 52``, the same
    number as :func:`_tanh_scale`'s product), which vectorises. About 1.3x faster than one loop
    over :func:`tanh_f32` on 64 units; the bits are :func:`tanh_f32`'s (tested)."""
    n = z.shape[0]
    scale = sbuf.view(np.float64)
    for j in range(n):
        rbuf[j], sbuf[j] = _tanh_reduce(np.float64(z[j]))  # sbuf: k
    for j in range(n):
        rbuf[j] = _tanh_exp_poly(rbuf[j])
        sbuf[j] = (np.int64(1023) - sbuf[j]) << 52  # the bits of 2^-k
    for j in range(n):
        z[j] = _tanh_finish(np.float64(z[j]), rbuf[j], scale[j])


LANES = 8
"""Partial sums of a reduction over hidden units: ``LANES`` interleaved accumulators, added in
a fixed tree. The loop vectorises (one register of float32 lanes), and the bits are the same on
every instruction set because the order is written out, not left to the compiler."""


@njit(**_JIT)
def _unpack(th, obs_size, hidden, n_actions, w1t, b1, w2, b2):
    """One run's parameters into contiguous float32 blocks: w1t (O, H) = W1^T, b1 (H), w2 (A, H),
    b2 (A): every loop over hidden units then reads consecutive memory."""
    w2_start = hidden * obs_size + hidden
    for j in range(hidden):
        for i in range(obs_size):
            w1t[i, j] = th[j * obs_size + i]
        b1[j] = th[hidden * obs_size + j]
    for k in range(n_actions):
        for j in range(hidden):
            w2[k, j] = th[w2_start + k * hidden + j]
        b2[k] = th[w2_start + n_actions * hidden + k]


@njit(inline="always", **_JIT)
def _lane_sum(part, k):
    """The fixed-order sum of ``part[k, :8]``."""
    return (((part[k, 0] + part[k, 1]) + (part[k, 2] + part[k, 3]))
            + ((part[k, 4] + part[k, 5]) + (part[k, 6] + part[k, 7])))


@njit(inline="always", **_JIT)
def _policy(w1t, b1, w2, b2, x, act_out, logit_out, part, rbuf, sbuf):
    """float32 forward of one observation ``x`` (O): ``act_out`` (H) = tanh(W1 x + b1),
    ``logit_out`` (A) = W2 act + b2.

    ``z_j = (((b1_j + x_0 W1_j0) + x_1 W1_j1) + ...)`` in that order; ``l_k = b2_k + S_k`` with
    ``S_k`` the sum over hidden units in :data:`LANES` interleaved partial sums (``part`` (A, 8)
    scratch), added by :func:`_lane_sum`, then the units left over in order. ``rbuf``, ``sbuf``
    (H): :func:`tanh_f32_inplace`'s scratch."""
    obs_size, hidden = w1t.shape[0], w1t.shape[1]
    n_actions = w2.shape[0]
    for j in range(hidden):
        act_out[j] = b1[j]
    for i in range(obs_size):
        xi = x[i]
        for j in range(hidden):
            act_out[j] = act_out[j] + xi * w1t[i, j]
    tanh_f32_inplace(act_out, rbuf, sbuf)
    head = hidden - hidden % LANES
    for k in range(n_actions):
        for lane in range(LANES):
            part[k, lane] = 0.0
        for j0 in range(0, head, LANES):
            for lane in range(LANES):
                part[k, lane] = part[k, lane] + w2[k, j0 + lane] * act_out[j0 + lane]
        s = _lane_sum(part, k)
        for j in range(head, hidden):
            s = s + w2[k, j] * act_out[j]
        logit_out[k] = b2[k] + s


@njit(inline="always", **_JIT)
def _sample(logits, u, probs):
    """Inverse-CDF action for a uniform ``u``: the number of cumulative float32 softmax
    probabilities ``<= u`` (the last one, 1 up to rounding, is not counted). ``probs`` (A):
    scratch."""
    n_actions = logits.shape[0]
    m = np.float32(-np.inf)
    for k in range(n_actions):
        if logits[k] > m:
            m = logits[k]
    total = np.float32(0.0)
    for k in range(n_actions):
        e = np.float32(math.exp(logits[k] - m))
        probs[k] = e
        total = total + e
    a = 0
    cdf = np.float32(0.0)
    for k in range(n_actions - 1):
        cdf = cdf + probs[k] / total
        if u >= np.float64(cdf):
            a += 1
    return a


@njit(inline="always", **_JIT)
def _rollout_row(r, theta, state, uniforms, active, hidden, consts, max_steps, obs_out, act_out, logit_out, actions_out,
                 lengths, prev_lengths):
    """Row ``r`` of :func:`rollout`."""
    gravity, masspole, total_mass, length = consts[0], consts[1], consts[2], consts[3]
    polemass_length, force_mag, tau = consts[4], consts[5], consts[6]
    x_threshold, theta_threshold = consts[7], consts[8]
    n_actions = logit_out.shape[2]
    x = np.empty(4, np.float32)
    probs = np.empty(n_actions, np.float32)
    w1t, b1 = np.empty((4, hidden), np.float32), np.empty(hidden, np.float32)
    w2, b2 = np.empty((n_actions, hidden), np.float32), np.empty(n_actions, np.float32)
    part = np.empty((n_actions, LANES), np.float32)
    rbuf, sbuf = np.empty(hidden), np.empty(hidden, np.int64)  # tanh's scratch
    steps = 0
    if active[r]:
        s0, s1, s2, s3 = state[r, 0], state[r, 1], state[r, 2], state[r, 3]
        _unpack(theta[r], 4, hidden, n_actions, w1t, b1, w2, b2)
        for t in range(max_steps):
            x[0], x[1], x[2], x[3] = np.float32(s0), np.float32(s1), np.float32(s2), np.float32(s3)
            for i in range(4):
                obs_out[r, t, i] = x[i]
            _policy(w1t, b1, w2, b2, x, act_out[r, t], logit_out[r, t], part, rbuf, sbuf)
            a = _sample(logit_out[r, t], uniforms[r, t], probs)
            actions_out[r, t] = a
            force = force_mag if a == 1 else -force_mag
            costheta = math.cos(s2)
            sintheta = math.sin(s2)
            temp = (force + polemass_length * (s3 * s3) * sintheta) / total_mass
            thetaacc = (gravity * sintheta - costheta * temp) / (
                length * (4.0 / 3.0 - masspole * (costheta * costheta) / total_mass))
            xacc = temp - polemass_length * thetaacc * costheta / total_mass
            s0, s1, s2, s3 = s0 + tau * s1, s1 + tau * xacc, s2 + tau * s3, s3 + tau * thetaacc
            steps = t + 1
            if s0 < -x_threshold or s0 > x_threshold or s2 < -theta_threshold or s2 > theta_threshold:
                break
        state[r, 0], state[r, 1], state[r, 2], state[r, 3] = s0, s1, s2, s3
    for t in range(steps, prev_lengths[r]):
        obs_out[r, t, :] = 0.0
        act_out[r, t, :] = 0.0
        logit_out[r, t, :] = 0.0
        actions_out[r, t] = 0
    lengths[r] = steps
    prev_lengths[r] = steps


@njit(**_JIT)
def rollout(theta, state, uniforms, active, hidden, consts, max_steps, obs_out, act_out, logit_out,
            actions_out, lengths, prev_lengths, sel):
    """One CartPole episode in every active run, from ``state`` (R, 4) float64 (updated in place).

    ``consts``: gravity, masspole, total_mass, length, polemass_length, force_mag, tau,
    x_threshold, theta_threshold (read from gymnasium's class by the caller). Writes
    ``obs_out`` (R, T, 4) f32, ``act_out`` (R, T, H) f32, ``logit_out`` (R, T, A) f32,
    ``actions_out`` (R, T) int64 and ``lengths`` (R); steps in ``[length, prev_length)``
    left from an earlier, longer episode are zeroed (padding stays zero). Inactive runs get
    length 0."""
    for s in range(sel.shape[0]):
        r = sel[s]
        _rollout_row(r, theta, state, uniforms, active, hidden, consts, max_steps, obs_out, act_out, logit_out,
                     actions_out, lengths, prev_lengths)


@njit(inline="always", **_JIT)
def _forward_row(i, theta, obs, lengths, rows, act_out, logit_out):
    """Row ``i`` of :func:`forward`."""
    n_actions, hidden, obs_size = logit_out.shape[2], act_out.shape[2], obs.shape[2]
    w1t, b1 = np.empty((obs_size, hidden), np.float32), np.empty(hidden, np.float32)
    w2, b2 = np.empty((n_actions, hidden), np.float32), np.empty(n_actions, np.float32)
    part = np.empty((n_actions, LANES), np.float32)
    rbuf, sbuf = np.empty(hidden), np.empty(hidden, np.int64)  # tanh's scratch
    r = rows[i]
    _unpack(theta[i], obs_size, hidden, n_actions, w1t, b1, w2, b2)
    for t in range(lengths[r]):
        _policy(w1t, b1, w2, b2, obs[r, t], act_out[i, t], logit_out[i, t], part, rbuf, sbuf)


@njit(**_JIT)
def forward(theta, obs, lengths, rows, act_out, logit_out, sel):
    """Hidden activations and logits of run ``rows[i]``'s stored episode at parameters
    ``theta[i]`` (float32, as :func:`rollout` computes them): for RK's reused second stage."""
    for s in range(sel.shape[0]):
        i = sel[s]
        _forward_row(i, theta, obs, lengths, rows, act_out, logit_out)


@njit(**_JIT)
def _log_softmax(logits, out):
    m = -np.inf
    for k in range(logits.shape[0]):
        if logits[k] > m:
            m = np.float64(logits[k])
    total = 0.0
    for k in range(logits.shape[0]):
        total += math.exp(np.float64(logits[k]) - m)
    lse = m + math.log(total)
    for k in range(logits.shape[0]):
        out[k] = np.float64(logits[k]) - lse


@njit(**_JIT)
def _vjp_add(theta, x, a, c, hidden, n_actions, out, dz):
    """out += J_t^T c for one step (x: obs, a: activations, c: logit cotangent), float64."""
    obs_size = x.shape[0]
    w2_start = hidden * obs_size + hidden
    b2_start = w2_start + n_actions * hidden
    for j in range(hidden):
        dz[j] = 0.0
    for k in range(n_actions):
        ck = c[k]
        out[b2_start + k] += ck
        base = w2_start + k * hidden
        for j in range(hidden):
            out[base + j] += ck * a[j]
            dz[j] += ck * theta[base + j]
    for j in range(hidden):
        aj = np.float64(a[j])
        d = dz[j] * (1.0 - aj * aj)
        out[hidden * obs_size + j] += d
        for i in range(obs_size):
            out[j * obs_size + i] += d * x[i]


@njit(**_JIT)
def _vjp_set(theta, x, a, c, hidden, n_actions, out, dz):
    """out = J_t^T c for one step (overwritten), float64: the per-step score for c = delta."""
    out[:] = 0.0
    _vjp_add(theta, x, a, c, hidden, n_actions, out, dz)


@njit(inline="always", **_JIT)
def _layout(theta, obs, act, logits):
    """Sizes and offsets of the parameter layout: (A, H, O, d, start of W2, start of b2)."""
    n_actions, hidden, obs_size, d = logits.shape[2], act.shape[2], obs.shape[2], theta.shape[1]
    w2_start = hidden * obs_size + hidden
    return n_actions, hidden, obs_size, d, w2_start, w2_start + n_actions * hidden


@njit(**_JIT)
def _store(acc, acc_b2, out, i, obs_size, hidden, n_actions, w2_start):
    """Write one run's accumulators, hidden-unit major (rows: W1^T, then b1, then W2), into
    ``out[i]`` in the parameter layout, rounded to float32."""
    for j in range(hidden):
        for q in range(obs_size):
            out[i, j * obs_size + q] = np.float32(acc[q, j])
        out[i, hidden * obs_size + j] = np.float32(acc[obs_size, j])
    for k in range(n_actions):
        for j in range(hidden):
            out[i, w2_start + k * hidden + j] = np.float32(acc[obs_size + 1 + k, j])
        out[i, w2_start + n_actions * hidden + k] = np.float32(acc_b2[k])


@njit(inline="always", **_JIT)
def _accumulate_vjp(acc, a_row, w2d, x0, x1, x2, x3, c0, c1, w):
    """``acc += w J_t^T c`` for one step of the CartPole policy (two actions, four
    observations) in the accumulator layout of :func:`_store`, over every hidden unit ``j``:
    with ``dz_j = c_0 W2_0j + c_1 W2_1j`` and ``dd_j = dz_j (1 - a_j^2)``, W2 row k gets
    ``w (c_k a_j)``, b1 ``w dd_j`` and W1 ``w (dd_j x_q)``; ``w = 1`` adds the products
    unweighted (``1 * y`` is ``y`` exactly). One loop per accumulator, so that it vectorises
    over hidden units (a loop writing several accumulators does not)."""
    for j in range(acc.shape[1]):
        aj = np.float64(a_row[j])
        dd = ((0.0 + c0 * w2d[0, j]) + c1 * w2d[1, j]) * (1.0 - aj * aj)
        acc[5, j] += w * (c0 * aj)
        acc[6, j] += w * (c1 * aj)
        acc[4, j] += w * dd
        acc[0, j] += w * (dd * x0)
        acc[1, j] += w * (dd * x1)
        acc[2, j] += w * (dd * x2)
        acc[3, j] += w * (dd * x3)


@njit(inline="always", **_JIT)
def _accumulate_hessian(hs, a_row, w2d, x0, x1, x2, x3, d0, d1, p0, p1, w, cq0, cq1):
    """``hs += diag grad^2 (w log pi(a_t|s_t))`` for one step (layout of :func:`_store`, W2 and
    the hidden units; the caller adds b2's two terms ``cq_k = -w p_k (1 - p_k)``). Per hidden unit,
    with ``dz_j = delta_0 W2_0j + delta_1 W2_1j``, ``E_p[W2_.j]`` and ``E_p[W2_.j^2]``:
    W2 row k gets ``cq_k a_j^2``, b1 ``d2_j = (1 - a_j^2) (-2 a_j dz_j - (1 - a_j^2)
    Var_p(W2_.j)) w`` and W1 ``d2_j x_q^2``."""
    x0s, x1s, x2s, x3s = x0 * x0, x1 * x1, x2 * x2, x3 * x3
    for j in range(hs.shape[1]):
        aj = np.float64(a_row[j])
        a2 = aj * aj
        w0 = w2d[0, j]
        w1 = w2d[1, j]
        dz = (0.0 + d0 * w0) + d1 * w1
        hs[5, j] += cq0 * a2
        hs[6, j] += cq1 * a2
        pw = (0.0 + p0 * w0) + p1 * w1
        pww = (0.0 + p0 * (w0 * w0)) + p1 * (w1 * w1)
        slope = 1.0 - a2
        d2 = slope * (-2.0 * aj * dz - slope * (pww - pw * pw)) * w
        hs[4, j] += d2
        hs[0, j] += d2 * x0s
        hs[1, j] += d2 * x1s
        hs[2, j] += d2 * x2s
        hs[3, j] += d2 * x3s


@njit(inline="always", **_JIT)
def _estimates_row(i, theta, obs, act, logits, actions, lengths, rows, arows, adv, entropy_coef, want_score, want_hessian,
                   g_out, g_return_out, score_out, hess_out):
    """Row ``i`` of :func:`estimates`."""
    n_actions, hidden, obs_size, d, w2_start, b2_start = _layout(theta, obs, act, logits)
    ret, sc = np.zeros((7, hidden)), np.zeros((7, hidden))
    ent_acc, hs = np.zeros((7, hidden)), np.zeros((7, hidden))
    ret_b2, sc_b2, ent_b2, hs_b2 = np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2)
    w2d = np.empty((2, hidden))
    logp = np.empty(2)
    r, ar = rows[i], arows[i]
    th = theta[i]
    for k in range(2):
        for j in range(hidden):
            w2d[k, j] = np.float64(th[w2_start + k * hidden + j])
    for t in range(lengths[r]):
        x0, x1 = np.float64(obs[r, t, 0]), np.float64(obs[r, t, 1])
        x2, x3 = np.float64(obs[r, t, 2]), np.float64(obs[r, t, 3])
        a_row = act[ar, t]
        _log_softmax(logits[ar, t], logp)
        p0, p1 = math.exp(logp[0]), math.exp(logp[1])
        d0 = (1.0 if actions[r, t] == 0 else 0.0) - p0  # delta_t = onehot(a_t) - p_t
        d1 = (1.0 if actions[r, t] == 1 else 0.0) - p1
        w = np.float64(adv[i, t])
        ret_b2[0] += w * d0
        ret_b2[1] += w * d1
        _accumulate_vjp(ret, a_row, w2d, x0, x1, x2, x3, d0, d1, w)  # A_t s_t, s_t = J_t^T delta_t
        if want_score:
            sc_b2[0] += d0
            sc_b2[1] += d1
            _accumulate_vjp(sc, a_row, w2d, x0, x1, x2, x3, d0, d1, 1.0)
        if entropy_coef != 0.0:  # grad H_t = J_t^T c, c_k = -p_k (log p_k + H_t)
            ent = (0.0 - p0 * logp[0]) - p1 * logp[1]
            c0, c1 = -p0 * (logp[0] + ent), -p1 * (logp[1] + ent)
            ent_b2[0] += c0
            ent_b2[1] += c1
            _accumulate_vjp(ent_acc, a_row, w2d, x0, x1, x2, x3, c0, c1, 1.0)
        if want_hessian:
            cq0, cq1 = -w * p0 * (1.0 - p0), -w * p1 * (1.0 - p1)
            hs_b2[0] += cq0
            hs_b2[1] += cq1
            _accumulate_hessian(hs, a_row, w2d, x0, x1, x2, x3, d0, d1, p0, p1, w, cq0, cq1)
    _store(ret, ret_b2, g_return_out, i, obs_size, hidden, n_actions, w2_start)
    if entropy_coef != 0.0:
        ret += entropy_coef * ent_acc
        ret_b2 += entropy_coef * ent_b2
    _store(ret, ret_b2, g_out, i, obs_size, hidden, n_actions, w2_start)
    if want_score:
        _store(sc, sc_b2, score_out, i, obs_size, hidden, n_actions, w2_start)
    if want_hessian:
        _store(hs, hs_b2, hess_out, i, obs_size, hidden, n_actions, w2_start)


@njit(**_JIT)
def estimates(theta, obs, act, logits, actions, lengths, rows, arows, adv, entropy_coef, want_score,
              want_hessian, g_out, g_return_out, score_out, hess_out, sel):
    """Per run ``i`` of a group (batch row ``rows[i]``, activation row ``arows[i]``, advantage
    row ``i``): writes ``g = g_J + entropy_coef * grad sum_t H_t``, ``g_J``, the score sum
    (``want_score``) and the exact surrogate diagonal (``want_hessian``), all (n, d) float32.

    Each step adds ``A_t s_t`` (and ``s_t``, the entropy cotangent's vector-Jacobian product,
    the Hessian diagonal's terms) to float64 accumulators laid out hidden-unit major, so that
    every inner loop runs over consecutive hidden units; the sums over time run in step order.
    CartPole's policy only (four observations, two actions; a ValueError otherwise), as
    :func:`rollout`."""
    if obs.shape[2] != CARTPOLE_OBS or logits.shape[2] != CARTPOLE_ACTIONS:
        raise ValueError("estimates: the kernel computes CartPole's policy (4 observations, 2 actions)")
    for s in range(sel.shape[0]):
        i = sel[s]
        _estimates_row(i, theta, obs, act, logits, actions, lengths, rows, arows, adv, entropy_coef, want_score,
                       want_hessian, g_out, g_return_out, score_out, hess_out)


@njit(inline="always", **_JIT)
def _fisher_vector_product_row(i, theta, obs, act, logits, actions, lengths, rows, arows, v, expected, out):
    """Row ``i`` of :func:`fisher_vector_product`."""
    n_actions, hidden, obs_size, d, w2_start, b2_start = _layout(theta, obs, act, logits)
    logp = np.empty(n_actions)
    p = np.empty(n_actions)
    jv = np.empty(n_actions)
    m = np.empty(n_actions)
    da = np.empty(hidden)
    dz = np.empty(hidden)
    acc = np.empty(d)
    r, ar = rows[i], arows[i]
    th, vi = theta[i], v[i]
    acc[:] = 0.0
    n = lengths[r]
    for t in range(n):
        x = obs[r, t]
        a = act[ar, t]
        _log_softmax(logits[ar, t], logp)
        for k in range(n_actions):
            p[k] = math.exp(logp[k])
        for j in range(hidden):
            aj = np.float64(a[j])
            s = np.float64(vi[hidden * obs_size + j])
            for q in range(obs_size):
                s += np.float64(vi[j * obs_size + q]) * x[q]
            da[j] = (1.0 - aj * aj) * s
        for k in range(n_actions):
            s = np.float64(vi[b2_start + k])
            base = w2_start + k * hidden
            for j in range(hidden):
                s += np.float64(vi[base + j]) * a[j] + np.float64(th[base + j]) * da[j]
            jv[k] = s
        if expected:
            pj = 0.0
            for k in range(n_actions):
                pj += p[k] * jv[k]
            for k in range(n_actions):
                m[k] = (p[k] * jv[k] - p[k] * pj) / n
        else:
            dj = 0.0
            for k in range(n_actions):
                dk = (1.0 if actions[r, t] == k else 0.0) - p[k]
                dj += dk * jv[k]
            for k in range(n_actions):
                dk = (1.0 if actions[r, t] == k else 0.0) - p[k]
                m[k] = dk * dj / n
        _vjp_add(th, x, a, m, hidden, n_actions, acc, dz)
    for q in range(d):
        out[i, q] = np.float32(acc[q])


@njit(**_JIT)
def fisher_vector_product(theta, obs, act, logits, actions, lengths, rows, arows, v, expected, out, sel):
    """``out[i] = F_i v[i]``, F_i the mean over run ``rows[i]``'s steps of J_t^T M_t J_t."""
    for s in range(sel.shape[0]):
        i = sel[s]
        _fisher_vector_product_row(i, theta, obs, act, logits, actions, lengths, rows, arows, v, expected, out)


@njit(inline="always", **_JIT)
def _step_scores_row(i, theta, obs, act, logits, actions, lengths, rows, arows, out):
    """Row ``i`` of :func:`step_scores`."""
    n_actions = logits.shape[2]
    hidden = act.shape[2]
    d = theta.shape[1]
    logp = np.empty(n_actions)
    delta = np.empty(n_actions)
    dz = np.empty(hidden)
    step = np.empty(d)
    r, ar = rows[i], arows[i]
    for t in range(lengths[r]):
        _log_softmax(logits[ar, t], logp)
        for k in range(n_actions):
            delta[k] = (1.0 if actions[r, t] == k else 0.0) - math.exp(logp[k])
        _vjp_set(theta[i], obs[r, t], act[ar, t], delta, hidden, n_actions, step, dz)
        for q in range(d):
            out[i, t, q] = np.float32(step[q])
    for t in range(lengths[r], out.shape[1]):
        out[i, t, :] = 0.0


@njit(**_JIT)
def step_scores(theta, obs, act, logits, actions, lengths, rows, arows, out, sel):
    """``out[i, t] = s_t = J_t^T delta_t`` (float32), the per-step scores of run ``rows[i]``'s
    episode (zero beyond its length): the empirical Fisher is their mean outer product."""
    for s in range(sel.shape[0]):
        i = sel[s]
        _step_scores_row(i, theta, obs, act, logits, actions, lengths, rows, arows, out)


@njit(inline="always", **_JIT)
def _empirical_fvp_row(i, scores, lengths, rows, v, out):
    """Row ``i`` of :func:`empirical_fvp`."""
    d = scores.shape[2]
    acc = np.empty(d)
    vd = np.empty(d)  # v in float64
    prod = np.empty(d)  # s_t,q v_q
    head = d - d % 8
    n = lengths[rows[i]]
    for q in range(d):
        acc[q] = 0.0
        vd[q] = np.float64(v[i, q])
    for t in range(n):
        s = scores[i, t]
        for q in range(d):
            prod[q] = np.float64(s[q]) * vd[q]
        # s . v in eight interleaved partial sums (p_k: the products k, k + 8, ...), added in a
        # fixed order: the products vectorise, the eight sums too, and the bits are the same
        # on every instruction set
        p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = 0.0
        for q0 in range(0, head, 8):
            p0 = p0 + prod[q0]
            p1 = p1 + prod[q0 + 1]
            p2 = p2 + prod[q0 + 2]
            p3 = p3 + prod[q0 + 3]
            p4 = p4 + prod[q0 + 4]
            p5 = p5 + prod[q0 + 5]
            p6 = p6 + prod[q0 + 6]
            p7 = p7 + prod[q0 + 7]
        dot = ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))
        for q in range(head, d):
            dot += prod[q]
        c = dot / n
        for q in range(d):
            acc[q] += c * s[q]
    for q in range(d):
        out[i, q] = np.float32(acc[q])


@njit(**_JIT)
def empirical_fvp(scores, lengths, rows, v, out, sel):
    """``out[i] = (1/N) sum_t s_t (s_t . v[i])`` from :func:`step_scores` (float64 sums)."""
    for s in range(sel.shape[0]):
        i = sel[s]
        _empirical_fvp_row(i, scores, lengths, rows, v, out)


def every(n: int) -> np.ndarray:
    """``sel`` for all ``n`` rows of a call."""
    return np.arange(n, dtype=np.int64)


class RowSplit:
    """Runs a kernel call's rows on ``threads`` threads: thread ``c`` computes positions
    ``c, c + threads, ...`` (so each thread gets its share of every variant's runs) by the same
    serial kernel, which releases the GIL (``nogil``). Rows are independent, so the numbers do
    not depend on ``threads``. Use as a context manager (or :meth:`close`) to stop the threads.
    """

    def __init__(self, threads: int = 1):
        self.threads = int(threads)
        self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="pgsom-kernel") if self.threads > 1 else None
        self._parts: dict[int, list[np.ndarray]] = {}

    def parts(self, n: int) -> list[np.ndarray]:
        """The ``sel`` of each thread for ``n`` rows."""
        if n not in self._parts:
            self._parts[n] = [np.arange(c, n, self.threads, dtype=np.int64) for c in range(min(self.threads, max(n, 1)))]
        return self._parts[n]

    def __call__(self, kernel, n: int, *args) -> None:
        """``kernel(*args, sel)`` for every row position ``0 .. n - 1``."""
        parts = self.parts(n)
        if self._pool is None or len(parts) == 1:
            kernel(*args, parts[0])
            return
        futures = [self._pool.submit(kernel, *args, sel) for sel in parts[1:]]
        kernel(*args, parts[0])
        for f in futures:
            f.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> RowSplit:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
