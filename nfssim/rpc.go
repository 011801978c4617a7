package nfssim

import (
	"fmt"
	"sort"
	"strings"
)

// RPC is an NFS procedure as /proc/self/mountstats names it.
type RPC int

// The RPCs the simulator sends. A v4 COMPOUND counts once, under its main
// operation, as mountstats does.
const (
	GETATTR RPC = iota
	SETATTR
	LOOKUP
	ACCESS
	READLINK
	READ
	WRITE
	CREATE
	MKDIR
	SYMLINK
	REMOVE
	RMDIR
	RENAME
	LINK
	READDIRPLUS
	READDIR
	COMMIT
	OPEN
	OPEN_NOATTR
	CLOSE
	numRPC
)

var rpcNames = [numRPC]string{"GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE",
	"CREATE", "MKDIR", "SYMLINK", "REMOVE", "RMDIR", "RENAME", "LINK", "READDIRPLUS", "READDIR",
	"COMMIT", "OPEN", "OPEN_NOATTR", "CLOSE"}

func (r RPC) String() string {
	if r >= 0 && r < numRPC {
		return rpcNames[r]
	}
	return fmt.Sprintf("RPC(%d)", int(r))
}

// Counts is a number of RPCs per procedure. The zero value is empty.
type Counts [numRPC]uint64

// Total is the number of RPCs of every kind.
func (c Counts) Total() uint64 {
	var t uint64
	for _, n := range c {
		t += n
	}
	return t
}

// Sub returns c minus an earlier snapshot.
func (c Counts) Sub(earlier Counts) Counts {
	var d Counts
	for i := range c {
		d[i] = c[i] - earlier[i]
	}
	return d
}

// Add returns c plus d.
func (c Counts) Add(d Counts) Counts {
	for i := range c {
		c[i] += d[i]
	}
	return c
}

// Get returns the count of one procedure.
func (c Counts) Get(r RPC) uint64 { return c[r] }

// Map returns the non-zero counts keyed by procedure name.
func (c Counts) Map() map[string]uint64 {
	m := map[string]uint64{}
	for i, n := range c {
		if n > 0 {
			m[RPC(i).String()] = n
		}
	}
	return m
}

// String formats the non-zero counts like "GETATTR=1 WRITE=2", sorted.
func (c Counts) String() string {
	var parts []string
	for i, n := range c {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", RPC(i), n))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
