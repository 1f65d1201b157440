#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Long-running checksummed streams in both directions at once, for tests
that change the data path under live connections (test_migrate.sh).

  duplex_stream.py server --port P [--host H]
  duplex_stream.py client --host H --port P --conns N --bytes B [--rate MBPS]
                          [--down-rate MBPS] [--up-bytes U] [--timeout S]
                          [--ready-file F] [--stall S] [--start-delay S]
  (server also takes --stall S)

Each client connection sends a 32-byte header (seed, B, rate, up), then B bytes of a pattern that
is a function of the seed and the byte offset; the server answers with B
bytes of the pattern of seed + 1, paced at the same rate (--down-rate);
with --up-bytes the client sends U bytes instead of B.  Both sides check every received byte at
its offset, so a lost, duplicated or reordered byte is reported with the
offset where the stream first differs.  Each side half-closes after its B
bytes and expects EOF right after the peer's B bytes.
The pattern is a random block of a prime length (1048573 bytes): a
duplicated or skipped segment only matches by chance if its length is a
multiple of that prime.  --rate paces each direction of each connection
(MB/s; 0 = as fast as possible), so that a transfer spans several seconds;
--down-rate paces the server's direction differently.  --stall S: each
side (the server for all its connections, the client for its own) sends at
once but reads nothing for S seconds: a stalled reader in both directions
(test_backpressure.sh).  --start-delay S: the client sends its header, then
waits S seconds before its stream (so that the tunnel has spliced the
connection before the bulk arrives: bytes that reach the agent together
with the edge's bind are written to the service first, which a stalled
service holds up).
Client output, one line per connection, then a summary line:
    conn I ok|fail REASON
    total N ok M fail"""
import argparse
import os
import random
import socket
import struct
import sys
import threading
import time

PLEN = 1048573  # prime


def pattern(seed):
    b = random.Random(seed).randbytes(PLEN)
    return b + b[:1 << 20]  # any 1 MiB window is one slice


def send_stream(s, pat, total, rate):
    off = 0
    t0 = time.monotonic()
    while off < total:
        n = min(65536, total - off)
        p = off % PLEN
        s.sendall(pat[p:p + n])
        off += n
        if rate:
            ahead = off / (rate * 1e6) - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    s.shutdown(socket.SHUT_WR)


def recv_check(s, pat, total):
    """None when exactly total bytes of pat arrived, then EOF; else why."""
    off = 0
    while True:
        b = s.recv(262144)
        if not b:
            break
        if off + len(b) > total:
            return f"{off + len(b) - total} bytes too many (duplicated?)"
        p = off % PLEN
        if b != pat[p:p + len(b)]:
            for k in range(len(b)):
                if b[k] != pat[(off + k) % PLEN]:
                    return f"stream differs at offset {off + k}"
        off += len(b)
    if off != total:
        return f"EOF after {off} of {total} bytes"
    return None


def serve_one(c, stall):
    try:
        c.settimeout(600)
        hdr = b""
        while len(hdr) < 32:
            b = c.recv(32 - len(hdr))
            if not b:
                return
            hdr += b
        seed, total, rate, up = struct.unpack("!QQQQ", hdr)
        tx = threading.Thread(target=send_stream,
                              args=(c, pattern(seed + 1), total, rate / 1000))
        tx.start()
        time.sleep(stall)
        err = recv_check(c, pattern(seed), up)
        tx.join()
        if err:
            print(f"server: seed {seed}: {err}", flush=True)
    except OSError as e:
        print(f"server: {e}", flush=True)
    finally:
        c.close()


def server(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(1024)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve_one, args=(c, a.stall), daemon=True).start()


def client_one(a, i, seed, results, ready):
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
        s.settimeout(a.timeout)
        down = a.rate if a.down_rate is None else a.down_rate
        up = a.bytes if a.up_bytes is None else a.up_bytes
        s.sendall(struct.pack("!QQQQ", seed, a.bytes, int(down * 1000), up))
        ready.release()
        errs = []
        time.sleep(a.start_delay)
        tx = threading.Thread(
            target=lambda: errs.append(send_stream(s, pattern(seed), up, a.rate)))
        tx.start()
        time.sleep(a.stall)
        err = recv_check(s, pattern(seed + 1), a.bytes)
        tx.join()
        s.close()
        results[i] = err or "ok"
    except Exception as e:  # noqa: BLE001 -- reported as the result
        results[i] = f"{type(e).__name__}: {e}"
        ready.release()


def client(a):
    results = [None] * a.conns
    ready = threading.Semaphore(0)
    base = int.from_bytes(os.urandom(4), "big") * 1000
    ts = [threading.Thread(target=client_one, args=(a, i, base + 2 * i, results, ready))
          for i in range(a.conns)]
    for t in ts:
        t.start()
    for _ in ts:
        ready.acquire()
    if a.ready_file:
        open(a.ready_file, "w").close()
    for t in ts:
        t.join()
    ok = 0
    for i, r in enumerate(results):
        if r == "ok":
            ok += 1
            print(f"conn {i} ok")
        else:
            print(f"conn {i} fail {r}")
    print(f"total {a.conns} ok {ok} fail {a.conns - ok}", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--bytes", type=int, default=64 << 20)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--down-rate", type=float, help="the server's rate (default --rate)")
    ap.add_argument("--up-bytes", type=int, help="what the client sends (default --bytes)")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--ready-file")
    ap.add_argument("--start-delay", type=float, default=0,
                    help="client: seconds between its header and its stream")
    ap.add_argument("--stall", type=float, default=0,
                    help="seconds to send without reading, then read")
    a = ap.parse_args()
    return server(a) if a.mode == "server" else client(a)


if __name__ == "__main__":
    sys.exit(main())
