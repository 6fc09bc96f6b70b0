#!/usr/bin/env python3
"""The benchmark behind scripts/bench.sh (run that: it installs and builds first).

Each of direct, haproxy, haproxy+splice, nginx (stream) and balancerd runs in turn in
front of the same backends on 127.0.0.1: two small nginx HTTP servers (the two endpoints
of the HTTP service) and one iperf3 server (iperf3 needs its control and data connections
on one server, so its service has that one endpoint). Figures:

- bulk throughput: iperf3 through the proxy, 1 and 4 streams (Gbit/s);
- new-connection rate: wrk with "Connection: close" (connections/s);
- keep-alive: wrk p50 and p99 latency and requests/s;
- memory per idle connection: the proxy's RSS with N idle connections open, less its RSS
  at rest, over N;
- proxy CPU time per GB relayed and per new connection (steadier than rates when the
  load generator, the backends and the proxy share the same cores);
- the connection log's cost: the Connection: close row again with `accessLog` on (json to
  a file) beside off, in alternating runs;
- configuration of 1,000 services x 10 endpoints: balancerd's reload time; for the peers,
  the time their own config check takes (the parse a reload would start with);
- discovery from etcd (balancerd only; see scripts/bench_etcd.py): put to first connection
  served, and the CPU one key change costs with 1,000 services watched;
- UDP (direct, nginx and balancerd; see scripts/bench_udp.py): 64-byte request/response
  exchanges per second, CPU per million datagrams, iperf3 -u throughput under 1% loss.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--balancerd", required=True)
parser.add_argument("--quick", action="store_true", help="short runs, fewer idle connections")
args = parser.parse_args()

DURATION = 3 if args.quick else 8
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
# Each idle connection costs the proxy two descriptors; stay under the hard limit with
# room for what HAProxy reserves beyond 2 x maxconn (and its pipes, capped by maxpipes).
IDLE = min(2000 if args.quick else 10000, (hard - 2000) // 2)
WORK = tempfile.mkdtemp(prefix="balancerd-bench-")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
processes = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name, command):
    log = open(os.path.join(WORK, name + ".log"), "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    processes.append(process)
    return process


def stop(process):
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except Exception:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s (logs in {WORK})")


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- backends

http_ports = [free_port(), free_port()]
iperf_port = free_port()
nginx_temp = "".join(f"  {kind}_temp_path {WORK}/{kind};\n" for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
backend_conf = os.path.join(WORK, "backends.conf")
with open(backend_conf, "w") as f:
    f.write(f"""worker_processes 1;
worker_rlimit_nofile {hard};
pid {WORK}/backends.pid;
error_log {WORK}/backends-error.log;
events {{ worker_connections {IDLE + 2000}; }}
http {{
  access_log off;
{nginx_temp}  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{http_ports[0]} backlog=4096; location / {{ return 200 "ok\\n"; }} }}
  server {{ listen 127.0.0.1:{http_ports[1]} backlog=4096; location / {{ return 200 "ok\\n"; }} }}
}}
""")
start("backends", ["nginx", "-p", WORK, "-c", backend_conf, "-g", "daemon off;"])
start("iperf3", ["iperf3", "-s", "-p", str(iperf_port)])
for port in http_ports + [iperf_port]:
    wait_port(port)

# ---------------------------------------------------------------- proxies


def haproxy_config(http_front, iperf_front, splice):
    options = "  option splice-request\n  option splice-response\n" if splice else ""
    return f"""global
  nbthread 2
  maxconn {IDLE + 100}
  maxpipes 500
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
{options}frontend http
  bind 127.0.0.1:{http_front}
  default_backend http
backend http
  balance roundrobin
  server a 127.0.0.1:{http_ports[0]}
  server b 127.0.0.1:{http_ports[1]}
frontend iperf
  bind 127.0.0.1:{iperf_front}
  default_backend iperf
backend iperf
  server i 127.0.0.1:{iperf_port}
