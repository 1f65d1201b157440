#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A tiny packet capture (no tcpdump needed): records the TCP payload of every
IPv4 packet to or from --port seen on any interface of the current network
namespace (AF_PACKET, ETH_P_ALL; root), for --seconds or until --stop-file
exists, and writes the payload bytes (in arrival order) to --out.  Prints
"captured N packets, M payload bytes"."""
import argparse
import os
import socket
import struct
import time

ETH_P_ALL = 0x0003


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--stop-file")
    ap.add_argument("--ready-file")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.settimeout(0.2)
    if a.ready_file:
        open(a.ready_file, "w").close()
    end = time.monotonic() + a.seconds
    pkts = 0
    seen = set()
    with open(a.out, "wb") as out:
        stopping = False
        while True:
            if not stopping and (time.monotonic() >= end or
                                 (a.stop_file and os.path.exists(a.stop_file))):
                # drain what the kernel queued before the stop, then leave
                stopping = True
                s.settimeout(0.3)
            try:
                frame, addr = s.recvfrom(65535)
            except socket.timeout:
                if stopping:
                    break
                continue
            if len(frame) < 14 + 20 or struct.unpack(">H", frame[12:14])[0] != 0x0800:
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 6:
                continue
            tot = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:tot]
            sport, dport = struct.unpack(">HH", tcp[:4])
            if a.port not in (sport, dport):
                continue
            seq = struct.unpack(">I", tcp[4:8])[0]
            payload = tcp[(tcp[12] >> 4) * 4:]
            key = (ip[12:20], sport, dport, seq, len(payload))
            if not payload or key in seen:
                continue
            seen.add(key)
            pkts += 1
            out.write(payload)
    print(f"captured {pkts} packets, {os.path.getsize(a.out)} payload bytes", flush=True)


if __name__ == "__main__":
    main()
