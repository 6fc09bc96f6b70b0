#!/usr/bin/env python3
"""Drives balancerd's status page in headless chromium, as an operator would.

    check-status-page.py --admin 127.0.0.1:9901 --service web --endpoint 127.0.0.1:8081 --port 30080 [--token T]

Checks, each with a bounded wait: the page lists the service and its endpoints; a count
changes after traffic without reloading the page; a click on drain drains (seen in /stats);
the JavaScript console has no error. Prints what failed and exits 1, or exits 0.
"""
import argparse
import json
import os
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chromium  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def wait(what, condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception:  # the page may be redrawing: look again
            pass
        time.sleep(0.1)
    raise SystemExit(f"FAIL: {what} (waited {timeout:.0f} s)")


def stats(admin, token):
    request = urllib.request.Request(f"http://{admin}/stats")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--admin", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--port", type=int, required=True, help="the service's listen port, for traffic")
    parser.add_argument("--token")
    args = parser.parse_args()

    driver = chromium.start()
    try:
        driver.get(f"http://{args.admin}/")
        if args.token:
            field = wait("the page asks for the token", lambda: driver.find_element(By.ID, "token"))
            wait("the token field is shown", field.is_displayed)
            field.send_keys(args.token)
            driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()

        section = f'section[data-service="{args.service}"]'
        row = f'{section} tr[data-endpoint="{args.endpoint}"]'
        wait(f"the page lists service {args.service}", lambda: driver.find_element(By.CSS_SELECTOR, section))
        wait(f"the page lists endpoint {args.endpoint}", lambda: driver.find_element(By.CSS_SELECTOR, row))
        total = lambda: driver.find_element(By.CSS_SELECTOR, f"{section} .value.total").text  # noqa: E731
        wait("the service's total is shown", lambda: total().isdigit())
        before = int(total())

        # Traffic, then the count changes on the page without a reload.
        driver.execute_script("window.__notReloaded = true;")
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", args.port), timeout=5) as connection:
                connection.recv(64)
        wait("the total goes up after traffic", lambda: int(total()) >= before + 3)
        if driver.execute_script("return window.__notReloaded === true;") is not True:
            raise SystemExit("FAIL: the page reloaded itself")
        wait("the connections-per-second chart is drawn",
             lambda: driver.find_element(By.CSS_SELECTOR, f"{section} svg polyline").get_attribute("points"))

        # A click on drain drains.
        button = f'{row} button[data-action="drain"]'
        driver.find_element(By.CSS_SELECTOR, button).click()

        def drained():
            for service in stats(args.admin, args.token)["services"]:
                for endpoint in service["endpoints"]:
                    if service["name"] == args.service and endpoint["address"] == args.endpoint:
                        return endpoint["admin"] == "drain"
            return False
        wait("/stats shows the endpoint drained after the click", drained)
        wait("the page shows drain", lambda: driver.find_element(By.CSS_SELECTOR, f"{row} td.admin").text == "drain")
        wait("the drain button is disabled", lambda: not driver.find_element(By.CSS_SELECTOR, button).is_enabled())

        errors = [entry for entry in driver.get_log("browser") if entry.get("level") in ("SEVERE", "ERROR")]
        if errors:
            raise SystemExit("FAIL: console errors: " + json.dumps(errors))
        print("status page OK")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
