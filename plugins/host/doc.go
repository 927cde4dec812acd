// Package host runs backend plugins: it finds them (Discover), checks them
// against weir.lock (checksums and protocol versions), starts them with
// hashicorp/go-plugin, and implements runtime/backend's Interface over the
// protocol of plugins/proto (Open). To the executor a plugin is a backend
// like any built-in one.
//
// Tasks go over one long-lived Tasks stream per plugin process when the
// plugin serves it: on the plugin's tasks socket (Describe's tasks_socket,
// PROTOCOL.md 5.2) if it has one, else over gRPC (tasks_stream); a Run
// call each otherwise, Submit and Watch when the plugin has neither. One
// goroutine per stream reads the events into per-task queues, so no
// watcher holds up another. On a stream that has proved to work, Submit
// does not wait for the plugin's answer: a refusal comes from Watch.
//
// It owns the plugin processes it starts: a plugin that dies mid-step fails
// the step with the tail of its stderr and is started again on the next
// Submit; a plugin that does not answer Cancel in time is killed with its
// process group; Close stops them all and reaps them. With plugins/sdk
// (and plugins/internal/wire, which they share) it is the only code that
// knows about gRPC and go-plugin; it never prints.
package host
