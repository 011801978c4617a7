package main

import (
	"slices"
	"strconv"

	"github.com/nfsindex/nfsindex/engine"
)

type (
	inspection = engine.Inspection
	entry      = engine.Entry
)

// inspectMixed reads the history of the mixed workload's mailbox of s.
func inspectMixed(s *session) (engine.Inspection, error) {
	return engine.Inspect(s.ctx, s.e.fs("judge"), mixedDir)
}

func cloneInspection(in engine.Inspection) engine.Inspection {
	in.Entries = slices.Clone(in.Entries)
	return in
}

func cloneLogs(logs []*hostLog) []*hostLog {
	out := make([]*hostLog, len(logs))
	for i, l := range logs {
		c := *l
		c.acks = slices.Clone(l.acks)
		out[i] = &c
	}
	return out
}

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }
