package launcher

// RunWith is Run with its environment and output given, for tests.
var RunWith = run
