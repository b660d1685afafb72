#!/usr/bin/env python3
"""Record golden ZooKeeper wire frames from a real server into proto/tests/fixtures/*.hex.

Usage:
    scripts/capture-golden.py HOST:PORT [--out DIR]

The script starts nothing: point it at a running ZooKeeper (3.8 for the checked-in fixtures)
that it may write to. It uses only raw sockets and the standard library, so the bytes are
exactly what went over the wire, each frame with its 4-byte big-endian length prefix.

It creates and then removes /golden-create, /golden-create2 (and would remove /golden-multi
had the multi succeeded); leftovers of an earlier run are removed first by a separate
session, so the recorded sessions always start at xid 1.

Fixture format (one file per exchange, see proto/tests/fixtures/README.md):
    # comment lines describe the file and each frame
    > <lower-case hex>     a frame sent by the client (length prefix included)
    < <lower-case hex>     a frame sent by the server (length prefix included)
"""

import argparse
import datetime
import os
import socket
import struct
import sys

# Opcodes, xids and codes used below (zookeeper-protocol.md §4, §5, §11).
OP_CREATE, OP_DELETE, OP_GET_DATA, OP_SET_DATA = 1, 2, 4, 5
OP_PING, OP_MULTI, OP_CREATE2, OP_CLOSE_SESSION = 11, 14, 15, -11
XID_NOTIFICATION, XID_PING = -1, -2
OK, RUNTIME_INCONSISTENCY, NO_NODE = 0, -2, -101
PERMS_ALL = 31
OPEN_ACL_UNSAFE = [(PERMS_ALL, "world", "anyone")]
PERSISTENT = 0
SESSION_TIMEOUT_MS = 30000
STAT_FIELDS = (
    ("czxid", "q"), ("mzxid", "q"), ("ctime", "q"), ("mtime", "q"), ("version", "i"), ("cversion", "i"),
    ("aversion", "i"), ("ephemeralOwner", "q"), ("dataLength", "i"), ("numChildren", "i"), ("pzxid", "q"),
)
STAT_SIZE = 68
GOLDEN_NODES = ("/golden-create2", "/golden-multi", "/golden-create")


class CaptureError(Exception):
    """The server did something the capture does not expect."""


# --- jute encoding -------------------------------------------------------------------------------

def jint(value):
    return struct.pack(">i", value)


def jlong(value):
    return struct.pack(">q", value)


def jbool(value):
    return b"\x01" if value else b"\x00"


def jbuffer(data):
    return b"\xff\xff\xff\xff" if data is None else jint(len(data)) + data


def jstring(text):
    return jbuffer(None if text is None else text.encode("utf-8"))


def jacl(acl):
    return jint(len(acl)) + b"".join(jint(perms) + jstring(scheme) + jstring(ident) for perms, scheme, ident in acl)


def request(xid, op, body=b""):
    return jint(xid) + jint(op) + body


def create_body(path, data, acl=OPEN_ACL_UNSAFE, flags=PERSISTENT):
    return jstring(path) + jbuffer(data) + jacl(acl) + jint(flags)


def multi_header(op, done, err):
    return jint(op) + jbool(done) + jint(err)


# --- jute decoding (for the comments and the checks) ---------------------------------------------

class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, size):
        if self.pos + size > len(self.data):
            raise CaptureError(f"frame too short: need {size} bytes at offset {self.pos} of {len(self.data)}")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def long(self):
        return struct.unpack(">q", self.take(8))[0]

    def bool(self):
        return self.take(1) != b"\x00"

    def buffer(self):
        size = self.int()
        return None if size == -1 else self.take(size)

    def string(self):
        data = self.buffer()
        return None if data is None else data.decode("utf-8")

    def stat(self):
        values = [self.long() if kind == "q" else self.int() for _, kind in STAT_FIELDS]
        return dict(zip((name for name, _ in STAT_FIELDS), values))

    def rest(self):
        return len(self.data) - self.pos


def describe_stat(stat):
    parts = []
    for name, value in stat.items():
        parts.append(f"{name}={value:#x}" if name.endswith("zxid") or name == "ephemeralOwner" else f"{name}={value}")
    return "Stat{" + ", ".join(parts) + "}"


def reply_header(payload):
    reader = Reader(payload)
    xid, zxid, err = reader.int(), reader.long(), reader.int()
    return reader, xid, zxid, err


def describe_header(xid, zxid, err):
    return f"ReplyHeader{{xid={xid}, zxid={zxid:#x}, err={err}}}"


