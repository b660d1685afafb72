"""kazoo's side of `corral-bench kazoo` (issue 16): lock, lease and set-partitioner figures.

Usage: python kazoo_bench.py ZK ROOT BENCH [ARGS...]
  lock CYCLES WARMUP              one client, acquire+release of one Lock, sequentially
  lock-contended CLIENTS TOTAL    CLIENTS processes (one KazooClient each) share TOTAL
                                  acquire+release cycles of one Lock
  lease COUNT                     one client, NonBlockingLease(path, 60 s, same identifier) COUNT times
  partition REPS ITEMS BOUNDARY   3 SetPartitioner workers (one KazooClient each) split ITEMS items;
                                  the third leaves (finish), time until the other two are ACQUIRED
                                  with the new split; it rejoins between repetitions

Prints "kazoo_<metric>=value unit" lines (the names `corral-bench kazoo` prints for Corral,
prefixed kazoo_) and "# ..." comments. Run in the venv corral-test-support makes (kazoo 2.11.0).
"""
import datetime
import logging
import math
import multiprocessing
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.recipe.partitioner import PartitionState
from kazoo.version import __version__ as KAZOO_VERSION

now = time.perf_counter_ns


def out(metric, value, unit):
    print(f"kazoo_{metric}={value} {unit}", flush=True)


def note(s):
    print(f"# {s}", flush=True)


def pct(s, p):
    if not s:
        return -1
    i = int(math.ceil(p / 100.0 * len(s))) - 1
    return s[max(0, min(len(s) - 1, i))]


def stats(prefix, ns, unit):
    s = sorted(ns)
    div, fmt = (1e3, "{:.1f}") if unit == "us" else (1e6, "{:.2f}")
    out(prefix + "_p50", fmt.format(pct(s, 50) / div), unit)
    out(prefix + "_p99", fmt.format(pct(s, 99) / div), unit)
    out(prefix + "_mean", fmt.format(sum(s) / len(s) / div if s else -1), unit)
    out(prefix + "_max", fmt.format(s[-1] / div if s else -1), unit)
    out(prefix + "_n", len(s), "samples")


def client(zk):
    c = KazooClient(hosts=zk, timeout=30)
    c.start(timeout=15)
    return c


def delete_tree(c, path):
    try:
        c.delete(path, recursive=True)
    except NoNodeError:
        pass


def lock(zk, root, cycles, warmup):
    c = client(zk)
    path = root + "/lock-u"
    delete_tree(c, path)
    lk = c.Lock(path, "solo")
    for _ in range(warmup):
        lk.acquire()
        lk.release()
    cycle = []
    start = now()
    for _ in range(cycles):
        t0 = now()
        lk.acquire()
        lk.release()
        cycle.append(now() - t0)
    el = now() - start
    out("lock_uncontended_rate", f"{len(cycle) / (el / 1e9):.0f}", "acq/s")
    stats("lock_uncontended_cycle", cycle, "us")
    delete_tree(c, path)
    c.stop()
    c.close()


def _contender(zk, path, i, tickets, ready, go, done):
    c = client(zk)
    lk = c.Lock(path, f"c{i}")
    ready.wait()  # everyone connected
    go.wait()  # the parent has read the clock
    n = 0
    while True:
        with tickets.get_lock():
            if tickets.value <= 0:
                break
            tickets.value -= 1
        lk.acquire()
        lk.release()
        n += 1
    done.put(n)
    c.stop()
    c.close()


def lock_contended(zk, root, clients, total):
    path = root + "/lock-c"
    admin = client(zk)
    delete_tree(admin, path)
    ctx = multiprocessing.get_context("fork")
    tickets = ctx.Value("i", total)
    ready = ctx.Barrier(clients + 1)
    go = ctx.Barrier(clients + 1)
    done = ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(zk, path, i, tickets, ready, go, done)) for i in range(clients)]
    for p in procs:
        p.start()
    ready.wait()
    start = now()
    go.wait()
    counts = [done.get(timeout=120) for _ in procs]
    el = now() - start
    for p in procs:
        p.join()
    out(f"lock_contended{clients}_rate", f"{sum(counts) / (el / 1e9):.0f}", "acq/s")
    note(f"lock-contended {clients}: acquisitions per process {sorted(counts)}")
    delete_tree(admin, path)
    admin.stop()
    admin.close()


