//go:build !invariants && !race

package atomicrec

// invariants enables the expensive self-checks (round trips of what is
// about to be written). It is on under -tags invariants and -race.
const invariants = false
