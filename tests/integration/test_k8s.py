# SPDX-License-Identifier: MIT
"""The Kubernetes manifests (docker/k8s.yaml, docker/k8s/*.yaml and the YAML objects in
docker/README.md), checked offline.

Every object is parsed strictly against Kubernetes' own models from Debian's python3-kubernetes:
the model class comes from apiVersion and kind, and the object is walked against its
openapi_types and attribute_map. An unknown field, a wrong type (a string where an int is due,
a list for an object; int-or-string fields take both; quantities must be quoted strings, which
is stricter than the API server) or a missing required field (the models refuse None for those
when built) is an error. The Security Profiles Operator's SeccompProfile is not in the client:
it is checked against the fields of its documented schema, encoded below.

Then the rules that make the manifests hang together: the grace period covers the preStop pause
and coil's drain; every probe's path answers 200 from the real demo binary started with the
manifest's variables, on the container's port; the worst-case memory (the arithmetic in
docker/k8s.yaml, recomputed from the engine's sources and the manifest's values) fits the limit;
COIL_WORKERS is the CPU limit; the autoscaler, budget, Service and spread constraints select the
Deployment's pods; the seccomp profile the pods name is the file the DaemonSet writes, from the
ConfigMap that docker/README.md creates from docker/seccomp.json, and the operator's
SeccompProfile has the same rules; images are pinned by digest. Skipped (77) only when the
kubernetes module cannot be imported: apt-get install python3-kubernetes.
"""
import copy
import glob
import json
import math
import os
import re
import sys

DEBIAN_PACKAGES = "/usr/lib/python3/dist-packages"
try:
    import kubernetes.client as kc
    import yaml
except ImportError:
    # A python3 of its own ahead in PATH (pyenv, a venv) does not see Debian's packages: the
    # models are pure Python, so Debian's directory serves any Python 3.11.
    sys.path.append(DEBIAN_PACKAGES)
    try:
        import kubernetes.client as kc
        import yaml
    except ImportError as e:
        print("test_k8s: skipping, cannot import %s (apt-get install python3-kubernetes)"
              % e.name, file=sys.stderr)
        sys.exit(77)

from coil_harness import CoilTestCase, get, main

SRC = os.environ.get("COIL_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MANIFESTS = [os.path.join(SRC, "docker", "k8s.yaml")] + sorted(
    glob.glob(os.path.join(SRC, "docker", "k8s", "*.yaml")))
README = os.path.join(SRC, "docker", "README.md")
KUBELET_SECCOMP = "/var/lib/kubelet/seccomp/"
# registry/name@sha256:digest, no tag
DIGEST_RE = r"^[a-z0-9.-]+(:\d+)?/[a-z0-9/._-]+@sha256:[0-9a-f]{64}$"
KiB, MiB = 1024, 1024 * 1024

# autoscaling/v2 is autoscaling/v2beta2 promoted unchanged (KEP-2702, Kubernetes 1.23); Debian
# 12's client (22.6, Kubernetes 1.22) has only the v2beta2 models.
VERSION_MODELS = {"autoscaling/v2": "V2beta2"}

# The SeccompProfile fields of security-profiles-operator.x-k8s.io/v1beta1: name: (type,
# required). A type is a Python type, a nested field table, a [type] list, or a model name.
SPO_ARG = {"index": (int, True), "op": (str, True), "value": (int, False),
           "valueTwo": (int, False)}
SPO_SYSCALL = {"names": ([str], True), "action": (str, True), "errnoRet": (int, False),
               "args": ([SPO_ARG], False)}
SPO_SPEC = {"defaultAction": (str, True), "architectures": ([str], False),
            "syscalls": ([SPO_SYSCALL], False), "flags": ([str], False),
            "baseProfileName": (str, False), "disabled": (bool, False),
            "listenerPath": (str, False), "listenerMetadata": (str, False)}
CRDS = {("security-profiles-operator.x-k8s.io/v1beta1", "SeccompProfile"):
        {"apiVersion": (str, True), "kind": (str, True), "metadata": ("V1ObjectMeta", True),
         "spec": (SPO_SPEC, True)}}

