//go:build tools

// Package etcd pins etcd's server for go mod tidy.
package etcd

import _ "go.etcd.io/etcd/server/v3"
