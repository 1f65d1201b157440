#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Threaded static HTTP server for one directory (python's http.server
without the reverse-DNS lookup that `python3 -m http.server` does at bind
time, which stalls in a namespace without DNS)."""
import argparse
import functools
import http.server
import socketserver


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # no getfqdn()
        self.server_name, self.server_port = self.server_address[:2]


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--directory", required=True)
    a = ap.parse_args()
    handler = functools.partial(Handler, directory=a.directory)
    srv = Server((a.bind, a.port), handler)
    print(f"http server on {a.bind}:{a.port} serving {a.directory}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
