// Package doccheck keeps docs/design.md true to the code: its test fails
// when the invariants table names a proof that no longer exists.
package doccheck
