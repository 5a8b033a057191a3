# Fits the polynomials of vnormal_tail() in native/src/mathfun.h (the upper normal tail
# Q(t) = erfc(t/sqrt 2)/2 behind exact GELU) and checks them in simulated float32 arithmetic.
# Needs numpy and mpmath. Run: python3 native/dev/fit_gelu_erf.py
#   t < 1:        Q(t) = 0.5 - t * A(t^2)
#   1 <= t < 2.5: Q(t) = exp(-t^2/2) * w * B1(w - m1),  w = 1/t
#   t >= 2.5:     Q(t) = exp(-t^2/2) * w * B2(w - m2)   (fitted up to t = 14; beyond, Q underflows)
import mpmath as mp
import numpy as np

mp.mp.dps = 40
T1, T2, TMAX = 1.0, 2.5, 14.0
DEG_A, DEG_B1, DEG_B2 = 7, 8, 9


def Q(t):
    return mp.erfc(t / mp.sqrt(2)) / 2


def fit_a():
    ts = np.clip(np.cos(np.linspace(0, np.pi, 400)) * 0.5 * T1 + 0.5 * T1, 1e-6, None)
    y = np.array([float((mp.mpf(0.5) - Q(mp.mpf(t))) / mp.mpf(t)) for t in ts])
    w = ts / np.array([float(Q(mp.mpf(t))) for t in ts])  # weight: relative error of Q
    c, *_ = np.linalg.lstsq(np.vander(ts**2, DEG_A + 1, increasing=True) * w[:, None], y * w, rcond=None)
    return c


def fit_b(tlo, thi, deg, mid):
    ws = np.cos(np.linspace(0, np.pi, 800)) * 0.5 * (1 / tlo - 1 / thi) + 0.5 * (1 / tlo + 1 / thi)
    y = np.array([float(Q(1 / mp.mpf(w)) * mp.exp(1 / (2 * mp.mpf(w) ** 2)) / mp.mpf(w)) for w in ws])
    c, *_ = np.linalg.lstsq(np.vander(ws - mid, deg + 1, increasing=True) / y[:, None], np.ones_like(y), rcond=None)
    return c


def horner32(c, x):
    r = np.float32(c[-1])
    for k in c[-2::-1]:
        r = np.float32(r * x + np.float32(k))
    return r


def q32(t, ca, cb1, cb2, m1, m2):
    t = np.float32(t)
    if t < T1:
        return np.float32(0.5) - t * horner32(ca, np.float32(t * t))
    w = np.float32(1) / t
    hh = np.float32(t * t)
    lo = np.float32(np.float64(t) * np.float64(t) - np.float64(hh))
    e = np.float32(np.float32(np.exp(np.float64(-0.5 * hh))) * (np.float32(1) - np.float32(0.5) * lo))
    b = horner32(cb1, np.float32(w - m1)) if t < T2 else horner32(cb2, np.float32(w - m2))
    return np.float32(e * w * b)


m1 = np.float32(0.5 * (1 / T1 + 1 / T2))
m2 = np.float32(0.5 * (1 / T2 + 1 / TMAX))
ca, cb1, cb2 = fit_a(), fit_b(T1, T2, DEG_B1, float(m1)), fit_b(T2, TMAX, DEG_B2, float(m2))
worst = 0.0
for t in np.linspace(0, 12.9, 30001):  # Q(13) is subnormal in float32
    ref = float(Q(mp.mpf(float(np.float32(t)))))
    worst = max(worst, abs(float(q32(t, ca, cb1, cb2, m1, m2)) - ref) / ref)
print('max relative error (float32 evaluation, exact exp):', worst)
fmt = lambda c: ', '.join('%.9ef' % np.float32(x) for x in c)
print('A  (increasing powers):', fmt(ca))
print('B1 (increasing powers):', fmt(cb1))
print('B2 (increasing powers):', fmt(cb2))
print('m1 = %.9ef, m2 = %.9ef' % (m1, m2))
