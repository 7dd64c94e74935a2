// Package testkit starts in-process kfake clusters and reads records back
// for kprod's own tests. It speaks the real Kafka protocol: nothing in it
// mocks kprod. Its functions are safe for concurrent use by parallel
// tests; each cluster belongs to the test that started it.
package testkit
