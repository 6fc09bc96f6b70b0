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
  exchanges per second, CPU per million datagrams, iperf3 -u throughput under 1% loss;
- system calls (HAProxy and balancerd, one thread each): strace -f -c on the proxy while ab
  makes 3,000 HTTP/1.0 exchanges each on its own connection, and 3,000 on kept-alive
  connections: calls per connection, per kept-alive request, and epoll_ctl per connection
  (counts that the noise of a shared machine does not move);
- TLS (when scripts/bench_tls.py is there): handshakes/s through SNI routing and CPU per
  1,000 handshakes, against the better of HAProxy and nginx.

Options: --runs N (each figure the median of N runs, the proxies in turn within each run
and each run starting with the next proxy; default 3, 1 with --quick), --pin (load
generators on CPU 0, proxies and backends on CPU 1, with taskset), --only SECTIONS (a comma
list of tcp, log, syscalls, reload, etcd, udp, tls), --verbose (the top system calls).
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SECTIONS = ["syscalls", "tcp", "log", "reload", "etcd", "udp", "tls"]  # in the order they run
parser = argparse.ArgumentParser()
parser.add_argument("--balancerd", required=True)
parser.add_argument("--quick", action="store_true", help="short runs, fewer idle connections, one run unless --runs")
parser.add_argument("--runs", type=int, help="each figure is the median of this many runs (default 3, 1 with --quick)")
parser.add_argument("--pin", action="store_true", help="load generators on CPU 0, proxies and backends on CPU 1")
parser.add_argument("--only", default=",".join(SECTIONS), help="comma list of sections: " + ",".join(SECTIONS))
parser.add_argument("--verbose", action="store_true", help="also print the most frequent system calls of each proxy")
args = parser.parse_args()
ONLY = [name.strip() for name in args.only.split(",") if name.strip()]
unknown = [name for name in ONLY if name not in SECTIONS]
if unknown or not ONLY:
    parser.error(f"--only takes a comma list of {','.join(SECTIONS)} (not {','.join(unknown) or 'nothing'})")
RUNS = args.runs if args.runs is not None else (1 if args.quick else 3)
if RUNS < 1:
    parser.error("--runs takes a count of 1 or more")
if args.pin and len(os.sched_getaffinity(0) & {0, 1}) < 2:
    parser.error("--pin needs CPUs 0 and 1")
# With --pin, commands that make load run under LOAD and those that serve it (the proxy, the
# backends) under SERVE; this process drives load too (idle connections, etcd probes), so it
# keeps to CPU 0 as well, and so does whatever it starts without a prefix.
LOAD = ["taskset", "-c", "0"] if args.pin else []
SERVE = ["taskset", "-c", "1"] if args.pin else []
if args.pin:
    os.sched_setaffinity(0, {0})