# --- connections and fixtures --------------------------------------------------------------------

class Session:
    """One TCP connection speaking raw frames."""

    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, payload):
        frame = jint(len(payload)) + payload
        self.sock.sendall(frame)
        return frame

    def recv(self):
        prefix = self._exactly(4)
        (size,) = struct.unpack(">i", prefix)
        if size < 0 or size > 0xFFFFF:
            raise CaptureError(f"bad frame length {size}")
        return prefix + self._exactly(size)

    def at_eof(self):
        return self.sock.recv(1) == b""

    def _exactly(self, size):
        chunks = b""
        while len(chunks) < size:
            chunk = self.sock.recv(size - len(chunks))
            if not chunk:
                raise CaptureError(f"connection closed after {len(chunks)} of {size} bytes")
            chunks += chunk
        return chunks

    def close(self):
        self.sock.close()


def connect_request(timeout_ms=SESSION_TIMEOUT_MS):
    # protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (16 zero bytes), readOnly
    return jint(0) + jlong(0) + jint(timeout_ms) + jlong(0) + jbuffer(bytes(16)) + jbool(False)


def open_session(address):
    """A new session; returns (session, response frame)."""
    session = Session(address)
    session.send(connect_request())
    response = session.recv()
    reader = Reader(response[4:])
    if reader.int() != 0 or reader.int() <= 0:
        raise CaptureError(f"the server refused the session: {response.hex()}")
    return session, response


def call(session, xid, op, body=b""):
    """Sends one request and returns (request frame, reply frame); the reply must answer this xid."""
    sent = session.send(request(xid, op, body))
    received = session.recv()
    _, reply_xid, _, _ = reply_header(received[4:])
    if reply_xid != xid:
        raise CaptureError(f"expected the reply to xid {xid}, got xid {reply_xid}: {received.hex()}")
    return sent, received


class Fixture:
    def __init__(self, name, header):
        self.name = name
        self.lines = [f"# {line}" for line in header]

    def client(self, frame, comment):
        self.lines += [f"# client -> server ({len(frame)} bytes): {comment}", "> " + frame.hex()]

    def server(self, frame, comment):
        self.lines += [f"# server -> client ({len(frame)} bytes): {comment}", "< " + frame.hex()]

    def write(self, directory):
        path = os.path.join(directory, self.name + ".hex")
        with open(path, "w", encoding="utf-8") as out:
            out.write("\n".join(self.lines) + "\n")
        return path


def expect(condition, message):
    if not condition:
        raise CaptureError(message)


def server_version(address):
    try:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(b"srvr")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
    except OSError as err:
        return f"unknown ({err})"
    for line in reply.decode("utf-8", "replace").splitlines():
        if line.startswith("Zookeeper version: "):
            return line[len("Zookeeper version: "):]
    return "unknown (no version in srvr)"


def remove_golden_nodes(address):
    """Deletes the nodes this script creates, in a session of its own (nothing is recorded)."""
    session, _ = open_session(address)
    try:
        for xid, path in enumerate(GOLDEN_NODES, start=1):
            _, received = call(session, xid, OP_DELETE, jstring(path) + jint(-1))
            _, _, _, err = reply_header(received[4:])
            expect(err in (OK, NO_NODE), f"deleting {path} failed with {err}")
        call(session, len(GOLDEN_NODES) + 1, OP_CLOSE_SESSION)
    finally:
        session.close()


# --- the capture ---------------------------------------------------------------------------------

