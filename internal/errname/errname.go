// Package errname names errors the way Spring Kafka's dead-letter headers
// name Java exceptions, for kprod's dead-letter writers (packages dlq and
// dlq/dlt). It is internal: the header format is dlq's.
package errname

import "reflect"

// TypeName is the Go analogue of a Java fully qualified class name:
// "github.com/kprod/kprod/kafkaproducer.SendError".
func TypeName(err error) string {
	if err == nil {
		return ""
	}
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.PkgPath() == "" || t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

// Innermost follows Unwrap chains to the root cause; of a joined error
// it follows the last one ("%w: %w" puts the cause last).
func Innermost(err error) error {
	for {
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			next := u.Unwrap()
			if next == nil {
				return err
			}
			err = next
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			if len(errs) == 0 {
				return err
			}
			err = errs[len(errs)-1]
		default:
			return err
		}
	}
}
