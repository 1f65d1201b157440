#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Well-behaved and hostile clients of the metrics endpoint (test_metrics.sh).

get --host H --port P --n N [--timeout T]
    N concurrent GET /metrics, all sent at once.  Prints
    "OK 200=A 503=B secs=S" when every one got a complete HTTP answer (200
    with the announced Content-Length, or 503) within T seconds, else
    "FAIL <why>".
hold --host H --port P --n N --secs S
    N connections that never send a byte, held S seconds (or until the
    server closes them).  Prints "OK held=N closed_by_server=C".
slowloris --host H --port P [--interval I] [--limit L]
    A request head trickled one byte every I seconds, never finished.
    Prints "OK closed after X s: <status line or EOF>" once the server ends
    it, "FAIL still open after L s" otherwise.
bigline --host H --port P --size N
    A request line of N bytes.  Prints "OK <status line>" with whatever the
    server answered, or "FAIL <why>"."""
import argparse
import socket
import threading
import time

from common import result, run_main


def read_answer(s, deadline):
    """The whole answer until EOF: (status line, headers dict, body)."""
    buf = b""
    while True:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        d = s.recv(65536)
        if not d:
            break
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs, body


def do_get(a):
    """A 503 may be reset away when the server closes while our request is
    still unread: "reset" is a refusal too; a hang or a bad 200 is not."""
    res = [None] * a.n
    deadline = time.monotonic() + a.timeout
    t0 = time.monotonic()
    go = threading.Event()

    def one(i):
        try:
            s = socket.create_connection((a.host, a.port), timeout=a.timeout)
        except OSError as e:
            res[i] = f"connect {type(e).__name__}"
            return
        try:
            go.wait()
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            status, hdrs, body = read_answer(s, deadline)
            if status.startswith("HTTP/1.1 200 "):
                ok = int(hdrs.get("content-length", -1)) == len(body) and body.endswith(b"\n")
                res[i] = "200" if ok else f"short body {len(body)}"
            elif status.startswith("HTTP/1.1 503 "):
                res[i] = "503"
            else:
                res[i] = "status " + status
        except ConnectionResetError:
            res[i] = "reset"
        except OSError as e:
            res[i] = f"{type(e).__name__}: {e}"
        finally:
            s.close()

    ts = [threading.Thread(target=one, args=(i,)) for i in range(a.n)]
    for t in ts:
        t.start()
    time.sleep(0.2)
    go.set()
    for t in ts:
        t.join(a.timeout + 1)
    bad = [r for r in res if r not in ("200", "503", "reset")]
    msg = (f"200={res.count('200')} 503={res.count('503')} reset={res.count('reset')} "
           f"secs={time.monotonic() - t0:.2f}")
    result(not bad and res.count("200") > 0, msg + (f" errors={bad[:3]}" if bad else ""))


def do_hold(a):
    socks = [socket.create_connection((a.host, a.port), timeout=5) for _ in range(a.n)]
    end = time.monotonic() + a.secs
    closed = set()
    while time.monotonic() < end and len(closed) < a.n:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            s.settimeout(0)
            try:
                if not s.recv(4096):
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
        time.sleep(0.1)
    for s in socks:
        s.close()
    result(True, f"held={a.n} closed_by_server={len(closed)}")


def do_slowloris(a):
    s = socket.create_connection((a.host, a.port), timeout=5)
    head = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 10000
    t0 = time.monotonic()
    i = 0
    got = b""
    while time.monotonic() - t0 < a.limit:
        try:
            s.sendall(head[i:i + 1])
            i += 1
        except OSError as e:
            result(True, f"closed after {time.monotonic() - t0:.1f} s: send {type(e).__name__}")
        s.settimeout(a.interval)
        try:
            d = s.recv(4096)
            if not d:
                break
            got += d
        except socket.timeout:
            continue
        except OSError as e:
            result(True, f"closed after {time.monotonic() - t0:.1f} s: {type(e).__name__}")
    secs = time.monotonic() - t0
    if secs >= a.limit:
        result(False, f"still open after {a.limit} s ({i} bytes sent)")
    first = got.split(b"\r\n", 1)[0].decode("latin-1") if got else "EOF"
    result(True, f"closed after {secs:.1f} s: {first}")


def do_bigline(a):
    s = socket.create_connection((a.host, a.port), timeout=10)
    line = b"GET /" + b"a" * (a.size - 16) + b" HTTP/1.1\r\n\r\n"
    err = ""
    try:
        s.sendall(line)
    except OSError as e:  # the server may stop reading once it has answered
        err = f" (send: {type(e).__name__})"
    try:
        status, _, _ = read_answer(s, time.monotonic() + 5)
    except OSError as e:
        result(False, f"no answer: {type(e).__name__}{err}")
    result(bool(status), (status or "EOF") + err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["get", "hold", "slowloris", "bigline"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--secs", type=float, default=3)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--limit", type=float, default=15)
    ap.add_argument("--size", type=int, default=1 << 20)
    a = ap.parse_args()
    {"get": do_get, "hold": do_hold, "slowloris": do_slowloris, "bigline": do_bigline}[a.mode](a)


if __name__ == "__main__":
    run_main(main)
