#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Send a TCP segment that overlaps bytes the receiver already has.

    tcp_overlap.py --relay PORT --backend PORT [--first N] [--overlap K] [--more M]

A real retransmission does this: the sender resends from snd_una, maybe
collapsed with later data, while the receiver already got the head of it
(its ACK was late or lost).  TCP queues such a segment whole
(tcp_data_queue: "Partial packet, seq < rcv_next < end_seq"); recvmsg()
skips the old head by its sequence number, a reader that takes whole skbs
must do the same.

How, without raw packets: the client sends N bytes through the relay to our
backend and waits until the backend has them and they are acked; then it
freezes the socket with TCP_REPAIR, closes it silently, and rebuilds the same
connection in a new socket whose send sequence starts K bytes *before* the
old one (TCP_QUEUE_SEQ), and sends those K bytes again (same content) plus M
new ones: one segment, K bytes of it old.  Timestamps must be off in the
namespace (sysctl net.ipv4.tcp_timestamps=0): the rebuilt socket does not
carry the old timestamp clock.

Prints "got G expected E dup D" and exits 0 when the backend received
exactly the N + M bytes of the stream, in order, once.  Needs CAP_NET_ADMIN.
"""
import argparse
import fcntl
import os
import socket
import struct
import sys
import threading
import time

TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ = 19, 20, 21
TCP_REPAIR_OPTIONS, TCP_REPAIR_WINDOW = 22, 29
TCP_RECV_QUEUE, TCP_SEND_QUEUE = 1, 2
TCPOPT_MAXSEG, TCPOPT_WINDOW, TCPOPT_SACK_PERM = 2, 3, 4
SIOCOUTQ = 0x5411


def backend(lsock, out, deadline):
    c, _ = lsock.accept()
    c.settimeout(0.2)
    buf = bytearray()
    while time.monotonic() < deadline:
        try:
            b = c.recv(65536)
        except socket.timeout:
            continue
        if not b:
            break
        buf += b
        out["data"] = bytes(buf)
    out["eof"] = True
    c.close()


def wait_for(cond, deadline):
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def outq(s):
    return struct.unpack("i", fcntl.ioctl(s.fileno(), SIOCOUTQ, b"\0" * 4))[0]


def queue_seq(s, q):
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, q)
    return struct.unpack("I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", type=int, required=True)
    ap.add_argument("--backend", type=int, required=True)
    ap.add_argument("--first", type=int, default=3000)
    ap.add_argument("--overlap", type=int, default=1000, help="at most 32767 - M")
    ap.add_argument("--more", type=int, default=2000)
    ap.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()
    deadline = time.monotonic() + a.timeout
    stream = os.urandom(a.first + a.more)
    expected = stream

    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.backend))
    ls.listen(4)
    got = {"data": b""}
    t = threading.Thread(target=backend, args=(ls, got, deadline), daemon=True)
    t.start()

    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect(("127.0.0.1", a.relay))
    local = s.getsockname()
    s.sendall(stream[:a.first])
    if not wait_for(lambda: len(got["data"]) >= a.first and outq(s) == 0, deadline):
        print(f"setup: backend got {len(got['data'])} of the first {a.first} bytes")
        return 2
    time.sleep(0.1)  # let the relay's side settle (ACKs, window updates)

    # freeze the old socket and read its state
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    snd = queue_seq(s, TCP_SEND_QUEUE)
    rcv = queue_seq(s, TCP_RECV_QUEUE)
    win = s.getsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, 20)
    # window scales (tcp_info byte 6: snd low nibble, rcv high) and MSS as
    # negotiated, or the rebuilt socket misreads every window and ACK
    ws = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[6]
    mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    s.close()  # in repair mode: no FIN, no RST

    n = socket.socket()
    n.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    n.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    n.bind(local)
    # connect() sizes segments from this (default 536): the resend must be one
    # segment, or its old head arrives as separate, wholly old duplicates
    # (setsockopt caps it at 32767)
    mss = min(mss, 32767)
    n.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    n.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
    n.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, struct.pack("I", (snd - a.overlap) & 0xffffffff))
    n.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
    n.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, struct.pack("I", rcv))
    n.connect(("127.0.0.1", a.relay))
    opts = struct.pack("II", TCPOPT_MAXSEG, mss)
    opts += struct.pack("II", TCPOPT_WINDOW, (ws & 15) | ((ws >> 4) << 16))
    opts += struct.pack("II", TCPOPT_SACK_PERM, 0)
    n.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts)
    # the old window, with snd_wl1 moved back with the sequence
    snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup = struct.unpack("IIIII", win)
    n.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW,
                 struct.pack("IIIII", snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup))
    n.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
    n.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # K old bytes (the same content, as a retransmission has) + M new: one segment
    n.sendall(stream[a.first - a.overlap:])
    wait_for(lambda: len(got["data"]) >= len(expected) + a.overlap, deadline - 2)
    time.sleep(0.3)  # a duplicate would arrive right behind
    n.close()
    t.join(timeout=max(0.1, deadline - time.monotonic()))
    data = got["data"]
    dup = len(data) - len(expected)
    print(f"got {len(data)} expected {len(expected)} dup {dup}")
    return 0 if data == expected else 1


if __name__ == "__main__":
    sys.exit(main())
