"Risk manager properties on many random order sequences: kill switch, position cap, rate limit, restart."
import json, math
import numpy as np
import pytest
from regime_nb.risk import KillSwitch, MarketState, OrderRequest, RiskLimits, RiskManager

S, T0 = 10**9, 1_700_000_000 * 10**9

def limits(rng):
    return RiskLimits(max_position=1.5, max_drawdown=0.15, max_orders_per_min=int(rng.integers(3, 30)),
                      max_order_qty=float(rng.choice([math.inf, 80.0])), qty_step=float(rng.choice([0.0, 1.0])),
                      regime_exposure_caps={1: 0.5}, var_limit=0.05, duplicate_window_s=2.0)

def simulate(seed, n=600, drift_price=True, restore_at=None):
    """Drive a RiskManager with random orders, quotes, fills and equity; the caller side of the loop:
    market orders fill at once, limit orders work and fill later, a KillSwitch cancels every working order."""
    rng = np.random.default_rng(seed)
    lim = limits(rng)
    rm, twin = RiskManager(lim), None
    hist = rng.normal(0, 0.02, 400)  # returns for VaR: the 5% limit caps exposure near 1.1
    live = {True: rng.normal(0.004, 0.01, 60), False: rng.normal(-0.003, 0.01, 60)}  # a working and a degraded model
    price, cash, pos, now, quote_ts = 100.0, 10_000.0, 0.0, T0, T0
    working, log, cids, last = [], [], [], None
    for step in range(n):
        now += int(rng.exponential(1.5) * S) + 1
        if drift_price:
            r = rng.normal(-0.004 if 200 <= step < 350 else 0.0, 0.012)
            price *= math.exp(r)
        if rng.random() < 0.9: quote_ts = now - int(rng.integers(0, S))  # else the quote goes stale
        still = []
        for side, qty, cid in working:  # fills of working orders at the mid
            if rng.random() < 0.4: pos += side * qty; cash -= side * qty * price
            else: still.append((side, qty, cid))
        working = still
        equity = cash + pos * price
        ks = rm.on_equity(equity, now)
        if twin is not None: assert twin.on_equity(equity, now) == ks
        if ks is not None: assert isinstance(ks, KillSwitch) and ks.action == "cancel_all"; working = []
        # the order the strategy proposes
        u = rng.random()
        if u < 0.08 and cids: cid = cids[int(rng.integers(len(cids)))]  # a reused id
        else: cid = f"{seed}-{step}"
        if u > 0.93 and last is not None: side, qty, px = last  # a resent identical order
        else:
            side = int(rng.choice([-1, 1])) if rng.random() < 0.7 or pos == 0 else -int(np.sign(pos))
            qty = float(rng.integers(1, 200))
            px = None if rng.random() < 0.5 else round(price * (1 + rng.normal(0, 0.008)), 2)
        last = (side, qty, px)
        cids.append(cid)
        probs = rng.dirichlet([1.0, 1.0, 1.0])
        ob = sum(q for s, q, _ in working if s > 0); os_ = sum(q for s, q, _ in working if s < 0)
        mkt = MarketState("ES", price - 0.25, price + 0.25, quote_ts, pos, equity, tuple(probs),
                          open_buy_qty=ob, open_sell_qty=os_, returns=hist,
                          live_returns=live[(step // 100) % 3 != 2], validation_sharpe=1.0)
        o = OrderRequest(cid, "ES", side, qty, px, now)
        killed_before = rm.state.killed
        v = rm.check(o, mkt, now)
        if twin is not None:
            w = twin.check(o, mkt, now)
            assert (w.allowed, w.qty, w.reasons, w.risk_reducing, w.order, w.kill_switch) == \
                   (v.allowed, v.qty, v.reasons, v.risk_reducing, v.order, v.kill_switch), (step, v, w)
        if v.kill_switch is not None: working = []
        p_eff = pos + side * (ob if side > 0 else os_)
        log.append(dict(step=step, now=now, allowed=v.allowed, qty=v.qty, req=qty, side=side, pos=pos, p_eff=p_eff,
                        mid=mkt.mid, equity=equity, killed=killed_before or v.kill_switch is not None,
                        reducing=v.risk_reducing, reasons=v.reasons))
        if v.allowed:
            if px is None: pos += side * v.qty; cash -= side * v.qty * price
            else: working.append((side, v.qty, cid))
        log[-1]["pos_after"] = pos
        if restore_at == step:
            twin = RiskManager(lim).restore(json.loads(json.dumps(rm.snapshot())))
            assert twin.state == rm.state
    return rm, lim, log

SEEDS = range(10)

@pytest.mark.parametrize("seed", SEEDS)
def test_verdicts_are_consistent(seed):
    rm, lim, log = simulate(seed)
    for e in log:
        assert 0 <= e["qty"] <= e["req"] + 1e-12
        if not e["allowed"]: assert e["qty"] == 0 and e["reasons"]
    assert sum(rm.rejections.values()) == rm.n_checked - rm.n_allowed == sum(not e["allowed"] for e in log)
    assert rm.n_allowed > 20

@pytest.mark.parametrize("seed", SEEDS)
def test_no_new_risk_after_the_kill_switch(seed):
    rm, lim, log = simulate(seed)
    after = [e for e in log if e["killed"]]
    for e in after:
        if e["allowed"]:  # only risk-reducing: toward zero, never through it, counting working orders
            assert e["reducing"] and e["side"] * e["p_eff"] < 0 and e["qty"] <= abs(e["p_eff"]) + 1e-9, e
    for a, b in zip(after, after[1:]):  # |position| never grows once the switch has tripped
        assert abs(b["pos_after"]) <= abs(a["pos_after"]) + 1e-9 and a["pos_after"] * b["pos_after"] >= 0

def test_the_kill_switch_trips_in_some_sequences_and_then_blocks_new_risk():
    killed = [any(e["killed"] for e in simulate(s)[2]) for s in SEEDS]
    assert 2 <= sum(killed) < len(SEEDS), killed
    rejected_new = sum(1 for s in SEEDS for e in simulate(s)[2] if e["killed"] and not e["allowed"]
                       and any(r.startswith("kill_switch") for r in e["reasons"]))
    assert rejected_new > 10

@pytest.mark.parametrize("seed", SEEDS)
def test_increasing_orders_respect_max_position(seed):
    rm, lim, log = simulate(seed)
    for e in log:
        if e["allowed"] and not e["reducing"]:  # worst case: every working order on that side fills too
            after = abs(e["p_eff"] + e["side"] * e["qty"])
            assert after * e["mid"] / e["equity"] <= lim.max_position + 1e-9, e

@pytest.mark.parametrize("seed", SEEDS)
def test_position_path_never_exceeds_max_position_at_a_constant_price(seed):
    rm, lim, log = simulate(seed, drift_price=False)
    for e in log:
        assert abs(e["pos_after"]) * 100.0 / 10_000.0 <= lim.max_position + 1e-9, e
    assert max(abs(e["pos_after"]) for e in log) > 0.5 * lim.max_position * 100  # the cap was approached

@pytest.mark.parametrize("seed", SEEDS)
def test_rate_limit_holds_in_every_60s_window(seed):
    rm, lim, log = simulate(seed)
    t = np.array([e["now"] for e in log if e["allowed"]])
    counts = np.arange(1, len(t) + 1) - np.searchsorted(t, t - 60 * S, side="right")  # allowed in (t - 60 s, t]
    assert counts.max() <= lim.max_orders_per_min
    assert rm.rejections["rate_limit"] > 0  # the limit was actually hit

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("at", [50, 250, 400])
def test_restore_mid_sequence_gives_identical_verdicts(seed, at):
    simulate(seed, restore_at=at)  # the twin's verdicts are asserted equal inside

def test_every_check_acted_somewhere_in_the_sequences():
    seen = set()
    for s in SEEDS:
        rm = simulate(s)[0]
        seen |= {k for k, v in (rm.rejections + rm.reductions).items() if v}  # rejected or cut
    assert {"kill_switch", "stale_data", "confidence", "regime", "position", "price_collar", "rate_limit", "duplicate", "var", "degradation"} <= seen, seen
