#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpora fuzz/corpus/<target>/seed-* (valid and edge-case
inputs; see the format notes at the top of each fuzz/fuzz_*.c).  Run it again
after changing the formats: `python3 fuzz/gen_corpus.py`.  Files whose names
do not start with "seed-" (e.g. regress-* inputs that once crashed a target)
are left alone."""
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

T_SERVER_HELLO, T_AUTH, T_AUTH_OK, T_SERVICES, T_PING, T_PONG = 1, 2, 3, 4, 5, 6
T_EDGE_AUTH = 10
T_DIAL_ME = 12
T_CONNECT_PORT = 13
T_CONNECT, T_CONNECT_FAIL, T_ERROR = 7, 8, 9


def frame(t, payload=b"", flags=0, reserved=0, length=None):
    n = len(payload) if length is None else length
    return struct.pack(">IBBH", n, t, flags, reserved) + payload


def name(s):
    b = s.encode()
    return bytes([len(b)]) + b


def services(*names, count=None):
    c = len(names) if count is None else count
    return struct.pack(">H", c) + b"".join(name(n) for n in names)


# struct rs_conn_addrs (proxy_proto.h): family, 3 reserved, ports, 16+16 bytes
ADDRS_V4 = (bytes([4, 0, 0, 0]) + struct.pack(">HH", 40001, 8080)
            + bytes([10, 201, 1, 2]) + bytes(12) + bytes([10, 201, 1, 1]) + bytes(12))
ADDRS_V6 = (bytes([6, 0, 0, 0]) + struct.pack(">HH", 443, 8443)
            + bytes.fromhex("20010db8000000000000000000000002")
            + bytes.fromhex("20010db8000000000000000000000001"))


def connect(cid, svc, addrs=ADDRS_V4):
    return struct.pack(">Q", cid) + name(svc) + addrs


def connect_fail(cid, err):
    return struct.pack(">Q", cid) + struct.pack(">I", err)


def auth(nm, mode=1):
    proof = bytes(range(32)) if mode == 1 else bytes(range(96))
    return bytes([mode]) + name(nm) + proof


def edge_auth(sig=True, macs=1):
    return (bytes([1]) + b"\x5a" * 64 if sig else b"\x00") + bytes([macs]) + b"\xa5" * (32 * macs)


def frames_corpus():
    # first byte: recv chunk size selector (0 = whole buffer, k = 17*k bytes)
    agent_session = (frame(T_AUTH, auth("lan1")) + frame(T_SERVICES, services("web", "ssh"))
                     + frame(T_PING, b"12345678") + frame(T_PONG, b"87654321")
                     + frame(T_CONNECT_FAIL, connect_fail(42, 111)))
    edge_session = (frame(T_SERVER_HELLO, bytes(32)) + frame(T_EDGE_AUTH, edge_auth())
                    + frame(T_AUTH_OK)
                    + frame(T_CONNECT, connect(0x1122334455667788, "web"))
                    + frame(T_PING, b"\0" * 8) + frame(T_ERROR, b"shutting down"))
    many = services(*["s%03d" % i for i in range(256)])
    return {
        "agent_session": b"\x00" + agent_session,
        "agent_session_1byte": b"\x01" + agent_session[:60],
        "edge_session": b"\x00" + edge_session,
        "edge_session_chunked": b"\x03" + edge_session,
        "services_256": b"\x00" + frame(T_SERVICES, many),
        "services_257_count": b"\x00" + frame(T_SERVICES, services("a", count=257)),
        "services_trailing": b"\x00" + frame(T_SERVICES, services("a") + b"x"),
        "services_short_name": b"\x00" + frame(T_SERVICES, b"\x00\x01\x05ab"),
        "services_empty": b"\x00" + frame(T_SERVICES, services()),
        "connect_name63": b"\x00" + frame(T_CONNECT, connect(1, "n" * 63)),
        "connect_name64": b"\x00" + frame(T_CONNECT, connect(1, "n" * 64)),
        "connect_id0": b"\x00" + frame(T_CONNECT, connect(0, "web")),
        "connect_badchar": b"\x00" + frame(T_CONNECT, connect(7, "we/b")),
        "connect_v6": b"\x00" + frame(T_CONNECT, connect(3, "web", ADDRS_V6)),
        "connect_unspec": b"\x00" + frame(T_CONNECT, connect(3, "web", bytes(40))),
        "dial_me": b"\x00" + frame(T_DIAL_ME, struct.pack(">QH", 0x1122334455667788, 7102)),
        "dial_me_port0": b"\x00" + frame(T_DIAL_ME, struct.pack(">QH", 1, 0)),
        "connect_port": b"\x00" + frame(T_CONNECT_PORT, connect(5, "web") + struct.pack(">H", 7201)),
        "connect_port0": b"\x00" + frame(T_CONNECT_PORT, connect(5, "web") + b"\x00\x00"),
        "connect_no_addrs": b"\x00" + frame(T_CONNECT, connect(3, "web", b"")),
        "connect_bad_family": b"\x00" + frame(T_CONNECT, connect(3, "web", b"\x05" + ADDRS_V4[1:])),
        "connect_fail_4096": b"\x00" + frame(T_CONNECT_FAIL, connect_fail(9, 4096)),
        "auth_short": b"\x00" + frame(T_AUTH, bytes(32)),
        "frame_max": b"\x00" + frame(T_ERROR, b"e" * 4096),
        "frame_too_big": b"\x00" + frame(T_ERROR, b"", length=4097),
        "frame_type0": b"\x00" + frame(0, b""),
        "frame_type_max": b"\x00" + frame(T_CONNECT_PORT + 1, b""),  # one past the last type
        "auth_key": b"\x00" + frame(T_AUTH, auth("lan1", mode=2)),
        "auth_mode3": b"\x00" + frame(T_AUTH, auth("lan1", mode=3)),
        "edge_auth_sig_only": b"\x00" + frame(T_EDGE_AUTH, edge_auth(True, 0)),
        "edge_auth_macs": b"\x00" + frame(T_EDGE_AUTH, edge_auth(False, 64)),
        "edge_auth_65": b"\x00" + frame(T_EDGE_AUTH, edge_auth(False, 65)),
        "edge_auth_none": b"\x00" + frame(T_EDGE_AUTH, edge_auth(False, 0)),
        "frame_flags": b"\x00" + frame(T_PING, b"\0" * 8, flags=1),
        "frame_reserved": b"\x00" + frame(T_PING, b"\0" * 8, reserved=0x100),
        "ping_short": b"\x00" + frame(T_PING, b"\0" * 7),
        "truncated_header": b"\x00" + frame(T_PING, b"\0" * 8)[:5],
        "truncated_payload": b"\x00" + frame(T_CONNECT, connect(5, "web"))[:-2],
        "full_buffer": b"\x00" + frame(T_ERROR, b"x" * 4096) + frame(T_PING, b"\0" * 8),
    }


def hello(kind, blob=bytes(40), magic=0x5253504C, version=2, reserved=0):
    return struct.pack(">IBBH", magic, version, kind, reserved) + blob


def bind(kind=4, version=2, body=bytes(160)):
    return struct.pack(">IBBH", 0x5253504C, version, kind, 0) + body


def hello_corpus():
    # hello (48) | bind (168) | mutation position, mask (see fuzz_hello.c)
    return {
        "control": hello(1, bytes(8) + bytes(range(32))),
        "control_reserved": hello(1, b"\x01" + bytes(39)),
        "data": hello(2, b"\xaa" * 40),
        "pool": hello(3, b"\x55" * 40) + bind(),
        "data_mut_pos": hello(2, b"\x11" * 40) + bind() + b"\x2f\x80",
        "bad_magic": hello(1, magic=0x4C505352),
        "v1": hello(1, version=1),
        "bad_kind": hello(5),
        "reserved": hello(2, reserved=1),
        "bind_v1": hello(2) + bind(version=1),
        "bind_kind": hello(2) + bind(kind=2),
        "short": hello(2)[:20],
        "zeros": bytes(48),
        "ones": b"\xff" * 48,
    }


def config_corpus():
    # first byte: 0 route, 1 service, 2 addr(default 0.0.0.0), 3 addr(no
    # default), 4 addr(default ::), 5 name
    items = {
        "route_port": (0, "8080=web"),
        "route_v4": (0, "127.0.0.1:8080=web"),
        "route_v6": (0, "[::1]:8080=web"),
        "route_v6_any": (0, "[::]:2222=ssh"),
        "route_hostname": (0, "localhost:80=web"),
        "route_no_eq": (0, "8080"),
        "route_two_eq": (0, "8080=a=b"),
        "route_port0": (0, "0=web"),
        "route_port_big": (0, "65536=web"),
        "route_name64": (0, "1=" + "a" * 64),
        "route_long": (0, "1" * 200 + "=web"),
        "route_mux": (0, "443=sni:*.a.example>web,tls>t,dflt,max-conns=3"),
        "route_mux_nodefault": (0, "80=host:A.Example>a,ssh>s"),
        "route_mux_two_defaults": (0, "80=a,b"),
        "service_v4": (1, "web=192.168.1.10:80"),
        "service_v6": (1, "db=[fe80::1%1]:5432"),
        "service_noport": (1, "web=10.0.0.1"),
        "service_empty_name": (1, "=10.0.0.1:80"),
        "service_name63": (1, "n" * 63 + "=1.2.3.4:5"),
        "addr_v4": (2, "10.1.2.3:7000"),
        "addr_port_only": (2, "7000"),
        "addr_short_v4": (2, "10.1:80"),
        "addr_v6_nobracket": (3, "::1:80"),
        "addr_v6_unclosed": (3, "[::1:80"),
        "addr_v6_empty": (3, "[]:80"),
        "addr_v6_noport": (3, "[::1]"),
        "addr_v6_colon_noport": (3, "[::1]:"),
        "addr_v4mapped": (3, "[::ffff:1.2.3.4]:9"),
        "addr_leading_zeros": (3, "1.2.3.4:0080"),
        "addr_plus_port": (3, "1.2.3.4:+80"),
        "addr_127chars": (3, "1" * 121 + ".0:80"),
        "addr_port_only_v6": (4, "443"),
        "name_ok": (5, "web-1_a.b"),
        "name_space": (5, "web 1"),
        "name_utf8": (5, "w\u00e9b"),
    }
    return {k: bytes([m]) + v.encode() for k, (m, v) in items.items()}


INI_BOTH = """\
[edge]
control = 0.0.0.0:7000
token-file = /etc/rsplice/token
datapath = auto
route = 9090=api

