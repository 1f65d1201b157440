#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""COUNT concurrent connections to echo_server.py, all open at once; each
sends a random amount (--min..--max bytes), half-closes, reads everything
back and compares sha256.  Exit 0 only when every connection was right."""
import argparse
import asyncio
import hashlib
import os
import random

from common import result, run_main


async def one(i, a, start):
    size = random.randint(a.min, a.max)
    data = os.urandom(size)
    await start.wait()  # open all connections as close together as possible
    r, w = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), 10)

    async def writer():
        for off in range(0, size, 65536):
            w.write(data[off:off + 65536])
            await w.drain()
        w.write_eof()

    wt = asyncio.create_task(writer())
    h = hashlib.sha256()
    got = 0
    while True:
        chunk = await r.read(262144)
        if not chunk:
            break
        h.update(chunk)
        got += len(chunk)
    await wt
    w.close()
    if got != size or h.digest() != hashlib.sha256(data).digest():
        return f"conn {i}: sent {size} received {got} sha256 differs"
    return None


async def amain(a):
    start = asyncio.Event()
    tasks = [asyncio.create_task(one(i, a, start)) for i in range(a.count)]
    await asyncio.sleep(0)
    start.set()
    done, pending = await asyncio.wait(tasks, timeout=a.timeout)
    for t in pending:
        t.cancel()
    errors = [f"conn timed out after {a.timeout}s"] * len(pending)
    for t in done:
        e = t.exception()
        if e is not None:
            errors.append(f"{type(e).__name__}: {e}")
        elif t.result():
            errors.append(t.result())
    return errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--min", type=int, default=1024)
    ap.add_argument("--max", type=int, default=2 << 20)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    errors = asyncio.run(amain(a))
    for e in errors[:10]:
        print("  " + e)
    result(not errors, f"{a.count - len(errors)}/{a.count} connections correct")


if __name__ == "__main__":
    run_main(main)
