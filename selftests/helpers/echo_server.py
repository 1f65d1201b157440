#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Threaded TCP echo server.  Echoes every byte and, when the client
half-closes (FIN), half-closes back after the last echoed byte."""
import argparse
import socket
import threading

from common import listen


def serve(conn):
    with conn:
        try:
            while True:
                data = conn.recv(256 * 1024)
                if not data:
                    break
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    srv = listen(a.bind, a.port)
    print(f"echo server on {a.bind}:{a.port}", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
