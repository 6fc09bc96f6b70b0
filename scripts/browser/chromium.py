"""Headless Debian chromium under selenium, for the status page's browser test and screenshot.

The driver and browser are the Debian packages' (chromium, chromium-driver), named by path
so that selenium never tries to fetch a browser of its own.
"""
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def find(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(f"none of {', '.join(names)} is installed (apt-get install chromium chromium-driver)")


def start(width=1280, height=720):
    options = webdriver.ChromeOptions()
    options.binary_location = find("chromium", "chromium-browser")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    # Every console message, to check that the page logs no error.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(find("chromedriver")), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(20)
    return driver
