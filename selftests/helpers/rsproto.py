# SPDX-License-Identifier: MIT
"""The rsplice v2 wire protocol (user/proto.h) in python, for the test
helpers: libsodium through ctypes (Debian's libsodium23), BLAKE2b and
HMAC-SHA256 from the standard library.  Deliberately independent of the C
code: it is a second implementation that must interoperate with it."""
import ctypes
import hashlib
import hmac
import os
import socket
import struct
import time

_na = ctypes.CDLL("libsodium.so.23")
if _na.sodium_init() < 0:
    raise RuntimeError("sodium_init failed")

MAGIC = 0x5253504C
VERSION = 2
K_CONTROL, K_DATA, K_POOL, K_BIND = 1, 2, 3, 4
(F_SERVER_HELLO, F_AUTH, F_AUTH_OK, F_SERVICES, F_PING, F_PONG, F_CONNECT,
 F_CONNECT_FAIL, F_ERROR, F_EDGE_AUTH, F_VISITS, F_DIAL_ME) = range(1, 13)
AUTH_TOKEN, AUTH_KEY = 1, 2
LABEL_EDGE, LABEL_AGENT = b"rsplice-v2 edge\0", b"rsplice-v2 agent\0"


def _buf(n):
    return ctypes.create_string_buffer(n)


def kx_keypair():
    pk, sk = _buf(32), _buf(32)
    _na.crypto_kx_keypair(pk, sk)
    return pk.raw, sk.raw


def kx_client(pk, sk, server_pk):
    rx, tx = _buf(32), _buf(32)
    if _na.crypto_kx_client_session_keys(rx, tx, pk, sk, server_pk):
        raise ValueError("bad server key")
    return rx.raw, tx.raw


def kx_server(pk, sk, client_pk):
    rx, tx = _buf(32), _buf(32)
    if _na.crypto_kx_server_session_keys(rx, tx, pk, sk, client_pk):
        raise ValueError("bad client key")
    return rx.raw, tx.raw


def kdf(master, i):
    out = _buf(32)
    _na.crypto_kdf_derive_from_key(out, ctypes.c_size_t(32), ctypes.c_uint64(i),
                                   b"rsplice2", master)
    return out.raw


def aead_seal(key, nonce, plain, ad, x=False):
    out = _buf(len(plain) + 16)
    clen = ctypes.c_ulonglong()
    fn = (_na.crypto_aead_xchacha20poly1305_ietf_encrypt if x
          else _na.crypto_aead_chacha20poly1305_ietf_encrypt)
    fn(out, ctypes.byref(clen), plain, ctypes.c_ulonglong(len(plain)), ad,
       ctypes.c_ulonglong(len(ad)), None, nonce, key)
    return out.raw[:clen.value]


def aead_open(key, nonce, ct, ad, x=False):
    out = _buf(max(len(ct), 1))
    plen = ctypes.c_ulonglong()
    fn = (_na.crypto_aead_xchacha20poly1305_ietf_decrypt if x
          else _na.crypto_aead_chacha20poly1305_ietf_decrypt)
    if fn(out, ctypes.byref(plen), None, ct, ctypes.c_ulonglong(len(ct)), ad,
          ctypes.c_ulonglong(len(ad)), nonce, key):
        return None
    return out.raw[:plen.value]


def sign_seed_keypair(seed):
    pk, sk = _buf(32), _buf(64)
    _na.crypto_sign_seed_keypair(pk, sk, seed)
    return pk.raw, sk.raw


def sign(sk, msg):
    sig = _buf(64)
    _na.crypto_sign_detached(sig, None, msg, ctypes.c_ulonglong(len(msg)), sk)
    return sig.raw


def verify(pk, msg, sig):
    return _na.crypto_sign_verify_detached(sig, msg, ctypes.c_ulonglong(len(msg)), pk) == 0


