"""Run leases without Ray: the expiry decision, exclusive acquisition among racing processes, takeover of
an expired lease only, and a holder that learns it lost its lease."""

import multiprocessing
import time

import pytest

from experiments import lease


def _lease(**changes):
    fields = dict(run_id="r1", driver="d1", host="h", pid=1, ttl_seconds=10.0, renewals=3)
    return lease.Lease(**{**fields, **changes})


def test_judge_free_held_expired_by_the_readers_own_watching_time():
    assert lease.judge(None, watched_seconds=0).state == "free"
    assert lease.judge(_lease(released=True), watched_seconds=0).state == "free"
    held = lease.judge(_lease(), watched_seconds=9.9)
    assert held.state == "held" and "running elsewhere" in held.message and "d1" in held.message
    assert lease.judge(_lease(), watched_seconds=10.0).state == "expired"


def test_a_watch_restarts_its_clock_whenever_the_lease_is_renewed(tmp_path):
    now = [0.0]
    watch = lease.LeaseWatch(clock=lambda: now[0])
    held = lease.acquire(tmp_path, "r1", driver="d1", ttl_seconds=10.0)
    assert watch.verdict(tmp_path, "r1").state == "held"
    now[0] = 9.0
    held = lease.renew(tmp_path, held)
    now[0] = 15.0  # 15 s since first seen, but only 6 s since the renewal was seen
    assert watch.verdict(tmp_path, "r1").state == "held"
    now[0] = 25.0
    assert watch.verdict(tmp_path, "r1").state == "expired"


def test_a_lease_is_created_once_and_names_its_holder(tmp_path):
    first = lease.acquire(tmp_path, "r1", driver="d1", ttl_seconds=5.0)
    assert first is not None and first.driver == "d1" and first.pid > 0 and first.host
    assert lease.acquire(tmp_path, "r1", driver="d2", ttl_seconds=5.0) is None
    assert lease.read_lease(tmp_path, "r1") == first


def _race(store, driver, start, results):
    start.wait()
    results.put((driver, lease.acquire(store, "r1", driver=driver, ttl_seconds=5.0) is not None))


@pytest.mark.parametrize("replacing_stale", [False, True])
def test_among_racing_processes_exactly_one_acquires(tmp_path, replacing_stale):
    stale = lease.acquire(tmp_path, "r1", driver="dead", ttl_seconds=5.0) if replacing_stale else None
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    target = _race if not replacing_stale else _race_takeover
    procs = [ctx.Process(target=target, args=(tmp_path, f"d{i}", start, results) + ((stale,) if stale else ()))
             for i in range(6)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(30)
    outcomes = dict(results.get(timeout=5) for _ in procs)
    winners = [d for d, won in outcomes.items() if won]
    assert len(winners) == 1
    assert lease.read_lease(tmp_path, "r1").driver == winners[0]


def _race_takeover(store, driver, start, results, stale):
    start.wait()
    results.put((driver, lease.acquire(store, "r1", driver=driver, ttl_seconds=5.0, replacing=stale) is not None))


def test_a_takeover_backs_off_when_the_lease_was_renewed_after_it_was_judged(tmp_path):
    held = lease.acquire(tmp_path, "r1", driver="d1", ttl_seconds=5.0)
    judged = lease.read_lease(tmp_path, "r1")
    lease.renew(tmp_path, held)  # the holder was alive after all
    assert lease.acquire(tmp_path, "r1", driver="d2", ttl_seconds=5.0, replacing=judged) is None
    assert lease.read_lease(tmp_path, "r1").driver == "d1"  # put back, untouched


def test_a_holder_whose_lease_was_taken_over_learns_it_at_its_next_renewal(tmp_path):
    old = lease.acquire(tmp_path, "r1", driver="d1", ttl_seconds=5.0)
    assert lease.acquire(tmp_path, "r1", driver="d2", ttl_seconds=5.0, replacing=old) is not None
    assert lease.renew(tmp_path, old) is None
    assert lease.release(tmp_path, old) is False
    assert lease.read_lease(tmp_path, "r1").driver == "d2"


def test_the_keeper_renews_releases_and_reports_lost_leases(tmp_path):
    keeper = lease.LeaseKeeper(tmp_path, driver="k", ttl_seconds=0.2)
    try:
        assert keeper.try_take("r1", lease.judge(None, watched_seconds=0))
        assert keeper.try_take("r2", lease.judge(None, watched_seconds=0))
        time.sleep(0.3)
        assert lease.read_lease(tmp_path, "r1").renewals >= 2  # renewed every ttl/4
        stolen = lease.read_lease(tmp_path, "r2")
        assert lease.acquire(tmp_path, "r2", driver="thief", ttl_seconds=5.0, replacing=stolen) is not None
        time.sleep(0.2)
        assert keeper.lost() == {"r2"} and not keeper.holds("r2") and keeper.holds("r1")
    finally:
        keeper.close()
    assert lease.read_lease(tmp_path, "r1").released
    assert lease.read_lease(tmp_path, "r2").driver == "thief" and not lease.read_lease(tmp_path, "r2").released


def test_ttl_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="ttl_seconds"):
        _lease(ttl_seconds=0)
    with pytest.raises(ValueError, match="ttl_seconds"):
        lease.LeaseKeeper(tmp_path, ttl_seconds=-1)
