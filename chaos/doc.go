// Package chaos is kprod's fault campaign: Go tests that start a kfake
// broker and a kprod workload (cmd/kprod-chaos) in FROM scratch containers
// on a network of their own, break things between them (network
// disconnects, a paused, slowed or SIGKILLed broker, a SIGKILLed producer,
// a one-way partition, a full or read-only spool, storms of canceled
// contexts) at random moments, then check what the workload claimed
// against what the broker holds.
//
// It is its own module so that kprod's core never depends on it; it drives
// the docker command line and needs no Docker client library. Run it with
// `make chaos` (the whole campaign; rewrites docs/RELIABILITY.md) or
// `make chaos-short` (three scenarios, part of `make test`); both skip
// cleanly when no Docker engine answers. Environment:
//
//	CHAOS_MODE        short (default) or full
//	CHAOS_ITERATIONS  runs of each scenario and path (default 1 short, 2 full)
//	CHAOS_SEED        seed of the random fault moments (default: the time)
//	CHAOS_ONLY        run only scenario/path pairs matching this regexp
//	CHAOS_REPORT      a Markdown file whose "chaos:results" section is rewritten
//	CHAOS_KEEP        keep each run's directory (claims log, results, container logs)
//
// Everything it creates (containers, the network, the image) carries the
// label org.kprod.chaos and is removed at the start and the end.
package chaos
