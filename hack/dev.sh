#!/usr/bin/env bash
# `make dev`: start the local control plane (kept running) and say how to use it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME="${AGENTPOOL_CLUSTER:-agentpool-dev}"
KUBECONFIG_PATH="$("$HACK_DIR/cluster.sh" up "$NAME")"
BIN="$("$HACK_DIR/build-binaries.sh")"

"$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" get nodes

cat <<MSG

The local cluster "$NAME" is running ($KUBE_VERSION: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok fake nodes).

  export KUBECONFIG=$KUBECONFIG_PATH
  export PATH=$BIN:\$PATH     # kubectl, helm, kwokctl built for this cluster
  kubectl get nodes

Stop it with: make dev-down   (logs: $AGENTPOOL_CACHE/logs/cluster-$NAME.log)
MSG