"""


def nginx_config(http_front, iperf_front):
    return f"""load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
worker_rlimit_nofile {hard};
pid {WORK}/stream.pid;
error_log {WORK}/stream-error.log;
events {{ worker_connections {IDLE + 1000}; }}
stream {{
  upstream http {{ server 127.0.0.1:{http_ports[0]}; server 127.0.0.1:{http_ports[1]}; }}
  upstream iperf {{ server 127.0.0.1:{iperf_port}; }}
  server {{ listen 127.0.0.1:{http_front} backlog=4096; proxy_pass http; }}
  server {{ listen 127.0.0.1:{iperf_front} backlog=4096; proxy_pass iperf; }}
}}
"""


def balancerd_config(http_front, iperf_front, admin, access_log=None):
    log = f"accessLog: {{path: {access_log}, format: json}}\n" if access_log else ""
    return f"""admin:
  listen: 127.0.0.1:{admin}
log:
  level: warning
{log}workers: 2
limits:
  maxConnections: {IDLE + 1000}
services:
  - name: http
    listen: 127.0.0.1:{http_front}
    endpoints: [127.0.0.1:{http_ports[0]}, 127.0.0.1:{http_ports[1]}]
  - name: iperf
    listen: 127.0.0.1:{iperf_front}
    endpoints: [127.0.0.1:{iperf_port}]
