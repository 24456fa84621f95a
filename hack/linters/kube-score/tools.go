//go:build tools

// Package tools pins the kube-score command this wrapper module builds.
package tools

import _ "github.com/zegl/kube-score/cmd/kube-score"
