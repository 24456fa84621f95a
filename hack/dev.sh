#!/usr/bin/env bash
# `make dev`: the local control plane, the CRDs, the operator (out of cluster, in the
# background) and the examples; then wait until every sample pool is Ready with its pods
# Running on kwok's fake nodes, and say how to look and how to stop.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME="${AGENTPOOL_CLUSTER:-agentpool-dev}"
NAMESPACE="${AGENTPOOL_DEV_NAMESPACE:-default}"
DEV_DIR="$AGENTPOOL_CACHE/dev/$NAME"
VENV_BIN="$REPO_ROOT/.venv/bin"
mkdir -p "$DEV_DIR"

KUBECONFIG_PATH="$("$HACK_DIR/cluster.sh" up "$NAME")"
BIN="$("$HACK_DIR/build-binaries.sh")"
kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

echo ">> installing the CRDs"
kubectl apply --server-side --force-conflicts --field-manager=agentpool-dev -f "$REPO_ROOT/crds" >/dev/null
kubectl wait --for=condition=Established crd/agentpools.agentpool.dev crd/agenttools.agentpool.dev --timeout=60s >/dev/null

# One operator per dev cluster: a previous `make dev` leaves it running; restart it so it
# runs this checkout's code.
if [[ -f "$DEV_DIR/operator.pid" ]] && kill -0 "$(cat "$DEV_DIR/operator.pid")" 2>/dev/null; then
  kill "$(cat "$DEV_DIR/operator.pid")" && sleep 1
fi
echo ">> starting the operator (log: $DEV_DIR/operator.log)"
KUBECONFIG="$KUBECONFIG_PATH" \
AGENTPOOL_AGENT_IMAGE="${AGENTPOOL_AGENT_IMAGE:-ghcr.io/agentpool/agent:dev}" \
AGENTPOOL_OPERATOR_NAMESPACE=agentpool-system \
  nohup "$VENV_BIN/agentpool-operator" --standalone --metrics-port=19090 --health-port=18080 \
  --log-format=json >"$DEV_DIR/operator.log" 2>&1 &
echo $! >"$DEV_DIR/operator.pid"
for _ in $(seq 1 60); do
  curl -fsS http://127.0.0.1:18080/healthz >/dev/null 2>&1 && break
  kill -0 "$(cat "$DEV_DIR/operator.pid")" 2>/dev/null || { tail -n 30 "$DEV_DIR/operator.log" >&2; die "the operator exited"; }
  sleep 1
done

echo ">> applying examples/ to namespace $NAMESPACE"
kubectl -n "$NAMESPACE" apply --server-side --field-manager=agentpool-dev -f "$REPO_ROOT/examples" >/dev/null
echo ">> waiting for every pool to be Ready"
kubectl -n "$NAMESPACE" wait --for=condition=Ready agentpools --all --timeout=180s >/dev/null || {
  kubectl -n "$NAMESPACE" get agentpools -o wide >&2
  die "the pools did not become Ready; see $DEV_DIR/operator.log"
}
kubectl -n "$NAMESPACE" get agentpools
echo
kubectl -n "$NAMESPACE" get pods -l app.kubernetes.io/managed-by=agentpool-operator -o wide

cat <<MSG

The local cluster "$NAME" runs ($KUBE_VERSION: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok fake nodes) with the operator reconciling
the sample pools (kwok's pods run no process: they are scheduled and Running, not serving).

  export KUBECONFIG=$KUBECONFIG_PATH
  export PATH=$BIN:\$PATH
  kubectl get agentpools                       # kubectl get ap -o wide for more columns
  kubectl describe agentpool customer-support  # conditions and Events
  kubectl scale agentpool billing --replicas=3
  curl -s localhost:19090/metrics | grep agentpool_operator_
  tail -f $DEV_DIR/operator.log

Stop it with: make dev-down
MSG