DURATION = 3 if args.quick else 8
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
# Each idle connection costs the proxy two descriptors; stay under the hard limit with
# room for what HAProxy reserves beyond 2 x maxconn (and its pipes, capped by maxpipes).
IDLE = min(2000 if args.quick else 10000, (hard - 2000) // 2)
# The system-call rows: this many HTTP exchanges (ab, 10 at a time) of each kind.
EXCHANGES = 3000
WORK = tempfile.mkdtemp(prefix="balancerd-bench-")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAN = float("nan")
processes = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name, command):
    """Starts a server (with --pin, on CPU 1)."""
    log = open(os.path.join(WORK, name + ".log"), "w")
    process = subprocess.Popen(SERVE + command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    processes.append(process)
    return process


def stop(process, timeout=10):
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except ProcessLookupError:
            process.wait()
        except Exception:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def median(values):
    """The median of the values that are numbers (NaN when none is)."""
    values = [v for v in values if v == v]
    return statistics.median(values) if values else NAN


def medians(samples):
    """[{key: value}, ...] from N runs -> {key: median}."""
    keys = {key for sample in samples for key in sample}
    return {key: median([sample.get(key, NAN) for sample in samples]) for key in keys}


def rotated(items, run):
    """The order of the proxies in run number `run`: each run starts with the next one, so
    that drift over a run does not always fall on the same proxy."""
    shift = run % len(items)
    return items[shift:] + items[:shift]


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

# Each proxy's run gets backends of its own, on new ports: the TIME_WAIT connections that a
# run's hundreds of thousands of closed connections leave to the old ports (on loopback the
# server's side holds the same four-tuple as the client's) then cannot stall a later run's
# connects to the backends.
http_ports, iperf_port, backends = [], None, []


def start_backends():
    global http_ports, iperf_port, backends
    http_ports, iperf_port = [free_port(), free_port()], free_port()
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
    backends = [start("backends", ["nginx", "-p", WORK, "-c", backend_conf, "-g", "daemon off;"]),
                start("iperf3", ["iperf3", "-s", "-p", str(iperf_port)])]
    for port in http_ports + [iperf_port]:
        wait_port(port)


def finish(process):
    """Stops a proxy started by launch() (None for direct) and its backends."""
    for each in ([process] if process else []) + backends:
        stop(each)

# ---------------------------------------------------------------- proxies


def haproxy_config(http_front, iperf_front, splice, threads=2):
    options = "  option splice-request\n  option splice-response\n" if splice else ""
    return f"""global
  nbthread {threads}
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


def balancerd_config(http_front, iperf_front, admin, access_log=None, workers=2, checks=True):
    log = f"accessLog: {{path: {access_log}, format: json}}\n" if access_log else ""
    defaults = "" if checks else "defaults: {healthCheck: off}\n"
    return f"""admin:
  listen: 127.0.0.1:{admin}
log:
  level: warning
{log}workers: {workers}
limits:
  maxConnections: {IDLE + 1000}
{defaults}services:
  - name: http
    listen: 127.0.0.1:{http_front}
    endpoints: [127.0.0.1:{http_ports[0]}, 127.0.0.1:{http_ports[1]}]
  - name: iperf
    listen: 127.0.0.1:{iperf_front}
    endpoints: [127.0.0.1:{iperf_port}]
"""


def launch(kind, single=False):
    """Starts backends and a proxy in front of them; returns (http port, iperf port, process
    or None, config path); finish(process) stops them.
    single: one thread (HAProxy nbthread 1, balancerd workers 1, no health checks), for
    counting system calls."""
    start_backends()
    if kind == "direct":
        return http_ports[0], iperf_port, None, None
    http_front, iperf_front = free_port(), free_port()
    name = kind + ("-single" if single else "")
    if kind.startswith("haproxy"):
        path = os.path.join(WORK, name + ".cfg")
        with open(path, "w") as f:
            f.write(haproxy_config(http_front, iperf_front, kind.endswith("splice"), 1 if single else 2))
        process = start(name, ["haproxy", "-db", "-f", path])
    elif kind == "nginx":
        path = os.path.join(WORK, "stream.conf")
        with open(path, "w") as f:
            f.write(nginx_config(http_front, iperf_front))
        process = start(name, ["nginx", "-p", WORK, "-c", path, "-g", "daemon off;"])
    else:
        path = os.path.join(WORK, name + ".yaml")
        access_log = ACCESS_LOG if kind == "balancerd+log" else None
        with open(path, "w") as f:
            f.write(balancerd_config(http_front, iperf_front, free_port(), access_log,
                                     workers=1 if single else 2, checks=not single))
        process = start(name, [args.balancerd, "--config", path])
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
    # ("the server is busy"), and a test can end with nothing received: try again a few
    # times.
    for attempt in range(4):
        out = subprocess.run(LOAD + ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(DURATION), "-P", str(streams), "-J"],
                             capture_output=True, text=True, timeout=DURATION + 30)
        data = json.loads(out.stdout)
        received = data.get("end", {}).get("sum_received", {})
        if received.get("bytes"):
            return received["bits_per_second"] / 1e9, received["bytes"]
        print(f"iperf3: {data.get('error', 'nothing received')}; trying again", file=sys.stderr, flush=True)
        time.sleep(1 + attempt)
    raise RuntimeError("iperf3 gave no result")


def wrk(port, close):
    command = LOAD + ["wrk", "-t2", "-c64", f"-d{DURATION}s", "--latency"]
    if close:
        command += ["-H", "Connection: close"]
    out = subprocess.run(command + [f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=DURATION + 30).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    if not total:
        raise RuntimeError(f"wrk completed no request ({errors.group(1) if errors else 'no error counted'})")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def millis(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return NAN
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


def ab(port, keepalive, requests):
    """`requests` HTTP/1.0 exchanges, 10 at a time, with ab; without keepalive each is a
    connection of its own. Returns (requests answered, connections opened)."""
    command = LOAD + ["ab", "-q", "-n", str(requests), "-c", "10", "-s", "10"] + (["-k"] if keepalive else [])
    done = subprocess.run(command + [f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=60)
    out = done.stdout
    complete = re.search(r"Complete requests:\s+(\d+)", out)
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    if not complete:
        last = (done.stderr.strip() or out.strip()).splitlines()[-1:]
        raise RuntimeError(f"ab gave no result ({last[0] if last else 'no output'})")
    complete = int(complete.group(1))
    if failed and int(failed.group(1)):
        print(f"ab: {failed.group(1)} of {complete} requests failed", file=sys.stderr, flush=True)
    kept = re.search(r"Keep-Alive requests:\s+(\d+)", out)
    kept = int(kept.group(1)) if kept else 0
    # A kept-alive connection serves requests until ab stops: 10 of them, plus one more for
    # each answer that closed its connection.
    connections = complete if not keepalive else 10 + (complete - kept)
    return complete, connections


def strace_counts(pid, body, limit=90):
    """Runs body() with strace -f -c attached to every thread of pid; returns (body's result,
    {system call: calls}). Bounded: strace detaches once body returns, or by itself after
    `limit` seconds (then this fails rather than count part of the load), and is killed if
    it has not ended 10 s after either."""
    out = os.path.join(WORK, f"strace-{pid}-{time.monotonic_ns()}.txt")
    with open(out + ".log", "w") as log:
        tracer = subprocess.Popen(["timeout", "-s", "INT", "-k", "10", str(limit), "strace", "-f", "-c", "-o", out, "-p", str(pid)],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    processes.append(tracer)
    try:
        # Attached once every thread of pid has a tracer.
        deadline = time.time() + 10
        while True:
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
                traced = all(open(f"/proc/{pid}/task/{t}/status").read().split("TracerPid:")[1].split()[0] != "0" for t in tasks)
            except (OSError, IndexError):
                traced = False
            if traced:
                break
            if time.time() > deadline or tracer.poll() is not None:
                raise RuntimeError(f"strace did not attach to {pid}: {open(out + '.log').read()[-300:]}")
            time.sleep(0.05)
        result = body()
        if tracer.poll() is not None:
            raise RuntimeError(f"strace ended before the load did ({limit} s): its counts would be part of the run")
    finally:
        if tracer.poll() is None:
            tracer.send_signal(signal.SIGINT)  # timeout passes it on: strace detaches and writes its summary
        try:
            tracer.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(tracer.pid, signal.SIGKILL)
            tracer.wait()
    calls = {}
    with open(out) as f:
        for line in f:
            # "% time  seconds  usecs/call  calls  [errors]  syscall", one line a call
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                try:
                    calls[fields[-1]] = int(fields[3])
                except ValueError:
                    pass
    return result, calls


def syscall_run(kind):
    """System calls of one single-threaded proxy: per connection (Connection: close) and
    per kept-alive request, EXCHANGES of each."""
    http_front, _, process, _ = launch(kind, single=True)
    try:
        ab(http_front, False, 200)  # warm up: first connections grow tables and pools
        ab(http_front, True, 200)
        (_, connections), close = strace_counts(process.pid, lambda: ab(http_front, False, EXCHANGES))
        (requests, _), keep = strace_counts(process.pid, lambda: ab(http_front, True, EXCHANGES))
    finally:
        finish(process)
    figures = {"sys_per_conn": sum(close.values()) / connections, "sys_per_req": sum(keep.values()) / requests,
               "epoll_ctl_per_conn": close.get("epoll_ctl", 0) / connections}
    figures.update({"close:" + name: n / connections for name, n in close.items()})
    figures.update({"keep:" + name: n / requests for name, n in keep.items()})
    return figures


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
    subprocess.run(SERVE + command, capture_output=True, timeout=120)
    return (time.monotonic() - start_time) * 1000


def section(name):
    return name in ONLY


def note(text):
    print(f"-- {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- run

kinds = ["direct", "haproxy", "haproxy+splice", "nginx", "balancerd"]
ACCESS_LOG = os.path.join(WORK, "access.log")
results = {kind: {} for kind in kinds}
notes = []
sys.path.insert(0, os.path.join(ROOT, "scripts"))


def put(kind, figures):
    results[kind].update(figures)


def attempt(label, body):
    """body(), or None when it fails (a load generator with no result, say): that run is
    left out of the medians, with a note under the table, and the benchmark goes on."""
    try:
        return body()
    except Exception as error:
        text = f"{label}: run left out ({type(error).__name__}: {error})"
        print(text, file=sys.stderr, flush=True)
        notes.append(text)
        return None


def tcp_run(kind):
    http_front, iperf_front, process, _ = launch(kind)
    pid = process.pid if process else None
    r = {}
    try:
        (r["gbps1"], bytes1), cpu1 = measure_cpu(pid, lambda: iperf(iperf_front, 1))
        (r["gbps4"], _), _ = measure_cpu(pid, lambda: iperf(iperf_front, 4))
        r["cpu_per_gb"] = cpu1 / (bytes1 / 1e9) if pid else NAN
        close, cpu_close = measure_cpu(pid, lambda: wrk(http_front, True))
        r["conn_rate"] = close["rate"]
        r["cpu_us_per_conn"] = cpu_close / close["total"] * 1e6 if pid else NAN
        keep, cpu_keep = measure_cpu(pid, lambda: wrk(http_front, False))
        r["ka_rate"], r["p50"], r["p99"] = keep["rate"], keep["p50"], keep["p99"]
        r["cpu_us_per_req"] = cpu_keep / keep["total"] * 1e6 if pid else NAN
        r["idle_bytes"] = idle_memory(http_front, pid) if pid else NAN
    finally:
        finish(process)
    return r, close["errors"]


def log_run(kind):
    http_front, _, process, _ = launch(kind)
    try:
        close, cpu_close = measure_cpu(process.pid, lambda: wrk(http_front, True))
    finally:
        finish(process)
    return {"rate": close["rate"], "cpu": cpu_close / close["total"] * 1e6}


close_errors = {kind: [] for kind in kinds}
log_summary = None
try:
    # The system calls first: counts, which want nothing left over from the other sections.
    if section("syscalls"):
        samples = {"haproxy": [], "balancerd": []}
        for run in range(RUNS):
            for kind in rotated(list(samples), run):
                note(f"system calls, run {run + 1} of {RUNS}: {kind} (one thread, under strace)")
                measured = attempt(f"system calls, run {run + 1}, {kind}", lambda: syscall_run(kind))
                if measured:
                    samples[kind].append(measured)
        for kind in samples:
            put(kind, medians(samples[kind]))
    if section("tcp"):
        samples = {kind: [] for kind in kinds}
        for run in range(RUNS):
            for kind in rotated(kinds, run):
                note(f"tcp, run {run + 1} of {RUNS}: {kind}")
                measured = attempt(f"tcp, run {run + 1}, {kind}", lambda: tcp_run(kind))
                if measured:
                    samples[kind].append(measured[0])
                    if measured[1]:
                        close_errors[kind].append(measured[1])
        for kind in kinds:
            put(kind, medians(samples[kind]))
    if section("log"):
        # The connection log's cost: Connection: close with it off and on (json to a file),
        # in alternating runs (this shared machine drifts).
        log_runs = {"balancerd": [], "balancerd+log": []}
        for run in range(max(RUNS, 2)):
            for kind in rotated(list(log_runs), run):
                note(f"connection log, run {run + 1}: {kind}")
                measured = attempt(f"connection log, run {run + 1}, {kind}", lambda: log_run(kind))
                if measured:
                    log_runs[kind].append(measured)
        off, on = medians(log_runs["balancerd"]), medians(log_runs["balancerd+log"])
        log_lines = sum(1 for _ in open(ACCESS_LOG)) if os.path.exists(ACCESS_LOG) else 0
        put("balancerd", {"conn_rate_log_off": off.get("rate", NAN), "conn_rate_log_on": on.get("rate", NAN),
                          "cpu_us_per_conn_log_on": on.get("cpu", NAN)})
        if off and on:
            log_summary = (off, on, log_lines, len(log_runs["balancerd"]))
    if section("reload"):
        # Large configurations: balancerd's SIGHUP reload, the peers' config checks.
        note("1,000 services")
        paths = big_configs()
        log_path = os.path.join(WORK, "big-balancerd.log")
        with open(log_path, "w") as log:
            daemon = subprocess.Popen(SERVE + [args.balancerd, "--config", paths["big.yaml"], "--log-level", "notice"],
                                      stderr=log, start_new_session=True)
        processes.append(daemon)
        deadline = time.time() + 30
        while "started:" not in open(log_path).read() and time.time() < deadline:
            time.sleep(0.1)
        took = {"haproxy": [], "nginx": [], "balancerd": []}
        for _ in range(max(RUNS, 3)):
            took["haproxy"].append(timed(["haproxy", "-c", "-f", paths["big.cfg"]]))
            took["nginx"].append(timed(["nginx", "-t", "-p", WORK, "-c", paths["big-nginx.conf"]]))
            count = open(log_path).read().count("complete:")
            daemon.send_signal(signal.SIGHUP)
            deadline = time.time() + 60
            while open(log_path).read().count("complete:") == count and time.time() < deadline:
                time.sleep(0.05)
            took["balancerd"].append(int(re.findall(r"took (\d+) ms", open(log_path).read())[-1]))
        stop(daemon)
        for kind, values in took.items():
            put(kind, {"big_ms": median(values)})
    if section("etcd"):
        # Discovery from etcd: balancerd alone (the peers have no etcd provider to compare).
        import bench_etcd
        samples = []
        for run in range(RUNS):
            note(f"etcd discovery, run {run + 1} of {RUNS}")
            measured = attempt(f"etcd, run {run + 1}", lambda: bench_etcd.run(args.balancerd, serve=SERVE))
            if measured:
                samples.append(measured)
        put("balancerd", medians(samples))
    if section("udp"):
        # UDP: direct, nginx and balancerd (HAProxy has no UDP proxy); each run goes
        # through the three in turn, starting with the next one.
        import bench_udp
        samples = {}
        for run in range(RUNS):
            note(f"udp, run {run + 1} of {RUNS}")
            measured = attempt(f"udp, run {run + 1}", lambda: bench_udp.run(args.balancerd, DURATION, load=LOAD, serve=SERVE,
                                                                             kinds=rotated(bench_udp.KINDS, run)))
            for kind, figures in (measured or {}).items():
                samples.setdefault(kind, []).append(figures)
        for kind, values in samples.items():
            put(kind, medians(values))
    if section("tls"):
        if not os.path.exists(os.path.join(ROOT, "scripts", "bench_tls.py")):
            notes.append("TLS rows left out: scripts/bench_tls.py is not in this checkout.")
        else:
            import bench_tls
            samples = {}
            for run in range(RUNS):
                note(f"tls, run {run + 1} of {RUNS}")
                measured = attempt(f"tls, run {run + 1}", lambda: bench_tls.run(args.balancerd, seconds=min(DURATION, 5), load=LOAD, serve=SERVE))
                for kind, figures in (measured or {}).items():
                    samples.setdefault(kind, []).append(figures)
            for kind, values in samples.items():
                if kind in results:
                    put(kind, medians(values))
finally:
    for process in processes:
        stop(process)

# ---------------------------------------------------------------- table

HAPROXY = ["haproxy", "haproxy+splice"]
# label, key, format, section, which of higher or lower is better, peers to compare with
rows = [
    ("throughput, 1 stream (Gbit/s)", "gbps1", "{:.2f}", "tcp", max, HAPROXY),
    ("throughput, 4 streams (Gbit/s)", "gbps4", "{:.2f}", "tcp", max, HAPROXY),
    ("new connections/s (Connection: close)", "conn_rate", "{:.0f}", "tcp", max, HAPROXY),
    ("keep-alive requests/s", "ka_rate", "{:.0f}", "tcp", max, HAPROXY),
    ("keep-alive p50 latency (ms)", "p50", "{:.3f}", "tcp", min, HAPROXY),
    ("keep-alive p99 latency (ms)", "p99", "{:.3f}", "tcp", min, HAPROXY),
    (f"RSS per idle connection (bytes, {IDLE} open)", "idle_bytes", "{:.0f}", "tcp", min, HAPROXY),
    ("proxy CPU seconds per GB (1 stream)", "cpu_per_gb", "{:.3f}", "tcp", min, HAPROXY),
    ("proxy CPU µs per new connection", "cpu_us_per_conn", "{:.1f}", "tcp", min, HAPROXY),
    ("proxy CPU µs per keep-alive request", "cpu_us_per_req", "{:.1f}", "tcp", min, HAPROXY),
    ("new connections/s, connection log off", "conn_rate_log_off", "{:.0f}", "log", max, []),
    ("new connections/s, connection log on, json file", "conn_rate_log_on", "{:.0f}", "log", max, []),
    ("proxy CPU µs per new connection, connection log on", "cpu_us_per_conn_log_on", "{:.1f}", "log", min, []),
    ("syscalls per proxied connection (1 thread)†", "sys_per_conn", "{:.1f}", "syscalls", min, ["haproxy"]),
    ("syscalls per kept-alive request (1 thread)†", "sys_per_req", "{:.2f}", "syscalls", min, ["haproxy"]),
    ("epoll_ctl per proxied connection (1 thread)†", "epoll_ctl_per_conn", "{:.2f}", "syscalls", min, ["haproxy"]),
    ("1,000 services x 10 endpoints (ms)*", "big_ms", "{:.0f}", "reload", min, ["haproxy"]),
    ("etcd put to first connection, median of 20 (ms)", "put_median_ms", "{:.1f}", "etcd", min, []),
    ("etcd put to first connection, max of 20 (ms)", "put_max_ms", "{:.1f}", "etcd", min, []),
    ("CPU per etcd key change, 1,000 services (ms)", "cpu_ms_per_change", "{:.2f}", "etcd", min, []),
    ("UDP 64-byte exchanges/s (64 clients)", "udp_rate", "{:.0f}", "udp", max, ["nginx"]),
    ("UDP proxy CPU s per million datagrams", "udp_cpu_per_m", "{:.2f}", "udp", min, ["nginx"]),
    ("UDP iperf3 -u, 1,400 B, < 1% loss (Mbit/s)", "udp_mbit", "{:.0f}", "udp", max, ["nginx"]),
    ("TLS handshakes/s via SNI routing", "tls_rate", "{:.0f}", "tls", max, ["haproxy", "nginx"]),
    ("CPU s per 1,000 TLS handshakes", "tls_cpu_per_k", "{:.3f}", "tls", min, ["haproxy", "nginx"]),
]


def value(kind, key):
    return results[kind].get(key, NAN)


def versus(key, better, peers):
    """balancerd over the better of the peers, naming the peer unless it is HAProxy's pair."""
    candidates = [(value(peer, key), peer) for peer in peers if value(peer, key) == value(peer, key) and value(peer, key)]
    ours = value("balancerd", key)
    if not candidates or ours != ours:
        return "-"
    theirs, peer = better(candidates)
    return f"{ours / theirs:.2f}x" + ("" if peers == HAPROXY or peers == ["haproxy"] else f" {peer}")


header = ["figure"] + kinds + ["vs best peer", "vs direct"]
table = []
for label, key, fmt, part, better, peers in rows:
    if not section(part) or not any(value(kind, key) == value(kind, key) for kind in kinds):
        continue  # a section not run, or one that measured nothing here
    line = [label] + ["-" if value(kind, key) != value(kind, key) else fmt.format(value(kind, key)) for kind in kinds]
    line.append(versus(key, better, peers))
    ours, direct = value("balancerd", key), value("direct", key)
    line.append("-" if direct != direct or not direct or ours != ours else f"{ours / direct:.2f}x")
    table.append(line)
widths = [max(len(str(row[i])) for row in table + [header]) for i in range(len(header))]
print()
print(f"balancerd benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.uname().nodename}, "
      f"{os.cpu_count()} cores; {DURATION}s per measurement; each figure the median of {RUNS} run{'s' if RUNS > 1 else ''}; "
      f"{'pinned' if args.pin else 'not pinned'}; sections: {','.join(s for s in SECTIONS if s in ONLY)}")
print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for row in table:
    print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
print()
print("vs best peer: balancerd over the better of haproxy and haproxy+splice, or over the peer the cell names.")
if section("reload"):
    print("* balancerd: SIGHUP reload of the running daemon; haproxy: `haproxy -c`; nginx: `nginx -t` (median of "
          f"{max(RUNS, 3)}).")
if section("syscalls"):
    print(f"† strace -f -c on the proxy (HAProxy nbthread 1, balancerd workers 1 without health checks) while ab makes "
          f"{EXCHANGES:,} HTTP/1.0 exchanges 10 at a time, each on its own connection, then {EXCHANGES:,} on kept-alive "
          "connections; the calls over the connections, or over the requests.")
timing = any(section(name) for name in SECTIONS if name != "syscalls")
if args.pin:
    print("Pinned: the load generators (iperf3 and ab clients, wrk, udpload, this script) on CPU 0, the proxy and the "
          "backends on CPU 1 (a proxy's 2 threads or workers share it).")
elif timing:
    print(f"The load generators (iperf3, wrk, ab), the backends (nginx, iperf3) and the proxy share the same "
          f"{os.cpu_count()} cores: rates are lower bounds for every proxy alike; CPU per GB and per request are steadier.")
if log_summary:
    off, on, log_lines, count = log_summary
    print(f"Connection log on/off (Connection: close, {count} alternating runs, medians): {on['rate'] / off['rate']:.3f} in "
          f"connections/s, {on['cpu'] / off['cpu']:.3f} in CPU per connection; {log_lines} lines written.")
if section("tcp"):
    print("HAProxy: mode tcp, nbthread 2 (and again with option splice-request/splice-response); nginx: stream, 2 workers; balancerd: workers 2.")
for kind in kinds:
    if close_errors[kind]:
        print(f"{kind}: wrk (Connection: close) reported {'; '.join(close_errors[kind])}")
for text in notes:
    print(text)
if args.verbose and section("syscalls"):
    for kind in ["haproxy", "balancerd"]:
        for prefix, unit in [("close:", "per connection"), ("keep:", "per kept-alive request")]:
            calls = sorted(((v, k[len(prefix):]) for k, v in results[kind].items() if k.startswith(prefix)), reverse=True)
            print(f"{kind}, top system calls {unit}: " + ", ".join(f"{name} {n:.2f}" for n, name in calls[:12] if n >= 0.005))
shutil.rmtree(WORK, ignore_errors=True)
