"""Several symbols traded as books of one account: one set of services per book, one broker, one store.
Each book equals its own backtest; the broker's account is the books' sum; kill -9 across the books loses nothing."""
import re, threading
import numpy as np
import pytest
from regime_nb.broker import RemoteBroker
from regime_nb.supervisor import Supervisor, parity_check
from regime_nb.store import Store

from test_live import cfg_for, kill_at_random, quiet, registry  # noqa: F401 (registry is a fixture)

BOOKS = {"sp500": "sp500", "NDX": "nasdaq"}  # one named after its data, one not

def account_checks(cfg) -> dict:
    "The broker's account and positions against the store's fills, and the books' last equity rows."
    b, st = RemoteBroker(cfg.endpoints["broker"], timeout_ms=3000), Store(cfg.store)
    try:
        last = {r[0]: r[1] for r in st.query("SELECT book, equity FROM equity e WHERE ts_ns = (SELECT MAX(ts_ns) FROM equity WHERE book = e.book)")}
        return dict(account=b.account(), positions=b.positions(), broker_fills=len(b.fills()), store_fills=len(st.fills()),
                    store_cash=st.cash_from_fills(cfg.init_cash), store_pos={s: st.position(s)["qty"] for s in cfg.books},
                    book_fills={s: len(st.fills(symbol=s)) for s in cfg.books}, last_equity=last, orders=st.query_df("SELECT * FROM orders"))
    finally: b.close()

def test_two_books_each_equal_their_backtest_and_add_up_to_the_account(tmp_path, registry):
    cfg = cfg_for(tmp_path, registry, books=BOOKS, init_cash=2.0)
    sup, checks = Supervisor(cfg, out=quiet), {}
    stats = sup.run(240, before_stop=lambda s: checks.update(account_checks(cfg)))
    assert all(t.get("done") for t in sup.trading()) and not sup.restarts, (sup.restarts, stats.keys())
    assert set(sup.procs) == {"broker", *(f"{s}.{b}" for s in ("feed", "features", "prediction", "trading") for b in BOOKS)}
    p = parity_check(cfg)
    for sym, b in p["books"].items():  # each book is the single-symbol backtest of its data on half the cash
        assert b["bars_live"] == b["bars_backtest"] > 900, (sym, b)
        assert b["trades_live"] == b["trades_backtest"] > 5, (sym, b)
        assert b["max_abs_equity_diff"] <= 1e-9 and b["fills_equity_diff"] <= 1e-9, (sym, b)  # the engine's book and the broker's fills
        assert abs(b["equity_live"] - checks["last_equity"][sym]) <= 1e-12
    assert set(checks["last_equity"]) == set(BOOKS)  # every equity row belongs to a book: no account row written twice over
    assert p["trades_live"] == checks["broker_fills"] == checks["store_fills"] == sum(checks["book_fills"].values())
    assert all(n > 0 for n in checks["book_fills"].values())
    assert checks["store_cash"] == pytest.approx(checks["account"]["cash"], abs=1e-12)  # one account: the books' cash together
    for sym in BOOKS: assert checks["store_pos"][sym] == pytest.approx(checks["positions"].get(sym, 0.0), abs=1e-12)
    assert checks["orders"].client_order_id.is_unique and not Store(cfg.store).open_orders()
    assert p["equity_live"] == pytest.approx(sum(checks["last_equity"].values()), abs=1e-12)
    a = Store(cfg.store).alerts()
    assert not a.kind.isin(["broker_error", "silent_peer", "kill_switch"]).any(), a.message.tolist()
    assert set(a.service) <= {f"trading.{b}" for b in BOOKS} | {f"prediction.{b}" for b in BOOKS}  # an alert names its book

def test_kill_9_across_the_books_loses_no_fill_and_duplicates_no_order(tmp_path, registry):
    cfg = cfg_for(tmp_path, registry, books=BOOKS, speed=60.0)  # a 17 s replay: nine kills 0.8-2 s apart land during it (at 150/s, with services forked in about 2 s, it ended after five)
    sup, checks = Supervisor(cfg, out=quiet), {}
    th = threading.Thread(target=lambda: sup.run(90, before_stop=lambda s: checks.update(account_checks(cfg))), daemon=True); th.start()
    st = Store(cfg.store)
    kill_at_random(sup, ["trading.NDX", "broker", "trading.sp500", "feed.NDX", "prediction.sp500", "trading.NDX", "features.NDX", "broker", "trading.sp500"], st, seed=11)
    th.join(120)
    assert sum(sup.restarts.values()) >= 6, sup.restarts
    assert checks, "the run ended without reconciling"
    assert checks["store_fills"] == checks["broker_fills"] == sum(checks["book_fills"].values())
    assert all(n > 0 for n in checks["book_fills"].values()), checks["book_fills"]
    for sym in BOOKS: assert checks["store_pos"][sym] == pytest.approx(checks["positions"].get(sym, 0.0), abs=1e-12)
    assert checks["store_cash"] == pytest.approx(checks["account"]["cash"], abs=1e-12)
    o = checks["orders"]
    assert o.client_order_id.is_unique and set(o.symbol) == set(BOOKS)
    assert st.integrity_check()

def test_the_cli_trades_several_symbols_and_prints_the_parity_of_each(cli, tmp_path, registry):
    r = cli("live", "--symbols", "sp500,NDX=nasdaq", "--start", "2018-01-01", "--registry", registry, "--run-dir", tmp_path/"run", "--duration", "120")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    book_lines = [l for l in lines if l.startswith(("  sp500:", "  NDX:"))]
    assert len(book_lines) == 2 and all("max |equity difference| 0" in l for l in book_lines), r.stdout[-1500:]
    assert any(l.startswith("parity with the backtest") for l in lines)
    assert "regime sp500:" in r.stdout and " NDX:" in r.stdout  # the summary line shows each book's regime
    r = cli("live", "--symbols", "sp500", "--data", "nasdaq", "--registry", registry)
    assert r.returncode == 2 and "not both" in r.stderr, r.stderr[-500:]

