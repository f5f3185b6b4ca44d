#!/usr/bin/env python3
"""A small XMPP load client for measuring Prosody beside `confianza-server loadtest`.

Standard library only (asyncio protocols, no XMPP library), so the client stays cheap next
to the server it measures. Each client logs in (SASL PLAIN on 127.0.0.1, resource binding,
initial presence), then:

* relay: client i sends to the others in turn, at most WINDOW messages in flight per sender
  (in flight = sent and not yet received by its recipient; XMPP has no per-message server
  acknowledgement, so the window closes on delivery). Reported: delivered messages/s and
  send -> delivered latency p50/p99.
* offline: N senders send to N accounts that are not connected (Prosody stores them with
  mod_offline). After every WINDOW messages a sender sends an XEP-0199 ping to the server and
  waits for its answer: Prosody handles one stream's stanzas in order, so the pong means the
  messages before it were handled (stored). Reported: stored messages/s.

Server CPU per message comes from /proc/PID/stat (utime + stime) before and after.
Bounded: at most MAX_CLIENTS clients and MAX_MESSAGES messages, 127.0.0.1 only.
"""

import argparse
import asyncio
import base64
import os
import re
import sys
import time

MAX_CLIENTS = 10_000
MAX_MESSAGES = 10_000_000
USER_HZ = 100  # /proc/PID/stat clock ticks per second on Linux
BODY_RE = re.compile(rb"<body>s(\d+)t(\d+)x")
PONG_RE = re.compile(rb"id=['\"]p\d")
PONG_LEN = len(b"id='p0")
MAX_KEPT = 1 << 17  # bytes kept between reads while no body ends


