"""Run leases: a run being trained holds `<store>/runs/<run_id>/lease.json`, so no two drivers train it at once.

A lease names its holder (driver id, host, pid), the seconds within which the holder promises to renew it
(`ttl_seconds`), and a renewal counter. The holder's heartbeat (`LeaseKeeper`) rewrites the counter every
ttl/4; a driver that finds a lease judges it by what it sees itself (`judge`):

- free: no lease file, or one its holder released (the run ended, or its driver stopped cleanly);
- held: the counter changed less than `ttl_seconds` ago *by the reader's own monotonic clock*;
- expired: the reader has watched the same counter for `ttl_seconds`, so the holder stopped renewing.

Expiry never compares clocks across hosts (no timestamps from the file are trusted): the price is that a
driver must watch a lease for one ttl before taking it over. A driver takes over a free or expired lease;
a live one it leaves alone and reports the run as running elsewhere.

Only operations a shared filesystem (NFS included) performs atomically on its server are used:
- acquire: the lease is written to a temp file and hard-linked to `lease.json` (link fails if it exists;
  the classic NFS-safe lock file, open(2) "O_EXCL"; a lost reply is resolved by the temp file's link count);
- take over: `lease.json` is renamed to a name private to the taker, which then checks it moved exactly
  the lease it judged stale (same holder and counter); if not, it links it back and backs off;
- renew and release: the holder opens `lease.json`, checks it is still its own, and rewrites it in place with
  one fixed-size write, so a lease renamed away by a taker is never silently recreated.
Limits (docs/methods.md, "Run leases"): a holder late by a whole ttl (frozen, or its filesystem stalled)
may find its lease taken over and only learns it at its next renewal, so the overlap is at most one
heartbeat; the ttl must also exceed the filesystem's attribute-cache time (NFS actimeo) to be seen renewed.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from experiments import store as st

LEASE = "lease.json"
LEASE_BYTES = 512  # every lease is padded to this size and written with one write()
DEFAULT_TTL_SECONDS = 60.0


@dataclass(frozen=True)
class Lease:
    """The content of one lease file."""

    run_id: str
    driver: str  # unique per launch: host-pid-random
    host: str
    pid: int
    ttl_seconds: float
    renewals: int = 0
    released: bool = False

    def __post_init__(self):
        if not self.ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be positive, got {self.ttl_seconds!r}")
        if self.renewals < 0:
            raise ValueError(f"renewals must be >= 0, got {self.renewals!r}")

    @property
    def key(self) -> tuple[str, int, bool]:
        """What a reader watches for change: who holds it, how often renewed, whether released."""
        return (self.driver, self.renewals, self.released)

    def encode(self) -> bytes:
        data = json.dumps({"run_id": self.run_id, "driver": self.driver, "host": self.host, "pid": self.pid,
                           "ttl_seconds": self.ttl_seconds, "renewals": self.renewals, "released": self.released})
        if len(data) >= LEASE_BYTES:
            raise ValueError(f"lease of run {self.run_id} does not fit {LEASE_BYTES} bytes")
        return data.ljust(LEASE_BYTES).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Lease | None:
        """The lease in `raw`, or None for a file caught mid-write (a reader treats it as just renewed)."""
        try:
            return cls(**json.loads(raw.decode()))
        except (ValueError, TypeError):
            return None


def new_driver_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def lease_path(store: str | Path, run_id: str) -> Path:
    return st.run_dir(store, run_id) / LEASE


def read_lease(store: str | Path, run_id: str) -> Lease | None | bytes:
    """The run's lease; None if there is none; the raw bytes if it is unreadable (being rewritten)."""
    try:
        raw = lease_path(store, run_id).read_bytes()
    except FileNotFoundError:
        return None
    return Lease.decode(raw) or raw


# ---- the pure decision ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    state: str  # "free" | "held" | "expired"
    lease: Lease | None
    message: str


def judge(lease: Lease | None, *, watched_seconds: float) -> Verdict:
    """Whether a driver may take this lease, having seen it unchanged (same `Lease.key`) for
    `watched_seconds` of its own clock. Pure: `LeaseWatch` supplies the watching."""
    if lease is None:
        return Verdict("free", None, "no lease")
    if lease.released:
        return Verdict("free", lease, f"released by driver {lease.driver}")
    who = f"driver {lease.driver} (host {lease.host}, pid {lease.pid})"
    if watched_seconds >= lease.ttl_seconds:
        return Verdict("expired", lease, f"{who} has not renewed it for {watched_seconds:.0f} s "
                                         f"(it promised every {lease.ttl_seconds:g} s)")
    return Verdict("held", lease, f"running elsewhere: {who}")


