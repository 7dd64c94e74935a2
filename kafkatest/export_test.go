package kafkatest

import "github.com/twmb/franz-go/pkg/sasl"

// SASLMechanism is the franz-go mechanism kafkatest builds for s, for the
// tests of package kafkatest_test.
func SASLMechanism(s SASL) sasl.Mechanism { return s.mechanism() }
