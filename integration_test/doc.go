// Package integration holds kprod's black-box integration suite: tests of
// the public API (presets, typed sends, transactions, the dead-letter and
// spool path, Close during an outage) and interop with kcat (librdkafka),
// run on every kafkatest backend this machine has: an external cluster
// (KAFKATEST_BOOTSTRAP_SERVERS), a real Kafka image (KAFKATEST_IMAGE), the
// kfake-broker container, and kfake in-process. Each test logs which
// backend ran it; an unavailable backend is a skip that says why.
//
// It is its own module, so testcontainers and the Docker client reach
// neither the kprod module nor the kafkatest module's users through it.
// Run it with `make integration` or scripts/integration.sh.
package integration
