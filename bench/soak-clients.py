#!/usr/bin/env python3
"""Hostile clients for bench/soak.sh, run beside the well-formed load until a stop
file appears (or a time limit passes), then print one JSON summary line.

Slow clients (slowloris) open a TLS connection and trickle a request head one byte
at a time, reconnecting whenever the agent cuts them off. Malformed clients cycle
through garbage (plain TCP and inside TLS), bad signature headers (missing, bad
hex, bad base64, wrong lengths, a well-formed forgery) and oversized headers, and
check that each gets the answer it should (400, 403, 431 or a closed connection);
the attacks of issue 13 among them: a body promised and never sent, ambiguous
request framing and a refused upgrade, each of which must also end the connection
within a few seconds. Pipeliners write megabytes of pipelined requests and never
read an answer (the agent's memory, measured by soak.sh, must not grow with them).

    soak-clients.py HOST:PORT[,HOST:PORT...] SLOW MALFORMED STOP_FILE MAX_SECONDS [PIPELINERS]
"""
import asyncio
import base64
import json
import os
import random
import socket
import ssl
import sys
import time

targets = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in sys.argv[1].split(",")]
slow_count, malformed_count = int(sys.argv[2]), int(sys.argv[3])
stop_file, max_seconds = sys.argv[4], float(sys.argv[5])
pipeliner_count = int(sys.argv[6]) if len(sys.argv) > 6 else 0

context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE

stats = {"slow_connections": 0, "slow_cut_by_agent": 0, "slow_answered": 0, "malformed": {}, "unexpected": {},
         "pipeliners": 0, "pipelined_mb": 0, "late_closes": 0, "late_close_max_s": 0.0, "client_loop_lag_max_s": 0.0}
KEY_PREFIX = "3059301306072a8648ce3d020106082a8648ce3d03010703420004"


def stopping(started):
    return os.path.exists(stop_file) or time.monotonic() - started > max_seconds


def count(table, key):
    table[key] = table.get(key, 0) + 1


async def slow_client(host, port, started):
    while not stopping(started):
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
        except OSError:
            await asyncio.sleep(1)
            continue
        stats["slow_connections"] += 1
        head = b"GET /ping HTTP/1.1\r\nHost: soak\r\nX-Slow: " + b"a" * 200
        try:
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(1024), timeout=random.uniform(0.5, 1.5))
                except asyncio.TimeoutError:
                    if stopping(started):
                        break
                    continue
                # The head is never complete: anything but the end of the stream is wrong.
                if data:
                    stats["slow_answered"] += 1
                else:
                    stats["slow_cut_by_agent"] += 1
                break
        except (ConnectionError, ssl.SSLError, OSError):
            stats["slow_cut_by_agent"] += 1
        writer.close()


def signature_headers(kind):
    good_key = KEY_PREFIX + os.urandom(64).hex()
    good_signature = base64.b64encode(os.urandom(64)).decode().rstrip("=")
    if kind == "unsigned":
        return ""
    if kind == "bad-hex":
        return f"X-PortainerAgent-PublicKey: {good_key[:-2]}zz\r\nX-PortainerAgent-Signature: {good_signature}\r\n"
    if kind == "short-key":
        return f"X-PortainerAgent-PublicKey: {good_key[:-2]}\r\nX-PortainerAgent-Signature: {good_signature}\r\n"
    if kind == "bad-base64":
        return f"X-PortainerAgent-PublicKey: {good_key}\r\nX-PortainerAgent-Signature: {good_signature[:-1]}!\r\n"
    if kind == "short-signature":
        return f"X-PortainerAgent-PublicKey: {good_key}\r\nX-PortainerAgent-Signature: {good_signature[:-4]}\r\n"
    # Well-formed but forged (most random points are not on the curve; either way 403).
    return f"X-PortainerAgent-PublicKey: {good_key}\r\nX-PortainerAgent-Signature: {good_signature}\r\n"


KINDS = {
    # kind: statuses accepted (0 = connection closed without an answer)
    "garbage-tcp": {0},
    "garbage-http": {400, 0},
    "unsigned": {403},
    "bad-hex": {403},
    "short-key": {403},
    "bad-base64": {403},
    "short-signature": {403},
    "forged": {403},
    "oversized-headers": {431, 0},
    # Issue 13: answered, and the connection ends without the agent waiting for more.
    "held-body": {403},
    "chunked-never-ends": {403},
    "refused-upgrade": {403},
    "te-on-http10": {400},
    "two-transfer-encodings": {400},
    "te-and-length": {400},
}
# Kinds whose connection the agent must end after its answer, without waiting for
# the rest of the request: within CLOSE_SECONDS, or late (counted, with the longest
# wait) while the machine is overloaded. One still open after HELD_SECONDS, which is
# under the agent's 30 s body timeout (what would end a connection held for its body),
# is a failure (status -1). The longest lag of this client's own event loop is
# printed beside the late closes: a close seen late by a lagging client is the client's.
MUST_CLOSE = {"held-body", "chunked-never-ends", "refused-upgrade", "te-on-http10", "two-transfer-encodings", "te-and-length"}
CLOSE_SECONDS = 5
HELD_SECONDS = 20
ATTACKS = {
    "held-body": b"POST /containers/create HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000000\r\n\r\n",
    "chunked-never-ends": b"POST /containers/create HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    "refused-upgrade": b"POST /containers/x/attach HTTP/1.1\r\nHost: soak\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
    "te-on-http10": b"POST /containers/create HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-transfer-encodings": b"POST /containers/create HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-and-length": b"POST /containers/create HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
}


