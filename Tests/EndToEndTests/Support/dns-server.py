#!/usr/bin/env python3
"""A small scriptable authoritative DNS server for balancerd's end-to-end tests.

    dns-server.py --port P --zone ZONEFILE [--log LOGFILE]

Serves UDP and TCP on 127.0.0.1:P, prints "ready" once both sockets are bound, and runs
until killed. The zone is JSON (see DNSServerProcess.swift) and is re-read whenever the
file changes, checked on every query, so a test can rename a new zone over it and the very
next query sees it. With --log, each query appends "PROTO NAME TYPE" to LOGFILE.
"""
import argparse
import json
import os
import random
import socket
import struct
import sys
import threading

from dnslib import AAAA, QTYPE, RCODE, RR, SRV, A, DNSLabel, DNSRecord, EDNS0

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--zone", required=True)
parser.add_argument("--log")
args = parser.parse_args()


def key(name):
    """Names match case-insensitively, with or without the trailing dot."""
    return str(name).rstrip(".").lower()


class Zone:
    """The zone file's content, reloaded when its inode, mtime or size changes (a rename
    over the file always gives a new inode, so even a same-size rewrite within one mtime
    tick is seen)."""

    def __init__(self, path):
        self.path = path
        self.signature = None
        self.data = {"ttl": 1, "records": {}, "behaviour": {}, "all": None}
        self.lock = threading.Lock()

    def current(self):
        with self.lock:
            try:
                st = os.stat(self.path)
                if (st.st_ino, st.st_mtime_ns, st.st_size) != self.signature:
                    with open(self.path, "rb") as f:
                        st = os.fstat(f.fileno())
                        raw = json.loads(f.read())
                    self.signature = (st.st_ino, st.st_mtime_ns, st.st_size)
                    self.data = {
                        "ttl": int(raw.get("ttl", 1)),
                        "records": {key(n): r for n, r in (raw.get("records") or {}).items()},
                        "behaviour": {key(n): b for n, b in (raw.get("behaviour") or {}).items()},
                        "all": raw.get("all"),
                    }
            except Exception as error:  # a bad or missing file: keep serving the last good zone
                print(f"dns-server: zone {self.path}: {error}", file=sys.stderr, flush=True)
            return self.data


zone = Zone(args.zone)
log_lock = threading.Lock()
log_file = open(args.log, "a", buffering=1) if args.log else None


def log(proto, request):
    if log_file:
        q = request.q
        with log_lock:
            log_file.write(f"{proto} {key(q.qname)} {QTYPE.get(q.qtype)}\n")
            log_file.flush()


def answer(data, proto):
    """The reply bytes for one query packet, or None to send nothing."""
    try:
        request = DNSRecord.parse(data)
    except Exception:
        return None  # not DNS at all: a real server would drop it too
    if request.header.qr or len(request.questions) != 1:
        return None
    log(proto, request)
    z = zone.current()
    q = request.q
    name = key(q.qname)
    behaviour = z["all"] or z["behaviour"].get(name)

    if behaviour == "drop":
        return None
    if behaviour == "malformed":
        # The query's id, so the resolver matches it to its query, then junk that is too
        # short to be a DNS header.
        return data[:2] + bytes(random.randrange(256) for _ in range(5))

    reply = request.reply(ra=0, aa=1)
    reply.header.ad = 0  # copied from the query's flags by dnslib; an authority sets no AD
    opt = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
    if opt is not None:
        reply.add_ar(EDNS0(udp_len=4096))

    if behaviour in ("servfail", "refused", "nxdomain"):
        reply.header.rcode = {"servfail": RCODE.SERVFAIL, "refused": RCODE.REFUSED,
                              "nxdomain": RCODE.NXDOMAIN}[behaviour]
        return reply.pack()
    if behaviour == "truncate" and proto == "udp":
        reply.header.tc = 1
        return reply.pack()

    records = z["records"].get(name)
    if records is None:
        reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()
    ttl = z["ttl"]
    qtype = QTYPE.get(q.qtype)
    # No additional records for SRV: the targets are resolved by their own A/AAAA queries.
    for value in records.get(qtype) or []:
        if qtype == "A":
            rdata = A(value)
        elif qtype == "AAAA":
            rdata = AAAA(value)
        elif qtype == "SRV":
            rdata = SRV(priority=value["priority"], weight=value["weight"],
                        port=value["port"], target=DNSLabel(value["target"]))
        else:
            break
        reply.add_answer(RR(q.qname, q.qtype, rdata=rdata, ttl=ttl))
    packed = reply.pack()

    if proto == "udp":
        # dnslib never truncates by itself. As a real server does, answer a too-large UDP
        # reply with TC and no answers, so the resolver retries over TCP.
        limit = max(512, opt.rclass) if opt is not None else 512
        if len(packed) > limit:
            reply.rr = []
            reply.header.tc = 1
            packed = reply.pack()
    return packed


def serve_udp(sock):
    while True:
        try:
            data, peer = sock.recvfrom(65535)
            out = answer(data, "udp")
            if out is not None:
                sock.sendto(out, peer)
        except Exception as error:  # one bad packet must never stop the server
            print(f"dns-server: udp: {error!r}", file=sys.stderr, flush=True)


def recv_exactly(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve_tcp_connection(conn):
    # Several queries may come on one connection, each with a 2-byte length before it.
    conn.settimeout(30)  # so an idle or stuck client does not hold a thread forever
    try:
        with conn:
            while True:
                header = recv_exactly(conn, 2)
                if header is None:
                    return
                data = recv_exactly(conn, struct.unpack("!H", header)[0])
                if data is None:
                    return
                out = answer(data, "tcp")
                if out is not None:
                    conn.sendall(struct.pack("!H", len(out)) + out)
    except Exception as error:
        print(f"dns-server: tcp: {error!r}", file=sys.stderr, flush=True)


def serve_tcp(sock):
    while True:
        try:
            conn, _ = sock.accept()
            threading.Thread(target=serve_tcp_connection, args=(conn,), daemon=True).start()
        except Exception as error:
            print(f"dns-server: accept: {error!r}", file=sys.stderr, flush=True)


udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", args.port))
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("127.0.0.1", args.port))
tcp.listen(64)
threading.Thread(target=serve_tcp, args=(tcp,), daemon=True).start()
print("ready", flush=True)
serve_udp(udp)