def process_cpu(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        rest = f.read().rsplit(b")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / USER_HZ


def quantile(samples, q):
    if not samples:
        return None
    samples.sort()
    rank = max(1, min(len(samples), int(-(-q * len(samples) // 1))))
    return samples[rank - 1]


class Client(asyncio.Protocol):
    """One XMPP client stream, driven by a tiny state machine over the raw bytes."""

    def __init__(self, run, index, user):
        self.run = run
        self.index = index
        self.user = user
        self.transport = None
        self.buffer = b""
        self.tail = b""
        self.stage = "stream"
        self.ready = asyncio.get_running_loop().create_future()
        self.window = asyncio.Event()
        self.in_flight = 0
        self.pongs = asyncio.Queue()
        self.closed = asyncio.get_running_loop().create_future()

    # -- login ---------------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.open_stream()

    def open_stream(self):
        self.buffer = b""
        self.transport.write(
            b"<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
            % self.run.domain.encode()
        )

    def data_received(self, data):
        if self.stage == "online":
            self.online_data(data)
            return
        self.buffer += data
        if self.stage == "stream" and b"</stream:features>" in self.buffer:
            if b"PLAIN" not in self.buffer:
                self.fail("the server offers no SASL PLAIN")
                return
            secret = base64.b64encode(b"\0" + self.user.encode() + b"\0" + self.run.password.encode())
            self.transport.write(
                b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % secret
            )
            self.stage = "auth"
            self.buffer = b""
        elif self.stage == "auth" and b"<success" in self.buffer:
            self.stage = "bound-stream"
            self.open_stream()
        elif self.stage == "auth" and b"<failure" in self.buffer:
            self.fail("authentication failed: %r" % self.buffer)
        elif self.stage == "bound-stream" and b"</stream:features>" in self.buffer:
            self.transport.write(
                b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                b"<resource>load</resource></bind></iq>"
            )
            self.stage = "bind"
            self.buffer = b""
        elif self.stage == "bind" and b"</iq>" in self.buffer:
            if b"type='result'" not in self.buffer and b'type="result"' not in self.buffer:
                self.fail("resource binding failed: %r" % self.buffer)
                return
            self.transport.write(b"<presence/>")
            self.stage = "online"
            self.buffer = b""
            self.ready.set_result(None)

    def fail(self, reason):
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(f"{self.user}: {reason}"))
        self.transport.close()

    def connection_lost(self, exc):
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(f"{self.user}: connection lost during login"))
        if not self.closed.done():
            self.closed.set_result(exc)

    # -- traffic -------------------------------------------------------------------------
    def online_data(self, data):
        # Bodies: process up to the last complete one, keep the rest for the next read.
        joined = self.buffer + data
        cut = joined.rfind(b"</body>")
        if cut >= 0:
            now = time.perf_counter_ns()
            for match in BODY_RE.finditer(joined, 0, cut):
                self.run.delivered(int(match.group(1)), (now - int(match.group(2))) // 1000)
            joined = joined[cut + 7:]
        self.buffer = joined[-MAX_KEPT:]
        # Pongs (self-closing iq results): count matches that end in the new bytes.
        tail = self.tail + data
        for _ in PONG_RE.finditer(tail):
            self.pongs.put_nowait(None)
        self.tail = tail[-(PONG_LEN - 1):]


class Run:
    def __init__(self, args):
        self.args = args
        self.domain = args.domain
        self.password = args.password
        self.clients = []
        self.latencies = []
        self.delivered_count = 0
        self.last_delivery = None
        self.padding = b"x" * max(0, args.payload - 40)

    def delivered(self, sender, latency_us):
        self.delivered_count += 1
        self.latencies.append(latency_us)
        self.last_delivery = time.perf_counter()
        client = self.clients[sender]
        client.in_flight -= 1
        client.window.set()

    def stanza(self, sender, to):
        return b"<message to='%s' type='chat'><body>s%dt%dx%s</body></message>" % (
            to, sender, time.perf_counter_ns(), self.padding)

    async def connect(self, index, user):
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(
            lambda: Client(self, index, user), self.args.host, self.args.port)
        await client.ready
        return client

    async def relay_sender(self, client, count, n):
        cursor = client.index + 1
        for _ in range(count):
            while client.in_flight >= self.args.window:
                client.window.clear()
                await client.window.wait()
            target = cursor % n
            if target == client.index:
                cursor += 1
                target = cursor % n
            cursor += 1
            jid = b"%s%d@%s/load" % (self.args.prefix.encode(), target, self.domain.encode())
            client.in_flight += 1
            client.transport.write(self.stanza(client.index, jid))
            if client.transport.get_write_buffer_size() > 1 << 20:
                await asyncio.sleep(0)

    async def offline_sender(self, client, count, n):
        sent = 0
        batch = 0
        while sent < count:
            chunk = []
            for _ in range(min(self.args.window, count - sent)):
                target = (client.index + sent) % n
                jid = b"%soff%d@%s" % (self.args.prefix.encode(), target, self.domain.encode())
                chunk.append(self.stanza(client.index, jid))
                sent += 1
            batch += 1
            chunk.append(b"<iq type='get' id='p%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                         % (batch, self.domain.encode()))
            client.transport.write(b"".join(chunk))
            await client.pongs.get()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=15222)
    parser.add_argument("--domain", default="localhost")
    parser.add_argument("--prefix", default="load")
    parser.add_argument("--password", default="loadtest")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--payload", type=int, default=256)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--offline", action="store_true")
    parser.add_argument("--server-pid", type=int)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("127.0.0.1 only")
    if not 2 <= args.clients <= MAX_CLIENTS or not 1 <= args.messages <= MAX_MESSAGES:
        sys.exit(f"--clients 2..{MAX_CLIENTS}, --messages 1..{MAX_MESSAGES}")

    run = Run(args)
    n = args.clients
    started = time.perf_counter()
    sem = asyncio.Semaphore(64)

    async def login(i):
        async with sem:
            return await run.connect(i, f"{args.prefix}{i}")

    run.clients = list(await asyncio.gather(*(login(i) for i in range(n))))
    print(f"logged in {n} clients in {time.perf_counter() - started:.1f} s")
    await asyncio.sleep(0.5)  # let presence broadcasts settle

    shares = [args.messages // n + (1 if i < args.messages % n else 0) for i in range(n)]
    cpu_before = process_cpu(args.server_pid) if args.server_pid else None
    started = time.perf_counter()
    if args.offline:
        await asyncio.gather(*(run.offline_sender(c, shares[c.index], n) for c in run.clients))
        finished = time.perf_counter()
        counted = args.messages
        label = "offline store (pong after each window)"
    else:
        await asyncio.gather(*(run.relay_sender(c, shares[c.index], n) for c in run.clients))
        deadline = time.perf_counter() + 60
        while run.delivered_count < args.messages and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        finished = run.last_delivery or time.perf_counter()
        counted = run.delivered_count
        label = "relay (delivered)"
    cpu_after = process_cpu(args.server_pid) if args.server_pid else None
    elapsed = finished - started
    print(f"prosody {label}: {n} clients, payload {args.payload} B, window {args.window}")
    print(f"{counted} messages in {elapsed:.2f} s = {counted / elapsed:.0f} msg/s")
    if not args.offline:
        p50 = quantile(run.latencies, 0.5)
        p99 = quantile(run.latencies, 0.99)
        print(f"delivered {run.delivered_count} of {args.messages}; latency p50 {p50} µs p99 {p99} µs")
    if cpu_before is not None:
        used = cpu_after - cpu_before
        print(f"CPU (server process): {used:.2f} s = {used * 1e6 / max(counted, 1):.1f} µs per message")
    for client in run.clients:
        client.transport.write(b"</stream:stream>")
        client.transport.close()


if __name__ == "__main__":
    asyncio.run(main())
