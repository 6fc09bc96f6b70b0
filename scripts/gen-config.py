#!/usr/bin/env python3
"""Writes a large balancerd configuration, for reload timing and benchmarks.

    scripts/gen-config.py [--services N] [--endpoints M] [--listen-base PORT]
                          [--endpoint-base PORT] [--shift K] [--admin PORT]
                          [--balance POLICY] > big.yaml

Service i listens on 127.0.0.1:(listen-base + i) and has M endpoints on 127.0.0.1,
ports endpoint-base + (i*M + j + shift) % 10000 (both ranges below the
kernel's ephemeral ports). Two files that differ only in --shift
model a fleet whose pods moved: every service keeps its port, some endpoints change.
"""
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--services", type=int, default=1000)
parser.add_argument("--endpoints", type=int, default=10)
parser.add_argument("--listen-base", type=int, default=11000)
parser.add_argument("--endpoint-base", type=int, default=20000)
parser.add_argument("--shift", type=int, default=0)
parser.add_argument("--admin", type=int, default=9901)
parser.add_argument("--balance", default="round-robin", help="every service's balance policy")
args = parser.parse_args()

lines = [
    "admin:",
    f"  listen: 127.0.0.1:{args.admin}",
    "defaults:",
    "  connectTimeout: 1s",
    "  healthCheck:",
    "    interval: 2s",
    "    timeout: 1s",
    f"  balance: {args.balance}",
    "services:",
]
for i in range(args.services):
    lines.append(f"  - name: svc-{i:04d}")
    lines.append(f"    listen: 127.0.0.1:{args.listen_base + i}")
    lines.append("    endpoints:")
    for j in range(args.endpoints):
        port = args.endpoint_base + (i * args.endpoints + j + args.shift) % 10000
        lines.append(f"      - 127.0.0.1:{port}")
print("\n".join(lines))
