#!/usr/bin/env python3
"""Checks deploy/kubernetes/*.yaml without a cluster: every document against the Kubernetes
API's JSON schema in its strict form (unknown fields are errors), as PyPI's
kubernetes-validate ships it, for the oldest and the newest Kubernetes version it knows; then
what the DaemonSet must be for balancerd (hostNetwork, the ConfigMap mounted whole, liveness
on /healthz of the admin port, resources, read-only root, non-root, no capability unless a
port needs one).

    scripts/check-manifests.py [--config-out PATH] [DIR]

--config-out writes the ConfigMap's balancerd.yaml to PATH, for balancerd --check-config.
Prints one line per check and exits 1 if any failed.
"""
import glob
import os
import re
import sys

import kubernetes_validate
import yaml
from kubernetes_validate import utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = 0


def check(ok, what):
    global failures
    print(("ok: " if ok else "FAILED: ") + what)
    if not ok:
        failures += 1


def versions():
    """The oldest and the newest Kubernetes versions the installed schemas cover."""
    found = sorted({tuple(int(p) for p in v.split(".")) for v in utils.all_versions()})
    return sorted({".".join(map(str, found[0])), ".".join(map(str, found[-1]))})


def main(argv):
    config_out = None
    if "--config-out" in argv:
        i = argv.index("--config-out")
        config_out = argv[i + 1]
        del argv[i:i + 2]
    directory = argv[0] if argv else os.path.join(ROOT, "deploy/kubernetes")

    documents = []
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path) as f:
            documents += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
    check(len(documents) > 0, "manifests found in %s" % directory)

    for version in versions():
        for name, document in documents:
            what = "%s %s/%s against the Kubernetes %s schema (strict)" % (
                name, document.get("kind"), document.get("metadata", {}).get("name"), version)
            try:
                kubernetes_validate.validate(document, version, strict=True)
                check(True, what)
            except kubernetes_validate.ValidationError as error:
                check(False, "%s: %s: %s" % (what, ".".join(map(str, error.path)), error.message))

    by_kind = {d.get("kind"): d for _, d in documents}
    daemonset, configmap = by_kind.get("DaemonSet"), by_kind.get("ConfigMap")
    check(daemonset is not None and configmap is not None, "a DaemonSet and a ConfigMap")
    if daemonset is None or configmap is None:
        return
    config_text = configmap.get("data", {}).get("balancerd.yaml", "")
    check(bool(config_text), "the ConfigMap holds balancerd.yaml")
    if config_out:
        with open(config_out, "w") as f:
            f.write(config_text)
    config = yaml.safe_load(config_text) or {}
    admin = str(config.get("admin", {}).get("listen", "127.0.0.1:9901"))
    admin_host, admin_port = admin.rsplit(":", 1)
    listen_ports = [int(str(s["listen"]).rsplit(":", 1)[1]) for s in config.get("services", [])]

    pod = daemonset["spec"]["template"]["spec"]
    check(pod.get("hostNetwork") is True, "hostNetwork: true")
    check(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "dnsPolicy: ClusterFirstWithHostNet (cluster names resolve)")
    containers = [c for c in pod["containers"] if c["name"] == "balancerd"]
    check(len(containers) == 1, "one container named balancerd")
    container = containers[0]

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    config_mounts = [m for m in container.get("volumeMounts", [])
                     if volumes.get(m["name"], {}).get("configMap", {}).get("name") == configmap["metadata"]["name"]]
    check(len(config_mounts) == 1 and "subPath" not in config_mounts[0]
          and config_mounts[0]["mountPath"] == "/etc/balancerd",
          "the ConfigMap is mounted whole at /etc/balancerd, without subPath (the ..data swap reaches the watcher)")
    args = container.get("args", []) + container.get("command", [])
    check("/etc/balancerd/balancerd.yaml" in args, "balancerd is given /etc/balancerd/balancerd.yaml")

    probe = container.get("livenessProbe", {}).get("httpGet", {})
    check(probe.get("path") == "/healthz" and str(probe.get("port")) == admin_port
          and probe.get("host", "") == admin_host,
          "liveness: GET /healthz on admin.listen (%s)" % admin)
    resources = container.get("resources", {})
    check("requests" in resources and "memory" in resources.get("limits", {}), "resources: requests and a memory limit")

    security = container.get("securityContext", {})
    pod_security = pod.get("securityContext", {})
    check(security.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true")
    check(security.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
    check(security.get("capabilities", {}).get("drop") == ["ALL"], "every capability dropped")
    low = [p for p in listen_ports + [int(admin_port)] if p < 1024]
    added = security.get("capabilities", {}).get("add", [])
    if low:
        check(added == ["NET_BIND_SERVICE"], "ports %s need NET_BIND_SERVICE, and nothing else" % low)
    else:
        non_root = (security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True
                    and int(security.get("runAsUser", pod_security.get("runAsUser", 0))) != 0)
        check(non_root, "non-root (every port is above 1023)")
        check(not added, "no capability added (every port is above 1023)")
    declared = {p["containerPort"] for p in container.get("ports", [])}
    check(set(listen_ports) <= declared, "every service's listen port is a container port")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    drain = str(config.get("defaults", {}).get("drainTimeout", "30s"))
    seconds = int(re.match(r"(\d+)", drain).group(1)) / {"ms": 1000, "s": 1, "m": 1 / 60, "h": 1 / 3600}[re.sub(r"\d+", "", drain)]
    check(grace > seconds, "terminationGracePeriodSeconds (%s) outlasts drainTimeout (%s)" % (grace, drain))


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(1 if failures else 0)
