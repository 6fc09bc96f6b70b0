#!/usr/bin/env python3
"""UDP figures for scripts/bench.sh (also runnable alone):

    python3 scripts/bench_udp.py --balancerd PATH [--seconds S]

For a direct path, nginx's stream module (UDP, 2 workers) and balancerd (workers 2), in
front of the same two UDP echo servers (scripts/bench/udpload.c, built here with cc):

- request/response: 64 clients, each with one 64-byte datagram outstanding, answered by
  an echo server: exchanges per second, and the proxy's CPU per million datagrams relayed
  (each exchange is two);
- throughput: iperf3 -u through the proxy (its TCP control connection through the same
  port), 1,400-byte datagrams, the highest of a ladder of offered rates received with
  under 1% loss (Mbit/s).

Everything runs on 127.0.0.1 and stops by itself.
"""
import json
import os
import subprocess
import time

from bench_common import ROOT, Run, cpu_seconds, free_port, main, tree

KINDS = ["direct", "nginx", "balancerd"]
RATES_MBIT = [100, 250, 500, 1000, 2000, 4000]


def run(balancerd, seconds=5, load=(), serve=(), kinds=KINDS):
    """load, serve: command prefixes for the load generators and for the servers (the echo
    servers, iperf3's server, the proxy), such as taskset -c 0 and taskset -c 1; kinds: the
    paths to measure, in this order."""
    with Run("balancerd-bench-udp-") as bench:
        work = bench.work

        def start(command):
            return bench.start(list(serve) + command)

        tool = os.path.join(work, "udpload")
        subprocess.run(["cc", "-O2", "-o", tool, os.path.join(ROOT, "scripts/bench/udpload.c")], check=True)
        echoes = [free_port(), free_port()]
        for port in echoes:
            start([tool, "echo", str(port)])
        iperf_port = free_port()
        start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(iperf_port)])
        time.sleep(0.5)
        results = {}
        for kind in kinds:
            front, iperf_front, proxy = echoes[0], iperf_port, None
            if kind == "nginx":
                front, iperf_front = free_port(), free_port()
                conf = os.path.join(work, "nginx.conf")
                with open(conf, "w") as f:
                    f.write(f"""load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 10240; }}
stream {{
  upstream echo {{ server 127.0.0.1:{echoes[0]}; server 127.0.0.1:{echoes[1]}; }}
  server {{ listen 127.0.0.1:{front} udp reuseport; proxy_pass echo; proxy_timeout 10s; }}
  server {{ listen 127.0.0.1:{iperf_front} udp reuseport; proxy_pass 127.0.0.1:{iperf_port}; proxy_timeout 10s; }}
  server {{ listen 127.0.0.1:{iperf_front}; proxy_pass 127.0.0.1:{iperf_port}; }}
}}
""")
                proxy = start(["nginx", "-p", work, "-c", conf, "-g", "daemon off;"])
            elif kind == "balancerd":
                front, iperf_front = free_port(), free_port()
                conf = os.path.join(work, "balancerd.yaml")
                with open(conf, "w") as f:
                    f.write(f"""admin: {{listen: 127.0.0.1:{free_port()}}}
workers: 2
defaults: {{healthCheck: off}}
services:
  - {{name: echo, listen: 127.0.0.1:{front}, protocol: udp, sessionTimeout: 10s, endpoints: [127.0.0.1:{echoes[0]}, 127.0.0.1:{echoes[1]}]}}
  - {{name: iperf-data, listen: 127.0.0.1:{iperf_front}, protocol: udp, sessionTimeout: 10s, endpoints: [127.0.0.1:{iperf_port}]}}
  - {{name: iperf-control, listen: 127.0.0.1:{iperf_front}, endpoints: [127.0.0.1:{iperf_port}]}}
""")
                proxy = start([balancerd, "--config", conf, "--log-level", "warning"])
            time.sleep(1)
            pids = tree(proxy.pid) if proxy else []
            before = cpu_seconds(pids)
            out = subprocess.run(list(load) + [tool, "load", str(front), "64", str(seconds), "64"], capture_output=True, text=True,
                                 timeout=seconds + 30).stdout.split()
            cpu = cpu_seconds(pids) - before
            exchanges = int(out[1])
            elapsed = float(out[5])
            figures = {"udp_rate": exchanges / elapsed, "udp_lost": int(out[3]),
                       "udp_cpu_per_m": cpu / (2 * exchanges) * 1e6 if proxy and exchanges else float("nan")}
            best = 0.0
            for rate in RATES_MBIT:
                run = subprocess.run(list(load) + ["iperf3", "-c", "127.0.0.1", "-p", str(iperf_front), "-u", "-b", f"{rate}M", "-l", "1400",
                                      "-t", "2", "-J"], capture_output=True, text=True, timeout=40)
                try:
                    summary = json.loads(run.stdout)["end"]["sum"]
                except (ValueError, KeyError):
                    break
                if summary.get("lost_percent", 100) >= 1:
                    break
                best = summary["bits_per_second"] / 1e6
            figures["udp_mbit"] = best
            results[kind] = figures
            if proxy:
                Run.kill(proxy)
        return results


if __name__ == "__main__":
    main(run, KINDS, [("UDP 64-byte exchanges/s (64 clients)", "udp_rate", "{:.0f}", True),
                      ("UDP proxy CPU seconds per million datagrams", "udp_cpu_per_m", "{:.2f}", False),
                      ("UDP iperf3 -u, 1,400 B, < 1% loss (Mbit/s)", "udp_mbit", "{:.0f}", True)],
         ["nginx"])
