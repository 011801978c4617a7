package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCheckIndexDir: verify accepts every name the engine and the rename
// package leave in an index directory, also after a crash (claims, probes,
// pins, a field log's temporary name), and refuses a directory with a
// foreign name or without a tail or snapshot.
func TestCheckIndexDir(t *testing.T) {
	engineLeaves := []string{"t.1.5", "tail.1", "tail.2.00000000000000ab", "index.2", "index.lock", "index.claim.0123456789abcdef",
		"index.probe.fedcba9876543210", "index.2.pin.00000000deadbeef", "log.mx1", ".creating.log.mx2"}
	for _, tc := range []struct {
		name  string
		names []string
		ok    bool
	}{
		{"engine names", engineLeaves, true},
		{"a foreign file", append(append([]string(nil), engineLeaves...), "notes.txt"), false},
		{"litter only", []string{"index.lock", "index.claim.0123456789abcdef", "log.mx1"}, false},
		{"a bad claim id", []string{"tail.1", "index.claim.xyz"}, false},
		{"a bad tail id", []string{"tail.1", "tail.2.xyz"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, n := range tc.names {
				if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := checkIndexDir(dir); (err == nil) != tc.ok {
				t.Fatalf("checkIndexDir = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
