# SPDX-License-Identifier: MIT
"""Small shared pieces of the rsplice test helpers (python3 stdlib only)."""
import random
import socket
import sys
import time

BLOCK = 1 << 20  # the generator pattern repeats every 1 MiB


def pattern_block(seed):
    """1 MiB of pseudo-random bytes, the same for a given seed on both ends."""
    return random.Random(seed).randbytes(BLOCK)


def connect(host, port, timeout):
    """TCP connect with a deadline; the socket keeps `timeout` for I/O."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def listen(host, port, backlog=1024):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(backlog)
    return s


def recv_line(sock, limit=256):
    """Read one '\\n'-terminated line byte by byte (never reads past it)."""
    buf = b""
    while len(buf) < limit:
        c = sock.recv(1)
        if not c:
            break
        buf += c
        if c == b"\n":
            break
    return buf


def result(ok, msg):
    """Print one result line and exit 0 (ok) or 1."""
    print(("OK " if ok else "FAIL ") + msg, flush=True)
    sys.exit(0 if ok else 1)


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end


def run_main(fn):
    """Run fn(); any unexpected exception becomes one FAIL line and exit 1."""
    try:
        fn()
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - report everything as a failure
        result(False, f"{type(e).__name__}: {e}")


def serve_threaded(name, serve, bind=None, port=None):
    """Run serve(conn) in a thread per connection on bind:port (parsed from
    --bind/--port when not given)."""
    import argparse
    import threading

    if port is None:
        ap = argparse.ArgumentParser()
        ap.add_argument("--bind", default="0.0.0.0")
        ap.add_argument("--port", type=int, required=True)
        a = ap.parse_args()
        bind, port = a.bind, a.port
    srv = listen(bind, port)
    print(f"{name} on {bind}:{port}", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
