// Package securitytest holds black-box tests of kprod's packages together
// against a kfake cluster with SASL users and ACLs: what a producer,
// a transactional producer and the dead-letter path do when the cluster
// denies them. It has no non-test code.
package securitytest
