// Package k8stest runs a real Kubernetes control plane for tests of the
// kubernetes backend: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler built from their Go modules by hack/k8s/build.sh, and kwok
// simulating the nodes (Nodes: a CPU pool and a GPU pool advertising
// nvidia.com/gpu). Pods never run a container; kwok moves them to Running
// and Succeeded, so scheduling, Jobs, Deployments and watches are real,
// while what a step does inside a container is tested on the docker backend.
//
// Tests call Get (the cluster make test-k8s started and shares between
// packages) or Private (a cluster of the test's own). Up, Attach and Down
// are what hack/k8s/cluster and make test-k8s use.
//
// The package uses the standard library only, so a test may use client-go
// or anything else against Cluster.Kubeconfig; it never prints, and its
// daemons run on 127.0.0.1 only. It must not be imported by non-test code.
package k8stest