class LeaseWatch:
    """Remembers, per run, when this process first saw its lease in its current state (monotonic clock)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._seen: dict[str, tuple[object, float]] = {}

    def verdict(self, store: str | Path, run_id: str) -> Verdict:
        found = read_lease(store, run_id)
        key = found.key if isinstance(found, Lease) else found  # raw bytes: mid-write, i.e. just renewed
        now = self._clock()
        if run_id not in self._seen or self._seen[run_id][0] != key:
            self._seen[run_id] = (key, now)
        watched = now - self._seen[run_id][1]
        if isinstance(found, bytes):
            return Verdict("held", None, "running elsewhere (its lease is being renewed)")
        return judge(found, watched_seconds=watched)


# ---- acquire, renew, release ------------------------------------------------------------------------

def _link_exclusive(tmp: Path, target: Path) -> bool:
    """Hard-link tmp to target unless target exists; True if this call created it."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    except OSError:
        return os.stat(tmp).st_nlink == 2  # NFS: the link may have been made and its reply lost


def acquire(store: str | Path, run_id: str, *, driver: str, ttl_seconds: float,
            replacing: Lease | None = None) -> Lease | None:
    """Create the run's lease for `driver`; None if another driver holds it or won the race.

    replacing: the free or expired lease `judge` said may be taken (None when there was no file). It is
    moved away only if it is still exactly that lease (same holder and counter), else put back.
    """
    path = lease_path(store, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if replacing is not None:
        moved = path.with_name(f".{LEASE}.{driver}.taken")
        try:
            os.rename(path, moved)
        except FileNotFoundError:
            return None  # another driver took it first
        taken = Lease.decode(moved.read_bytes())
        if taken is None or taken.key != replacing.key:  # renewed or replaced meanwhile: not ours to take
            if _link_exclusive(moved, path):
                moved.unlink()
            return None
        moved.unlink()
    lease = Lease(run_id=run_id, driver=driver, host=socket.gethostname(), pid=os.getpid(), ttl_seconds=ttl_seconds)
    tmp = path.with_name(f".{LEASE}.{driver}.new")
    tmp.write_bytes(lease.encode())
    try:
        return lease if _link_exclusive(tmp, path) else None
    finally:
        tmp.unlink(missing_ok=True)


def _rewrite(store: str | Path, lease: Lease, new: Lease) -> bool:
    """Rewrite the lease file in place with `new` if it still holds `lease`'s holder; False if it does not."""
    try:
        fd = os.open(lease_path(store, lease.run_id), os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        current = Lease.decode(os.pread(fd, LEASE_BYTES, 0))
        if current is None or current.driver != lease.driver or current.released:
            return False
        os.pwrite(fd, new.encode(), 0)
        os.fsync(fd)
        return True
    finally:
        os.close(fd)


def renew(store: str | Path, lease: Lease) -> Lease | None:
    """The renewed lease, or None if it is no longer this holder's (taken over after it expired)."""
    renewed = replace(lease, renewals=lease.renewals + 1)
    return renewed if _rewrite(store, lease, renewed) else None


def release(store: str | Path, lease: Lease) -> bool:
    """Mark the lease released, so the next driver takes the run at once; False if it was not ours anymore."""
    return _rewrite(store, lease, replace(lease, renewals=lease.renewals + 1, released=True))


class LeaseKeeper:
    """The leases one driver holds, renewed every ttl/4 by a daemon thread. A lease that turns out taken
    over (its holder was late by a whole ttl) lands in `lost()`, for the driver to stop that run."""

    def __init__(self, store: str | Path, *, driver: str | None = None, ttl_seconds: float = DEFAULT_TTL_SECONDS):
        if not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds!r}")
        self.store, self.ttl_seconds = Path(store), ttl_seconds
        self.driver = driver or new_driver_id()
        self._held: dict[str, Lease] = {}
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def holds(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._held

    def try_take(self, run_id: str, verdict: Verdict) -> bool:
        """Acquire the run's lease if `verdict` is free or expired and no other driver beats us to it."""
        if verdict.state == "held":
            return False
        lease = acquire(self.store, run_id, driver=self.driver, ttl_seconds=self.ttl_seconds, replacing=verdict.lease)
        if lease is None:
            return False
        with self._lock:
            self._held[run_id] = lease
            self._lost.discard(run_id)
        return True

    def give_up(self, run_id: str) -> None:
        """Release the run's lease (it finished, failed, or this driver stops)."""
        with self._lock:
            lease = self._held.pop(run_id, None)
        if lease is not None:
            release(self.store, lease)

    def lost(self) -> set[str]:
        with self._lock:
            lost, self._lost = self._lost, set()
        return lost

    def close(self) -> None:
        """Stop the heartbeat and release every lease still held."""
        self._stop.set()
        self._thread.join()
        for run_id in list(self._held):
            self.give_up(run_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_seconds / 4):
            with self._lock:
                held = dict(self._held)
            for run_id, lease in held.items():
                try:
                    renewed = renew(self.store, lease)
                except OSError:
                    continue  # a stalled filesystem: try again next beat; the lease may expire meanwhile
                with self._lock:
                    if run_id not in self._held:
                        continue  # given up while we renewed
                    if renewed is None:
                        del self._held[run_id]
                        self._lost.add(run_id)
                    else:
                        self._held[run_id] = renewed
