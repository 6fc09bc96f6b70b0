#!/usr/bin/env python3
"""Takes a PNG of balancerd's status page, as the README shows it (docs/status-page.png).

    scripts/screenshot.py [OUTPUT.png]        (default docs/status-page.png)

Builds balancerd and testbackend (debug) unless BALANCERD_BUILD_DIR names a folder that has
them, starts demo-like backends and a daemon on free local ports, sends some traffic for
about half a minute so that rates and the chart have something to show, puts one endpoint
in drain and one in maintenance, and photographs the page with headless chromium (the same
browser as the browser test). Everything it started is stopped before it exits.
"""
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "scripts", "browser"))
import chromium  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise SystemExit(f"screenshot: {what} did not happen within {timeout:.0f} s")


def post(admin, service, address, verb, body):
    request = urllib.request.Request(f"http://{admin}/services/{service}/endpoints/{address}/{verb}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).read()


def main():
    output = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "docs", "status-page.png"))
    build = os.environ.get("BALANCERD_BUILD_DIR")
    if not build:
        subprocess.run(["swift", "build", "--product", "balancerd"], cwd=root, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["swift", "build", "--product", "testbackend"], cwd=root, check=True, stdout=subprocess.DEVNULL)
        build = subprocess.run(["swift", "build", "--show-bin-path"], cwd=root, check=True,
                               capture_output=True, text=True).stdout.strip()

    children = []
    folder = tempfile.mkdtemp(prefix="balancerd-screenshot-")
    try:
        def backend(name):
            port = free_port()
            children.append(subprocess.Popen([f"{build}/testbackend", "--name", name, "--port", str(port)],
                                             stdout=subprocess.DEVNULL))
            return f"127.0.0.1:{port}"
        web = [backend(f"web-{n}") for n in "abc"]
        api = [backend(f"api-{n}") for n in "ab"]
        db = [backend(f"db-{n}") for n in "ab"]
        admin = f"127.0.0.1:{free_port()}"
        ports = {"web": free_port(), "api": free_port(), "db": free_port()}
        config = os.path.join(folder, "balancerd.yaml")
        with open(config, "w") as f:
            f.write(f"""admin:
  listen: {admin}
services:
  - name: web
    listen: 127.0.0.1:{ports["web"]}
    endpoints: [{", ".join(web)}]
  - name: api
    listen: 127.0.0.1:{ports["api"]}
    balance: least-connections
    endpoints:
      - {{address: {api[0]}, weight: 3}}
      - {api[1]}
  - name: db
    listen: 127.0.0.1:{ports["db"]}
    mode: active-passive
    endpoints: [{", ".join(db)}]
""")
        log = open(os.path.join(folder, "balancerd.log"), "w")
        children.append(subprocess.Popen([f"{build}/balancerd", "--config", config], stderr=log))

        def answers():
            try:
                return urllib.request.urlopen(f"http://{admin}/healthz", timeout=1).status == 200
            except OSError:
                return False
        wait("balancerd answering", answers)

        # Traffic at a changing rate for the chart: short exchanges with some bytes.
        stop = threading.Event()

        def traffic(service, weight):
            payload = os.urandom(2048)
            while not stop.is_set():
                try:
                    with socket.create_connection(("127.0.0.1", ports[service]), timeout=2) as c:
                        c.recv(64)
                        c.sendall(payload * random.randint(1, 40))
                except OSError:
                    pass
                phase = (time.monotonic() % 20) / 20
                time.sleep(0.25 / weight * (1.5 - phase))
        threads = [threading.Thread(target=traffic, args=(s, w), daemon=True) for s, w in (("web", 3), ("api", 2), ("db", 1))]
        for thread in threads:
            thread.start()
        driver = chromium.start(width=1280, height=1000)
        try:
            driver.get(f"http://{admin}/")
            time.sleep(12)
            post(admin, "web", web[2], "state", {"state": "drain"})
            post(admin, "db", db[0], "state", {"state": "maintenance"})
            time.sleep(18)
            os.makedirs(os.path.dirname(output), exist_ok=True)
            driver.save_screenshot(output)
        finally:
            driver.quit()
            stop.set()
        print(f"wrote {output}")
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
