package atomicrec

// assert panics with msg when cond is false. It guards preconditions that
// only a caller bug can break (never bytes read from disk: those become
// typed errors).
func assert(cond bool, msg string) {
	if !cond {
		panic("atomicrec: assertion failed: " + msg)
	}
}
