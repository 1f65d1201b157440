#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Threaded TCP echo server.  Echoes every byte and, when the client
half-closes (FIN), half-closes back after the last echoed byte."""
import socket

from common import serve_threaded


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


if __name__ == "__main__":
    serve_threaded("echo server", serve)