MODEL_CONFIG = kc.Configuration()
MODEL_CONFIG.client_side_validation = True


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


SCALARS = {"str": lambda v: isinstance(v, str), "int": is_int,
           "bool": lambda v: isinstance(v, bool),
           "float": lambda v: is_int(v) or isinstance(v, float),
           "object": lambda v: is_int(v) or isinstance(v, str),  # IntOrString
           "datetime": lambda v: isinstance(v, str), "date": lambda v: isinstance(v, str)}


def check_type(value, typ, path, errors):
    """Appends to errors what is wrong with value as an openapi type of the client."""
    if typ.startswith("list["):
        if not isinstance(value, list):
            errors.append("%s: a list is due (%s), not %r" % (path, typ, value))
            return
        for i, v in enumerate(value):
            check_type(v, typ[5:-1], "%s[%d]" % (path, i), errors)
    elif typ.startswith("dict("):
        if not isinstance(value, dict):
            errors.append("%s: a map is due (%s), not %r" % (path, typ, value))
            return
        inner = typ[typ.index(",") + 1:-1].strip()
        for k, v in value.items():
            if not isinstance(k, str):
                errors.append("%s: key %r is not a string" % (path, k))
            check_type(v, inner, "%s.%s" % (path, k), errors)
    elif typ in SCALARS:
        if not SCALARS[typ](value):
            errors.append("%s: %s is due, not %r" % (path, typ, value))
    else:
        check_model(value, getattr(kc, typ), path, errors)


def check_model(value, cls, path, errors):
    if not isinstance(value, dict):
        errors.append("%s: an object (%s) is due, not %r" % (path, cls.__name__, value))
        return
    attrs = {field: attr for attr, field in cls.attribute_map.items()}
    for field, v in value.items():
        if field not in attrs:
            errors.append("%s.%s: unknown field of %s" % (path, field, cls.__name__))
        else:
            check_type(v, cls.openapi_types[attrs[field]], "%s.%s" % (path, field), errors)
    try:  # the setters raise on a required field left None (and on some enumerations)
        cls(local_vars_configuration=MODEL_CONFIG,
            **{attrs[f]: v for f, v in value.items() if f in attrs})
    except ValueError as e:
        errors.append("%s: %s: %s" % (path, cls.__name__, e))


def check_fields(value, table, path, errors):
    """The same walk over a field table (CRDs)."""
    if isinstance(table, str):
        check_model(value, getattr(kc, table), path, errors)
    elif isinstance(table, list):
        if not isinstance(value, list):
            errors.append("%s: a list is due, not %r" % (path, value))
            return
        for i, v in enumerate(value):
            check_fields(v, table[0], "%s[%d]" % (path, i), errors)
    elif isinstance(table, dict):
        if not isinstance(value, dict):
            errors.append("%s: an object is due, not %r" % (path, value))
            return
        for field, v in value.items():
            if field not in table:
                errors.append("%s.%s: unknown field" % (path, field))
            else:
                check_fields(v, table[field][0], "%s.%s" % (path, field), errors)
        for field, (_, required) in table.items():
            if required and field not in value:
                errors.append("%s.%s: required field missing" % (path, field))
    elif not (is_int(value) if table is int else isinstance(value, table)):
        errors.append("%s: %s is due, not %r" % (path, table.__name__, value))


def validate(obj, where="object"):
    """Errors of one manifest object; [] when it is valid."""
    if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) \
            or not isinstance(obj.get("kind"), str):
        return ["%s: apiVersion and kind are due" % where]
    api, kind = obj["apiVersion"], obj["kind"]
    path = "%s %s/%s" % (where, kind, (obj.get("metadata") or {}).get("name"))
    errors = []
    if (api, kind) in CRDS:
        check_fields(obj, CRDS[(api, kind)], path, errors)
        return errors
    version = api.rpartition("/")[2]
    cls = getattr(kc, VERSION_MODELS.get(api, version[:1].upper() + version[1:]) + kind, None)
    if cls is None:
        return ["%s: no model for apiVersion %s kind %s" % (path, api, kind)]
    check_model(obj, cls, path, errors)
    return errors


