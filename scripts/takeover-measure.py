#!/usr/bin/env python3
"""Measures an upgrade in place under load, on 127.0.0.1 only.

Opens N established connections through balancerd to an echo backend (run here, in a
process of its own), has each one ping every INTERVAL seconds (one ping outstanding per
connection), sends the daemon SIGUSR2 (so it starts its own binary with --takeover), and
reports how long the takeover took and the longest stall any connection saw: the longest
round trip of a ping, and the longest gap between two answers on one connection, less the
interval. Connections that end, pings lost, and connects refused are counted; any is a
failure (exit 1).

  scripts/takeover-measure.py [--connections 10000] [--interval 0.5] [--balancerd PATH]

Everything is bounded: connects, the takeover (the daemon's own 10 s), and the run
(warm-up and cool-down seconds). RLIMIT_NOFILE is raised as far as this process may.
"""
import argparse
import multiprocessing
import os
import re
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def raise_file_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in (wanted, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(limit, soft), max(limit, hard)))
            return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        except (ValueError, OSError):
            continue
    return soft


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echo_backend(port, ready):
    """Echoes every byte back, on as many connections as come."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(65535)
    listener.setblocking(False)
    selector = selectors.EpollSelector()
    selector.register(listener, selectors.EVENT_READ)
    ready.set()
    parent = os.getppid()
    while os.getppid() == parent:
        for key, _ in selector.select(1):
            if key.fileobj is listener:
                for _ in range(256):
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                conn.close()
                continue
            conn.sendall(data)


class Client:
    __slots__ = ("sock", "sent_at", "last_answer", "buffer")

    def __init__(self, sock):
        self.sock = sock
        self.sent_at = None
        self.last_answer = None
        self.buffer = b""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between one connection's pings")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--cooldown", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--balancerd", default=None, help="the binary (default: the release build, else the debug one)")
    args = parser.parse_args()
    binary = args.balancerd
    if binary is None:
        for candidate in (".build/release/balancerd", ".build-package/release/balancerd", ".build/debug/balancerd"):
            if os.access(os.path.join(ROOT, candidate), os.X_OK):
                binary = os.path.join(ROOT, candidate)
                break
    if binary is None:
        sys.exit("takeover-measure: no balancerd built (swift build -c release)")

    limit = raise_file_limit(4 * args.connections + 1024)
    # balancerd holds two descriptors per connection (and each process inherits this limit).
    allowed = (limit - 200) // 2
    if allowed < args.connections:
        print(f"RLIMIT_NOFILE is {limit} and cannot be raised here: measuring {allowed} connections, not {args.connections}", flush=True)
        args.connections = allowed

    backend_port, port, admin = free_port(), free_port(), free_port()
    ready = multiprocessing.Event()
    backend = multiprocessing.Process(target=echo_backend, args=(backend_port, ready), daemon=True)
    backend.start()
    if not ready.wait(10):
        sys.exit("takeover-measure: the echo backend did not start")

    directory = tempfile.mkdtemp(prefix="balancerd-takeover-measure-")
    config = os.path.join(directory, "balancerd.yaml")
    with open(config, "w") as f:
        f.write(f"admin:\n  listen: 127.0.0.1:{admin}\nworkers: {args.workers}\nlog:\n  level: notice\n"
                f"services:\n  - name: echo\n    listen: 127.0.0.1:{port}\n    endpoints: [127.0.0.1:{backend_port}]\n")
    log_path = os.path.join(directory, "balancerd.log")
    log = open(log_path, "w")
    old = subprocess.Popen([binary, "--config", config], stderr=log, stdout=subprocess.DEVNULL)
    successor = None
    try:
        deadline = time.monotonic() + 10
        while "started:" not in open(log_path).read():
            if time.monotonic() > deadline or old.poll() is not None:
                sys.exit("takeover-measure: balancerd did not start:\n" + open(log_path).read())
            time.sleep(0.05)

        selector = selectors.EpollSelector()
        clients = []
        refused = 0
        started = time.monotonic()
        for index in range(args.connections):
            sock = socket.socket()
            sock.settimeout(10)
            try:
                sock.connect(("127.0.0.1", port))
            except OSError:
                refused += 1
                sock.close()
                continue
            sock.setblocking(False)
            client = Client(sock)
            clients.append(client)
            selector.register(sock, selectors.EVENT_READ, client)
        print(f"{len(clients)} connections open in {time.monotonic() - started:.1f} s ({refused} refused)", flush=True)

        ended = 0
        lost = 0
        rtts_before, rtts_during = [], []
        max_gap = 0.0
        sequence = 0
        phase = "before"
        takeover_sent = takeover_done = None
        run_end = None
        next_index = 0
        # Spread the pings evenly: each turn of the loop sends as many as the time since the
        # last one makes due, so that each connection pings once per interval.
        budget = 0.0
        last_turn = time.monotonic()
        warm_end = time.monotonic() + args.warmup
        while True:
            now = time.monotonic()
            if phase == "before" and now >= warm_end:
                old.send_signal(signal.SIGUSR2)
                takeover_sent = now
                phase = "during"
            if phase == "during" and old.poll() is not None:
                takeover_done = now
                phase = "after"
                run_end = now + args.cooldown
            if phase == "during" and now - takeover_sent > 20:
                print("the old daemon did not exit within 20 s of SIGUSR2", flush=True)
                break
            if phase == "after" and now >= run_end:
                break
            budget += (now - last_turn) * len(clients) / args.interval
            last_turn = now
            due = int(budget)
            budget -= due
            for _ in range(min(due, len(clients))):
                client = clients[next_index]
                next_index = (next_index + 1) % len(clients)
                if client.sock is None or client.sent_at is not None:
                    continue
                sequence += 1
                try:
                    client.sock.send(struct.pack(">Q", sequence))
                    client.sent_at = now
                except OSError:
                    ended += 1
                    selector.unregister(client.sock)
                    client.sock.close()
                    client.sock = None
            for key, _ in selector.select(0.01):
                client = key.data
                try:
                    data = client.sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    ended += 1
                    selector.unregister(client.sock)
                    client.sock.close()
                    client.sock = None
                    continue
                client.buffer += data
                while len(client.buffer) >= 8:
                    client.buffer = client.buffer[8:]
                    answered = time.monotonic()
                    if client.sent_at is not None:
                        rtt = answered - client.sent_at
                        (rtts_before if phase == "before" else rtts_during).append(rtt)
                    if client.last_answer is not None:
                        max_gap = max(max_gap, answered - client.last_answer)
                    client.last_answer = answered
                    client.sent_at = None
        for client in clients:
            if client.sock is not None and client.sent_at is not None and time.monotonic() - client.sent_at > 5:
                lost += 1

        text = open(log_path).read()
        handed = re.search(r"took over (\d+) listening socket\(s\) and (\d+) connection\(s\) in (\d+) ms", text)
        pid = re.search(r"handed over to pid (\d+)", text)
        successor = int(pid.group(1)) if pid else None
        print(f"old daemon exit status: {old.returncode}")
        if handed:
            print(f"handover (old daemon's log, connect to commit): {handed.group(3)} ms for {handed.group(2)} connections, {handed.group(1)} listening sockets")
        if takeover_done is not None:
            print(f"SIGUSR2 to the old daemon's exit: {(takeover_done - takeover_sent) * 1000:.0f} ms")
        if rtts_before:
            print(f"ping round trip before: median {sorted(rtts_before)[len(rtts_before) // 2] * 1000:.1f} ms, max {max(rtts_before) * 1000:.1f} ms")
        if rtts_during:
            print(f"ping round trip across the takeover: max {max(rtts_during) * 1000:.1f} ms ({len(rtts_during)} pings)")
        print(f"longest gap between two answers on one connection: {max_gap * 1000:.0f} ms (interval {args.interval * 1000:.0f} ms), "
              f"so the longest stall: {max(0.0, max_gap - args.interval) * 1000:.0f} ms")
        print(f"connections ended: {ended}, pings unanswered: {lost}, connects refused: {refused}")
        ok = old.returncode == 0 and ended == 0 and lost == 0 and refused == 0 and successor is not None
        print("result: " + ("ok" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        for pid in [old.pid] + ([successor] if successor else []):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        old.wait()
        backend.terminate()


if __name__ == "__main__":
    sys.exit(main())
