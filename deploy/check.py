"""Checks the Kubernetes manifests under deploy/: each kustomization renders with
`kubectl kustomize`, validates strictly against the Kubernetes schemas (kubernetes-validate,
offline), and keeps the promises the README makes about it. Run by scripts/test:

    python3 deploy/check.py [--kubectl PATH]

Exits non-zero, saying which promise broke, when one does.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parent
KUBERNETES_VERSION = "1.32.0"

# What Runboard may do to the API server: (API group, resource) -> verbs. Secrets only by name.
DISCOVERY = {
    ("", "services"): {"get", "list", "watch"},
    ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch"},
    ("", "secrets"): {"get"},
}
PORT_FORWARD = {
    ("", "pods/portforward"): {"create"},
}
OVERLAYS = {
    "base": DISCOVERY,
    "overlays/oidc-ingress": DISCOVERY,
    "overlays/port-forward": {**DISCOVERY, **PORT_FORWARD},
}


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


def check_pod(docs):
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    expect(spec["replicas"] >= 2, "the Deployment runs at least two replicas")
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    expect(selects(spec["selector"], labels), "the Deployment selects its own pods")
    expect(pod["securityContext"].get("runAsNonRoot") is True, "pods run as non-root")
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod["containers"]:
        name = container["name"]
        security = container["securityContext"]
        expect(security.get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
        expect(security.get("allowPrivilegeEscalation") is False, f"{name}: no privilege escalation")
        expect(security.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: drops every capability")
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        expect("emptyDir" in volumes.get(mounts.get("/tmp"), {}), f"{name}: a writable /tmp")
        expect(container["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name}: liveness on /healthz")
        expect(container["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: readiness on /readyz")
        resources = container["resources"]
        expect({"cpu", "memory"} <= resources["requests"].keys(), f"{name}: CPU and memory requests")
        expect("memory" in resources["limits"], f"{name}: a memory limit")
    pdb = one(docs, "PodDisruptionBudget")
    expect(selects(pdb["spec"]["selector"], labels) and pdb["spec"]["selector"]["matchLabels"], "the PDB selects Runboard's pods")
    expect(pdb["spec"].get("minAvailable") == 1, "the PDB keeps one replica through a drain")
    policy = one(docs, "NetworkPolicy")
    expect(selects(policy["spec"]["podSelector"], labels) and policy["spec"]["podSelector"]["matchLabels"], "the NetworkPolicy applies to Runboard's pods")
    expect(set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}, "the NetworkPolicy limits both ways")


def check_rbac(docs, allowed):
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubectl", default="kubectl")
    args = parser.parse_args()
    failed = False
    for kustomization, allowed in OVERLAYS.items():
        try:
            docs = render(args.kubectl, kustomization)
            for doc in docs:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            check_pod(docs)
            check_rbac(docs, allowed)
            print(f"deploy/{kustomization}: {len(docs)} resources, valid against Kubernetes {KUBERNETES_VERSION}")
        except (Broken, kubernetes_validate.ValidationError, subprocess.CalledProcessError) as e:
            detail = getattr(e, "stderr", None) or e
            print(f"deploy/{kustomization}: {detail}", file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