def load_objects():
    """(file, object) for every object of every manifest, and the README's YAML blocks that
    are Kubernetes objects (apiVersion and kind)."""
    out = []
    for path in MANIFESTS:
        with open(path) as f:
            out += [(os.path.relpath(path, SRC), d) for d in yaml.safe_load_all(f) if d]
    with open(README) as f:
        for block in re.findall(r"^```yaml\n(.*?)^```", f.read(), re.S | re.M):
            d = yaml.safe_load(block)
            if isinstance(d, dict) and "apiVersion" in d and "kind" in d:
                out.append(("docker/README.md", d))
    return out


def parse_size(s):
    """config.c's BYTES: a number with an optional K, M or G (binary) suffix."""
    m = re.fullmatch(r"(\d+)([KkMmGg]?)", s)
    return int(m.group(1)) * {"": 1, "k": KiB, "m": MiB, "g": 1024 * MiB}[m.group(2).lower()]


def parse_seconds(s):
    """config.c's DUR, in seconds: 500ms, 10s, 2m, 1h, or seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", s)
    return int(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def parse_quantity(s):
    """A Kubernetes quantity as a number (cores, bytes): 2, 500m, 2Gi, 512M."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?", str(s))
    mult = {None: 1, "m": 0.001, "Ki": KiB, "Mi": MiB, "Gi": 1024 * MiB, "Ti": 1024 ** 4,
            "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)]
    return float(m.group(1)) * mult


def engine_value(relpath, pattern):
    """An integer the engine's source states: pattern's group 1, as "16384", "256 * 1024" or
    "1u << 20"."""
    with open(os.path.join(SRC, relpath)) as f:
        m = re.search(pattern, f.read())
    if not m:
        raise AssertionError("%s no longer matches %r: redo the arithmetic in docker/k8s.yaml"
                             % (relpath, pattern))
    expr = m.group(1).replace("u", "")
    if "<<" in expr:
        a, b = expr.split("<<")
        return int(a) << int(b)
    return math.prod(int(x) for x in expr.split("*"))


def grown(hdr, need, unit):
    """coil__buf_grow: unit doubled until header and need fit."""
    total = unit
    while total < hdr + need:
        total *= 2
    return total


def memory_budget(env):
    """The arithmetic of docker/k8s.yaml's header, from the engine's sources and the manifest's
    values: (per connection, per worker, per process) in bytes."""
    d = lambda field: engine_value("engine/config.c", r"c->%s = ([\d *u]+);" % field)
    recv_size, recv_count = d("recv_buf_size"), d("recv_buf_count")
    io_buf, pending = d("io_buf_size"), d("max_pending_out")
    max_headers = d("lim.max_headers")
    chunk_slack = engine_value("engine/http1.c",
                               r"max_header_bytes \+ w->app->body_cap \+ \((\d+u << \d+)\)")
    hold = engine_value("engine/http1.c", r"cfg\.io_buf_size \* (\d+);") * io_buf
    pool_cached = engine_value("engine/tcp.c", r"coil__bufpool_init\([^;]*io_buf_size, (\d+)\)")
    ring_entries = engine_value("engine/loop.c", r"#define RING_ENTRIES (\d+)u")
    cq_mult = engine_value("engine/loop.c", r"cq_entries = RING_ENTRIES \* (\d+);")
    worker_arena = engine_value("engine/request.c", r"coil__arena_init\(&w->arena, &w->wa, "
                                                    r"([\d *]+)\)")
    conn_max = engine_value("engine/internal.h", r"sizeof\(struct coil_conn\) <= (\d+)")
    head, body = parse_size(env["COIL_MAX_HEADER_BYTES"]), parse_size(env["COIL_MAX_BODY_BYTES"])
    # offsetof(data) of struct coil__partial and coil__obuf; sizeof struct coil__rq,
    # coil__http_header, coil__match and coil__peer (x86-64, measured).
    partial_hdr, obuf_hdr, rq, hdr_entry, match, peer = 128, 32, 640, 32, 112, 56
    held_input = grown(partial_hdr, head + body + chunk_slack + recv_size + hold, io_buf)
    output = 2 * grown(obuf_hdr, pending + body + io_buf, io_buf)
    deferred = worker_arena + head + body + 2048 + max_headers * hdr_entry + match
    slot = -(-conn_max // 16) * 16  # the slab rounds objects up to 16 bytes
    book = -(-(slot + 8 + peer + rq) // KiB) * KiB
    kernel = 131072 + 16384  # tcp_rmem[1] + tcp_wmem[1], Linux's defaults
    per_conn = held_input + output + deferred + book + kernel
    ring = ring_entries * 64 + ring_entries * cq_mult * 16 + ring_entries * 4
    per_worker = (recv_count * recv_size + recv_count * 16 + ring + pool_cached * io_buf
                  + worker_arena + parse_size(env["COIL_STATIC_CACHE"]) + MiB)
    return per_conn, per_worker, 16 * MiB


class Objects:
    """The objects of the manifests and the README; one() finds a manifest's by kind."""

    def __init__(self):
        self.all = load_objects()

    def one(self, kind, name=None):
        found = [o for where, o in self.all if where != "docker/README.md" and o["kind"] == kind
                 and (name is None or o["metadata"]["name"] == name)]
        if len(found) != 1:
            raise AssertionError("expected one %s %s, found %d" % (kind, name or "", len(found)))
        return found[0]


def coil_container(dep):
    return next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "coil")


def literal_env(container):
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def workers_of(container):
    """COIL_WORKERS as the kubelet sets it: the resource, divided, rounded up."""
    ref = next(e["valueFrom"]["resourceFieldRef"] for e in container["env"]
               if e["name"] == "COIL_WORKERS")
    kind, res = ref["resource"].split(".")
    value = parse_quantity(container["resources"][kind][res])
    return math.ceil(value / parse_quantity(ref.get("divisor", "1")))


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class Validator(CoilTestCase):
    """The walk itself: what it must accept and reject."""

    def setUp(self):
        self.objs = Objects()
        self.dep = self.objs.one("Deployment", "coil")

    def mutated(self, edit, obj=None):
        o = copy.deepcopy(obj or self.dep)
        edit(o)
        return validate(o)

    def test_every_object_is_valid(self):
        kinds = set()
        for where, obj in self.objs.all:
            self.assertEqual(validate(obj, where), [])
            kinds.add(obj["kind"])
        self.assertLessEqual({"Deployment", "Service", "PodDisruptionBudget",
                              "HorizontalPodAutoscaler", "DaemonSet", "SeccompProfile"}, kinds)
        print("\n%d objects valid: %s" % (len(self.objs.all),
                                          ", ".join(o["kind"] for _, o in self.objs.all)))

    def test_unknown_field_rejected(self):
        def typo(o):
            coil_container(o)["livenesProbe"] = coil_container(o).pop("livenessProbe")
        errs = self.mutated(typo)
        self.assertTrue(any("livenesProbe: unknown field of V1Container" in e for e in errs), errs)
        errs = self.mutated(lambda o: o["spec"].update(replica=3))
        self.assertTrue(any("spec.replica: unknown field" in e for e in errs), errs)

    def test_type_errors_rejected(self):
        def port_as_string(o):
            coil_container(o)["ports"][0]["containerPort"] = "8080"
        errs = self.mutated(port_as_string)
        self.assertTrue(any("containerPort: int is due, not '8080'" in e for e in errs), errs)
        errs = self.mutated(lambda o: o["spec"]["template"]["spec"].update(
            containers=coil_container(o)))
        self.assertTrue(any("containers: a list is due" in e for e in errs), errs)
        errs = self.mutated(lambda o: o["spec"]["template"]["spec"].update(
            automountServiceAccountToken=0))
        self.assertTrue(any("automountServiceAccountToken: bool is due" in e for e in errs), errs)
        errs = self.mutated(lambda o: o["metadata"].update(labels=["app"]))
        self.assertTrue(any("labels: a map is due" in e for e in errs), errs)

    def test_int_or_string_takes_both(self):
        for v in (1, "25%"):
            self.assertEqual(self.mutated(
                lambda o: o["spec"]["strategy"]["rollingUpdate"].update(maxSurge=v)), [])
        errs = self.mutated(lambda o: o["spec"]["strategy"]["rollingUpdate"].update(maxSurge=[1]))
        self.assertTrue(any("maxSurge: object is due" in e for e in errs), errs)

    def test_missing_required_rejected(self):
        errs = self.mutated(lambda o: coil_container(o).pop("name"))
        self.assertTrue(any("V1Container" in e and "`name`, must not be `None`" in e
                            for e in errs), errs)
        errs = self.mutated(lambda o: o["spec"].pop("selector"))
        self.assertTrue(any("`selector`, must not be `None`" in e for e in errs), errs)
        hpa = self.objs.one("HorizontalPodAutoscaler", "coil")
        errs = self.mutated(lambda o: o["spec"].pop("maxReplicas"), hpa)
        self.assertTrue(any("`max_replicas`, must not be `None`" in e for e in errs), errs)

    def test_unknown_kind_rejected(self):
        errs = self.mutated(lambda o: o.update(apiVersion="apps/v9"))
        self.assertTrue(any("no model for apiVersion apps/v9" in e for e in errs), errs)

    def test_seccompprofile_schema(self):
        spo = self.objs.one("SeccompProfile", "coil")
        errs = self.mutated(lambda o: o["spec"].update(defaultErrnoRet=1), spo)
        self.assertTrue(any("spec.defaultErrnoRet: unknown field" in e for e in errs), errs)
        errs = self.mutated(lambda o: o["spec"].pop("defaultAction"), spo)
        self.assertTrue(any("spec.defaultAction: required field missing" in e for e in errs), errs)
        errs = self.mutated(lambda o: o["spec"]["syscalls"][0].update(names="read"), spo)
        self.assertTrue(any("syscalls[0].names: a list is due" in e for e in errs), errs)
        errs = self.mutated(lambda o: o["spec"]["syscalls"][-1].update(errnoRet="38"), spo)
        self.assertTrue(any("errnoRet: int is due" in e for e in errs), errs)


class Consistency(CoilTestCase):
    """The rules that tie the objects to each other and to coil."""

    def setUp(self):
        self.objs = Objects()
        self.dep = self.objs.one("Deployment", "coil")
        self.pod = self.dep["spec"]["template"]["spec"]
        self.coil = coil_container(self.dep)
        self.env = literal_env(self.coil)

    def test_grace_period_covers_prestop_and_drain(self):
        cmd = self.coil["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(cmd[:1], ["/bin/sleep"])
        pause, drain = int(cmd[1]), parse_seconds(self.env["COIL_DRAIN_TIMEOUT"])
        grace = self.pod["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(grace, pause + drain + 5,
                                "grace %ds < preStop %ds + drain %ds + 5s" % (grace, pause, drain))
        self.assertGreaterEqual(pause, 5, "endpoint removal needs a few seconds to spread")

    def test_probes_answer_on_the_demo(self):
        port = self.coil["ports"][0]
        env = dict(self.env, COIL_WORKERS=str(workers_of(self.coil)))
        del env["COIL_PORT"]  # the harness picks a free port
        srv = self.start(env=env)
        self.assertEqual(srv.workers, workers_of(self.coil))
        probes = [self.coil[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")]
        for probe in probes:
            self.assertIn(probe["httpGet"]["port"], (port["name"], port["containerPort"]))
            resp = get(srv.port, probe["httpGet"]["path"])
            self.assertEqual(resp.status, 200, (probe["httpGet"]["path"], resp.body))
        self.assertEqual(int(self.env["COIL_PORT"]), port["containerPort"])
        # The metric the request-rate example in docker/README.md scales on.
        with open(README) as f:
            metric = re.search(r"seriesQuery: '(\w+)\{", f.read()).group(1)
        self.assertIn(b"\n%s{" % metric.encode(), get(srv.port, "/metrics").body)

    def test_probes_tolerate_a_slow_worker(self):
        for k in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertGreaterEqual(self.coil[k]["timeoutSeconds"], 1, k)
        ready, live = self.coil["readinessProbe"], self.coil["livenessProbe"]
        self.assertGreaterEqual(ready["failureThreshold"], 3)
        # Liveness gives up only well after readiness has taken the pod out of the Service.
        self.assertGreater(live["periodSeconds"] * live["failureThreshold"],
                           2 * ready["periodSeconds"] * ready["failureThreshold"])

    def test_memory_worst_case_fits_the_limit(self):
        workers = workers_of(self.coil)
        conns = int(self.env["COIL_MAX_CONNS"])
        per_conn, per_worker, process = memory_budget(self.env)
        limit = parse_quantity(self.coil["resources"]["limits"]["memory"])
        total = process + workers * (per_worker + conns * per_conn)
        bound = (limit * 7 / 8 - process - workers * per_worker) // (workers * per_conn)
        print("\nper connection %.1f KiB, per worker %.2f MiB, process %d MiB; %d workers x %d "
              "conns: %.0f MiB of %d MiB (7/8 of the limit: %d MiB); bound %d conns per worker"
              % (per_conn / KiB, per_worker / MiB, process // MiB, workers, conns, total / MiB,
                 limit // MiB, limit * 7 / 8 // MiB, bound))
        self.assertLessEqual(total, limit * 7 / 8)
        # The comments and docker/README.md state the same figures.
        with open(MANIFESTS[0]) as f:
            text = f.read()
        with open(README) as f:
            readme = f.read()
        for figure in ("%.1f KiB" % (per_conn / KiB), "%.2f MiB" % (per_worker / MiB),
                       "= %d " % bound):
            self.assertIn(figure, text)
            self.assertIn(figure, readme)

    def test_workers_equal_the_cpu_limit(self):
        res = self.coil["resources"]
        self.assertEqual(res["requests"], res["limits"], "Guaranteed QoS: requests == limits")
        cpus = parse_quantity(res["limits"]["cpu"])
        self.assertEqual(cpus, int(cpus), "a whole number of CPUs")
        ref = next(e["valueFrom"]["resourceFieldRef"] for e in self.coil["env"]
                   if e["name"] == "COIL_WORKERS")
        self.assertEqual((ref["containerName"], ref["resource"]), ("coil", "limits.cpu"))
        self.assertEqual(workers_of(self.coil), cpus)

    def test_objects_select_the_pods(self):
        labels = self.dep["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selects(self.dep["spec"]["selector"]["matchLabels"], labels))
        svc = self.objs.one("Service", "coil")
        self.assertTrue(selects(svc["spec"]["selector"], labels))
        names = {p["name"] for p in self.coil["ports"]}
        for p in svc["spec"]["ports"]:
            self.assertIn(p["targetPort"], names)
        pdb = self.objs.one("PodDisruptionBudget", "coil")
        self.assertTrue(selects(pdb["spec"]["selector"]["matchLabels"], labels))
        for where, obj in self.objs.all:
            if obj["kind"] != "HorizontalPodAutoscaler":
                continue
            ref = obj["spec"]["scaleTargetRef"]
            self.assertEqual((ref["apiVersion"], ref["kind"], ref["name"]),
                             ("apps/v1", "Deployment", self.dep["metadata"]["name"]), where)
            self.assertGreaterEqual(obj["spec"]["minReplicas"], 2, where)
        spread = {c["topologyKey"]: c for c in self.pod["topologySpreadConstraints"]}
        for c in spread.values():
            self.assertTrue(selects(c["labelSelector"]["matchLabels"], labels))
        self.assertEqual(spread["kubernetes.io/hostname"]["whenUnsatisfiable"], "DoNotSchedule")
        self.assertEqual(spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"],
                         "ScheduleAnyway")

    def test_rollout_and_disruption_keep_capacity(self):
        self.assertNotIn("replicas", self.dep["spec"], "the autoscaler owns the count")
        ru = self.dep["spec"]["strategy"]["rollingUpdate"]
        self.assertEqual((ru["maxUnavailable"], ru["maxSurge"]), (0, 1))
        pdb = self.objs.one("PodDisruptionBudget", "coil")
        hpa = self.objs.one("HorizontalPodAutoscaler", "coil")
        self.assertLess(pdb["spec"]["maxUnavailable"], hpa["spec"]["minReplicas"])
        metric = hpa["spec"]["metrics"][0]
        self.assertEqual((metric["type"], metric["resource"]["name"]), ("Resource", "cpu"))

    def test_security_context(self):
        pod_sc, sc = self.pod["securityContext"], self.coil["securityContext"]
        self.assertTrue(pod_sc["runAsNonRoot"] and sc["runAsNonRoot"])
        self.assertEqual((pod_sc["runAsUser"], sc["runAsUser"]), (10001, 10001))
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertNotIn("add", sc["capabilities"])

    def test_images_pinned_by_digest(self):
        for where, obj in self.objs.all:
            spec = obj.get("spec", {}).get("template", {}).get("spec", {})
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                self.assertRegex(c["image"], DIGEST_RE, "%s: %s" % (where, c["name"]))

    def test_seccomp_profile_is_the_one_installed(self):
        prof = self.pod["securityContext"]["seccompProfile"]
        self.assertEqual(prof["type"], "Localhost")
        ds = self.objs.one("DaemonSet", "coil-seccomp")
        spec = ds["spec"]["template"]["spec"]
        install = spec["initContainers"][0]
        src, dst = install["command"][-2:]
        vols = {v["name"]: v for v in spec["volumes"]}

        def volume_of(path):
            m = next(m for m in install["volumeMounts"]
                     if path.startswith(m["mountPath"].rstrip("/") + "/"))
            return vols[m["name"]], path[len(m["mountPath"].rstrip("/")) + 1:]

        host, rest = volume_of(dst)
        self.assertEqual(os.path.join(host["hostPath"]["path"], rest),
                         KUBELET_SECCOMP + prof["localhostProfile"])
        cm, key = volume_of(src)
        key = next(i["key"] for i in cm["configMap"]["items"] if i["path"] == key)
        create = "kubectl create configmap %s --from-file=%s=docker/seccomp.json" % (
            cm["configMap"]["name"], key)
        with open(README) as f:
            self.assertIn(create, f.read())
        for path in ("k8s.yaml", "k8s/seccomp-installer.yaml"):
            with open(os.path.join(SRC, "docker", path)) as f:
                self.assertIn(create, f.read(), path)

    def test_spo_profile_has_the_same_rules(self):
        with open(os.path.join(SRC, "docker", "seccomp.json")) as f:
            docker = json.load(f)
        spo = self.objs.one("SeccompProfile", "coil")["spec"]

        def rules(syscalls):
            return sorted((n, s["action"], s.get("errnoRet"),
                           json.dumps(s.get("args", []), sort_keys=True))
                          for s in syscalls for n in s["names"])

        self.assertEqual(rules(spo["syscalls"]), rules(docker["syscalls"]))
        self.assertEqual(spo["defaultAction"], docker["defaultAction"])
        self.assertEqual(docker.get("defaultErrnoRet", 1), 1, "the operator cannot set it")
        arches = [a for m in docker["archMap"] for a in [m["architecture"]] + m["subArchitectures"]]
        self.assertEqual(spo["architectures"], arches)
        for s in docker["syscalls"]:  # the conditions the operator's form drops are moot
            inc = s.get("includes", {})
            self.assertLessEqual(set(inc), {"minKernel", "arches"}, s["names"])
            self.assertNotIn("excludes", s)
            if "minKernel" in inc:
                self.assertLessEqual(tuple(map(int, inc["minKernel"].split("."))), (6, 1))


if __name__ == "__main__":
    main()
