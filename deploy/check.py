"""Checks the Kubernetes manifests under deploy/: each kustomization renders with
`kubectl kustomize`, validates strictly against the Kubernetes schemas (kubernetes-validate,
offline), and keeps the promises the README makes about it. Run by scripts/test:

    python3 deploy/check.py [--kubectl PATH]

Exits non-zero, saying which promise broke, when one does.
"""

import argparse
import base64
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parent
KUBERNETES_VERSION = "1.32.0"

# What Runboard may do to the API server: (API group, resource) -> verbs. Secrets only by name.
DISCOVERY = {
    ("", "services"): {"list", "watch"},
    ("", "secrets"): {"get"},
}
# The port-forward (kube-rs opens it as a WebSocket GET, which API servers before 1.35
# authorize as `get`), and the Service and EndpointSlices that name the pod to forward to:
# only in Roles of the namespaces the config names.
PORT_FORWARD = {
    ("", "pods/portforward"): {"get", "create"},
    ("", "services"): {"get"},
    ("discovery.k8s.io", "endpointslices"): {"list"},
}
OVERLAYS = {
    "base": False,
    "overlays/oidc-ingress": False,
    "overlays/port-forward": True,
}

# The config's defaults where the TOML leaves a key out (core/src/config/mod.rs, HttpConfig).
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_DRAIN = 5.0
# Between the last request's end and SIGKILL: the store and the fleet close.
SHUTDOWN_MARGIN = 5.0
# Migrations run before the listener opens; the startup probe must wait for them this long.
STARTUP_ALLOWANCE = 120
# The keys of the config that hold a secret; each may be `<key>_file` or `<key>_env` instead.
SECRET_KEYS = {"database_url", "graphql_token", "client_secret", "webhook_url"}
# Environment variables that carry a secret: only from a Secret (secretKeyRef), never a value.
SECRET_ENV = re.compile(r"(DATABASE_URL|SECRET|TOKEN|PASSWORD|WEBHOOK)")
# Volume types the restricted Pod Security Standard allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


