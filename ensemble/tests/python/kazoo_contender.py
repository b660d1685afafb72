"""A kazoo contender for the ensemble fault tests.

The same workload and line protocol as the Rust `contender` binary in `mutex` mode with
`layout=kazoo` (see ensemble/src/bin/contender.rs), with kazoo 2.11's own `Lock` on the same
lock node: a mixed fleet of Python and Rust processes sharing one lock.

Arguments: id=<writer> connect=<hosts/chroot> session_ms=<ms> writes=<n> gap_ms=<ms>.
Commands on stdin: `stop` (the end of stdin too). Events on stdout, one per line:
  state <STATE> <session id> 0 | acquired <token> <session id> | write ok <value> <token>
  | write rejected <token> <why> | write unknown <token> <why> | violation <token> <what>
  | released <token> | error <what> | stopped

The fenced write: read the counter, then in one transaction check that the lock node exists,
set the counter at the version read, and append a log entry. The token is the lock node's czxid.
"""

import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, LockTimeout, RolledBackError
from kazoo.retry import KazooRetry

OUT = threading.Lock()


def out(line):
    with OUT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main():
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    ident = args.get("id", "kazoo")
    session_s = int(args.get("session_ms", "4000")) / 1000.0
    writes = int(args.get("writes", "3"))
    gap_s = int(args.get("gap_ms", "0")) / 1000.0

    stop = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()

    client = KazooClient(
        hosts=args["connect"],
        timeout=session_s,
        connection_retry=KazooRetry(max_tries=-1, max_delay=1.0),
        command_retry=KazooRetry(max_tries=3, max_delay=1.0),
    )
    client.add_listener(lambda state: out("state %s %d 0" % (state, client.client_id[0] if client.client_id else 0)))
    client.start(timeout=session_s * 4)

    lock = client.Lock("/lock", ident)
    while not stop.is_set():
        try:
            acquired = lock.acquire(timeout=5)
        except LockTimeout:
            continue
        except Exception as e:  # a connection or session error: back off, then contend again
            out("error acquire %r" % (e,))
            time.sleep(0.1)
            continue
        if not acquired:
            continue
        node = "%s/%s" % (lock.path, lock.node)
        token = 0
        try:
            stat = client.exists(node)
            token = stat.czxid if stat else 0
        except Exception as e:
            out("error token %r" % (e,))
        out("acquired %d %d" % (token, client.client_id[0] if client.client_id else 0))
        n = 0
        while n < writes and token != 0:
            if n > 0 and gap_s > 0:
                # Pacing: the writes of one hold spread over real time, as the other contenders'.
                time.sleep(gap_s)
            if not write(client, node, ident, token):
                break
            n += 1
        out("released %d" % token)
        try:
            lock.release()
        except Exception as e:
            out("error release %r" % (e,))
    try:
        client.stop()
        client.close()
    except Exception:
        pass
    out("stopped")


def write(client, node, ident, token):
    try:
        before, stat = client.get("/counter")
        before = before.decode()
    except Exception as e:
        out("write unknown %d reading the counter: %r" % (token, e))
        return False
    value = int(before.split(" ")[0]) + 1
    payload = "%d %s %d" % (value, ident, token)
    data = payload.encode()
    t = client.transaction()
    t.check(node, -1)
    t.set_data("/counter", data, version=stat.version)
    t.create("/log/w-", data, sequence=True)
    try:
        results = t.commit()
    except Exception as e:
        out("write unknown %d %r" % (token, e))
        return False
    failed = [(i, r) for i, r in enumerate(results) if isinstance(r, Exception) and not isinstance(r, RolledBackError)]
    if not failed:
        out("write ok %d %d" % (value, token))
        return True
    index, error = failed[0]
    if index == 0:
        out("write rejected %d fencing check: %s" % (token, type(error).__name__))
    elif index == 1 and isinstance(error, BadVersionError):
        try:
            now = client.get("/counter")[0].decode()
        except Exception as e:
            out("write unknown %d re-reading the counter after BadVersion: %r" % (token, e))
            return False
        if now == payload:
            out("write ok %d %d" % (value, token))
            return True
        out("violation %d the counter changed while %s held token %d: read %s, now %s" % (token, ident, token, before, now))
    else:
        out("write unknown %d %r" % (token, error))
    return False


if __name__ == "__main__":
    main()
