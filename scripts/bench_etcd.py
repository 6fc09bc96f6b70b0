#!/usr/bin/env python3
"""etcd discovery figures for scripts/bench.sh (also runnable alone):

    python3 scripts/bench_etcd.py --balancerd PATH [--changes N]

- put to served: the time from an etcd put of a new endpoint key (through the JSON gateway,
  as a pod registering would) to the first client connection that endpoint answers; the
  median and max of 20, and the same counted from etcd's acknowledgement of the put (etcd's
  own commit, an fsync, is most of the rest);
- CPU per change: the daemon's CPU time per single-key change while it watches a prefix of
  1,000 services (each change puts one endpoint of one service).

Everything runs on 127.0.0.1 and stops by itself; a fresh etcd member with its own data
folder is started and removed.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(text):
    return base64.b64encode(text.encode()).decode()


class Greeter:
    """A TCP listener that greets each connection with its name and closes."""

    def __init__(self, name):
        self.name = name.encode()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.sendall(self.name + b"\n")
            finally:
                conn.close()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(balancerd, changes=20, serve=()):
    """serve: a command prefix for etcd and the daemon, such as taskset -c 1."""
    work = tempfile.mkdtemp(prefix="balancerd-bench-etcd-")
    processes = []
    try:
        client, peer, admin, listen = free_port(), free_port(), free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        etcd = subprocess.Popen(
            list(serve) + ["etcd", "--data-dir", f"{work}/data", "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"default=http://127.0.0.1:{peer}", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        processes.append(etcd)

        def call(path, body):
            request = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read() or b"{}")

        def put(key, value):
            call("/v3/kv/put", {"key": b64(key), "value": b64(value)})

        deadline = time.time() + 20
        while True:
            try:
                call("/v3/kv/range", {"key": b64("/")})
                break
            except Exception:
                if time.time() > deadline:
                    raise RuntimeError("etcd did not start")
                time.sleep(0.1)
        # 1,000 services under the prefix (listening on 127.0.0.1:12000-12999, below the
        # ephemeral ports), each with one endpoint that nothing connects to (checks are off).
        for i in range(1000):
            put(f"/balancerd/services/svc-{i:04d}",
                json.dumps({"listen": f"127.0.0.1:{12000 + i}",
                            "endpoints": [f"127.0.0.1:{20000 + i}"]}))
        config = os.path.join(work, "balancerd.yaml")
        with open(config, "w") as f:
            f.write(f"admin: {{listen: 127.0.0.1:{admin}}}\n"
                    f"discovery: {{etcd: {{endpoints: [\"{url}\"]}}}}\n"
                    "defaults: {healthCheck: off}\n"
                    f"services:\n  - name: web\n    listen: 127.0.0.1:{listen}\n    endpoints: []\n")
        log = open(os.path.join(work, "balancerd.log"), "w")
        daemon = subprocess.Popen(list(serve) + [balancerd, "--config", config, "--log-level", "warning"], stderr=log, start_new_session=True)
        processes.append(daemon)

        def answer():
            try:
                with socket.create_connection(("127.0.0.1", listen), timeout=1) as s:
                    return s.recv(64).decode().strip()
            except OSError:
                return ""

        # Wait until all 1,000 services are served (the last one answers a connect).
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats", timeout=5) as response:
                    if len(json.loads(response.read())["services"]) == 1001:
                        break
            except OSError:
                pass  # not listening yet
            time.sleep(0.2)
        else:
            raise RuntimeError("balancerd did not serve the 1,000 services from etcd")

        greeters = [Greeter(f"pod-{n}") for n in range(20)]
        latencies = []
        previous = None
        acknowledged = []
        for greeter in greeters:
            if previous:
                call("/v3/kv/deleterange", {"key": b64(previous)})
                while answer() != "" and time.monotonic() < deadline + 60:
                    time.sleep(0.001)
            start = time.monotonic()
            put(f"/balancerd/endpoints/web/{greeter.name.decode()}", json.dumps(f"127.0.0.1:{greeter.port}"))
            acked = time.monotonic()
            while answer() != greeter.name.decode() and time.monotonic() - start < 10:
                time.sleep(0.001)
            latencies.append((time.monotonic() - start) * 1000)
            acknowledged.append((time.monotonic() - acked) * 1000)
            previous = f"/balancerd/endpoints/web/{greeter.name.decode()}"

        time.sleep(1)
        before = cpu_seconds(daemon.pid)
        for n in range(changes):
            put(f"/balancerd/endpoints/svc-{n % 1000:04d}/extra", json.dumps(f"127.0.0.1:{30000 + n}"))
            time.sleep(0.25)
        time.sleep(0.5)
        cpu_ms = (cpu_seconds(daemon.pid) - before) * 1000 / changes
        return {"put_median_ms": statistics.median(latencies), "put_max_ms": max(latencies),
                "acked_median_ms": statistics.median(acknowledged), "acked_max_ms": max(acknowledged), "cpu_ms_per_change": cpu_ms}
    finally:
        for process in processes:
            process.kill()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--balancerd", required=True)
    parser.add_argument("--changes", type=int, default=20)
    options = parser.parse_args()
    figures = run(options.balancerd, options.changes)
    print(f"etcd put to first connection served: median {figures['put_median_ms']:.1f} ms, max {figures['put_max_ms']:.1f} ms (20 puts)")
    print(f"  of which after etcd acknowledged the put: median {figures['acked_median_ms']:.1f} ms, max {figures['acked_max_ms']:.1f} ms")
    print(f"daemon CPU per single-key change, 1,000 services watched: {figures['cpu_ms_per_change']:.2f} ms")