"""


def launch(kind):
    """Starts a proxy; returns (http port, iperf port, root pid or None, config path)."""
    if kind == "direct":
        return http_ports[0], iperf_port, None, None
    http_front, iperf_front = free_port(), free_port()
    if kind.startswith("haproxy"):
        path = os.path.join(WORK, kind + ".cfg")
        with open(path, "w") as f:
            f.write(haproxy_config(http_front, iperf_front, kind.endswith("splice")))
        process = start(kind, ["haproxy", "-db", "-f", path])
    elif kind == "nginx":
        path = os.path.join(WORK, "stream.conf")
        with open(path, "w") as f:
            f.write(nginx_config(http_front, iperf_front))
        process = start(kind, ["nginx", "-p", WORK, "-c", path, "-g", "daemon off;"])
    else:
        path = os.path.join(WORK, kind + ".yaml")
        access_log = ACCESS_LOG if kind == "balancerd+log" else None
        with open(path, "w") as f:
            f.write(balancerd_config(http_front, iperf_front, free_port(), access_log))
        process = start(kind, [args.balancerd, "--config", path])
    wait_port(http_front)
    wait_port(iperf_front)
    return http_front, iperf_front, process, path


def measure_cpu(pid, body):
    pids = tree(pid) if pid else []
    before = cpu_seconds(pids)
    result = body()
    return result, (cpu_seconds(pids) - before)


def iperf(port, streams):
    # iperf3's server takes one test at a time and may still be finishing the last one
    # ("the server is busy"): try again a few times.
    for attempt in range(4):
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(DURATION), "-P", str(streams), "-J"],
                             capture_output=True, text=True, timeout=DURATION + 30)
        data = json.loads(out.stdout)
        if "sum_received" in data.get("end", {}):
            received = data["end"]["sum_received"]
            return received["bits_per_second"] / 1e9, received["bytes"]
        print(f"iperf3: {data.get('error', 'no result')}; trying again", file=sys.stderr, flush=True)
        time.sleep(1 + attempt)
    raise RuntimeError("iperf3 gave no result")


def wrk(port, close):
    command = ["wrk", "-t2", "-c64", f"-d{DURATION}s", "--latency"]
    if close:
        command += ["-H", "Connection: close"]
    out = subprocess.run(command + [f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=DURATION + 30).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def millis(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    return {"rate": rate, "total": total, "p50": millis("50"), "p99": millis("99"),
            "errors": (errors.group(1) if errors else "") + (f" non-2xx {non2xx.group(1)}" if non2xx else "")}


def idle_memory(port, pid):
    pids = tree(pid)
    time.sleep(0.5)
    before = rss_kib(pids)
    sockets = []
    for _ in range(IDLE):
        s = socket.socket()
        s.connect(("127.0.0.1", port))
        sockets.append(s)
    time.sleep(2)
    after = rss_kib(tree(pid))
    for s in sockets:
        s.close()
    time.sleep(1)
    return (after - before) * 1024 / IDLE


def big_configs():
    """1,000 services x 10 endpoints for each proxy; returns the balancerd file."""
    gen = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/gen-config.py"), "--admin", str(free_port())],
                         capture_output=True, text=True, check=True).stdout
    hap = ["global", "  maxconn 1000", "defaults", "  mode tcp", "  timeout connect 2s", "  timeout client 1h", "  timeout server 1h"]
    ngx = ["load_module /usr/lib/nginx/modules/ngx_stream_module.so;", f"pid {WORK}/big.pid;", f"error_log {WORK}/big-error.log;",
           "events { worker_connections 1024; }", "stream {"]
    for i in range(1000):
        servers = [f"127.0.0.1:{20000 + (i * 10 + j) % 10000}" for j in range(10)]
        hap += [f"listen svc{i}", f"  bind 127.0.0.1:{11000 + i}", "  balance roundrobin"]
        hap += [f"  server e{j} {a} check" for j, a in enumerate(servers)]
        ngx += [f"  upstream svc{i} {{ " + " ".join(f"server {a};" for a in servers) + " }",
                f"  server {{ listen 127.0.0.1:{11000 + i}; proxy_pass svc{i}; }}"]
    ngx.append("}")
    paths = {}
    for name, text in [("big.yaml", gen), ("big.cfg", "\n".join(hap) + "\n"), ("big-nginx.conf", "\n".join(ngx) + "\n")]:
        paths[name] = os.path.join(WORK, name)
        with open(paths[name], "w") as f:
            f.write(text)
    return paths


def timed(command):
    start_time = time.monotonic()
    subprocess.run(command, capture_output=True, timeout=120)
    return (time.monotonic() - start_time) * 1000


# ---------------------------------------------------------------- run

kinds = ["direct", "haproxy", "haproxy+splice", "nginx", "balancerd"]
ACCESS_LOG = os.path.join(WORK, "access.log")
results = {}
try:
    for kind in kinds:
        print(f"-- {kind}", file=sys.stderr, flush=True)
        http_front, iperf_front, process, path = launch(kind)
        pid = process.pid if process else None
        r = {}
        (r["gbps1"], bytes1), cpu1 = measure_cpu(pid, lambda: iperf(iperf_front, 1))
        (r["gbps4"], _), _ = measure_cpu(pid, lambda: iperf(iperf_front, 4))
        r["cpu_per_gb"] = cpu1 / (bytes1 / 1e9) if pid else float("nan")
        close, cpu_close = measure_cpu(pid, lambda: wrk(http_front, True))
        r["conn_rate"] = close["rate"]
        r["cpu_us_per_conn"] = cpu_close / close["total"] * 1e6 if pid else float("nan")
        r["close_errors"] = close["errors"]
        keep, cpu_keep = measure_cpu(pid, lambda: wrk(http_front, False))
        r["ka_rate"], r["p50"], r["p99"] = keep["rate"], keep["p50"], keep["p99"]
        r["cpu_us_per_req"] = cpu_keep / keep["total"] * 1e6 if pid else float("nan")
        r["idle_bytes"] = idle_memory(http_front, pid) if pid else float("nan")
        results[kind] = r
        if process:
            stop(process)
    # The connection log's cost: Connection: close with it off and on (json to a file), in
    # alternating runs (this shared machine drifts), the best of each.
    print("-- balancerd, connection log off and on", file=sys.stderr, flush=True)
    log_runs = {"balancerd": [], "balancerd+log": []}
    for _ in range(2):
        for kind in log_runs:
            http_front, _, process, _ = launch(kind)
            close, cpu_close = measure_cpu(process.pid, lambda: wrk(http_front, True))
            log_runs[kind].append((close["rate"], cpu_close / close["total"] * 1e6))
            stop(process)
    off = max(log_runs["balancerd"])
    on = max(log_runs["balancerd+log"])
    log_lines = sum(1 for _ in open(ACCESS_LOG)) if os.path.exists(ACCESS_LOG) else 0
    for kind in kinds:
        results[kind]["conn_rate_log_off"] = off[0] if kind == "balancerd" else float("nan")
        results[kind]["conn_rate_log_on"] = on[0] if kind == "balancerd" else float("nan")
        results[kind]["cpu_us_per_conn_log_on"] = on[1] if kind == "balancerd" else float("nan")
    # Large configurations.
    paths = big_configs()
    results["haproxy"]["big_ms"] = timed(["haproxy", "-c", "-f", paths["big.cfg"]])
    results["haproxy+splice"]["big_ms"] = float("nan")
    results["nginx"]["big_ms"] = timed(["nginx", "-t", "-p", WORK, "-c", paths["big-nginx.conf"]])
    results["direct"]["big_ms"] = float("nan")
    log_path = os.path.join(WORK, "big-balancerd.log")
    with open(log_path, "w") as log:
        daemon = subprocess.Popen([args.balancerd, "--config", paths["big.yaml"], "--log-level", "notice"], stderr=log, start_new_session=True)
        processes.append(daemon)
        deadline = time.time() + 30
        while "started:" not in open(log_path).read() and time.time() < deadline:
            time.sleep(0.1)
        took = []
        for _ in range(3):
            count = open(log_path).read().count("complete:")
            daemon.send_signal(signal.SIGHUP)
            while open(log_path).read().count("complete:") == count and time.time() < deadline + 30:
                time.sleep(0.05)
            took.append(int(re.findall(r"took (\d+) ms", open(log_path).read())[-1]))
        stop(daemon)
    results["balancerd"]["big_ms"] = min(took)
    # Discovery from etcd: balancerd alone (the peers have no etcd provider to compare).
    print("-- etcd discovery", file=sys.stderr, flush=True)
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import bench_etcd
    etcd = bench_etcd.run(args.balancerd)
    for kind in kinds:
        for key in ["put_median_ms", "put_max_ms", "cpu_ms_per_change"]:
            results[kind][key] = etcd[key] if kind == "balancerd" else float("nan")
    # UDP: direct, nginx and balancerd (HAProxy has no UDP proxy).
    print("-- udp", file=sys.stderr, flush=True)
    import bench_udp
    udp = bench_udp.run(args.balancerd, DURATION)
    for kind in kinds:
        for key in ["udp_rate", "udp_cpu_per_m", "udp_mbit"]:
            results[kind][key] = udp[kind][key] if kind in udp else float("nan")
finally:
    for process in processes:
        stop(process)

# ---------------------------------------------------------------- table

best_haproxy = {}
for key, better in [("gbps1", max), ("gbps4", max), ("conn_rate", max), ("ka_rate", max), ("p50", min), ("p99", min),
                    ("idle_bytes", min), ("cpu_per_gb", min), ("cpu_us_per_conn", min), ("cpu_us_per_req", min), ("big_ms", min)]:
    best_haproxy[key] = better(results["haproxy"][key], results["haproxy+splice"][key]) if key != "big_ms" else results["haproxy"][key]
for key in ["put_median_ms", "put_max_ms", "cpu_ms_per_change", "udp_rate", "udp_cpu_per_m", "udp_mbit",
            "conn_rate_log_off", "conn_rate_log_on", "cpu_us_per_conn_log_on"]:
    best_haproxy[key] = float("nan")

rows = [
    ("throughput, 1 stream (Gbit/s)", "gbps1", "{:.2f}"),
    ("throughput, 4 streams (Gbit/s)", "gbps4", "{:.2f}"),
    ("new connections/s (Connection: close)", "conn_rate", "{:.0f}"),
    ("keep-alive requests/s", "ka_rate", "{:.0f}"),
    ("keep-alive p50 latency (ms)", "p50", "{:.3f}"),
    ("keep-alive p99 latency (ms)", "p99", "{:.3f}"),
    (f"RSS per idle connection (bytes, {IDLE} open)", "idle_bytes", "{:.0f}"),
    ("proxy CPU seconds per GB (1 stream)", "cpu_per_gb", "{:.3f}"),
    ("proxy CPU µs per new connection", "cpu_us_per_conn", "{:.1f}"),
    ("proxy CPU µs per keep-alive request", "cpu_us_per_req", "{:.1f}"),
    ("new connections/s, connection log off (best of 2)", "conn_rate_log_off", "{:.0f}"),
    ("new connections/s, connection log on, json file (best of 2)", "conn_rate_log_on", "{:.0f}"),
    ("proxy CPU µs per new connection, connection log on", "cpu_us_per_conn_log_on", "{:.1f}"),
    ("1,000 services x 10 endpoints (ms)*", "big_ms", "{:.0f}"),
    ("etcd put to first connection, median of 20 (ms)", "put_median_ms", "{:.1f}"),
    ("etcd put to first connection, max of 20 (ms)", "put_max_ms", "{:.1f}"),
    ("CPU per etcd key change, 1,000 services (ms)", "cpu_ms_per_change", "{:.2f}"),
    ("UDP 64-byte exchanges/s (64 clients)", "udp_rate", "{:.0f}"),
    ("UDP proxy CPU s per million datagrams", "udp_cpu_per_m", "{:.2f}"),
    ("UDP iperf3 -u, 1,400 B, < 1% loss (Mbit/s)", "udp_mbit", "{:.0f}"),
]
header = ["figure"] + kinds + ["vs best HAProxy", "vs direct"]
table = []
for label, key, fmt in rows:
    line = [label]
    for kind in kinds:
        value = results[kind][key]
        line.append("-" if value != value else fmt.format(value))
    ours = results["balancerd"][key]
    line.append("-" if best_haproxy[key] != best_haproxy[key] or not best_haproxy[key] else f"{ours / best_haproxy[key]:.2f}x")
    direct = results["direct"][key]
    line.append("-" if direct != direct or not direct else f"{ours / direct:.2f}x")
    table.append(line)
widths = [max(len(str(row[i])) for row in table + [header]) for i in range(len(header))]
print()
print(f"balancerd benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.uname().nodename}, "
      f"{os.cpu_count()} cores; {DURATION}s per run")
print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for row in table:
    print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
print()
print("* balancerd: SIGHUP reload of the running daemon (best of 3); haproxy: `haproxy -c`; nginx: `nginx -t`.")
print(f"The load generators (iperf3, wrk), the backends (nginx, iperf3) and the proxy share the same "
      f"{os.cpu_count()} cores: rates are lower bounds for every proxy alike; CPU per GB and per request are steadier.")
for key, label in [("udp_rate", "UDP exchanges/s"), ("udp_cpu_per_m", "UDP CPU per datagram"), ("udp_mbit", "UDP iperf3 throughput")]:
    theirs = results["nginx"][key]
    if theirs == theirs and theirs:
        print(f"{label}: balancerd / nginx = {results['balancerd'][key] / theirs:.2f}x")
print(f"Connection log on/off (Connection: close, alternating runs): {on[0] / off[0]:.3f} in connections/s, "
      f"{on[1] / off[1]:.3f} in CPU per connection; {log_lines} lines written.")
print("HAProxy: mode tcp, nbthread 2 (and again with option splice-request/splice-response); nginx: stream, 2 workers; balancerd: workers 2.")
for kind in kinds:
    if results[kind].get("close_errors"):
        print(f"{kind}: wrk (Connection: close) reported {results[kind]['close_errors']}")
shutil.rmtree(WORK, ignore_errors=True)
