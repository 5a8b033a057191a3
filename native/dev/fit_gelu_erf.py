import numpy as np, mpmath as mp
mp.mp.dps = 40
def Q(t): return mp.erfc(t/mp.sqrt(2))/2
# Region A: Q(t) = 0.5 - t*A(t^2), A(u) = (0.5 - Q(sqrt u))/sqrt u, t in [0, T1]
def fitA(T1, deg):
    ts = np.cos(np.linspace(0, np.pi, 400))*0.5*T1 + 0.5*T1
    ts = np.clip(ts, 1e-6, None)
    u = ts**2
    y = np.array([float((mp.mpf(0.5) - Q(mp.mpf(t)))/mp.mpf(t)) for t in ts])
    # weight by relative error of the final Q
    qv = np.array([float(Q(mp.mpf(t))) for t in ts])
    w = ts / qv
    V = np.vander(u, deg+1, increasing=True)
    c, *_ = np.linalg.lstsq(V * w[:,None], y * w, rcond=None)
    return c
def fitB(tlo, thi, deg):
    # M(w) = Q(t) * exp(t^2/2) * t, w = 1/t
    ws = np.cos(np.linspace(0, np.pi, 600))*0.5*(1/tlo-1/thi) + 0.5*(1/tlo+1/thi)
    y = np.array([float(Q(1/mp.mpf(w))*mp.exp(1/(2*mp.mpf(w)**2))/mp.mpf(w)) for w in ws])
    V = np.vander(ws, deg+1, increasing=True)
    c, *_ = np.linalg.lstsq(V / y[:,None], np.ones_like(y), rcond=None)
    return c
def horner32(c, x):
    r = np.float32(c[-1])
    for k in c[-2::-1]: r = np.float32(r*x + np.float32(k))
    return r
def evalQ(t, cA, cB, T1):
    t = np.float32(t)
    if t < T1:
        return np.float32(0.5) - t*horner32(cA, np.float32(t*t))
    w = np.float32(1)/t
    hh = np.float32(t*t)
    lo = np.float32(np.float64(t)*np.float64(t) - np.float64(hh))
    e = np.float32(np.exp(np.float64(-0.5*hh)))  # ~ correctly rounded stand-in for vexp
    e = np.float32(e*(np.float32(1) - np.float32(0.5)*lo))
    return np.float32(e*w*horner32(cB, w))
for T1, dA, dB in [(1.0, 6, 10), (1.0, 7, 12), (1.25, 7, 12), (1.0, 7, 14), (1.5,8,12)]:
    cA = fitA(T1, dA); cB = fitB(T1, 14.0, dB)
    worst = 0
    for t in np.linspace(0, 13, 20001):
        ref = float(Q(mp.mpf(float(np.float32(t)))))
        got = float(evalQ(t, cA, cB, T1))
        worst = max(worst, abs(got-ref)/ref)
    print(T1, dA, dB, 'max rel err', worst)
print('--- split')
def fitBt(tlo, thi, deg):  # M as poly in (t - mid)
    ts = np.cos(np.linspace(0, np.pi, 600))*0.5*(thi-tlo) + 0.5*(thi+tlo)
    y = np.array([float(Q(mp.mpf(t))*mp.exp(mp.mpf(t)**2/2)*mp.mpf(t)) for t in ts])
    V = np.vander(ts, deg+1, increasing=True)
    c, *_ = np.linalg.lstsq(V / y[:,None], np.ones_like(y), rcond=None)
    return c
def evalQ2(t, cA, cB1, cB2, T1, T2):
    t = np.float32(t)
    if t < T1:
        return np.float32(0.5) - t*horner32(cA, np.float32(t*t))
    w = np.float32(1)/t
    hh = np.float32(t*t)
    lo = np.float32(np.float64(t)*np.float64(t) - np.float64(hh))
    e = np.float32(np.exp(np.float64(-0.5*hh)))
    e = np.float32(e*(np.float32(1) - np.float32(0.5)*lo))
    m = horner32(cB1, t) if t < T2 else horner32(cB2, w)
    return np.float32(e*w*m)
