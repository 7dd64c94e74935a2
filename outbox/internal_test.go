package outbox

import (
	"bytes"
	"testing"

	"github.com/kprod/kprod/kafkaproducer"
)

func TestHeadersRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		hs   []kafkaproducer.Header
	}{
		{"none", nil},
		{"one", []kafkaproducer.Header{{Key: "a", Value: []byte("1")}}},
		{"null and empty", []kafkaproducer.Header{{Key: "n"}, {Key: "e", Value: []byte{}}, {Key: "", Value: []byte("x")}}},
		{"long", []kafkaproducer.Header{{Key: string(bytes.Repeat([]byte("k"), 300)), Value: bytes.Repeat([]byte("v"), 70000)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, _ := encodeHeaders(tt.hs).([]byte)
			got, err := decodeHeaders(nil, enc)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.hs) {
				t.Fatalf("%d headers, want %d", len(got), len(tt.hs))
			}
			for i := range got {
				if got[i].Key != tt.hs[i].Key || !bytes.Equal(got[i].Value, tt.hs[i].Value) || (got[i].Value == nil) != (tt.hs[i].Value == nil) {
					t.Fatalf("header %d: %+v, want %+v", i, got[i], tt.hs[i])
				}
			}
		})
	}
}

// FuzzDecodeHeaders: the headers column comes from the database, which
// anyone with write access can change; decoding never panics, and what
// decodes re-encodes to the same bytes.
func FuzzDecodeHeaders(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeHeaders([]kafkaproducer.Header{{Key: "a", Value: []byte("1")}, {Key: "n"}}).([]byte))
	f.Add([]byte{1, 200, 1})
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := decodeHeaders(nil, b)
		if err != nil || len(b) == 0 {
			return
		}
		re, _ := encodeHeaders(hs).([]byte)
		if len(hs) > 0 && !bytes.Equal(re, b) {
			// Non-minimal uvarints decode too; they must decode to
			// the same headers again.
			again, err := decodeHeaders(nil, re)
			if err != nil || len(again) != len(hs) {
				t.Fatalf("re-encoding %x gave %x: %v", b, re, err)
			}
		}
	})
}

func TestRelayConfigRefuses(t *testing.T) {
	tests := []struct {
		name  string
		cfg   RelayConfig
		field string
	}{
		{"no dialect", RelayConfig{}, "Table.Dialect"},
		{"no db", RelayConfig{Table: Table{Dialect: SQLite}}, "RelayConfig.DB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRelay(tt.cfg)
			ce, ok := err.(*kafkaproducer.ConfigError)
			if !ok || ce.Field != tt.field {
				t.Fatalf("NewRelay: %v, want a ConfigError for %s", err, tt.field)
			}
		})
	}
}

func TestDDLValid(t *testing.T) {
	for _, d := range []Dialect{Postgres, SQLite} {
		stmts, err := Table{Name: "app.events", Dialect: d}.DDL()
		if err != nil || len(stmts) < 4 {
			t.Fatalf("%v: %d statements, %v", d, len(stmts), err)
		}
	}
	if _, err := (Table{Name: "a-b", Dialect: SQLite}).DDL(); err == nil {
		t.Fatal("a-b accepted as a table name")
	}
}
