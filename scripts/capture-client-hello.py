#!/usr/bin/env python3
"""Saves the first ClientHello a headless Chromium sends, byte for byte, for the fuzz
corpus (Fuzz/corpus/client-hello) and the ClientHello reader's tests:

    python3 scripts/capture-client-hello.py [--output Fuzz/corpus/client-hello/chromium.bin]

Chromium (Debian's chromium package) is pointed at https://chromium.bench.test:PORT/,
that name resolved to 127.0.0.1 by its own resolver rules, where this script listens. It
keeps the TLS records up to the end of the first handshake message (the ClientHello, which
may span several records and TCP segments) and then closes, so Chromium gets no answer and
is stopped. Chromium's hello is worth keeping because it is unlike the others': GREASE
values in its cipher suites and extensions, and its extensions in a new random order each
time.
"""
import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time

NAME = "chromium.bench.test"


def hello_length(data):
    """The byte count of the records that carry the whole first handshake message, or None
    while it is not all there."""
    handshake = b""
    offset = 0
    while offset + 5 <= len(data):
        if data[offset] != 22:
            raise SystemExit(f"not a TLS handshake record: {data[:16].hex()}")
        length = int.from_bytes(data[offset + 3:offset + 5], "big")
        if offset + 5 + length > len(data):
            return None
        handshake += data[offset + 5:offset + 5 + length]
        offset += 5 + length
        if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
            return offset
    return None


def capture(timeout=60):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="balancerd-capture-")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    process = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                f"--user-data-dir={profile}", "--no-first-run", "--disable-background-networking",
                                f"--host-resolver-rules=MAP {NAME} 127.0.0.1", f"https://{NAME}:{port}/"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        listener.settimeout(timeout)
        connection, _ = listener.accept()
        with connection:
            data = b""
            while (length := hello_length(data)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SystemExit("no whole ClientHello before the deadline")
                connection.settimeout(remaining)
                chunk = connection.recv(65536)
                if not chunk:
                    raise SystemExit(f"chromium closed after {len(data)} bytes")
                data += chunk
            return data[:length]
    finally:
        listener.close()
        os.killpg(process.pid, 9)
        process.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", default=os.path.join(root, "Fuzz/corpus/client-hello/chromium.bin"))
    options = parser.parse_args()
    hello = capture()
    with open(options.output, "wb") as f:
        f.write(hello)
    print(f"{options.output}: {len(hello)} bytes, server name {NAME}")
