#!/usr/bin/env bash
# `make dev`: the local control plane, the CRDs, the operator (out of cluster, in the
# background) and the examples; then wait until every sample pool is Ready with its pods
# Running on kwok's fake nodes. Kwok's pods run nothing, so the pod runner
# (hack/pod_runner, docs/dev-cluster.md) starts an agent process per Running pod and a
# front port per pool, against a local Redis and a model endpoint: the one named by
# AGENTPOOL_DEV_MODEL_URL (e.g. a local Ollama or vLLM), else the scripted model server.
# Ends by saying how to talk to the pools, how to look and how to stop.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME="${AGENTPOOL_CLUSTER:-agentpool-dev}"
NAMESPACE="${AGENTPOOL_DEV_NAMESPACE:-default}"
DEV_DIR="$AGENTPOOL_CACHE/dev/$NAME"
VENV_BIN="$REPO_ROOT/.venv/bin"
MODEL_URL="${AGENTPOOL_DEV_MODEL_URL:-}"
MODEL_NAME="${AGENTPOOL_DEV_MODEL_NAME:-}"
MODEL_PORT="${AGENTPOOL_DEV_MODEL_PORT:-18070}"
THINK_SECONDS="${AGENTPOOL_DEV_THINK_SECONDS:-0.5}"
REDIS_PORT="${AGENTPOOL_DEV_REDIS_PORT:-16379}"
RUNNER_STATUS_PORT="${AGENTPOOL_DEV_RUNNER_PORT:-18090}"
SUPPORT_PORT=18081
BILLING_PORT=18082
mkdir -p "$DEV_DIR"
# `python -m hack.pod_runner` and `-m tests.support...` import from the checkout.
cd "$REPO_ROOT"

# stop_pidfile FILE: stop what a previous `make dev` left running (one per dev cluster).
stop_pidfile() {
  local pid
  [[ -f "$1" ]] || return 0
  pid="$(cat "$1")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$1"
}

# wait_http URL SECONDS WHAT PIDFILE LOG
wait_http() {
  for _ in $(seq 1 "$2"); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$4")" 2>/dev/null || { tail -n 30 "$5" >&2; die "$3 exited"; }
    sleep 1
  done
  tail -n 30 "$5" >&2
  die "$3 did not answer on $1 within $2 s"
}

KUBECONFIG_PATH="$("$HACK_DIR/cluster.sh" up "$NAME")"
BIN="$("$HACK_DIR/build-binaries.sh")"
kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

echo ">> installing the CRDs"
kubectl apply --server-side --force-conflicts --field-manager=agentpool-dev -f "$REPO_ROOT/crds" >/dev/null
# Right after a create, kubectl wait may fail on a CRD with no conditions yet: retry.
for i in $(seq 1 30); do
  kubectl wait --for=condition=Established crd/agentpools.agentpool.dev crd/agenttools.agentpool.dev \
    --timeout=60s >/dev/null 2>&1 && break
  ((i < 30)) || die "the CRDs were not Established"
  sleep 1
done

# The chart's token-reviewer ClusterRole (create tokenreviews) and its one binding, whose
# subjects the operator keeps (pools that review projected tokens: billing, which
# customer-support calls as a tool). The operator runs as the admin here, so the chart's
# role for the operator itself is not needed.
"$BIN/helm" template agentpool-dev "$REPO_ROOT/charts/agentpool" --namespace agentpool-system \
  --show-only templates/rbac-token-review.yaml \
  | "$VENV_BIN/python" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d and d["metadata"]["name"] == "agentpool-dev-token-reviewer"]
print(yaml.safe_dump_all(docs))' \
  | kubectl apply --server-side --field-manager=agentpool-dev -f - >/dev/null
# An earlier `make dev` bound billing by hand: the operator's binding does that now.
kubectl delete clusterrolebinding "agentpool-dev-$NAMESPACE-billing-token-review" --ignore-not-found >/dev/null

