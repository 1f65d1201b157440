#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An edge in python (rsproto.py, user/proto.h) that dials an agent's
--control-listen port, logs in with --token-file as the edge role (SERVER_HELLO,
EDGE_AUTH, AUTH_OK), asks for --service with CONNECT and, for the DIAL_ME the
agent answers, dials the agent's --data-port with data hellos that must be
refused, and with one that must work:
  wrong-key   a hello sealed under a random key
  agent-key   a hello sealed under the A->E hello key (a hello never works the
              other way)
  expired     the right key and ticket, stamped 20 s in the past
  unknown     the right key, a ticket the agent never announced
  valid       the right hello: --size random bytes, half-close, the service's
              echo must come back byte-exact (sha256)
  replay      the valid hello's exact bytes again
Each refusal must close the connection without a byte within --wait seconds.
With --login-only it logs in and waits for the agent to close the session
(a newer authenticated edge connection replaces it).
Prints one OK/FAIL line and exits 0/1."""
import argparse
import hashlib
import hmac
import os
import socket
import struct
import time

from common import Deadline, result, run_main
import rsproto as rp


class EdgeSession:
    def __init__(self, host, port, token, timeout=10):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.token = token
        self.tx_ctr = self.rx_ctr = 0
        self.dial_seq = 0

    def _recv(self, n):
        d = rp.recv_exact(self.s, n)
        if d is None:
            raise rp.Refused("agent closed the control connection")
        return d

    def handshake(self, name_want=None):
        hello = self._recv(48)
        magic, ver, kind, _ = struct.unpack(">IBBH", hello[:8])
        if magic != rp.MAGIC or ver != rp.VERSION or kind != rp.K_CONTROL:
            raise ValueError("the agent's first bytes are not a control hello")
        apk = hello[16:48]
        pk, sk = rp.kx_keypair()
        self.s.sendall(rp.frame(rp.F_SERVER_HELLO, pk))
        self.th = hashlib.blake2b(b"rsplice-v2 transcript\0" + hello + pk,
                                  digest_size=32).digest()
        rx, tx = rp.kx_server(pk, sk, apk)
        # direction order, as the agent: A->E first (our rx), then E->A
        master = hashlib.blake2b(b"rsplice-v2 keys\0" + self.th, digest_size=32,
                                 key=rx + tx).digest()
        self.k_rx, self.k_tx = rp.kdf(master, 1), rp.kdf(master, 2)
        self.k_hello, self.k_dial = rp.kdf(master, 3), rp.kdf(master, 5)
        mac = hmac.new(self.token, rp.LABEL_EDGE + self.th, hashlib.sha256).digest()
        self.send_frame(rp.F_EDGE_AUTH, b"\x00\x01" + mac)
        ftype, p = self.recv_frame()
        if ftype != rp.F_AUTH:
            raise ValueError(f"expected AUTH, got {ftype}")
        name = p[2:2 + p[1]]
        want = hmac.new(self.token, rp.LABEL_AGENT + self.th + name, hashlib.sha256).digest()
        if p[0] != rp.AUTH_TOKEN or not hmac.compare_digest(want, p[2 + p[1]:]):
            raise ValueError("the agent's AUTH does not check out")
        self.send_frame(rp.F_AUTH_OK)
        self.t0 = time.monotonic()

    def session_ms(self):
        return int((time.monotonic() - self.t0) * 1000)

    def send_frame(self, ftype, payload=b""):
        f = rp.frame(ftype, payload)
        ad = struct.pack(">I", len(f) + 16)
        nonce = bytes(4) + struct.pack(">Q", self.tx_ctr)
        self.tx_ctr += 1
        self.s.sendall(ad + rp.aead_seal(self.k_tx, nonce, f, ad))

    def recv_frame(self):
        ad = self._recv(4)
        n = struct.unpack(">I", ad)[0]
        ct = self._recv(n)
        nonce = bytes(4) + struct.pack(">Q", self.rx_ctr)
        f = rp.aead_open(self.k_rx, nonce, ct, ad)
        if f is None:
            raise ValueError("record fails authentication")
        self.rx_ctr += 1
        return f[4], f[8:]

    def connect(self, service, timeout):
        """CONNECT for service; (ticket, port) of the agent's DIAL_ME."""
        ticket = int.from_bytes(os.urandom(8), "big") | 1
        name = service.encode()
        self.send_frame(rp.F_CONNECT, struct.pack(">Q", ticket) + bytes([len(name)]) + name
                        + bytes(40))
        dl = Deadline(timeout)
        while not dl.expired():
            self.s.settimeout(max(0.1, dl.left()))
            ftype, p = self.recv_frame()
            if ftype == rp.F_PING:
                self.send_frame(rp.F_PONG, p)
            elif ftype == rp.F_SERVICES:
                continue
            elif ftype == rp.F_DIAL_ME:
                t, port = struct.unpack(">QH", p)
                if t != ticket:
                    raise ValueError("DIAL_ME names another ticket")
                return ticket, port
            else:
                raise ValueError(f"unexpected frame {ftype} instead of DIAL_ME")
        raise TimeoutError("no DIAL_ME")

    def hello(self, ticket, key=None, t_ms=None):
        self.dial_seq += 1
        head = struct.pack(">IBBH", rp.MAGIC, rp.VERSION, rp.K_DATA, 0)
        nonce = os.urandom(4) + struct.pack(">Q", self.dial_seq)
        t = self.session_ms() if t_ms is None else t_ms
        plain = struct.pack(">QI", ticket, t & 0xFFFFFFFF)
        return head + nonce + rp.aead_seal(key or self.k_dial, nonce, plain, head)


