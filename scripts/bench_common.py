"""What the benchmark modules beside this file share: free ports, the processes a run
starts (each in a session of its own, all killed at its end, whatever happened), the CPU
time of a process tree, and what a module does when run alone."""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def tree(pid):
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [p for child in children for p in tree(int(child))]


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


class Run:
    """A work folder and the processes started for one run; leaving the `with` kills them
    (with their children: nginx and HAProxy fork workers) and removes the folder."""

    def __init__(self, prefix):
        self.work = tempfile.mkdtemp(prefix=prefix)
        self.processes = []

    def __enter__(self):
        return self

    def __exit__(self, *_):
        for process in self.processes:
            self.kill(process)
        shutil.rmtree(self.work, ignore_errors=True)

    def start(self, command):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(process)
        return process

    @staticmethod
    def kill(process):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
        process.wait()

    def path(self, name):
        return os.path.join(self.work, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)


def print_table(results, kinds, rows, peers):
    """rows: (label, key, format, higher_is_better); the last column is balancerd over the
    best of `peers` (the figures the peers did not measure left out)."""
    against = peers[0] if len(peers) == 1 else "best peer"
    print(f"{'figure':52} " + " ".join(f"{k:>10}" for k in kinds) + f"  balancerd/{against}")
    for label, key, fmt, higher_is_better in rows:
        values = [results[k][key] for k in kinds]
        measured = [results[k][key] for k in peers if results[k][key] == results[k][key]]
        best = (max if higher_is_better else min)(measured) if measured else float("nan")
        ratio = results["balancerd"][key] / best if best else float("nan")
        print(f"{label:52} " + " ".join(f"{('-' if v != v else fmt.format(v)):>10}" for v in values) + f"  {ratio:.2f}x")


def main(run, kinds, rows, peers):
    """Run alone: `--balancerd PATH [--seconds S]`, then the table (see print_table)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--balancerd", required=True)
    parser.add_argument("--seconds", type=float, default=5)
    options = parser.parse_args()
    print_table(run(options.balancerd, options.seconds), kinds, rows, peers)