[agent]
edge = 10.0.0.1:7000
token-file = /etc/rsplice/token
name = lan1

[service web]
bind = 8080                 ; edge
local = 192.168.1.10:80     ; agent

[service ssh]
bind = [::]:2222
local = 127.0.0.1:22
"""


def ini_corpus():
    return {
        "both": INI_BOTH,
        "bom_crlf": "\ufeff" + INI_BOTH.replace("\n", "\r\n"),
        "edge_only": "[edge]\ncontrol = 7001\nroute = 1.2.3.4:80=web\nroute = 81=web\n"
                     "verbose = yes\nheartbeat = 100\nmax-pending = 1000000\n",
        "agent_only": "[agent]\nedge = [::1]:7000\nservice = a=1.1.1.1:1\nservice = b=[::1]:2\n"
                      "backoff-min = 10\nbackoff-max = 20\nconnect-timeout = 3600000\n",
        "dup_key": "[edge]\ncontrol = 7000\ncontrol = 7001\n",
        "unknown_key": "[edge]\nfoo = bar\n",
        "unknown_section": "[nope]\nx = y\n",
        "service_no_name": "[service]\nbind = 80\n",
        "outside_section": "control = 7000\n",
        "route_clash": "[edge]\nroute = 8080=a\nroute = 127.0.0.1:8080=b\n",
        "control_clash": "[edge]\ncontrol = 0.0.0.0:7000\n[service x]\nbind = 7000\n",
        "long_line": "[edge]\nroute = " + "9" * 300 + "=web\n",
        "no_newline": "[agent]\nedge = 1.2.3.4:5\nservice = s=1.2.3.4:6",
        "backoff_inverted": "[agent]\nedge = 1.2.3.4:5\nservice = s=1.2.3.4:6\n"
                            "backoff-min = 20\nbackoff-max = 10\n",
        "comments_blank": "; c\n# c\n\n[edge] ; c\n  route = 80=w  ; c\n",
        "syntax_error": "[edge]\nthis is not a key\n",
        "section_spaces": "[ service   web ]\nbind = 80\nlocal = 1.2.3.4:80\n",
        "empty": "",
    }


def write(target, items):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.unlink(os.path.join(d, f))
    for k, v in items.items():
        if isinstance(v, str):
            v = v.encode()
        with open(os.path.join(d, "seed-" + k), "wb") as f:
            f.write(v)


def records_corpus():
    # byte 0: chunk size, byte 1: odd = seal the rest as genuine records
    return {
        "genuine": b"\x00\x01" + b"\x05hello\x00\x3fx" + b"y" * 62,
        "genuine_1byte": b"\x01\x01" + b"\x03abc" * 20,
        "raw_garbage": b"\x00\x00" + bytes(range(256)),
        "raw_huge_len": b"\x00\x00" + b"\x7f\xff\xff\xff" + bytes(40),
        "raw_tiny_len": b"\x00\x00" + b"\x00\x00\x00\x08" + bytes(40),
        "raw_max_len": b"\x05\x00" + struct.pack(">I", 8 + 4096 + 16) + bytes(4200),
    }


def main():
    write("fuzz_records", records_corpus())
    write("fuzz_frames", frames_corpus())
    write("fuzz_hello", hello_corpus())
    write("fuzz_config", config_corpus())
    write("fuzz_ini", ini_corpus())
    return 0


if __name__ == "__main__":
    sys.exit(main())