# The activator (requests for pools at zero, docs/autoscaling.md): EndpointSlices refuse
# loopback addresses, so its slices name a TEST-NET-1 address that the pod runner maps to
# the operator's local port; the activator reaches the pods through the runner's pod
# network.
ACTIVATOR_PORT="${AGENTPOOL_DEV_ACTIVATOR_PORT:-18085}"
ACTIVATOR_ADDRESS=192.0.2.1
POD_NETWORK_PORT="${AGENTPOOL_DEV_POD_NETWORK_PORT:-18091}"

# One operator per dev cluster: a previous `make dev` leaves it running; restart it so it
# runs this checkout's code.
stop_pidfile "$DEV_DIR/operator.pid"
echo ">> starting the operator (log: $DEV_DIR/operator.log)"
KUBECONFIG="$KUBECONFIG_PATH" \
AGENTPOOL_AGENT_IMAGE="${AGENTPOOL_AGENT_IMAGE:-ghcr.io/agentpool/agent:dev}" \
AGENTPOOL_OPERATOR_NAMESPACE=agentpool-system \
AGENTPOOL_TOKEN_REVIEWER_BINDING=agentpool-dev-token-reviewer \
AGENTPOOL_ACTIVATOR_ADDRESS="$ACTIVATOR_ADDRESS" \
AGENTPOOL_ACTIVATOR_POD_PROXY="http://127.0.0.1:$POD_NETWORK_PORT" \
  nohup "$VENV_BIN/agentpool-operator" --standalone --metrics-port=19090 --health-port=18080 \
  --activator-port="$ACTIVATOR_PORT" \
  --log-format=json >"$DEV_DIR/operator.log" 2>&1 &
echo $! >"$DEV_DIR/operator.pid"
for _ in $(seq 1 60); do
  curl -fsS http://127.0.0.1:18080/healthz >/dev/null 2>&1 && break
  kill -0 "$(cat "$DEV_DIR/operator.pid")" 2>/dev/null || { tail -n 30 "$DEV_DIR/operator.log" >&2; die "the operator exited"; }
  sleep 1
done

# The model the sample pools call: the user's, or the scripted server (no LLM needed).
stop_pidfile "$DEV_DIR/model.pid"
if [[ -n "$MODEL_URL" ]]; then
  MODEL_SAID="your model endpoint $MODEL_URL${MODEL_NAME:+ (model $MODEL_NAME)} (AGENTPOOL_DEV_MODEL_URL)"
else
  MODEL_URL="http://127.0.0.1:$MODEL_PORT/v1"
  MODEL_SAID="the scripted model server on $MODEL_URL (no LLM: it echoes; think time ${THINK_SECONDS}s; set AGENTPOOL_DEV_MODEL_URL for a real one)"
  echo ">> starting the scripted model server on $MODEL_URL (log: $DEV_DIR/model.log)"
  nohup "$VENV_BIN/python" -m tests.support.scripted_model --port="$MODEL_PORT" \
    --think-seconds="$THINK_SECONDS" >"$DEV_DIR/model.log" 2>&1 &
  echo $! >"$DEV_DIR/model.pid"
  wait_http "http://127.0.0.1:$MODEL_PORT/docs" 30 "the scripted model server" "$DEV_DIR/model.pid" "$DEV_DIR/model.log"
fi

# The Redis the examples name (agentpool-redis.agentpool-system.svc), on this machine.
stop_pidfile "$DEV_DIR/redis.pid"
REDIS_BIN="$("$HACK_DIR/ensure-redis.sh")"
"$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --dir "$DEV_DIR" --pidfile "$DEV_DIR/redis.pid" --logfile "$DEV_DIR/redis.log" >/dev/null
for _ in $(seq 1 50); do [[ -s "$DEV_DIR/redis.pid" ]] && break; sleep 0.1; done