class Broken(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Broken(message)


def render(kubectl, kustomization):
    rendered = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / kustomization)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def one(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    expect(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def seconds(duration):
    """A humantime duration ("60s", "1m 30s", "500ms") in seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*([a-z]+)", duration)
    expect(parts and re.fullmatch(r"(\s*\d+\s*[a-z]+)+\s*", duration), f"cannot read the duration {duration!r}")
    for _, unit in parts:
        expect(unit in units, f"cannot read the duration {duration!r} (unit {unit})")
    return sum(int(n) * units[unit] for n, unit in parts)


def store_check_timeout():
    """How long /readyz waits for the store, as server/src/health.rs says."""
    source = (DEPLOY.parent / "server/src/health.rs").read_text()
    found = re.search(r"STORE_CHECK_TIMEOUT: Duration = Duration::from_secs\((\d+)\)", source)
    expect(found, "server/src/health.rs no longer says STORE_CHECK_TIMEOUT in seconds: update deploy/check.py")
    return int(found.group(1))


def config_of(docs):
    """The runboard.toml of the rendered ConfigMap, parsed."""
    maps = [d for d in docs if d["kind"] == "ConfigMap" and "runboard.toml" in d.get("data", {})]
    expect(len(maps) == 1, f"expected one ConfigMap with runboard.toml, found {len(maps)}")
    return tomllib.loads(maps[0]["data"]["runboard.toml"])


def check_pod(docs, config):
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    expect(spec["replicas"] >= 2, "the Deployment runs at least two replicas")
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    expect(selects(spec["selector"], labels), "the Deployment selects its own pods")
    check_restricted(docs, pod)
    volumes = {v["name"]: v for v in pod["volumes"]}
    http = config.get("http", {})
    for container in pod["containers"]:
        name = container["name"]
        security = container["securityContext"]
        expect(security.get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        expect("emptyDir" in volumes.get(mounts.get("/tmp"), {}), f"{name}: a writable /tmp")
        check_probes(name, container)
        resources = container["resources"]
        expect({"cpu", "memory"} <= resources["requests"].keys(), f"{name}: CPU and memory requests")
        expect("memory" in resources["limits"], f"{name}: a memory limit")
        for env in container.get("env", []):
            expect(not (SECRET_ENV.search(env["name"]) and "value" in env), f"{name}: {env['name']} is written in the manifest; take it from a Secret (secretKeyRef)")

    # SIGKILL comes after the grace period: it must outlast the drain and the longest request.
    request_timeout = seconds(http["request_timeout"]) if "request_timeout" in http else DEFAULT_REQUEST_TIMEOUT
    drain = seconds(http["drain"]) if "drain" in http else DEFAULT_DRAIN
    grace = pod.get("terminationGracePeriodSeconds", 30)
    expect(
        grace >= request_timeout + drain + SHUTDOWN_MARGIN,
        f"terminationGracePeriodSeconds {grace} must be at least http.request_timeout {request_timeout:g}s + http.drain {drain:g}s + {SHUTDOWN_MARGIN:g}s, or a rollout cuts requests off",
    )

    spread = [
        c for c in pod.get("topologySpreadConstraints", [])
        if c["topologyKey"] == "kubernetes.io/hostname" and c["maxSkew"] == 1 and selects(c.get("labelSelector", {}), labels) and c.get("labelSelector", {}).get("matchLabels")
    ]
    expect(spread, "the replicas are spread over nodes (a topologySpreadConstraint on kubernetes.io/hostname with maxSkew 1 selecting Runboard's pods)")

    pdb = one(docs, "PodDisruptionBudget")
    expect(selects(pdb["spec"]["selector"], labels) and pdb["spec"]["selector"]["matchLabels"], "the PDB selects Runboard's pods")
    expect(pdb["spec"].get("maxUnavailable") == 1 and "minAvailable" not in pdb["spec"], "the PDB lets a drain take one replica at a time (maxUnavailable: 1)")
    policy = one(docs, "NetworkPolicy")
    expect(selects(policy["spec"]["podSelector"], labels) and policy["spec"]["podSelector"]["matchLabels"], "the NetworkPolicy applies to Runboard's pods")
    expect(set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}, "the NetworkPolicy limits both ways")
    check_metrics(docs, pod, policy, http)


def check_probes(name, container):
    startup = container.get("startupProbe")
    expect(startup and startup.get("httpGet", {}).get("path") == "/healthz", f"{name}: a startup probe on /healthz, so that migrations do not count against liveness")
    allowance = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    expect(allowance >= STARTUP_ALLOWANCE, f"{name}: the startup probe gives migrations {allowance}s, less than {STARTUP_ALLOWANCE}s")
    expect(container["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name}: liveness on /healthz")
    readiness = container["readinessProbe"]
    expect(readiness["httpGet"]["path"] == "/readyz", f"{name}: readiness on /readyz")
    waits = store_check_timeout()
    expect(
        readiness.get("timeoutSeconds", 1) > waits,
        f"{name}: the readiness probe's timeoutSeconds ({readiness.get('timeoutSeconds', 1)}) must exceed the {waits}s /readyz waits for the store",
    )


def check_restricted(docs, pod):
    """The namespace enforces the restricted Pod Security Standard, and the pod meets it."""
    namespace = one(docs, "Namespace")
    expect(namespace["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted", "the namespace enforces the restricted Pod Security Standard")
    context = pod.get("securityContext", {})
    expect(context.get("runAsNonRoot") is True, "pods run as non-root")
    expect(context.get("runAsUser", 1) != 0, "pods do not run as user 0")
    expect(not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), "pods use no host namespace")
    for volume in pod.get("volumes", []):
        kind = set(volume) - {"name"}
        expect(kind <= RESTRICTED_VOLUMES, f"volume {volume['name']} is of a kind restricted pods may not mount: {sorted(kind)}")
    for container in pod["containers"] + pod.get("initContainers", []):
        name = container["name"]
        security = container.get("securityContext", {})
        seccomp = security.get("seccompProfile", context.get("seccompProfile", {})).get("type")
        expect(seccomp in ("RuntimeDefault", "Localhost"), f"{name}: a RuntimeDefault seccomp profile")
        expect(security.get("allowPrivilegeEscalation") is False, f"{name}: no privilege escalation")
        expect(security.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: drops every capability")
        expect(set(security.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, f"{name}: adds no capability")
        expect(security.get("privileged") is not True, f"{name}: not privileged")
        expect(not any(p.get("hostPort") for p in container.get("ports", [])), f"{name}: no host port")


def check_metrics(docs, pod, policy, http):
    """/metrics on its own port, which no Service (so no Ingress) reaches and only the
    monitoring namespace may."""
    expect("metrics_listen" in http, "http.metrics_listen is set, so that /metrics is not on the port the Ingress reaches")
    port = int(http["metrics_listen"].rsplit(":", 1)[1])
    ports = {p["containerPort"]: p.get("name") for c in pod["containers"] for p in c.get("ports", [])}
    expect(port in ports, f"the metrics port {port} is a containerPort")
    for service in (d for d in docs if d["kind"] == "Service"):
        for p in service["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            expect(target not in (port, ports[port]), f"Service {service['metadata']['name']} reaches the metrics port")
    for rule in policy["spec"].get("ingress", []):
        covered = [p.get("port") for p in rule.get("ports", [])]
        if covered and port not in covered and ports[port] not in covered:
            continue
        peers = rule.get("from", [])
        expect(
            peers and all(p.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": "monitoring"} and "podSelector" not in p for p in peers),
            "only the monitoring namespace reaches the metrics port (the NetworkPolicy)",
        )


def check_rbac(docs, config, port_forward):
    allowed = {key: set(verbs) for key, verbs in DISCOVERY.items()}
    if port_forward:
        for key, verbs in PORT_FORWARD.items():
            allowed[key] = allowed.get(key, set()) | verbs
    kubernetes = config.get("kubernetes", {})
    forwarded = set()
    for doc in docs:
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in doc.get("rules", []):
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    key = (group, resource)
                    extra = set(rule["verbs"]) - allowed.get(key, set())
                    expect(not extra, f"{doc['kind']} {doc['metadata']['name']} grants {sorted(extra)} on {group or 'core'}/{resource}")
                    if resource == "secrets":
                        expect(doc["kind"] == "Role" and rule.get("resourceNames"), "secrets are read by name, in one namespace")
                    if set(rule["verbs"]) - DISCOVERY.get(key, set()):
                        expect(doc["kind"] == "Role", f"ClusterRole {doc['metadata']['name']} grants the port-forward's {group or 'core'}/{resource} in every namespace; grant it by Role in the namespaces the config names")
                        forwarded.add(doc["metadata"]["namespace"])
                    if resource == "pods/portforward":
                        expect(set(rule["verbs"]) == {"get", "create"}, f"Role {doc['metadata']['name']} grants {sorted(rule['verbs'])} on pods/portforward: kube-rs needs get (API servers before 1.35) and create")
    if not port_forward:
        expect(kubernetes.get("reach", "in-cluster") == "in-cluster", "only the port-forward overlay reaches services by port-forward")
        return
    expect(kubernetes.get("reach") == "port-forward", 'the port-forward overlay sets [kubernetes] reach = "port-forward"')
    namespaces = set(kubernetes.get("namespaces", []))
    expect(namespaces, "the port-forward overlay names its namespaces ([kubernetes] namespaces), so that it may forward to no other")
    expect(forwarded == namespaces, f"the port-forward is granted in {sorted(forwarded)}, the config watches {sorted(namespaces)}")
    for namespace in namespaces:
        bound = [
            d for d in docs
            if d["kind"] == "RoleBinding" and d["metadata"].get("namespace") == namespace and d["roleRef"]["kind"] == "Role"
            and any(s["kind"] == "ServiceAccount" and s["name"] == "runboard" and s.get("namespace") == "runboard" for s in d["subjects"])
        ]
        expect(bound, f"no RoleBinding gives Runboard's ServiceAccount its port-forward Role in {namespace}")


def check_no_secrets(docs):
    """No secret is written in a ConfigMap: the config's secret keys are `<key>_file` or
    `<key>_env`, never a value; no URL there carries a password; no Secret's value is there."""
    secret_values = set()
    for secret in (d for d in docs if d["kind"] == "Secret"):
        secret_values |= {base64.b64decode(v).decode(errors="replace") for v in secret.get("data", {}).values()}
        secret_values |= set(secret.get("stringData", {}).values())
    for config_map in (d for d in docs if d["kind"] == "ConfigMap"):
        name = config_map["metadata"]["name"]
        for file, text in config_map.get("data", {}).items():
            for value in secret_values:
                expect(len(value) < 4 or value not in text, f"ConfigMap {name} holds the value of a Secret in {file}")
            if file.endswith(".toml"):
                for path, value in walk(tomllib.loads(text)):
                    where = f"ConfigMap {name}, {file}: {path}"
                    key = path.rsplit(".", 1)[-1]
                    secret_key = key in SECRET_KEYS or path == "store.url"
                    expect(not secret_key, f"{where} is a secret written in the ConfigMap; name a file of a mounted Secret with {key}_file (or {key}_env)")
                    if isinstance(value, str) and "://" in value:
                        expect(not urlsplit(value).password, f"{where} is a URL carrying a password")


def walk(table, prefix=""):
    """Every (dotted path, value) of a parsed TOML document; arrays of tables by index."""
    items = table.items() if isinstance(table, dict) else ((str(i), v) for i, v in enumerate(table))
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, (dict, list)):
            yield from walk(value, path)
        else:
            yield path, value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubectl", default="kubectl")
    args = parser.parse_args()
    failed = False
    for kustomization, port_forward in OVERLAYS.items():
        try:
            docs = render(args.kubectl, kustomization)
            for doc in docs:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            config = config_of(docs)
            check_no_secrets(docs)
            check_pod(docs, config)
            check_rbac(docs, config, port_forward)
            print(f"deploy/{kustomization}: {len(docs)} resources, valid against Kubernetes {KUBERNETES_VERSION}")
        except (Broken, kubernetes_validate.ValidationError, subprocess.CalledProcessError, tomllib.TOMLDecodeError) as e:
            detail = getattr(e, "stderr", None) or e
            print(f"deploy/{kustomization}: {detail}", file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
