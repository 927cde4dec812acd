// Package proto is the wire protocol between Weir and its backend plugins:
// backend.proto (protocol version 1) and the Go code protoc generates from
// it, committed. `make generate` regenerates the code with protoc and the
// pinned protoc-gen-go and protoc-gen-go-grpc (see the Makefile);
// TestGenerated fails when the committed code and the .proto disagree.
//
// The package also holds the constants of the go-plugin handshake, shared by
// the host adapter (plugins/host) and the SDK (plugins/sdk). It imports no
// other Weir package; plugins/PROTOCOL.md documents the protocol for
// authors in other languages.
package proto

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative backend.proto

// ProtocolVersion is the version of the protocol in backend.proto. It is the
// application protocol version of the go-plugin handshake and the
// protocol_version a plugin's Describe reports.
const ProtocolVersion = 1

// The go-plugin handshake: Weir starts a plugin with MagicCookieKey set to
// MagicCookieValue in its environment. The cookie is not a secret: it tells
// a plugin that it was started by Weir, and lets a plugin run by hand say so
// instead of waiting for a handshake that never comes.
const (
	MagicCookieKey   = "WEIR_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "5f1c8a3e7b2d4e69a0c4d7b1e8f2a6c3"
)

// PluginName is the name of the backend service in go-plugin's plugin set.
const PluginName = "backend"
