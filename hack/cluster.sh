#!/usr/bin/env bash
# The local control plane: a real kube-apiserver + etcd + kube-controller-manager +
# kube-scheduler, started by kwokctl with the binary runtime from the binaries that
# hack/build-binaries.sh builds, plus kwok fake nodes so that pods reach Running.
#
#   hack/cluster.sh up [NAME]          start (idempotent) and print the kubeconfig path
#   hack/cluster.sh down [NAME]        stop and delete
#   hack/cluster.sh kubeconfig [NAME]  print the kubeconfig path
#   hack/cluster.sh status [NAME]      whether the API server answers, and each component's peak memory
#   hack/cluster.sh audit-log [NAME]   print the path of the API server's audit log
#
# The API server logs every write request (hack/audit-policy.yaml: who, verb, object, code)
# to the audit log; tests/support/audit.py reads it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CMD="${1:-}"
NAME="${2:-${AGENTPOOL_CLUSTER:-agentpool-dev}}"
NODES="${AGENTPOOL_FAKE_NODES:-3}"
export KWOK_WORKDIR="$AGENTPOOL_CACHE/kwok"
KUBECONFIG_PATH="$AGENTPOOL_CACHE/kubeconfig-$NAME.yaml"
LOG="$AGENTPOOL_CACHE/logs/cluster-$NAME.log"
mkdir -p "$AGENTPOOL_CACHE/logs"

BIN="$("$HACK_DIR/build-binaries.sh")"
export PATH="$BIN:$PATH"
export KWOK_KUBE_VERSION="$KUBE_VERSION"
export KWOK_ETCD_VERSION="$ETCD_VERSION"

kctl() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

api_ready() {
  [[ -f "$KUBECONFIG_PATH" ]] && kctl get --raw /readyz >/dev/null 2>&1
}

fail() {
  echo "---- last lines of $LOG ----" >&2
  tail -n 30 "$LOG" >&2 || true
  local comp
  for comp in "$KWOK_WORKDIR/clusters/$NAME/logs"/*.log; do
    [[ -f "$comp" ]] || continue
    echo "---- last lines of $comp ----" >&2
    tail -n 5 "$comp" >&2
  done
  die "$1. Logs: $LOG and $KWOK_WORKDIR/clusters/$NAME/logs/. Retry with: hack/cluster.sh down $NAME && hack/cluster.sh up $NAME"
}

# wait_for DESCRIPTION SECONDS COMMAND...
wait_for() {
  local what="$1" timeout="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
    sleep 0.5
  done
}

nodes_ready() {
  local ready
  ready="$(kctl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)"
  ((ready >= NODES))
}

up() {
  if api_ready; then
    echo "$KUBECONFIG_PATH"
    return 0
  fi
  # A half-started cluster from a crash is cleaned up rather than reused.
  kwokctl delete cluster --name "$NAME" >>"$LOG" 2>&1 || true
  local start=$SECONDS
  echo ">> starting cluster $NAME ($KUBE_VERSION, $NODES fake nodes); log: $LOG" >&2
  kwokctl create cluster --name "$NAME" --runtime binary \
    --kube-apiserver-binary "$BIN/kube-apiserver" \
    --kube-controller-manager-binary "$BIN/kube-controller-manager" \
    --kube-scheduler-binary "$BIN/kube-scheduler" \
    --kwok-controller-binary "$BIN/kwok" \
    --etcd-binary "$BIN/etcd" \
    --kube-authorization \
    --kube-audit-policy "$HACK_DIR/audit-policy.yaml" \
    ${AGENTPOOL_CLUSTER_EXTRA_ARGS:+$(for a in $AGENTPOOL_CLUSTER_EXTRA_ARGS; do printf -- '--extra-args %s ' "$a"; done)} \
    --timeout 120s --wait 90s >>"$LOG" 2>&1 || fail "kwokctl create cluster failed"
  kwokctl get kubeconfig --name "$NAME" >"$KUBECONFIG_PATH" 2>>"$LOG" || fail "could not read the kubeconfig"
  wait_for "the API server /readyz" 60 api_ready
  echo ">> API server ready after $((SECONDS - start))s" >&2
  # Real nodes report ephemeral-storage; kwok's default template does not, and a pod that
  # requests it would stay Pending.
  kwokctl scale node --name "$NAME" --replicas "$NODES" \
    --param '.allocatable["ephemeral-storage"]="200Gi"' >>"$LOG" 2>&1 || fail "could not create fake nodes"
  wait_for "$NODES Ready nodes" 60 nodes_ready
  wait_for "the default ServiceAccount" 60 kctl get serviceaccount default -n default
  echo ">> cluster $NAME ready after $((SECONDS - start))s" >&2
  echo "$KUBECONFIG_PATH"
}

down() {
  kwokctl delete cluster --name "$NAME" >>"$LOG" 2>&1 || true
  rm -f "$KUBECONFIG_PATH"
  echo ">> cluster $NAME deleted" >&2
}

status() {
  if ! api_ready; then
    echo "cluster $NAME: not running"
    return 1
  fi
  echo "cluster $NAME: running ($KUBECONFIG_PATH)"
  local pid total=0 rss
  for pid in $(pgrep -f "kwok/clusters/$NAME/" || true); do
    rss="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
    [[ -n "$rss" ]] || continue
    printf "  %-24s peak RSS %6d MiB\n" "$(cat "/proc/$pid/comm")" $((rss / 1024))
    total=$((total + rss))
  done
  printf "  %-24s peak RSS %6d MiB\n" "control plane (sum)" $((total / 1024))
}

audit_log() {
  local path="$KWOK_WORKDIR/clusters/$NAME/logs/audit.log"
  [[ -f "$path" ]] || die "no audit log at $path: cluster $NAME is not running or was started before the audit policy; restart it with hack/cluster.sh down $NAME && hack/cluster.sh up $NAME"
  echo "$path"
}

case "$CMD" in
  up) up ;;
  down) down ;;
  kubeconfig) [[ -f "$KUBECONFIG_PATH" ]] || die "cluster $NAME is not running; start it with hack/cluster.sh up $NAME"; echo "$KUBECONFIG_PATH" ;;
  status) status ;;
  audit-log) audit_log ;;
  *) die "usage: hack/cluster.sh up|down|kubeconfig|status|audit-log [NAME]" ;;
esac