for T1, T2, dA, d1, d2 in [(1.0, 3.0, 7, 9, 9), (1.0, 2.5, 7, 8, 10), (1.0, 3.0, 7, 10, 10), (1.0,3.5,7,11,9)]:
    cA = fitA(T1, dA); cB1 = fitBt(T1, T2, d1); cB2 = fitB(T2, 14.0, d2)
    worst = [0,0,0]
    for t in np.linspace(0, 13, 20001):
        ref = float(Q(mp.mpf(float(np.float32(t)))))
        got = float(evalQ2(t, cA, cB1, cB2, T1, T2))
        r = 0 if t < T1 else 1 if t < T2 else 2
        worst[r] = max(worst[r], abs(got-ref)/ref)
    print(T1, T2, dA, d1, d2, 'max rel err', worst)
print('--- w-centred')
def fitBw(tlo, thi, deg, mid):
    ws = np.cos(np.linspace(0, np.pi, 800))*0.5*(1/tlo-1/thi) + 0.5*(1/tlo+1/thi)
    y = np.array([float(Q(1/mp.mpf(w))*mp.exp(1/(2*mp.mpf(w)**2))/mp.mpf(w)) for w in ws])
    V = np.vander(ws - mid, deg+1, increasing=True)
    c, *_ = np.linalg.lstsq(V / y[:,None], np.ones_like(y), rcond=None)
    return c
def evalQ3(t, cA, cB1, cB2, T1, T2, m1, m2):
    t = np.float32(t)
    if t < T1:
        return np.float32(0.5) - t*horner32(cA, np.float32(t*t))
    w = np.float32(1)/t
    hh = np.float32(t*t)
    lo = np.float32(np.float64(t)*np.float64(t) - np.float64(hh))
    e = np.float32(np.exp(np.float64(-0.5*hh)))
    e = np.float32(e*(np.float32(1) - np.float32(0.5)*lo))
    m = horner32(cB1, np.float32(w - np.float32(m1))) if t < T2 else horner32(cB2, np.float32(w - np.float32(m2)))
    return np.float32(e*w*m)
best=None
for T1, T2, dA, d1, d2 in [(1.0, 2.5, 7, 8, 9), (1.0, 3.0, 7, 8, 9), (1.0, 2.5, 7, 9, 10), (1.0, 2.0, 7, 7, 10), (1.0,3.0,7,9,10)]:
    m1 = 0.5*(1/T1+1/T2); m2 = 0.5*(1/T2+1/14.0)
    cA = fitA(T1, dA); cB1 = fitBw(T1, T2, d1, m1); cB2 = fitBw(T2, 14.0, d2, m2)
    worst = [0,0,0]
    for t in np.linspace(0, 12.9, 30001):
        ref = float(Q(mp.mpf(float(np.float32(t)))))
        got = float(evalQ3(t, cA, cB1, cB2, T1, T2, m1, m2))
        r = 0 if t < T1 else 1 if t < T2 else 2
        worst[r] = max(worst[r], abs(got-ref)/ref)
    print(T1, T2, dA, d1, d2, 'max rel err', worst)
print('--- emit')
T1, T2, dA, d1, d2 = 1.0, 2.5, 7, 8, 9
m1 = np.float32(0.5*(1/T1+1/T2)); m2 = np.float32(0.5*(1/T2+1/14.0))
cA = fitA(T1, dA); cB1 = fitBw(T1, T2, d1, float(m1)); cB2 = fitBw(T2, 14.0, d2, float(m2))
fmt = lambda c: ', '.join('%.9ef' % np.float32(x) for x in c)
print('A', fmt(cA)); print('B1', fmt(cB1)); print('B2', fmt(cB2)); print('m1 %.9ef m2 %.9ef' % (m1, m2))
