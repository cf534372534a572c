"""Benchmarks of the temporal-conv formulations (and the graph-conv contraction) on XLA:CPU.

Every section times its competing formulations INTERLEAVED (round-robin, one call each per round) in the
same process, reports medians over the rounds and ratios against 'conv' (or the first entry), and the
1-minute load average (``os.getloadavg()``) before and after: other processes on the 2-core machine inflate
absolute times, the interleaved ratios are what to compare.

Sections (``--section``, default all):

* ``micro``: forward+backward (grad w.r.t. input and kernel of ``sum(y * r)``) of the temporal conv alone,
  shapes ``(N, T, 16, C)`` over ``--batch``, ``--kernels``, T in {75, 38, 19}, C in {32, 64}, strides 1, 2;
* ``select``: the same at the three shapes the classifier really has, for more kernel sizes (sets 'auto');
* ``parts``: forward / input-gradient / kernel-gradient split of each formulation at (75, 64, stride 2);
* ``gemm``: XLA:CPU matmul rates for the weight-gradient GEMM shapes vs a square one;
* ``gcn``: the GraphConv contraction orders, fwd+bwd (grads w.r.t. x, kernel, bias, adjacency);
* ``model``: the full STEPClassifier train step (channels 32/64/64, strides 1/2/2, T=75, V=16, forward,
  backward and Adam with coupled weight decay), one entry per temporal formulation, plus GCN variants,
  plus a large fp32 ``jnp.dot`` in the same rounds (the machine's matmul rate under the same load).

FLOPs: ``xla`` = XLA's cost analysis of the compiled step (what the formulation executes);
``nominal`` = the same count for the 'conv' formulation (the direct convolution, zero-padding taps
included), so nominal/time is the effective rate everyone is compared on.

Reproduce (see bench/NOTES.md):
    python bench/temporal_conv.py --section model --batch 8 32 --kernels 9 75 --reps 7 --json /tmp/model.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stepjax import nn as snn
from stepjax.models.classifier import TRUNKS, STEPClassifier

P = "highest"


# ---------------------------------------------------------------- candidates that are NOT in stepjax.nn
def fft_conv(x, k, s, pad, prec):
    """(e) FFT along time: jnp.fft.rfft of input and kernel at the minimal circular length, complex
    einsum over channels, irfft, then the strided lags."""
    kt = k.shape[0]
    t_in = x.shape[1]
    t_out = snn.temporal_out_len(t_in, kt, s, pad)
    length = max(t_in + pad, (t_out - 1) * s - pad + kt)
    xf = jnp.fft.rfft(x, length, axis=1)
    kf = jnp.fft.rfft(k[:, 0], length, axis=0)
    yf = jnp.einsum("nfvc,fco->nfvo", xf, jnp.conj(kf), precision=prec)
    y = jnp.fft.irfft(yf, length, axis=1)
    return y[:, (np.arange(t_out) * s - pad) % length]


def conv1d(x, k, s, pad, prec):
    """(f) the whole conv in the 1-D layout (N*V, T, C): joints moved into the batch (two transposes)."""
    n, t, v, c = x.shape
    y = jax.lax.conv_general_dilated(snn._to_1d(x), k[:, 0], (s,), ((pad, pad),),
                                     dimension_numbers=("NWC", "WIO", "NWC"), precision=prec)
    return jnp.transpose(y.reshape(n, v, -1, k.shape[-1]), (0, 2, 1, 3))


@functools.lru_cache(maxsize=None)
def lag_dft_matrices(t_in, kt, stride, pad):
    """The DFT matrices of stepjax's 'dft' before session 7 (the stride folded into the inverse's lags, no
    polyphase split): circular correlation ``c[m] = sum_i x[i+m] k[i]`` of length
    ``L = max(T_in + pad, (T_out-1)*stride - pad + Kt)`` read at ``m = t*stride - pad``. Returns
    ``fx (2, F, T_in)``, ``fk (Kt, 2, F)``, ``gy (T_out, 2F)`` (float64)."""
    t_out = snn.temporal_out_len(t_in, kt, stride, pad)
    length = max(t_in + pad, (t_out - 1) * stride - pad + kt)
    nf = length // 2 + 1
    f = np.arange(nf)
    th_x = 2 * np.pi * np.outer(f, np.arange(t_in)) / length
    fx = np.stack([np.cos(th_x), -np.sin(th_x)])
    th_k = 2 * np.pi * np.outer(np.arange(kt), f) / length
    fk = np.stack([np.cos(th_k), np.sin(th_k)], axis=1)
    w = np.full(nf, 2.0); w[0] = 1.0
    if length % 2 == 0: w[-1] = 1.0
    th_y = 2 * np.pi * np.outer(np.arange(t_out) * stride - pad, f) / length
    gy = np.concatenate([np.cos(th_y), -np.sin(th_y)], axis=1) * np.tile(w / length, 2)
    return fx, fk, gy


def _lag_spectra(x, k, s, pad, prec):
    """The lag form's forward transforms: ``xf (2, F, N*V, C_in)`` (re/im of the input, time-major matmul),
    ``kf (2, F, C_in, C_out)`` (re/im of conj(K)) and the inverse ``gy (T_out, 2F)``, all float32."""
    t_in, kt = x.shape[1], k.shape[0]
    fx, fk, gy = (m.astype(np.float32) for m in lag_dft_matrices(t_in, kt, s, pad))
    nf = fx.shape[1]
    xf = jnp.dot(fx.reshape(2 * nf, t_in), jnp.transpose(x, (1, 0, 2, 3)).reshape(t_in, -1), precision=prec)
    kf = jnp.einsum("jco,jaf->afco", k[:, 0], fk, precision=prec)
    return xf.reshape(2, nf, -1, x.shape[-1]), kf, gy


def _lag_inverse(gy, yf, n, v, prec):
    """``y (N, T_out, V, C_out)`` from the stacked products ``yf (2, F, N*V, C_out)`` (re/im)."""
    y = jnp.dot(gy, yf.reshape(gy.shape[1], -1), precision=prec)
    return jnp.transpose(y.reshape(y.shape[0], n, v, -1), (1, 0, 2, 3))


def _bmm(prec):
    return lambda a, b: jax.lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,))), precision=prec)


def dft_lags(x, k, s, pad, prec):
    """(f) stepjax's 'dft' before session 7: Gauss mixing, the stride folded into the inverse (every lag of the
    stride-1 correlation is transformed, only the needed ones are read back); the polyphase split replaced it."""
    (xr, xi), (kr, ki), gy = _lag_spectra(x, k, s, pad, prec)
    bmm = _bmm(prec)
    t1, t2, t3 = bmm(xr, kr), bmm(xi, ki), bmm(xr + xi, kr + ki)
    return _lag_inverse(gy, jnp.stack([t1 - t2, t3 - t1 - t2]), x.shape[0], x.shape[2], prec)


def dft_4mm(x, k, s, pad, prec):
    """(f) 'dft' with the complex product as four real batched matmuls (before Gauss's three); the lag form
    (:func:`lag_dft_matrices`, before the polyphase split), so compare it with ``dft_lags``."""
    (xr, xi), (kr, ki), gy = _lag_spectra(x, k, s, pad, prec)
    bmm = _bmm(prec)
    yf = jnp.stack([bmm(xr, kr) - bmm(xi, ki), bmm(xr, ki) + bmm(xi, kr)])
    return _lag_inverse(gy, yf, x.shape[0], x.shape[2], prec)


def dft_2x2(x, k, s, pad, prec):
    """(f) the 'dft' of stepjax before 2026-11-22: the complex product as ONE real matmul per frequency with
    the 2x2 block weight [[K_r, K_i], [-K_i, K_r]] ((2 C_in) x (2 C_out)); needs transposes in frequency.
    Lag form (:func:`lag_dft_matrices`): compare it with ``dft_lags``."""
    xf, (kr, ki), gy = _lag_spectra(x, k, s, pad, prec)
    _, nf, nv, ci = xf.shape
    xf = jnp.transpose(xf, (1, 2, 0, 3)).reshape(nf, nv, 2 * ci)  # (f, nv, (a, c))
    k2 = jnp.concatenate([jnp.concatenate([kr, ki], axis=2), jnp.concatenate([-ki, kr], axis=2)], axis=1)
    yf = _bmm(prec)(xf, k2)  # (F, NV, (b, o))
    yf = jnp.transpose(yf.reshape(nf, nv, 2, -1), (2, 0, 1, 3))
    return _lag_inverse(gy, yf, x.shape[0], x.shape[2], prec)


@functools.lru_cache(maxsize=None)
def _sym_mats(t_in, kt, stride, pad):
    t_out = snn.temporal_out_len(t_in, kt, stride, pad)
    length = max(t_in + pad, (t_out - 1) * stride - pad + kt)
    nf = length // 2 + 1
    th = 2 * np.pi * np.arange(nf) / length  # (F,)
    c_in = (t_in - 1) / 2
    po = t_in // 2
    s = c_in - np.arange((t_in + 1) // 2)  # offsets of the folded rows (last = 0 if t_in odd)
    cf = np.cos(np.outer(th, s))  # (F, Pe)
    sf = -np.sin(np.outer(th, s[:po]))  # (F, Po)
    m_c = (t_out - 1) * stride / 2 - pad
    ang = np.outer(np.arange(kt) - c_in + m_c, th)  # (Kt, F)
    fk = np.stack([np.cos(ang), np.sin(ang)], axis=1)  # (Kt, 2, F): K'' = sum_j k[j] e^{i th (j - c_in + m_c)}
    w = np.full(nf, 2.0); w[0] = 1.0
    if length % 2 == 0: w[-1] = 1.0
    qo = t_out // 2
    u = ((t_out - 1) / 2 - np.arange((t_out + 1) // 2)) * stride
    ce = np.cos(np.outer(u, th)) * (w / length)  # (Qe, F)
    so = -np.sin(np.outer(u[:qo], th)) * (w / length)  # (Qo, F)
    return cf, sf, fk, ce, so

def dft_sym(x, k, s, pad, prec):
    """(f) Gauss dft with the transforms folded about the centre of the input / output window (cos even,
    sin odd: half the transform MACs; the phase shifts go into the kernel response) at the price of
    reversals, sums and concatenations in time."""
    n, t_in, v, ci = x.shape
    kt, _, _, co = k.shape
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    cf, sf, fk, ce, so = (m.astype(dtype) for m in _sym_mats(t_in, kt, s, pad))
    nf = cf.shape[0]
    po, qo = t_in // 2, so.shape[0]
    t_out = snn.temporal_out_len(t_in, kt, s, pad)
    kf = jnp.einsum("jco,jaf->afco", k[:, 0].astype(dtype), fk, precision=prec)
    kr, ki = kf[0], kf[1]
    k3 = jnp.concatenate([kr, ki - kr, kr + ki])  # (3F, Ci, Co)
    xt = jnp.transpose(x.astype(dtype), (1, 0, 2, 3)).reshape(t_in, n * v * ci)
    lo, hi = xt[:po], xt[::-1][:po]
    e = hi + lo
    if t_in % 2:
        e = jnp.concatenate([e, xt[po:po + 1]])
    o = hi - lo
    xr = jnp.dot(cf, e, precision=prec)
    xi = jnp.dot(sf, o, precision=prec)
    xf = jnp.concatenate([xr + xi, xr, xi]).reshape(3 * nf, n * v, ci)
    m = jax.lax.dot_general(xf, k3, (((2,), (1,)), ((0,), (0,))), precision=prec).reshape(3, nf, n * v * co)
    dr, di = m[0] - m[2], m[0] + m[1]
    ev = jnp.dot(ce, dr, precision=prec)  # (Qe, NVCo)
    od = jnp.dot(so, di, precision=prec)  # (Qo, NVCo)
    parts = [ev[:qo] - od] + ([ev[qo:]] if t_out % 2 else []) + [(ev[:qo] + od)[::-1]]
    y = jnp.concatenate(parts).reshape(t_out, n, v, co)
    return jnp.transpose(y, (1, 0, 2, 3)).astype(x.dtype)


def dft_pair(x, k, s, pad, prec):
    """(f) Gauss 'dft' without slicing the spectrum: ``[t1; t2]`` from ONE matmul batched over 2F (the forward
    output ``[X_r; X_i]`` as is, against ``[K_r; K_i]``), ``t3`` from the fused sum ``X_r + X_i`` (session 7).
    Lag form (:func:`lag_dft_matrices`): compare it with ``dft_lags`` (the same at stride 1)."""
    xf, kf, gy = _lag_spectra(x, k, s, pad, prec)
    _, nf, nv, ci = xf.shape
    bmm = _bmm(prec)
    t12 = bmm(xf.reshape(2 * nf, nv, ci), kf.reshape(2 * nf, ci, -1)).reshape(2, nf, nv, -1)
    t3 = bmm(xf[0] + xf[1], kf[0] + kf[1])
    return _lag_inverse(gy, jnp.stack([t12[0] - t12[1], t3 - t12[0] - t12[1]]), x.shape[0], x.shape[2], prec)

def shiftadd(x, k, s, pad, prec):
    """(f) matmul first (C_in -> Kt*C_out at every input frame), then sum the Kt shifted slices."""
    kt = k.shape[0]
    t_in = x.shape[1]
    t_out = snn.temporal_out_len(t_in, kt, s, pad)
    z = jnp.einsum("ntvc,jco->ntvjo", x, k[:, 0], precision=prec)
    hi = max(0, (t_out - 1) * s + kt - pad - t_in)
    zp = jnp.pad(z, ((0, 0), (pad, hi), (0, 0), (0, 0), (0, 0)))
    return sum(zp[:, j: j + (t_out - 1) * s + 1: s, :, j] for j in range(kt))


def centre_tap(x, k, s, pad, prec):
    """NOT equivalent: only the centre tap (a strided 1x1). Lower bound: the cost of everything else."""
    return jnp.einsum("ntvc,co->ntvo", x[:, ::s], k[pad, 0], precision=prec)


EXTRA = {"fft": fft_conv, "conv1d": conv1d, "dft_4mm": dft_4mm, "dft_2x2": dft_2x2, "dft_sym": dft_sym,
         "dft_pair": dft_pair, "dft_lags": dft_lags, "shiftadd": shiftadd,
         "centre_tap": centre_tap}
CORE = [i for i in snn.TEMPORAL_IMPLS if i != "auto"]
DEFAULT_IMPLS = CORE + ["fft", "conv1d", "dft_4mm", "dft_2x2"]
DEFAULT_GRAPH = "auto"  # GraphConv's default impl


def temporal_fn(name):
    return snn._TEMPORAL_FNS[name] if name in snn._TEMPORAL_FNS else EXTRA[name]


def register_extra():
    """Lets TemporalConv(impl=<extra>) run the bench-only candidates at model level."""
    for name, fn in EXTRA.items():
        snn._TEMPORAL_FNS.setdefault(name, fn)
    snn.TEMPORAL_IMPLS = tuple(dict.fromkeys(snn.TEMPORAL_IMPLS + tuple(EXTRA)))


# ---------------------------------------------------------------- timing helpers
def load() -> float:
    return os.getloadavg()[0]


def flops_of(compiled) -> float:
    c = compiled.cost_analysis()
    c = c[0] if isinstance(c, (list, tuple)) else c
    return float(c.get("flops", float("nan")))


def interleaved(fns: dict, reps: int) -> dict:
    """fns: name -> zero-arg callable returning arrays. Returns name -> list of seconds (round-robin)."""
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            times[k].append(time.perf_counter() - t0)
    return times


def matmul_bench(n=2048):
    a = jnp.asarray(np.random.default_rng(1).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda a: jnp.dot(a, a, precision=P))
    jax.block_until_ready(f(a))
    return (lambda: f(a)), 2.0 * n ** 3


def emit(rec: dict, out: list):
    out.append(rec)
    print(json.dumps(rec), flush=True)


# ---------------------------------------------------------------- sections
def micro(batches, kernels, shapes, impls, reps, out, section="micro"):
    rng = np.random.default_rng(0)
    for n in batches:
        for kt in kernels:
            for (t, c, s) in shapes:
                pad = (kt - 1) // 2
                t_out = snn.temporal_out_len(t, kt, s, pad)
                x = jnp.asarray(rng.standard_normal((n, t, 16, c)), jnp.float32)
                k = jnp.asarray(rng.standard_normal((kt, 1, c, c)) / np.sqrt(kt * c), jnp.float32)
                r = jnp.asarray(rng.standard_normal((n, t_out, 16, c)), jnp.float32)
                fns, fl = {}, {}
                for name in impls:
                    if name == "shiftadd" and kt > 9:
                        continue
                    fn = temporal_fn(name)
                    g = jax.jit(jax.grad(lambda x, k, r, fn=fn: jnp.sum(fn(x, k, s, pad, P) * r), (0, 1)))
                    comp = g.lower(x, k, r).compile()
                    fl[name] = flops_of(comp)
                    jax.block_until_ready(comp(x, k, r))
                    fns[name] = functools.partial(comp, x, k, r)
                l0 = load()
                ts = interleaved(fns, reps)
                med = {k_: float(np.median(v)) for k_, v in ts.items()}
                base = med.get("conv", next(iter(med.values())))
                nominal = 6.0 * n * t_out * 16 * kt * c * c
                emit(dict(section=section, batch=n, kernel=kt, T=t, C=c, stride=s, load=[l0, load()],
                          nominal_flops=nominal, ms={k_: v * 1e3 for k_, v in med.items()},
                          ratio={k_: v / base for k_, v in med.items()}, xla_flops=fl), out)


def parts(batches, kernels, impls, reps, out, shape=(75, 64, 2)):
    """Where a formulation spends its time: forward only, input gradient only, kernel gradient only, both."""
    t, c, s = shape
    rng = np.random.default_rng(0)
    for n in batches:
        for kt in kernels:
            pad = (kt - 1) // 2
            x = jnp.asarray(rng.standard_normal((n, t, 16, c)), jnp.float32)
            k = jnp.asarray(rng.standard_normal((kt, 1, c, c)) / np.sqrt(kt * c), jnp.float32)
            r = jnp.asarray(rng.standard_normal((n, snn.temporal_out_len(t, kt, s, pad), 16, c)), jnp.float32)
            fns = {}
            for name in impls:
                fn = temporal_fn(name)
                loss = lambda x, k, r, fn=fn: jnp.sum(fn(x, k, s, pad, P) * r)
                for part, f in (("fwd", lambda x, k, r, fn=fn: fn(x, k, s, pad, P)), ("dx", jax.grad(loss, 0)),
                                ("dk", jax.grad(loss, 1)), ("both", jax.grad(loss, (0, 1)))):
                    comp = jax.jit(f).lower(x, k, r).compile()
                    jax.block_until_ready(comp(x, k, r))
                    fns[f"{name}/{part}"] = functools.partial(comp, x, k, r)
            l0 = load()
            ts = interleaved(fns, reps)
            emit(dict(section="parts", batch=n, kernel=kt, T=t, C=c, stride=s, load=[l0, load()],
                      ms={k_: float(np.median(v)) * 1e3 for k_, v in ts.items()}), out)


def gemm(reps, out, m=32 * 38 * 16):
    """XLA:CPU matmul rate by shape: square vs the long-contraction / small-output shapes of weight gradients."""
    rng = np.random.default_rng(0)
    arr = lambda *sh: jnp.asarray(rng.standard_normal(sh), jnp.float32)
    cases = {
        "square 2048^3": (lambda a, b: jnp.dot(a, b, precision=P), (arr(2048, 2048), arr(2048, 2048)), 2 * 2048 ** 3),
        f"A^T B, A ({m},64), B ({m},64) -> 64x64": (lambda a, b: jnp.dot(a.T, b, precision=P), (arr(m, 64), arr(m, 64)),
                                                      2 * m * 64 * 64),
        f"A^T B, A ({m},576), B ({m},64) -> 576x64": (lambda a, b: jnp.dot(a.T, b, precision=P),
                                                        (arr(m, 576), arr(m, 64)), 2 * m * 576 * 64),
        "B^T A, same -> 64x576": (lambda a, b: jnp.dot(b.T, a, precision=P), (arr(m, 576), arr(m, 64)),
                                   2 * m * 576 * 64),
        f"A B, A ({m},576), B (576,64)": (lambda a, b: jnp.dot(a, b, precision=P), (arr(m, 576), arr(576, 64)),
                                         2 * m * 576 * 64),
        f"A^T B, A ({m},192), B ({m},64) -> 192x64": (lambda a, b: jnp.dot(a.T, b, precision=P),
                                                        (arr(m, 192), arr(m, 64)), 2 * m * 192 * 64),
    }
    fns, fl = {}, {}
    for name, (f, args, flops) in cases.items():
        comp = jax.jit(f).lower(*args).compile()
        jax.block_until_ready(comp(*args))
        fns[name], fl[name] = functools.partial(comp, *args), flops
    l0 = load()
    ts = interleaved(fns, reps)
    med = {k_: float(np.median(v)) for k_, v in ts.items()}
    emit(dict(section="gemm", load=[l0, load()], ms={k_: v * 1e3 for k_, v in med.items()},
              gflops={k_: fl[k_] / v / 1e9 for k_, v in med.items()}), out)


def gcn(batches, reps, out):
    from stepjax import skeleton
    adj = np.asarray(skeleton.spatial_adjacency(official=True), np.float32)
    kk = adj.shape[0]
    rng = np.random.default_rng(0)
    for n in batches:
        for (t, cin, cout) in [(75, 3, 32), (75, 32, 64), (38, 64, 64)]:
            x = jnp.asarray(rng.standard_normal((n, t, 16, cin)), jnp.float32)
            w = jnp.asarray(rng.standard_normal((cin, kk * cout)) / np.sqrt(cin), jnp.float32)
            b = jnp.asarray(rng.standard_normal((kk * cout,)) * 0.1, jnp.float32)
            a = jnp.asarray(adj)
            r = jnp.asarray(rng.standard_normal((n, t, 16, cout)), jnp.float32)
            fns, fl = {}, {}
            for name, fn in snn._GRAPH_FNS.items():
                g = jax.jit(jax.grad(lambda x, w, b, a, r, fn=fn: jnp.sum(fn(x, w, b, a, P) * r), (0, 1, 2, 3)))
                comp = g.lower(x, w, b, a, r).compile()
                fl[name] = flops_of(comp)
                jax.block_until_ready(comp(x, w, b, a, r))
                fns[name] = functools.partial(comp, x, w, b, a, r)
            l0 = load()
            ts = interleaved(fns, reps)
            med = {k_: float(np.median(v)) for k_, v in ts.items()}
            base = med["project_first"]
            emit(dict(section="gcn", batch=n, T=t, C_in=cin, C_out=cout, load=[l0, load()],
                      ms={k_: v * 1e3 for k_, v in med.items()}, ratio={k_: v / base for k_, v in med.items()},
                      xla_flops=fl), out)


def make_train_step(kt, impl, graph, x, y):
    model = STEPClassifier(channels=(32, 64, 64), kernel_size=kt, temporal_impl=impl, graph_impl=graph,
                           **TRUNKS["hybrid"])
    variables = model.init(jax.random.PRNGKey(0), x)
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.scale_by_adam(), optax.scale_by_learning_rate(1e-3))
    params, stats = variables["params"], variables["batch_stats"]
    opt = tx.init(params)

    def step(params, stats, opt, x, y):
        def loss(p):
            (logits, _), upd = model.apply({"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), upd

        (l, upd), g = jax.value_and_grad(loss, has_aux=True)(params)
        u, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, u), upd["batch_stats"], opt, l

    comp = jax.jit(step).lower(params, stats, opt, x, y).compile()
    jax.block_until_ready(comp(params, stats, opt, x, y))
    return functools.partial(comp, params, stats, opt, x, y), flops_of(comp)


def model_level(batches, kernels, entries, reps, out):
    """entries: 'temporal_impl[:graph_impl]' (graph default: the stepjax default)."""
    register_extra()
    rng = np.random.default_rng(0)
    mm, mm_flops = matmul_bench()
    for n in batches:
        x = jnp.asarray(rng.standard_normal((n, 75, 16, 3)), jnp.float32)
        y = jnp.asarray(rng.integers(0, 4, n))
        for kt in kernels:
            fns, fl = {"matmul2048": mm}, {"matmul2048": mm_flops}
            for e in entries:
                impl, graph = (e.split(":") + [DEFAULT_GRAPH])[:2]
                fns[e], fl[e] = make_train_step(kt, impl, graph, x, y)
            l0 = load()
            ts = interleaved(fns, reps)
            med = {k_: float(np.median(v)) for k_, v in ts.items()}
            mm_rate = mm_flops / med["matmul2048"]
            nominal = fl.get("conv:project_first", fl.get("conv"))
            base = med.get("conv:project_first", med.get("conv", med[entries[0]]))  # ratios vs conv if timed
            rec = dict(section="model", batch=n, kernel=kt, load=[l0, load()], reps=reps,
                       matmul_gflops=mm_rate / 1e9, nominal_flops=nominal,
                       ms={k_: v * 1e3 for k_, v in med.items() if k_ != "matmul2048"},
                       ratio={k_: v / base for k_, v in med.items() if k_ != "matmul2048"},
                       xla_flops={k_: v for k_, v in fl.items() if k_ != "matmul2048"})
            rec["frac_of_matmul_xla"] = {k_: rec["xla_flops"][k_] / (med[k_] * mm_rate) for k_ in rec["ms"]}
            if nominal:
                rec["frac_of_matmul_nominal"] = {k_: nominal / (med[k_] * mm_rate) for k_ in rec["ms"]}
            emit(rec, out)


def summarize(path):
    """Markdown tables from a --json file: ms (ratio vs 'conv') per formulation; for micro/select also the
    nominal (direct-conv) GFLOP/s of 'conv' and of the fastest formulation."""
    recs = [json.loads(line) for line in open(path)]
    groups: dict = {}
    for r in recs:
        if r["section"] in ("micro", "select"):
            groups.setdefault((r["section"], r["batch"], r["kernel"]), []).append(r)
    for (sec, n, kt), rs in groups.items():
        impls = list(dict.fromkeys(k for r in rs for k in r["ms"]))
        print(f"\n{sec}: batch {n}, kernel {kt}, fwd+bwd ms (ratio vs conv); load {rs[0]['load'][0]:.1f}\n")
        print("| T, C, stride | " + " | ".join(impls) + " | conv GFLOP/s | best GFLOP/s (nominal) |")
        print("|---" * (len(impls) + 3) + "|")
        for r in rs:
            cells = [f"{r['ms'][k]:.1f} ({r['ratio'][k]:.2f})" if k in r["ms"] else "-" for k in impls]
            best = min(r["ms"], key=r["ms"].get)
            print(f"| {r['T']}, {r['C']}, {r['stride']} | " + " | ".join(cells) +
                  f" | {r['nominal_flops'] / r['ms']['conv'] / 1e6:.1f} | {best}: "
                  f"{r['nominal_flops'] / r['ms'][best] / 1e6:.1f} |")
    for r in recs:
        sec = r["section"]
        if sec == "model":
            print(f"\nmodel N={r['batch']} Kt={r['kernel']} load {r['load'][0]:.1f}-{r['load'][1]:.1f} "
                  f"matmul {r['matmul_gflops']:.0f} GFLOP/s, reps {r['reps']}\n")
            print("| entry | ms | vs conv:project_first | XLA GFLOP | XLA GFLOP/s | frac of matmul | nominal frac |")
            print("|---|---|---|---|---|---|---|")
            for k, v in r["ms"].items():
                print(f"| {k} | {v:.0f} | {r['ratio'][k]:.2f} | {r['xla_flops'][k] / 1e9:.2f} | "
                      f"{r['xla_flops'][k] / v / 1e6:.1f} | {r['frac_of_matmul_xla'][k]:.2f} | "
                      f"{r.get('frac_of_matmul_nominal', {}).get(k, float('nan')):.2f} |")
        elif sec == "gcn":
            cells = [f"{k}: {v:.1f} ({r['ratio'][k]:.2f}, {r['xla_flops'][k] / 1e6:.0f} MFLOP)" for k, v in r["ms"].items()]
            print(f"| gcn N={r['batch']} T={r['T']} {r['C_in']}->{r['C_out']} load {r['load'][0]:.1f} | "
                  + " | ".join(cells) + " |")
        elif sec == "parts":
            print(f"\nparts N={r['batch']} Kt={r['kernel']} T={r['T']} C={r['C']} s={r['stride']} load {r['load'][0]:.1f}\n")
            print("| impl | fwd | input grad | kernel grad | both grads |\n|---|---|---|---|---|")
            for name in dict.fromkeys(k.split("/")[0] for k in r["ms"]):
                print(f"| {name} | " + " | ".join(f"{r['ms'][name + '/' + q]:.1f}" for q in ("fwd", "dx", "dk", "both"))
                      + " |")
        elif sec == "gemm":
            print(f"\ngemm (load {r['load'][0]:.1f})\n\n| shape | ms | GFLOP/s |\n|---|---|---|")
            for k, v in r["ms"].items():
                print(f"| {k} | {v:.1f} | {r['gflops'][k]:.0f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--section", nargs="+", default=["micro", "select", "gcn", "model"],
                   choices=["micro", "select", "gcn", "model", "parts", "gemm"])
    p.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    p.add_argument("--kernels", type=int, nargs="+", default=[9, 75])
    p.add_argument("--select-kernels", type=int, nargs="+", default=[1, 3, 5, 9, 15, 25, 75])
    p.add_argument("--impls", nargs="+", default=DEFAULT_IMPLS)
    p.add_argument("--model-entries", nargs="+",
                   default=["conv:project_first", "conv", "toeplitz", "im2col", "conv_mmgrad", "conv_1dgrad", "dft",
                            "fft", "auto", "auto:project_first", "auto:dense_graph", "centre_tap"])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--json", default=None, help="append the records (one JSON object per line) to this file")
    p.add_argument("--summarize", default=None, help="print markdown tables from a --json file and exit")
    a = p.parse_args(argv)
    if a.summarize:
        return summarize(a.summarize)
    print(f"# jax {jax.__version__} backend {jax.default_backend()} cpus {os.cpu_count()} load {os.getloadavg()}",
          flush=True)
    out: list = []
    real_shapes = [(75, 32, 1), (75, 64, 2), (38, 64, 2)]
    if "micro" in a.section:
        grid = [(t, c, s) for t in (75, 38, 19) for c in (32, 64) for s in (1, 2)]
        micro(a.batch, a.kernels, grid, a.impls, a.reps, out)
    if "select" in a.section:
        select_impls = [i for i in a.impls if i in CORE or (i in EXTRA and a.impls != DEFAULT_IMPLS)]  # extras if named
        micro(a.batch, a.select_kernels, real_shapes, select_impls, a.reps, out,
              section="select")
    if "parts" in a.section:
        parts(a.batch, a.kernels, a.impls, a.reps, out)
    if "gemm" in a.section:
        gemm(a.reps, out)
    if "gcn" in a.section:
        gcn(a.batch, a.reps, out)
    if "model" in a.section:
        model_level(a.batch, a.kernels, a.model_entries, a.reps, out)
    if a.json:
        with open(a.json, "a") as f:
            for rec in out:
                f.write(json.dumps(rec) + "\n")
    print(f"# done, load {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
