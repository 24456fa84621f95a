#!/usr/bin/env bash
# The operator at scale, end to end: a fresh local cluster with enough fake nodes, the
# operator out of cluster, then benchmarks/bench_operator.py for 1, 100 and 500 pools.
#   hack/bench-operator.sh                 # kube-controller-manager's default client QPS
#   AGENTPOOL_BENCH_FAST_KCM=1 hack/bench-operator.sh   # kube-controller-manager QPS raised (1000/2000)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME="agentpool-bench"
SIZES="${AGENTPOOL_BENCH_SIZES:-1,100,500}"
export AGENTPOOL_FAKE_NODES="${AGENTPOOL_FAKE_NODES:-8}"   # 110 pods each: room for 500 pools
# kwokctl's Service range is a /24: 500 pools need 500 Service IPs.
export AGENTPOOL_CLUSTER_EXTRA_ARGS="kube-apiserver=service-cluster-ip-range=10.96.0.0/16"
if [[ -n "${AGENTPOOL_BENCH_FAST_KCM:-}" ]]; then
  AGENTPOOL_CLUSTER_EXTRA_ARGS+=" kube-controller-manager=kube-api-qps=1000 kube-controller-manager=kube-api-burst=2000"
fi
"$HACK_DIR/cluster.sh" down "$NAME" >/dev/null 2>&1 || true
KUBECONFIG_PATH="$("$HACK_DIR/cluster.sh" up "$NAME")"
BIN="$("$HACK_DIR/build-binaries.sh")"
"$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" apply --server-side --force-conflicts \
  --field-manager=agentpool-bench -f "$REPO_ROOT/crds" >/dev/null
"$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" wait --for=condition=Established \
  crd/agentpools.agentpool.dev --timeout=60s >/dev/null

LOG="$AGENTPOOL_CACHE/logs/bench-operator.log"
KUBECONFIG="$KUBECONFIG_PATH" AGENTPOOL_AGENT_IMAGE=registry.local/agent:bench \
  "$REPO_ROOT/.venv/bin/agentpool-operator" --standalone --metrics-port=19191 \
  --health-port=18181 --log-format=json --log-level=warning >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; "$HACK_DIR/cluster.sh" down "$NAME" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 60); do curl -fsS http://127.0.0.1:18181/healthz >/dev/null 2>&1 && break; sleep 1; done

AGENTPOOL_BENCH_KUBECONFIG="$KUBECONFIG_PATH" "$REPO_ROOT/.venv/bin/python" -m benchmarks.bench_operator \
  --operator "$PID" --metrics-url http://127.0.0.1:19191/metrics --sizes "$SIZES" --deadline 300
# The operator's own view (reconcile latency histogram, requests by verb), for the record.
curl -fsS http://127.0.0.1:19191/metrics >"$AGENTPOOL_CACHE/logs/bench-operator-metrics.txt" || true
echo "operator metrics: $AGENTPOOL_CACHE/logs/bench-operator-metrics.txt"