def dial(host, port, data):
    d = socket.create_connection((host, port), timeout=10)
    d.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    d.sendall(data)
    return d


def refused(host, port, hello, wait):
    d = dial(host, port, hello)
    try:
        return rp.closed_within(d, wait)
    finally:
        d.close()


def echo_ok(d, size, wait):
    data = os.urandom(size)
    d.sendall(data)
    d.shutdown(socket.SHUT_WR)
    h, got, dl = hashlib.sha256(), 0, Deadline(wait)
    while not dl.expired():
        d.settimeout(max(0.05, dl.left()))
        b = d.recv(65536)
        if not b:
            break
        h.update(b)
        got += len(b)
    return got == size and h.digest() == hashlib.sha256(data).digest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data-port", type=int, required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--service", default="echo")
    ap.add_argument("--size", type=int, default=256 * 1024)
    ap.add_argument("--wait", type=float, default=10)
    ap.add_argument("--login-only", action="store_true",
                    help="log in, then wait until the agent closes the connection")
    ap.add_argument("--gap", type=float, default=0,
                    help="seconds between refused cases (the agent logs one refusal a second)")
    a = ap.parse_args()
    e = EdgeSession(a.host, a.port, rp.load_token(a.token_file))
    e.handshake()
    if a.login_only:
        # the agent took us as its edge; a newer authenticated edge replaces us
        dl = Deadline(a.wait)
        while not dl.expired():  # its SERVICES and PINGs, until it closes
            e.s.settimeout(max(0.05, dl.left()))
            try:
                if not e.s.recv(65536):
                    result(True, "logged in as the edge, then closed by the agent (replaced)")
            except socket.timeout:
                continue
            except ConnectionResetError:
                result(True, "logged in as the edge, then reset by the agent (replaced)")
        result(False, f"still open after {a.wait} s")
    ticket, port = e.connect(a.service, a.wait)
    if port != a.data_port:
        result(False, f"DIAL_ME names port {port}, not {a.data_port}")
    bad = []
    cases = [("wrong-key", lambda: e.hello(ticket, key=os.urandom(32))),
             ("agent-key", lambda: e.hello(ticket, key=e.k_hello)),
             ("expired", lambda: e.hello(ticket, t_ms=e.session_ms() - 20000)),
             ("unknown", lambda: e.hello(ticket ^ 0x5A5A))]
    for name, h in cases:
        if not refused(a.host, port, h(), a.wait):
            bad.append(name)
        time.sleep(a.gap)
    good = e.hello(ticket)
    d = dial(a.host, port, good)
    try:
        if not echo_ok(d, a.size, 30):
            bad.append("valid")
    finally:
        d.close()
    time.sleep(a.gap)
    if not refused(a.host, port, good, a.wait):
        bad.append("replay")
    # the agent still serves this session afterwards
    ticket2, _ = e.connect(a.service, a.wait)
    d = dial(a.host, port, e.hello(ticket2))
    try:
        if not echo_ok(d, a.size, 30):
            bad.append("after")
    finally:
        d.close()
    if bad:
        result(False, "not as expected: " + ", ".join(bad))
    result(True, "wrong-key, agent-key, expired, unknown and replayed hellos refused; "
           f"valid ones echoed {a.size} bytes byte-exact twice")


if __name__ == "__main__":
    run_main(main)