echo ">> applying examples/ to namespace $NAMESPACE (model: $MODEL_URL)"
# The pools' spec.model names the endpoint: point it at the dev model (and name the model
# when AGENTPOOL_DEV_MODEL_NAME says which; fallbacks name models it may not have).
# Their Redis too: the operator runs out of cluster and reads each pool's Redis (load,
# wake requests) at the URL the pool names, which must resolve here as well as in the pods.
"$VENV_BIN/python" - "$REPO_ROOT/examples" "$MODEL_URL" "$MODEL_NAME" "$REDIS_PORT" <<'PY' >"$DEV_DIR/examples.yaml"
import pathlib, sys, yaml
folder, url, name, redis_port = sys.argv[1:]
redis_service = "agentpool-redis.agentpool-system.svc:6379"
docs = []
for path in sorted(pathlib.Path(folder).glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "AgentPool":
            model = doc["spec"]["model"]
            model["baseUrl"] = url
            if name:
                model["name"] = name
                model.pop("fallbacks", None)
            redis = (doc["spec"].get("memory") or {}).get("redis") or {}
            if redis_service in redis.get("url", ""):
                redis["url"] = redis["url"].replace(redis_service, f"127.0.0.1:{redis_port}")
        if doc:
            docs.append(doc)
print(yaml.safe_dump_all(docs, sort_keys=False))
PY
kubectl -n "$NAMESPACE" apply --server-side --force-conflicts --field-manager=agentpool-dev -f "$DEV_DIR/examples.yaml" >/dev/null
echo ">> waiting for every pool to be Ready"
kubectl -n "$NAMESPACE" wait --for=condition=Ready agentpools --all --timeout=180s >/dev/null || {
  kubectl -n "$NAMESPACE" get agentpools -o wide >&2
  die "the pools did not become Ready; see $DEV_DIR/operator.log"
}

# The kubelet's and kube-proxy's parts: a process per Running agent pod, a port per pool.
# AGENTPOOL_DEV_POD_RUNNER_IMAGE=1 (or `make dev POD_RUNNER_IMAGE=1`): each pod's agent
# container runs in the agent image instead (buildah run; built first when it changed),
# as users deploy it; a value other than 1 names the image to run.
RUNNER_MODE=()
POD_IMAGE="${AGENTPOOL_DEV_POD_RUNNER_IMAGE:-${POD_RUNNER_IMAGE:-}}"
if [[ -n "$POD_IMAGE" && "$POD_IMAGE" != 0 ]]; then
  if [[ "$POD_IMAGE" == 1 ]]; then
    echo ">> building the agent image when it changed (log: $DEV_DIR/images.log)"
    POD_IMAGE="$(AGENTPOOL_IMAGE_BUILDER=buildah "$REPO_ROOT/hack/build-images.sh" agent 2>"$DEV_DIR/images.log" | awk '$1 == "agent" {print $2}')"
    [[ -n "$POD_IMAGE" ]] || die "the agent image did not build; see $DEV_DIR/images.log"
  fi
  RUNNER_MODE=(--image="$POD_IMAGE")
  [[ -z "${AGENTPOOL_DEV_FORK_SERVER:-}" ]] || echo ">> image mode: AGENTPOOL_DEV_FORK_SERVER ignored"
elif [[ -n "${AGENTPOOL_DEV_FORK_SERVER:-}" ]]; then
  RUNNER_MODE=(--fork-server)
fi
stop_pidfile "$DEV_DIR/pod-runner.pid"
echo ">> starting the pod runner (log: $DEV_DIR/pod-runner.log)"
nohup "$VENV_BIN/python" -m hack.pod_runner --kubeconfig="$KUBECONFIG_PATH" \
  --namespace="$NAMESPACE" --workdir="$DEV_DIR/pods" --status-port="$RUNNER_STATUS_PORT" \
  --status-file="$DEV_DIR/pods.json" \
  --front="$NAMESPACE/customer-support=$SUPPORT_PORT" --front="$NAMESPACE/billing=$BILLING_PORT" \
  --alias="agentpool-redis.agentpool-system.svc:6379=127.0.0.1:$REDIS_PORT" \
  --alias="$ACTIVATOR_ADDRESS:$ACTIVATOR_PORT=127.0.0.1:$ACTIVATOR_PORT" \
  --pod-network-port="$POD_NETWORK_PORT" \
  "${RUNNER_MODE[@]}" \
  >"$DEV_DIR/pod-runner.log" 2>&1 &
echo $! >"$DEV_DIR/pod-runner.pid"
wait_http "http://127.0.0.1:$RUNNER_STATUS_PORT/healthz" 120 "the pod runner" "$DEV_DIR/pod-runner.pid" "$DEV_DIR/pod-runner.log"
echo ">> waiting for every Running pod's process to answer /readyz"
serving() {
  local running status
  running="$(kubectl -n "$NAMESPACE" get pods -l app.kubernetes.io/managed-by=agentpool-operator \
    --field-selector=status.phase=Running -o name | wc -l)"
  status="$(curl -fs "http://127.0.0.1:$RUNNER_STATUS_PORT/status")" || return 1
  "$VENV_BIN/python" -c '
import json, sys
status = json.load(sys.stdin)
ready = sum(p["ready"] and not p["draining"] for pool in status["pools"] for p in pool["pods"])
pods = [p for pool in status["pools"] for p in pool["pods"]]
failed = [p["pod"] + ": " + p["error"] for p in pods if p["error"]]
failed += [p["pod"] + " keeps exiting; its log: " + p["log"] for p in pods if p["restarts"] >= 2]
if failed:
    sys.exit("\n".join(failed))
sys.exit(0 if ready >= int(sys.argv[1]) else 1)' "$running" <<<"$status"
}
for i in $(seq 1 180); do
  problem="$(serving 2>&1)" && break
  [[ -z "$problem" ]] || die "$problem"
  kill -0 "$(cat "$DEV_DIR/pod-runner.pid")" 2>/dev/null || { tail -n 30 "$DEV_DIR/pod-runner.log" >&2; die "the pod runner exited"; }
  ((i < 180)) || die "the agent processes did not become ready; see $DEV_DIR/pod-runner.log and $DEV_DIR/pods/logs/"
  sleep 1
done

kubectl -n "$NAMESPACE" get agentpools
echo
kubectl -n "$NAMESPACE" get pods -l app.kubernetes.io/managed-by=agentpool-operator -o wide
TOKEN="$(kubectl -n "$NAMESPACE" get secret customer-support-callers -o jsonpath='{.data.tokens\.yaml}' \
  | base64 -d | "$VENV_BIN/python" -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["tokens"][0]["token"])')"

cat <<MSG

The local cluster "$NAME" runs ($KUBE_VERSION: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok fake nodes) with the operator reconciling
the sample pools. Kwok's pods run nothing: the pod runner runs one agent process per
Running pod on this machine and a front port per pool (docs/dev-cluster.md).
The model: $MODEL_SAID.
Redis: 127.0.0.1:$REDIS_PORT (what the examples call agentpool-redis.agentpool-system.svc;
make dev gives the pools this address, which the operator reaches too).

Talk to the customer-support pool (front port $SUPPORT_PORT; billing: $BILLING_PORT):

  curl -s localhost:$SUPPORT_PORT/v1/chat -H 'Authorization: Bearer $TOKEN' \\
    -H 'Content-Type: application/json' -d '{"message": "Hello!", "tenant": "alice"}'

  export KUBECONFIG=$KUBECONFIG_PATH
  export PATH=$BIN:\$PATH
  kubectl get agentpools                       # kubectl get ap -o wide for more columns
  kubectl describe agentpool customer-support  # conditions and Events
  kubectl scale agentpool customer-support --replicas=3   # a third process starts
  curl -s localhost:$RUNNER_STATUS_PORT/status  # the pod runner: fronts, processes, counts
  curl -s localhost:19090/metrics | grep agentpool_operator_
  tail -f $DEV_DIR/operator.log $DEV_DIR/pod-runner.log   # agents: $DEV_DIR/pods/logs/

Stop it with: make dev-down
MSG