def test_the_cli_applies_the_settings_file_and_runs_the_limit_rule(cli, tmp_path, registry):
    "`live --settings F`: its [risk] limits reach the risk manager; `--execution limit` trades by the seeds' rule and says what it gave up."
    strict = tmp_path/"strict.ini"; strict.write_text("[risk]\nmin_confidence = 0.999999\n")
    base = ("live", "--data", "sp500", "--start", "2017-01-01", "--registry", registry, "--duration", "120")
    r = cli(*base, "--run-dir", tmp_path/"a")
    assert r.returncode == 0, r.stderr[-2000:]
    live, bt = map(int, re.search(r"parity with the backtest: (\d+) live trades vs (\d+)", r.stdout).groups())
    assert live == bt > 2, r.stdout[-800:]
    r = cli(*base, "--run-dir", tmp_path/"b", "--settings", strict)
    assert r.returncode == 0, r.stderr[-2000:]
    live, bt = map(int, re.search(r"parity with the backtest: (\d+) live trades vs (\d+)", r.stdout).groups())
    assert live < bt, r.stdout[-800:]  # orders the model was not 99.9999% sure of were refused
    r = cli(*base, "--run-dir", tmp_path/"c", "--execution", "limit", "--limit-timeout-bars", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r"limit execution: (\d+) limit orders, (\d+) not filled within 2 bars and given up", r.stdout)
    assert m and int(m[1]) > 2 and "parity with the backtest" not in r.stdout, r.stdout[-800:]
    r = cli(*base, "--limit-timeout-bars", "2")
    assert r.returncode == 2 and "need --execution limit" in r.stderr, r.stderr[-500:]
    r = cli(*base, "--execution", "limit", "--limit-timeout-bars", "0")
    assert r.returncode == 2 and "timeout_bars=0: expected an integer >= 1" in r.stderr, r.stderr[-500:]

def backtest_equity(cfg) -> "pd.Series":
    "The backtest's equity of one book over its replayed bars (what the book trades until a limit stops it)."
    from regime_nb.backtest import backtest
    from regime_nb.features import compute_features
    from regime_nb.live import model_spec, replay_bars
    from regime_nb.registry import Registry
    from regime_nb.strategies import make_inputs, make_strategy
    bars, first = replay_bars(cfg)
    with Registry(cfg.registry) as reg: model = reg.load(cfg.model_alias)
    strat = make_strategy(cfg.strategy)
    tg = strat.targets(make_inputs(bars, None, model.predict_proba(compute_features(bars, model_spec(cfg))), strategy=strat))
    return backtest(bars.iloc[first:], tg.iloc[first:], costs_bps=cfg.costs_bps, slippage_bps=cfg.slippage_bps, init_cash=cfg.init_cash, benchmark=False).equity

def test_the_accounts_drawdown_trips_the_kill_switch_in_every_book(tmp_path, registry):
    "Limits from the data: each book's own limit above its worst drawdown, the account's under the account's worst; both books pull out at the bar the account crosses it."
    import pandas as pd
    from test_live import PERMISSIVE
    base = cfg_for(tmp_path, registry, books=BOOKS)
    eq = pd.DataFrame({s: backtest_equity(base.book_config(s)) for s in BOOKS}).ffill()
    dd = lambda e: 1 - e / e.cummax()
    acct_dd, worst_book = dd(eq.sum(axis=1)), max(float(dd(eq[s]).max()) for s in BOOKS)
    book_lim, acct_lim = worst_book + 0.01, 0.9 * float(acct_dd.max())
    assert 0.02 < acct_lim < worst_book < book_lim < 1, (acct_lim, worst_book)
    trip = acct_dd.index[np.argmax(acct_dd.to_numpy() >= acct_lim - 1e-9)]
    assert all(float(dd(eq[s]).loc[:trip].max()) < book_lim for s in BOOKS)  # neither book near its own limit by then
    cfg = cfg_for(tmp_path, registry, books=BOOKS, risk=dict(PERMISSIVE, max_drawdown=book_lim, account_max_drawdown=acct_lim))
    sup = Supervisor(cfg, out=quiet)
    sup.run(240)
    assert all(t.get("done") and t.get("killed") for t in sup.trading()) and not sup.restarts, (sup.trading(), sup.restarts)
    st = Store(cfg.store)
    a = st.alerts(); k = a[a.kind == "kill_switch"]
    assert k.service.tolist() == ["account"], a[["service", "kind", "message"]].values.tolist()  # once, naming the account
    assert k.message.iloc[0].startswith("account drawdown") and f"at bar {trip.strftime('%Y-%m-%dT%H:%M:%S')}" in k.message.iloc[0], (k.message.iloc[0], trip)
    for s in BOOKS:
        live = st.query_df("SELECT ts_ns, equity FROM equity WHERE book = ? ORDER BY ts_ns", (s,))
        live = pd.Series(live.equity.to_numpy(), index=pd.to_datetime(live.ts_ns, utc=True))
        assert float((live.loc[:trip] - eq[s].reindex(live.loc[:trip].index)).abs().max()) <= 1e-9, s  # its backtest until the account stops it
        assert st.position(s)["qty"] == pytest.approx(0.0, abs=1e-12), s  # then flat
        assert float(dd(live).max()) < book_lim, s