def capture(address, header):
    """Runs the exchanges and returns the fixtures."""
    fixtures = []

    def fixture(name, *lines):
        fx = Fixture(name, list(lines) + header)
        fixtures.append(fx)
        return fx

    # Session A: connect.
    a = Session(address)
    fx = fixture("connect", "Session A: ConnectRequest for a new session and the server's ConnectResponse.")
    sent = a.send(connect_request())
    fx.client(sent, "ConnectRequest{protocolVersion=0, lastZxidSeen=0, timeOut=30000, sessionId=0, "
                    "passwd=16 zero bytes, readOnly=false}")
    received = a.recv()
    reader = Reader(received[4:])
    version, timeout, session_id, passwd = reader.int(), reader.int(), reader.long(), reader.buffer()
    read_only = reader.bool()
    expect(reader.rest() == 0 and timeout > 0, f"unexpected ConnectResponse {received.hex()}")
    fx.server(received, f"ConnectResponse{{protocolVersion={version}, timeOut={timeout}, sessionId={session_id:#x}, "
                        f"passwd={passwd.hex()}, readOnly={str(read_only).lower()}}}")

    # Ping.
    fx = fixture("ping", "Session A: a ping (xid -2, opcode 11, empty body) and its reply.")
    sent, received = call(a, XID_PING, OP_PING)
    fx.client(sent, f"RequestHeader{{xid={XID_PING}, type={OP_PING}}}")
    reader, *header_fields = reply_header(received[4:])
    expect(reader.rest() == 0, "the ping reply has a body")
    fx.server(received, describe_header(*header_fields))

    # create (opcode 1).
    fx = fixture("create", "Session A: create /golden-create, data 'hello', OPEN_ACL_UNSAFE, persistent (opcode 1).")
    sent, received = call(a, 1, OP_CREATE, create_body("/golden-create", b"hello"))
    fx.client(sent, "RequestHeader{xid=1, type=1} CreateRequest{path=\"/golden-create\", data=\"hello\", "
                    "acl=[ACL{perms=31, id=Id{scheme=\"world\", id=\"anyone\"}}], flags=0}")
    reader, xid, zxid, err = reply_header(received[4:])
    expect(err == OK, f"create failed with {err}")
    path = reader.string()
    expect(reader.rest() == 0, "trailing bytes after CreateResponse")
    fx.server(received, f"{describe_header(xid, zxid, err)} CreateResponse{{path=\"{path}\"}}")

    # getData with a watch.
    fx = fixture("get-data-watch", "Session A: getData /golden-create with watch=true, and its reply.")
    sent, received = call(a, 2, OP_GET_DATA, jstring("/golden-create") + jbool(True))
    fx.client(sent, "RequestHeader{xid=2, type=4} GetDataRequest{path=\"/golden-create\", watch=true}")
    reader, xid, zxid, err = reply_header(received[4:])
    expect(err == OK, f"getData failed with {err}")
    data, stat = reader.buffer(), reader.stat()
    expect(reader.rest() == 0, "trailing bytes after GetDataResponse")
    fx.server(received, f"{describe_header(xid, zxid, err)} GetDataResponse{{data={data!r}, {describe_stat(stat)}}}")

    # Session B: setData, which fires session A's data watch.
    b, _ = open_session(address)
    fx = fixture("set-data", "Session B (a second session): setData /golden-create to 'world', any version, "
                             "and its reply. It fires session A's watch (watch-event.hex).")
    sent, received = call(b, 1, OP_SET_DATA, jstring("/golden-create") + jbuffer(b"world") + jint(-1))
    fx.client(sent, "RequestHeader{xid=1, type=5} SetDataRequest{path=\"/golden-create\", data=\"world\", version=-1}")
    reader, xid, zxid, err = reply_header(received[4:])
    expect(err == OK, f"setData failed with {err}")
    stat = reader.stat()
    expect(reader.rest() == 0, "trailing bytes after SetDataResponse")
    fx.server(received, f"{describe_header(xid, zxid, err)} SetDataResponse{{{describe_stat(stat)}}}")
    set_data_zxid = zxid

    fx = fixture("watch-event", "Session A: the watch notification caused by session B's setData (set-data.hex).",
                 f"The setData's zxid was {set_data_zxid:#x}.")
    received = a.recv()
    reader, xid, zxid, err = reply_header(received[4:])
    expect(xid == XID_NOTIFICATION, f"expected a notification, got xid {xid}")
    event_type, state, path = reader.int(), reader.int(), reader.string()
    expect(reader.rest() == 0, "trailing bytes after WatcherEvent")
    fx.server(received, f"{describe_header(xid, zxid, err)} "
                        f"WatcherEvent{{type={event_type} (NodeDataChanged), state={state} (SyncConnected), "
                        f"path=\"{path}\"}}")

    # multi (opcode 14) that fails on its second op.
    fx = fixture("multi-failed", "Session A: multi [create /golden-multi, delete /golden-missing (no such node), "
                                 "setData /golden-create] and its reply: nothing is applied.")
    body = (multi_header(OP_CREATE, False, -1) + create_body("/golden-multi", b"")
            + multi_header(OP_DELETE, False, -1) + jstring("/golden-missing") + jint(-1)
            + multi_header(OP_SET_DATA, False, -1) + jstring("/golden-create") + jbuffer(b"multi") + jint(-1)
            + multi_header(-1, True, -1))
    sent, received = call(a, 3, OP_MULTI, body)
    fx.client(sent, "RequestHeader{xid=3, type=14} "
                    "MultiHeader{type=1, done=false, err=-1} CreateRequest{path=\"/golden-multi\", data=\"\", "
                    "acl=OPEN_ACL_UNSAFE, flags=0} "
                    "MultiHeader{type=2, done=false, err=-1} DeleteRequest{path=\"/golden-missing\", version=-1} "
                    "MultiHeader{type=5, done=false, err=-1} SetDataRequest{path=\"/golden-create\", "
                    "data=\"multi\", version=-1} "
                    "MultiHeader{type=-1, done=true, err=-1}")
    reader, xid, zxid, err = reply_header(received[4:])
    results, codes = [], []
    while True:
        op, done, op_err = reader.int(), reader.bool(), reader.int()
        if done:
            results.append(f"MultiHeader{{type={op}, done=true, err={op_err}}}")
            break
        expect(op == -1, f"expected an error result in a failed multi, got type {op}")
        code = reader.int()
        expect(code == op_err, f"ErrorResponse {code} differs from its header's err {op_err}")
        codes.append(code)
        results.append(f"MultiHeader{{type={op}, done=false, err={op_err}}} ErrorResponse{{err={code}}}")
    expect(reader.rest() == 0, "trailing bytes after MultiResponse")
    expect(codes == [OK, NO_NODE, RUNTIME_INCONSISTENCY], f"unexpected multi results {codes}")
    fx.server(received, f"{describe_header(xid, zxid, err)} " + " ".join(results))

    # create2 (opcode 15).
    fx = fixture("create2", "Session A: create2 /golden-create2, data 'hello2', OPEN_ACL_UNSAFE, persistent "
                            "(opcode 15), and its reply with a Stat.")
    sent, received = call(a, 4, OP_CREATE2, create_body("/golden-create2", b"hello2"))
    fx.client(sent, "RequestHeader{xid=4, type=15} CreateRequest{path=\"/golden-create2\", data=\"hello2\", "
                    "acl=[ACL{perms=31, id=Id{scheme=\"world\", id=\"anyone\"}}], flags=0}")
    reader, xid, zxid, err = reply_header(received[4:])
    expect(err == OK, f"create2 failed with {err}")
    path, stat = reader.string(), reader.stat()
    expect(reader.rest() == 0, "trailing bytes after Create2Response")
    fx.server(received, f"{describe_header(xid, zxid, err)} Create2Response{{path=\"{path}\", {describe_stat(stat)}}}")

    # An error reply: getData on a missing node.
    fx = fixture("error-no-node", "Session A: getData /golden-missing (no such node) and the NoNode (-101) reply: "
                                  "a ReplyHeader and no body.")
    sent, received = call(a, 5, OP_GET_DATA, jstring("/golden-missing") + jbool(False))
    fx.client(sent, "RequestHeader{xid=5, type=4} GetDataRequest{path=\"/golden-missing\", watch=false}")
    reader, xid, zxid, err = reply_header(received[4:])
    expect(err == NO_NODE, f"expected NoNode, got {err}")
    expect(reader.rest() == 0, "the error reply has a body")
    fx.server(received, describe_header(xid, zxid, err))

    # closeSession: the reply, then the server closes the connection.
    fx = fixture("close-session", "Session A: closeSession (opcode -11, empty body) and its reply; "
                                  "the server then closes the connection.")
    sent, received = call(a, 6, OP_CLOSE_SESSION)
    fx.client(sent, f"RequestHeader{{xid=6, type={OP_CLOSE_SESSION}}}")
    reader, *header_fields = reply_header(received[4:])
    expect(reader.rest() == 0, "the closeSession reply has a body")
    fx.server(received, describe_header(*header_fields))
    expect(a.at_eof(), "the server did not close the connection after closeSession")
    a.close()

    call(b, 2, OP_CLOSE_SESSION)
    b.close()
    return fixtures


def parse_address(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def main():
    default_out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "proto", "tests", "fixtures")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address", type=parse_address, help="the ZooKeeper server, HOST:PORT")
    parser.add_argument("--out", default=default_out, help="output directory (default: %(default)s)")
    args = parser.parse_args()

    version = server_version(args.address)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    header = [f"Captured from ZooKeeper {version} on {date} by scripts/capture-golden.py.",
              "Lines: '> ' client->server frame, '< ' server->client frame, hex, 4-byte length prefix included."]
    try:
        remove_golden_nodes(args.address)
        fixtures = capture(args.address, header)
        remove_golden_nodes(args.address)
    except (CaptureError, OSError) as err:
        print(f"capture-golden: {err}", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    for fx in fixtures:
        print(fx.write(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