async def seconds_until_closed(reader, seconds):
    """How long the other side took to end the stream (reading what is left), or None
    when it did not within `seconds`."""
    started = time.monotonic()
    deadline = started + seconds
    try:
        while time.monotonic() < deadline:
            data = await asyncio.wait_for(reader.read(65536), timeout=max(0.01, deadline - time.monotonic()))
            if not data:
                return time.monotonic() - started
    except asyncio.TimeoutError:
        return None
    except (ConnectionError, ssl.SSLError, OSError):
        return time.monotonic() - started
    return None


async def loop_lag(started):
    """The longest this process's event loop was late for a 0.1 s sleep."""
    while not stopping(started):
        before = time.monotonic()
        await asyncio.sleep(0.1)
        stats["client_loop_lag_max_s"] = max(stats["client_loop_lag_max_s"], round(time.monotonic() - before - 0.1, 2))


async def read_status(reader):
    try:
        line = await asyncio.wait_for(reader.readline(), timeout=30)
    except (asyncio.TimeoutError, ConnectionError, ssl.SSLError, OSError):
        return 0
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


async def malformed_client(host, port, started):
    while not stopping(started):
        kind = random.choice(list(KINDS))
        status = 0
        writer = None
        try:
            if kind == "garbage-tcp":
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(os.urandom(random.randint(1, 4096)))
                await writer.drain()
                await asyncio.wait_for(reader.read(), timeout=30)
            else:
                reader, writer = await asyncio.open_connection(host, port, ssl=context)
                if kind in ATTACKS:
                    request = ATTACKS[kind]
                elif kind == "garbage-http":
                    request = os.urandom(64).replace(b"\n", b"") + b"\r\n\r\n"
                elif kind == "oversized-headers":
                    request = b"GET /containers/json HTTP/1.1\r\nHost: soak\r\nX-Filler: " + b"a" * 100_000 + b"\r\n\r\n"
                else:
                    request = f"GET /containers/json HTTP/1.1\r\nHost: soak\r\n{signature_headers(kind)}\r\n".encode()
                writer.write(request)
                await writer.drain()
                status = await read_status(reader)
                if kind in MUST_CLOSE and status:
                    waited = await seconds_until_closed(reader, HELD_SECONDS)
                    if waited is None:
                        status = -1  # answered, but the connection was held open
                    elif waited > CLOSE_SECONDS:
                        stats["late_closes"] += 1
                        stats["late_close_max_s"] = max(stats["late_close_max_s"], round(waited, 1))
        except (asyncio.TimeoutError, ConnectionError, ssl.SSLError, OSError):
            status = 0
        finally:
            if writer is not None:
                writer.close()
        count(stats["malformed"], f"{kind} {status}")
        if status not in KINDS[kind]:
            count(stats["unexpected"], f"{kind} {status}")
        await asyncio.sleep(random.uniform(0.2, 0.6))


async def pipeliner(host, port, started):
    """Writes pipelined requests that each get an answer, never reads one, and hangs
    up after a while: unread answers must not pile up in the agent."""
    batch = b"GET /ping HTTP/1.1\r\nHost: soak\r\n\r\n" * 2048
    while not stopping(started):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer = None
        try:
            raw.setblocking(False)
            await asyncio.get_running_loop().sock_connect(raw, (host, port))
            reader, writer = await asyncio.open_connection(sock=raw, ssl=context, server_hostname="")
            stats["pipeliners"] += 1
            sent = 0
            held_until = time.monotonic() + random.uniform(5, 10)
            while sent < 4 << 20 and time.monotonic() < held_until and not stopping(started):
                writer.write(batch)
                try:
                    await asyncio.wait_for(writer.drain(), timeout=1)
                except asyncio.TimeoutError:
                    continue  # the agent stopped reading: as it should
                sent += len(batch)
            stats["pipelined_mb"] += sent >> 20
            while time.monotonic() < held_until and not stopping(started):
                await asyncio.sleep(0.5)
        except (ConnectionError, ssl.SSLError, OSError, asyncio.TimeoutError):
            pass
        finally:
            if writer is not None:
                writer.transport.abort()
            else:
                raw.close()


async def main():
    started = time.monotonic()
    tasks = [slow_client(*targets[i % len(targets)], started) for i in range(slow_count)]
    tasks += [pipeliner(*targets[i % len(targets)], started) for i in range(pipeliner_count)]
    tasks += [malformed_client(*targets[i % len(targets)], started) for i in range(malformed_count)]
    tasks.append(loop_lag(started))
    await asyncio.gather(*tasks)
    print(json.dumps(stats, sort_keys=True), flush=True)


asyncio.run(main())
