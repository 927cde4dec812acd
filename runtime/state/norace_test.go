//go:build !race

package state_test

// raceFactor scales time limits: the race detector slows SQLite down a lot.
const raceFactor = 1