def load_token(path):
    """The token exactly as user/config.c derives it."""
    raw = open(path, "rb").read().rstrip(b" \t\r\n\v\f")
    return raw if len(raw) <= 64 else hashlib.blake2b(raw, digest_size=32).digest()


def load_key(path):
    """(pk, sk) from an `rsplice keygen` private key file."""
    import base64
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            return sign_seed_keypair(base64.b64decode(line))
    raise ValueError("no key in " + path)


def frame(ftype, payload=b""):
    return struct.pack(">IBBH", len(payload), ftype, 0, 0) + payload


def name_field(name):
    return bytes([len(name)]) + name


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            return None
        buf += c
    return buf


class Refused(Exception):
    pass


class Session:
    """One control connection, as the agent.  Every step is a method so that
    tests can stop anywhere and misbehave."""

    def __init__(self, host, port, timeout=5):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host, self.port = host, port
        self.pk, self.sk = kx_keypair()
        self.tx_ctr = self.rx_ctr = 0
        self.wire_in = b""   # every byte the edge sent us
        self.wire_out = b""  # every byte we sent
        self.t0 = None

    def send(self, data):
        self.wire_out += data
        self.s.sendall(data)

    def hello(self):
        h = struct.pack(">IBBH", MAGIC, VERSION, K_CONTROL, 0) + bytes(8) + self.pk
        self.hello_bytes = h
        self.send(h)

    def _recv(self, n):
        d = recv_exact(self.s, n)
        if d is None:
            raise Refused("edge closed the connection")
        self.wire_in += d
        return d

    def server_hello(self):
        hdr = self._recv(8)
        n, ftype, _, _ = struct.unpack(">IBBH", hdr)
        payload = self._recv(n) if n else b""
        if ftype == F_ERROR:
            raise Refused("edge: " + payload.decode(errors="replace"))
        if ftype != F_SERVER_HELLO or n != 32:
            raise ValueError(f"expected SERVER_HELLO, got type {ftype} len {n}")
        epk = payload
        self.th = hashlib.blake2b(b"rsplice-v2 transcript\0" + self.hello_bytes + epk,
                                  digest_size=32).digest()
        rx, tx = kx_client(self.pk, self.sk, epk)
        master = hashlib.blake2b(b"rsplice-v2 keys\0" + self.th, digest_size=32,
                                 key=tx + rx).digest()
        self.k_tx, self.k_rx = kdf(master, 1), kdf(master, 2)
        self.k_hello, self.k_bind = kdf(master, 3), kdf(master, 4)
        self.k_dial = kdf(master, 5)  # hellos of data connections the edge dials

    @staticmethod
    def _nonce(ctr):
        return bytes(4) + struct.pack(">Q", ctr)

    def seal(self, ftype, payload=b""):
        f = frame(ftype, payload)
        ad = struct.pack(">I", len(f) + 16)
        rec = ad + aead_seal(self.k_tx, self._nonce(self.tx_ctr), f, ad)
        self.tx_ctr += 1
        return rec

    def send_frame(self, ftype, payload=b""):
        self.send(self.seal(ftype, payload))

    def recv_frame(self):
        ad = self._recv(4)
        n = struct.unpack(">I", ad)[0]
        if n < 24 or n > 8 + 4096 + 16:
            raise ValueError(f"bad record length {n}")
        ct = self._recv(n)
        f = aead_open(self.k_rx, self._nonce(self.rx_ctr), ct, ad)
        if f is None:
            raise ValueError("record fails authentication")
        self.rx_ctr += 1
        flen, ftype, _, _ = struct.unpack(">IBBH", f[:8])
        if flen != len(f) - 8:
            raise ValueError("bad inner frame")
        return ftype, f[8:]

    def edge_auth(self, token=None, edge_pk=None):
        """Reads EDGE_AUTH; True when the edge proved itself."""
        ftype, p = self.recv_frame()
        if ftype == F_ERROR:
            raise Refused("edge: " + p.decode(errors="replace"))
        if ftype != F_EDGE_AUTH:
            raise ValueError(f"expected EDGE_AUTH, got {ftype}")
        off = 1
        sig = None
        if p[0]:
            sig, off = p[1:65], 65
        n = p[off]
        macs = [p[off + 1 + 32 * i: off + 33 + 32 * i] for i in range(n)]
        if edge_pk is not None:
            return sig is not None and verify(edge_pk, LABEL_EDGE + self.th, sig)
        if token is not None:
            want = hmac.new(token, LABEL_EDGE + self.th, hashlib.sha256).digest()
            return any(hmac.compare_digest(want, m) for m in macs)
        return False

    def auth_payload(self, name, token=None, key=None):
        name = name.encode()
        if key is not None:
            pk, sk = key
            return (bytes([AUTH_KEY]) + name_field(name) + pk
                    + sign(sk, LABEL_AGENT + self.th + name))
        mac = (hmac.new(token, LABEL_AGENT + self.th + name, hashlib.sha256).digest()
               if token is not None else os.urandom(32))
        return bytes([AUTH_TOKEN]) + name_field(name) + mac

    def auth(self, name, token=None, key=None):
        """Sends AUTH; returns after AUTH_OK or raises Refused."""
        self.send_frame(F_AUTH, self.auth_payload(name, token, key))
        ftype, p = self.recv_frame()
        if ftype == F_ERROR:
            raise Refused("edge: " + p.decode(errors="replace"))
        if ftype != F_AUTH_OK:
            raise ValueError(f"expected AUTH_OK, got {ftype}")
        self.t0 = time.monotonic()

    def login(self, name="fake", token=None, key=None, services=()):
        self.hello()
        self.server_hello()
        if not self.edge_auth(token=token):
            raise ValueError("edge failed to prove itself")
        self.auth(name, token=token, key=key)
        if services:
            self.services(services)

    def services(self, names):
        p = struct.pack(">H", len(names)) + b"".join(name_field(n.encode()) for n in names)
        self.send_frame(F_SERVICES, p)

    def wait_connect(self, timeout):
        """(ticket, service) of the next CONNECT; answers PINGs meanwhile."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.s.settimeout(max(0.1, end - time.monotonic()))
            ftype, p = self.recv_frame()
            if ftype == F_PING:
                self.send_frame(F_PONG, p)
            elif ftype == F_CONNECT:
                return struct.unpack(">Q", p[:8])[0], p[9:9 + p[8]].decode()
            elif ftype == F_ERROR:
                raise Refused("edge: " + p.decode(errors="replace"))
        raise TimeoutError("no CONNECT")

    def session_ms(self):
        return int((time.monotonic() - self.t0) * 1000)

    def data_hello(self, kind, ident, t_ms=None, key=None):
        if t_ms is None:
            t_ms = self.session_ms()
        head = struct.pack(">IBBH", MAGIC, VERSION, kind, 0)
        self.hello_seq = getattr(self, "hello_seq", 0) + 1
        nonce = os.urandom(4) + struct.pack(">Q", self.hello_seq)
        plain = struct.pack(">QI", ident, t_ms & 0xFFFFFFFF)
        return head + nonce + aead_seal(key or self.k_hello, nonce, plain, head)

    def open_bind(self, b):
        """(conn_id, pool_id, service) of a 168-byte bind, or None (the
        client address block after the name is not decoded)."""
        head, nonce, ct = b[:8], b[8:32], b[32:]
        p = aead_open(self.k_bind, nonce, ct, head, x=True)
        if p is None:
            return None
        conn_id, pool_id, n = struct.unpack(">QQB", p[:17])
        return conn_id, pool_id, p[17:17 + n].decode()

    def dial(self, hello, timeout=5):
        d = socket.create_connection((self.host, self.port), timeout=timeout)
        d.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        d.sendall(hello)
        self.wire_out += hello
        return d


def closed_within(sock, secs):
    """True when the peer closes (EOF or reset) within secs without sending."""
    sock.settimeout(secs)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