def lease(zk, root, count):
    c = client(zk)
    path = root + "/lease"
    delete_tree(c, path)
    duration = datetime.timedelta(seconds=60)
    for _ in range(20):
        assert c.NonBlockingLease(path, duration, identifier="solo")
    lat = []
    start = now()
    for _ in range(count):
        t0 = now()
        if not c.NonBlockingLease(path, duration, identifier="solo"):
            raise RuntimeError("lease not obtained")
        lat.append(now() - t0)
    el = now() - start
    out("lease_rate", f"{len(lat) / (el / 1e9):.0f}", "leases/s")
    stats("lease_obtain", lat, "us")
    delete_tree(c, path)
    c.stop()
    c.close()


class Worker:
    """One SetPartitioner on a client of its own; a thread answers RELEASE with release_set()."""

    def __init__(self, zk, path, items, ident, boundary):
        self.client = client(zk)
        self.path, self.items, self.ident, self.boundary = path, items, ident, boundary
        self.part = None
        self.start()

    def start(self):
        self.changed = threading.Event()
        self.part = self.client.SetPartitioner(
            self.path, set=self.items, identifier=self.ident, time_boundary=self.boundary,
            state_change_event=self.changed)
        self.thread = threading.Thread(target=self.follow, args=(self.part, self.changed), daemon=True)
        self.thread.start()

    @staticmethod
    def follow(part, changed):
        while True:
            changed.clear()
            if part.failed:
                return
            if part.release:
                part.release_set()
                continue
            changed.wait(1)

    def acquired(self, since_id, size):
        p = self.part
        return p.state == PartitionState.ACQUIRED and p.state_id > since_id and len(p._partition_set) == size

    def close(self):
        try:
            self.part.finish()
        except ValueError as e:
            # kazoo's finish() and a release_set() on its follower thread can both remove a
            # lock from its list when the party changes during teardown (not measured).
            note(f"{self.ident}: finish raced release_set: {e!r}")
        self.client.stop()
        self.client.close()


def wait_until(cond, what, limit=60):
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.0005)


def partition(zk, root, reps, n_items, boundary):
    path = root + "/partition"
    admin = client(zk)
    delete_tree(admin, path)
    items = [f"item-{i:03}" for i in range(n_items)]
    workers = [Worker(zk, path, items, f"w{i}", boundary) for i in range(3)]
    share3 = lambda i: len(items[i::3])  # noqa: E731 (sorted identifiers w0 < w1 < w2)
    share2 = lambda i: len(items[i::2])  # noqa: E731
    wait_until(lambda: all(w.acquired(0, share3(i)) for i, w in enumerate(workers)), "the first split")
    lat = []
    for _ in range(reps):
        leaver = workers[2]
        ids = [w.part.state_id for w in workers[:2]]
        t0 = now()
        leaver.part.finish()
        wait_until(lambda: all(w.acquired(ids[i], share2(i)) for i, w in enumerate(workers[:2])), "the new split")
        lat.append(now() - t0)
        # The third worker joins again (not measured) and everyone settles on three shares.
        ids = [w.part.state_id for w in workers[:2]]
        leaver.start()
        wait_until(
            lambda: all(w.acquired(ids[i] if i < 2 else 0, share3(i)) for i, w in enumerate(workers)),
            "the split with three")
    stats("partition_rebalance", lat, "ms")
    for w in workers:
        w.close()
    delete_tree(admin, path)
    admin.stop()
    admin.close()


def main(argv):
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    zk, root, bench, rest = argv[0], argv[1], argv[2], argv[3:]
    note(f"kazoo {KAZOO_VERSION} bench {bench} {' '.join(rest)} (zk {zk})")
    if bench == "lock":
        lock(zk, root, int(rest[0]), int(rest[1]))
    elif bench == "lock-contended":
        lock_contended(zk, root, int(rest[0]), int(rest[1]))
    elif bench == "lease":
        lease(zk, root, int(rest[0]))
    elif bench == "partition":
        partition(zk, root, int(rest[0]), int(rest[1]), float(rest[2]))
    else:
        raise SystemExit(f"unknown bench {bench}")


if __name__ == "__main__":
    main(sys.argv[1:])
