#!/usr/bin/env python3
"""Assertions on rendered Kubernetes manifests that schema validators cannot make: every
pod locked down (non-root, read-only root, no capabilities, seccomp RuntimeDefault, no
service-account token), probes on the real health endpoints, requests and limits, volumes
for the stateful services, NetworkPolicies that let only the gateway be reached and the
services reach only NATS (and the OTLP collector, on its endpoint's port, when traces
are exported), PodDisruptionBudgets, the gateway's HPA, a 3-node NATS with
JetStream, authenticated routes and the audit stream replicated 3 ways, each service connecting as its own
NATS user from deploy/nats/permissions.json, and alerting rules (when rendered) that are
deploy/prometheus/kms-rules.yaml.

    scripts/k8s_check.py [--secrets-provided] RENDERED.yaml...

With --secrets-provided, the Secrets the manifests reference must be among them.
"""

import json
import pathlib
import sys
import urllib.parse

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVICES = ["gateway", "metadata", "policy", "crypto", "audit"]
STATEFUL = ["metadata", "policy", "crypto", "audit"]


class Failures(list):
    def check(self, ok, what):
        if not ok:
            self.append(what)


def component(obj):
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_pod(f, name, pod, kind_replicas, service_accounts):
    sc = pod.get("securityContext", {})
    f.check(sc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot")
    f.check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: pod seccomp RuntimeDefault")
    f.check(pod.get("automountServiceAccountToken") is False, f"{name}: pod automountServiceAccountToken false")
    sa = pod.get("serviceAccountName")
    f.check(sa in service_accounts, f"{name}: service account {sa} exists")
    f.check(service_accounts.get(sa, {}).get("automountServiceAccountToken") is False,
            f"{name}: service account {sa} does not automount its token")
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        cname = f"{name}/{c['name']}"
        csc = c.get("securityContext", {})
        f.check(csc.get("readOnlyRootFilesystem") is True, f"{cname}: readOnlyRootFilesystem")
        f.check(csc.get("allowPrivilegeEscalation") is False, f"{cname}: allowPrivilegeEscalation false")
        f.check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{cname}: capabilities drop ALL")
        f.check(csc.get("runAsNonRoot", sc.get("runAsNonRoot")) is True, f"{cname}: runAsNonRoot")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                f.check(r in res.get(part, {}), f"{cname}: resources.{part}.{r}")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            f.check("httpGet" in c.get(probe, {}), f"{cname}: {probe} over HTTP")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe"):
            port = c.get(probe, {}).get("httpGet", {}).get("port")
            f.check(port in ports or isinstance(port, int), f"{cname}: {probe} port {port} is a container port")


def otlp_endpoint_port(endpoint):
    """The port an OTLP exporter connects to: the URL's own, or its scheme's."""
    url = urllib.parse.urlsplit(endpoint)
    return url.port or (443 if url.scheme == "https" else 80)


def main(argv):
    secrets_provided = "--secrets-provided" in argv
    paths = [a for a in argv if not a.startswith("--")]
    docs = []
    for p in paths:
        docs += [d for d in yaml.safe_load_all(pathlib.Path(p).read_text()) if d]
    f = Failures()
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    service_accounts = by_kind.get("ServiceAccount", {})
    workloads = {**by_kind.get("Deployment", {}), **by_kind.get("StatefulSet", {})}
    matrix = json.loads((ROOT / "deploy/nats/permissions.json").read_text())
    users = {u["service"]: u for u in matrix["users"]}

    comps = {component(w): w for w in workloads.values()}
    for expected in SERVICES + ["nats"]:
        f.check(expected in comps, f"a workload for {expected}")
    for wname, w in workloads.items():
        pod = w["spec"]["template"]["spec"]
        check_pod(f, f"{w['kind']}/{wname}", pod, w["spec"].get("replicas"), service_accounts)
        comp = component(w)
        if comp in SERVICES:
            c = pod["containers"][0]
            f.check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{wname}: readiness on /readyz")
            f.check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{wname}: liveness on /healthz")
            env = env_of(c)
            f.check(env.get("KMS_HEALTH_LISTEN", {}).get("value", "").endswith(":8081")
                    or "KMS_HEALTH_LISTEN" in env, f"{wname}: KMS_HEALTH_LISTEN")
            user = users[comp]
            if "KMS_NATS_USER" in env:
                f.check(env["KMS_NATS_USER"]["value"] == user["user"], f"{wname}: NATS user {user['user']}")
            f.check(env.get("KMS_NATS_INBOX_PREFIX", {}).get("value") == user["inbox_prefix"],
                    f"{wname}: inbox prefix {user['inbox_prefix']}")
        if comp in STATEFUL or comp == "nats":
            f.check(w["kind"] == "StatefulSet" and w["spec"].get("volumeClaimTemplates"),
                    f"{wname}: StatefulSet with a volume claim")
        if comp in STATEFUL:
            f.check(w["spec"].get("replicas") == 1, f"{wname}: one replica (one sled store)")
        if comp == "gateway":
            f.check(w["kind"] == "Deployment", "the gateway is a Deployment")

    # NATS: 3 nodes, JetStream on file storage, the auth block included; the stream
    # replicated as many times as both writers declare it.
    nats = comps.get("nats")
    if nats:
        f.check(nats["spec"].get("replicas") == 3, "NATS runs 3 nodes")
        conf = next((c for n, c in by_kind.get("ConfigMap", {}).items() if n.endswith("nats-config")), None)
        f.check(conf is not None, "the NATS ConfigMap")
        if conf:
            text = conf["data"]["nats.conf"]
            f.check("jetstream" in text and "store_dir" in text, "JetStream with a store directory")
            f.check("include ./auth.conf" in text, "NATS includes the authorization block")
            # Routes authenticate: the cluster block requires the route user's password,
            # and every route URL is one the pod builds with that password (over TLS when
            # client connections are).
            cluster = text[text.index("cluster {"):] if "cluster {" in text else ""
            f.check("authorization {" in cluster and "password: $KMS_NATS_ROUTE_PASSWORD" in cluster,
                    "NATS routes require the route password")
            pod = nats["spec"]["template"]["spec"]
            env = env_of(pod["containers"][0])
            f.check("secretKeyRef" in env.get("KMS_NATS_ROUTE_PASSWORD", {}).get("valueFrom", {}),
                    "the NATS route password comes from a Secret")
            for i in range(nats["spec"].get("replicas", 0)):
                f.check(f"$KMS_NATS_ROUTE_{i}" in cluster, f"NATS route {i} in the cluster block")
                f.check("$(KMS_NATS_ROUTE_PASSWORD)@" in env.get(f"KMS_NATS_ROUTE_{i}", {}).get("value", ""),
                        f"NATS route {i} carries the route credentials")
            f.check(text.count("tls {") in (0, 2), "TLS for both clients and routes, or for neither")
            auth = conf["data"]["auth.conf"]
            for user in matrix["users"]:
                for entry in user["publish"] + user["subscribe"]:
                    f.check(json.dumps(entry["subject"]) in auth, f"auth.conf allows {entry['subject']}")
    config = next((c for n, c in by_kind.get("ConfigMap", {}).items() if n.endswith("-config") and "KMS_LOG_FORMAT" in c.get("data", {})), None)
    f.check(config is not None, "the kms ConfigMap")
    if config:
        for key in ("KMS_AUDIT_STREAM_REPLICAS", "KMS_GATEWAY_AUDIT_STREAM_REPLICAS"):
            f.check(config["data"].get(key) == "3", f"{key} is 3")

    # Every workload has a PodDisruptionBudget; the gateway an HPA.
    pdb_selectors = [p["spec"]["selector"]["matchLabels"] for p in by_kind.get("PodDisruptionBudget", {}).values()]
    for wname, w in workloads.items():
        labels = w["spec"]["template"]["metadata"]["labels"]
        f.check(any(all(labels.get(k) == v for k, v in s.items()) for s in pdb_selectors), f"{wname}: a PodDisruptionBudget")
    hpas = list(by_kind.get("HorizontalPodAutoscaler", {}).values())
    f.check(any(h["spec"]["scaleTargetRef"]["kind"] == "Deployment" and component(h) == "gateway" for h in hpas),
            "an HPA scales the gateway")

    # NetworkPolicies: deny by default; only the gateway takes traffic, on its API port;
    # the services and the gateway leave only for NATS (and DNS).
    policies = list(by_kind.get("NetworkPolicy", {}).values())
    deny = [p for p in policies if not p["spec"].get("ingress") and not p["spec"].get("egress")
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}]
    f.check(bool(deny), "a default-deny NetworkPolicy")
    # With traces exported, the gateway's and the services' policies also let them reach
    # the collector, on the port of the endpoint they are given.
    endpoints = {env_of(c)["OTEL_EXPORTER_OTLP_ENDPOINT"].get("value")
                 for w in workloads.values() if component(w) in SERVICES
                 for c in w["spec"]["template"]["spec"]["containers"]
                 if "OTEL_EXPORTER_OTLP_ENDPOINT" in env_of(c)}
    f.check(len(endpoints) <= 1, f"one OTLP endpoint for every service ({endpoints})")
    otlp_port = otlp_endpoint_port(next(iter(endpoints))) if endpoints else None
    exporters = [p for p in policies if p["metadata"]["name"].endswith(("-gateway", "-services"))]
    for p in policies:
        name = p["metadata"]["name"]
        for rule in p["spec"].get("ingress", []):
            if "from" not in rule:
                f.check(component(p) == "gateway" and [x["port"] for x in rule.get("ports", [])] == [4566],
                        f"{name}: only the gateway's API port is open to all")
        allowed = {4222, 6222, 53} | ({otlp_port} if otlp_port and p in exporters else set())
        for rule in p["spec"].get("egress", []):
            ports = {x["port"] for x in rule.get("ports", [])}
            f.check(ports <= allowed, f"{name}: egress only to NATS, DNS and the OTLP collector ({ports})")
    if otlp_port:
        f.check(len(exporters) == 2, "NetworkPolicies for the gateway and the services")
        for p in exporters:
            f.check(any([x["port"] for x in rule.get("ports", [])] == [otlp_port] for rule in p["spec"].get("egress", [])),
                    f"{p['metadata']['name']}: egress to the OTLP collector on port {otlp_port}")
    services_policy = [p for p in policies if p["metadata"]["name"].endswith("-services")]
    f.check(bool(services_policy), "a NetworkPolicy for the services")
    for rule in (services_policy[0]["spec"].get("ingress", []) if services_policy else []):
        f.check([x["port"] for x in rule.get("ports", [])] == [8081],
                "nothing reaches the services but a metrics scrape of their health port")

    # Alerting rules: exactly deploy/prometheus/kms-rules.yaml (which promtool checks
    # and tests), with an alert for each thing the chart promises to watch.
    rules_source = yaml.safe_load((ROOT / "deploy/prometheus/kms-rules.yaml").read_text())
    for name, rule in by_kind.get("PrometheusRule", {}).items():
        f.check(rule["spec"] == rules_source, f"PrometheusRule/{name}: the rules of deploy/prometheus/kms-rules.yaml")
        alerts = {r.get("alert") for g in rule["spec"].get("groups", []) for r in g.get("rules", [])}
        for alert in ("KmsDecryptFailureSpike", "KmsKeyPendingDeletionInUse", "KmsAuditLag"):
            f.check(alert in alerts, f"PrometheusRule/{name}: alert {alert}")

    # Secrets referenced are provided (dev) or listed (prod).
    referenced = set()
    for w in workloads.values():
        pod = w["spec"]["template"]["spec"]
        for v in pod.get("volumes", []):
            if "secret" in v:
                referenced.add(v["secret"]["secretName"])
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
    if secrets_provided:
        for name in sorted(referenced):
            f.check(name in by_kind.get("Secret", {}), f"secret {name} is provided")
    # A Secret that is among the manifests has every key the pods take from it.
    for w in workloads.values():
        for c in w["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                secret = by_kind.get("Secret", {}).get(ref["name"]) if ref else None
                if secret:
                    keys = set(secret.get("data", {})) | set(secret.get("stringData", {}))
                    f.check(ref["key"] in keys, f"secret {ref['name']} has the key {ref['key']}")
    for line in f:
        print(f"FAIL {line}")
    kinds = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_kind.items()))
    print(f"k8s_check: {len(docs)} objects ({kinds}); secrets referenced: {', '.join(sorted(referenced))}")
    return 1 if f else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
