#!/usr/bin/env python3
"""Writes balancerd.yaml(5) from config/balancerd.yaml, the commented file that is the
reference for every key (the README points to it too), so the two cannot drift.

    scripts/gen-man.py [config/balancerd.yaml] > balancerd.yaml.5
    scripts/gen-man.py --keys                  # the key paths found, one a line

Every `key: value   # comment` line of the file, commented out (`# key: value`) or not,
becomes one entry named by its path (`defaults.healthCheck.rise`, `services[].endpoints[].weight`);
a comment-only line aligned with the comments above it continues that entry; flow mappings
(`tls: {ca: ..., cert: ...}`) give one entry per key. A key met more than once (a service's
`mode`, say) lists each value with its comment. The whole file follows as the example.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = re.compile(r"^(?P<indent> *)(?P<dash>- +)?(?P<key>[A-Za-z][A-Za-z0-9_]*):(?: +(?P<value>.*?))?$")


def split_comment(text):
    """`value  # comment` -> (value, comment); a '#' inside quotes or brackets is kept."""
    depth, quote = 0, None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "#" and depth == 0 and (i == 0 or text[i - 1] == " "):
            return text[:i].rstrip(), text[i + 1:].strip()
    return text.rstrip(), None


def flow_keys(value):
    """The keys and values of a one-line flow mapping `{a: 1, b: {c: 2}}`, or None."""
    if not (value.startswith("{") and value.endswith("}")):
        return None
    items, depth, start, body = [], 0, 0, value[1:-1]
    for i, c in enumerate(body + ","):
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            item = body[start:i].strip()
            if ":" in item:
                k, v = item.split(":", 1)
                items.append((k.strip(), v.strip()))
            start = i + 1
    return items


class Entry:
    def __init__(self, path, commented):
        self.path = path
        self.commented = commented  # only ever shown commented out: optional, no default
        self.uses = []              # (value, [comment lines])


def parse(lines):
    entries, order = {}, []
    stack = []          # (indent, path segment)
    last = None         # (entry, use) that a continuation comment extends
    last_indent = 0
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            last = None
            continue
        commented = False
        body = line
        stripped = line.lstrip(" ")
        if stripped.startswith("#"):
            # A commented-out key (`#   size: 1000  # ...`) or a comment.
            first = len(line) - len(stripped)
            inner = stripped[1:]
            candidate = " " * first + inner[1:] if inner.startswith(" ") else None
            if candidate is not None and KEY.match(split_comment(candidate)[0]):
                body, commented = candidate, True
            else:
                # A comment right of the key above continues its comment (also in the
                # commented-out form `#    # more`).
                column, text = first, inner.strip()
                if text.startswith("#"):
                    column, text = line.index("#", first + 1), text[1:].strip()
                if last and column > last_indent and text:
                    last[1][1].append(text)
                elif column == 0:
                    last = None
                continue
        code, comment = split_comment(body)
        match = KEY.match(code)
        if not match:
            # A scalar list item (`- 127.0.0.1:8081  # short form`).
            item = re.match(r"^(?P<indent> *)- +(?P<value>.+)$", code)
            if item:
                indent = len(item.group("indent"))
                while stack and stack[-1][0] >= indent:
                    stack.pop()
                path = ".".join(s for _, s in stack) + "[]"
                last = record(entries, order, path, commented, item.group("value"), comment)
                last_indent = indent
            continue
        indent = len(match.group("indent"))
        if match.group("dash"):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            if stack:
                stack[-1] = (stack[-1][0], stack[-1][1].rstrip("[]") + "[]")
            indent += len(match.group("dash"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key, value = match.group("key"), match.group("value") or ""
        path = ".".join([s for _, s in stack] + [key])
        last = record(entries, order, path, commented, value, comment)
        last_indent = indent
        for k, v in flow_keys(value) or []:
            record(entries, order, path + "." + k, commented, v, None)
        if not value:
            stack.append((indent, key))
    return [entries[p] for p in order]


def record(entries, order, path, commented, value, comment):
    entry = entries.get(path)
    if entry is None:
        entry = entries[path] = Entry(path, commented)
        order.append(path)
    entry.commented = entry.commented and commented
    use = (value, [comment] if comment else [])
    entry.uses.append(use)
    return (entry, use)


def roff(text):
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return text


def roff_line(text):
    text = roff(text)
    return "\\&" + text if text.startswith((".", "'")) else text


def version():
    source = open(os.path.join(ROOT, "Sources/BalancerCore/Daemon/Version.swift")).read()
    return re.search(r'string = "([^"]+)"', source).group(1)


def page_date(path):
    try:
        date = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%cs", "--", path],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        date = ""
    if not date:
        import time
        date = time.strftime("%Y-%m-%d", time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", os.path.getmtime(path)))))
    return date


def render(path):
    lines = open(path).read().splitlines()
    entries = parse(lines)
    out = []
    emit = out.append
    emit('.TH BALANCERD.YAML 5 %s "balancerd %s" "File Formats"' % (page_date(path), version()))
    emit(".SH NAME")
    emit("balancerd.yaml \\- configuration file of balancerd")
    emit(".SH SYNOPSIS")
    emit(".I /etc/balancerd/balancerd.yaml")
    emit(".SH DESCRIPTION")
    emit(".BR balancerd (8)")
    emit("reads its services, endpoints and settings from one YAML file.")
    emit("Unknown keys are errors, so a typo never falls back to a default silently;")
    emit("every error names the file, line, column and key, and all errors of a file are shown at once.")
    emit("Check a file with")
    emit("\\fBbalancerd \\-\\-check\\-config \\-\\-config\\fR \\fIFILE\\fR.")
    emit(".PP")
    emit("Durations are an integer with \\fBms\\fR, \\fBs\\fR, \\fBm\\fR or \\fBh\\fR.")
    emit("An endpoint is \\fIhost\\fB:\\fIport\\fR with an IPv4 address, \\fB[\\fIIPv6\\fB]\\fR or a DNS name;")
    emit("a listen address is an IP address or \\fBlocalhost\\fR.")
    emit("Two services may not share a listen address.")
    emit("The file is reloaded on SIGHUP and within a second of any change to it;")
    emit("a file that does not validate leaves the running configuration in force.")
    emit(".SH KEYS")
    emit("Each key with the value the example below gives it (the default, where it has one)")
    emit("and what it means.")
    emit("Keys marked \\fI(optional)\\fR are commented out in the example: without them the")
    emit("feature is off.")
    current = None
    for entry in entries:
        top = entry.path.split(".")[0].rstrip("[]")
        if top != current:
            current = top
            emit(".SS %s" % roff(top))
        if not any(v or c for v, c in entry.uses):
            continue  # a mapping that only holds the keys below it
        emit(".TP")
        emit("\\fB%s\\fR%s" % (roff(entry.path), " \\fI(optional)\\fR" if entry.commented else ""))
        described = [(v, c) for v, c in entry.uses if c]
        shown = described or entry.uses[:1]
        for i, (value, comments) in enumerate(shown):
            if i:
                emit(".br")
            text = " ".join(comments)
            if value:
                emit("\\fB%s\\fR%s" % (roff(value), " \\(em " + roff(text) if text else ""))
            elif text:
                emit(roff_line(text))
    emit(".SH EXAMPLE")
    emit("The file as shipped, with every key:")
    emit(".PP")
    emit(".EX")
    for line in lines:
        emit(roff_line(line) if line else "")
    emit(".EE")
    emit(".SH FILES")
    emit(".TP")
    emit(".I /etc/balancerd/balancerd.yaml")
    emit("The default configuration file.")
    emit(".SH SEE ALSO")
    emit(".BR balancerd (8),")
    emit(".BR balancerctl (8)")
    return "\n".join(out) + "\n"


def main(argv):
    keys = "--keys" in argv
    paths = [a for a in argv if a != "--keys"]
    path = paths[0] if paths else os.path.join(ROOT, "config/balancerd.yaml")
    if keys:
        for entry in parse(open(path).read().splitlines()):
            print(entry.path)
    else:
        sys.stdout.write(render(path))


if __name__ == "__main__":
    main(sys.argv[1:])
