#!/usr/bin/env python3
"""TLS routing by server name, figures for scripts/bench.sh (also runnable alone):

    python3 scripts/bench_tls.py --balancerd PATH [--seconds S]

Two nginx TLS endpoints (a.bench.test and b.bench.test, each with a self-signed ECDSA
P-256 certificate made here with openssl, one worker each, answering with their own
name), reached directly and through three proxies that read the server name from the
ClientHello and pass the TLS through untouched, all on one listen address:

- HAProxy: mode tcp, nbthread 2, `tcp-request inspect-delay 5s`, accept on
  `req_ssl_hello_type 1`, `use_backend` by `req.ssl_sni`;
- nginx: stream, 2 workers, `ssl_preread on` and a `map $ssl_preread_server_name`;
- balancerd: workers 2, two services sharing the address by `serverNames`, no health checks.

The client (scripts/bench/tlsload.c, built here with cc against libssl) runs 32 threads,
each doing full handshakes (no resumption) with the names in turn, a small GET and the
response to its end. Figures: handshakes per second, and the proxy's CPU seconds per
thousand handshakes (the endpoints' and the client's cryptography share the same cores,
so the CPU figure is the steadier comparison). A response from the wrong endpoint fails
the run.

Everything runs on 127.0.0.1 and stops by itself.
"""
import os
import subprocess
import sys
import time

from bench_common import ROOT, Run, cpu_seconds, free_port, main, tree, wait_port

KINDS = ["direct", "haproxy", "nginx", "balancerd"]
NAMES = ["a.bench.test", "b.bench.test"]
CLIENTS = 32


def endpoint_config(work, name, port):
    # Each endpoint's own temp folders, so that nothing depends on the system's nginx layout.
    temp = "".join(f"  {kind}_temp_path {work}/{name}-{kind};\n" for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
    return f"""worker_processes 1;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}  server {{
    listen 127.0.0.1:{port} ssl;
    server_name {name};
    ssl_certificate {work}/{name}.crt;
    ssl_certificate_key {work}/{name}.key;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / {{ return 200 "{name}\\n"; }}
  }}
}}
"""


def haproxy_config(front, ports):
    routes = "".join(f"  use_backend {n} if {{ req.ssl_sni -i {n} }}\n" for n in NAMES)
    backends = "".join(f"backend {n}\n  server {n} 127.0.0.1:{p}\n" for n, p in zip(NAMES, ports))
    return f"""global
  nbthread 2
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend tls
  bind 127.0.0.1:{front}
  tcp-request inspect-delay 5s
  tcp-request content accept if {{ req_ssl_hello_type 1 }}
{routes}{backends}"""


def nginx_config(work, front, ports):
    names = "".join(f"    {n} {n};\n" for n in NAMES)
    upstreams = "".join(f"  upstream {n} {{ server 127.0.0.1:{p}; }}\n" for n, p in zip(NAMES, ports))
    return f"""load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 10240; }}
stream {{
  map $ssl_preread_server_name $endpoint {{
{names}    default {NAMES[0]};
  }}
{upstreams}  server {{ listen 127.0.0.1:{front}; ssl_preread on; proxy_pass $endpoint; }}
}}
"""


def balancerd_config(front, ports):
    services = "".join(f"  - {{name: {n.split('.')[0]}, listen: 127.0.0.1:{front}, serverNames: [{n}], endpoints: [127.0.0.1:{p}]}}\n"
                       for n, p in zip(NAMES, ports))
    return f"""admin: {{listen: 127.0.0.1:{free_port()}}}
workers: 2
defaults: {{healthCheck: off}}
services:
{services}"""


def run(balancerd, seconds=5, load=(), serve=(), kinds=KINDS):
    """load, serve: command prefixes for the load generator and for the servers (the
    endpoints, the proxy), such as taskset -c 0 and taskset -c 1; kinds: the paths to
    measure, in this order."""
    with Run("balancerd-bench-tls-") as bench:
        work = bench.work
        tool = bench.path("tlsload")
        subprocess.run(["cc", "-O2", "-pthread", "-o", tool, os.path.join(ROOT, "scripts/bench/tlsload.c"), "-lssl", "-lcrypto"],
                       check=True)
        ports = [free_port() for _ in NAMES]
        for name, port in zip(NAMES, ports):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                            "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                            "-keyout", bench.path(name + ".key"), "-out", bench.path(name + ".crt")],
                           check=True, capture_output=True)
            bench.start(list(serve) + ["nginx", "-p", work, "-c", bench.write(name + ".conf", endpoint_config(work, name, port)), "-g", "daemon off;"])
        for port in ports:
            wait_port(port)
        results = {}
        for kind in kinds:
            proxy = None
            front = free_port()
            if kind == "direct":
                targets = [f"{n}:{p}" for n, p in zip(NAMES, ports)]
            else:
                targets = [f"{n}:{front}" for n in NAMES]
            if kind == "haproxy":
                proxy = bench.start(list(serve) + ["haproxy", "-db", "-f", bench.write("haproxy.cfg", haproxy_config(front, ports))])
            elif kind == "nginx":
                proxy = bench.start(list(serve) + ["nginx", "-p", work, "-c", bench.write("nginx.conf", nginx_config(work, front, ports)),
                                     "-g", "daemon off;"])
            elif kind == "balancerd":
                proxy = bench.start(list(serve) + [balancerd, "--config", bench.write("balancerd.yaml", balancerd_config(front, ports)),
                                     "--log-level", "warning"])
            if proxy:
                wait_port(front)
                time.sleep(0.5)
            pids = tree(proxy.pid) if proxy else []
            before = cpu_seconds(pids)
            out = subprocess.run(list(load) + [tool, str(seconds), str(CLIENTS)] + targets, capture_output=True, text=True,
                                 timeout=seconds + 60).stdout.split()
            cpu = cpu_seconds(pids) - before
            handshakes, errors, wrong, elapsed = int(out[1]), int(out[3]), int(out[5]), float(out[7])
            if wrong:
                raise RuntimeError(f"{kind}: {wrong} responses came from the endpoint of the other name")
            results[kind] = {"tls_rate": handshakes / elapsed,
                             "tls_cpu_per_k": cpu / handshakes * 1000 if proxy and handshakes else float("nan")}
            if errors:
                # Told rather than returned: the caller's rows are the two figures above.
                print(f"bench_tls: {kind}: {errors} connections failed", file=sys.stderr)
            if proxy:
                Run.kill(proxy)
        return results


if __name__ == "__main__":
    main(run, KINDS, [(f"TLS handshakes/s by server name ({CLIENTS} clients)", "tls_rate", "{:.0f}", True),
                      ("TLS proxy CPU seconds per 1,000 handshakes", "tls_cpu_per_k", "{:.3f}", False)],
         ["haproxy", "nginx"])
