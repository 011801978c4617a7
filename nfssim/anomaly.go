package nfssim

import (
	"fmt"
	"strings"
)

// Anomaly is the id of an NFS behaviour from nfs-semantics.md (N1..N22).
type Anomaly int

// The anomalies the simulator reproduces.
const (
	N1           Anomaly = 1 + iota // attribute cache hides changes
	N2                              // coherence only at open/close
	N3                              // same-tick changes invisible (v3)
	N4                              // negative lookup cache hides new names
	N5                              // v3 open follows a stale name binding
	N6                              // readdir cached and not atomic
	N7                              // deferred, unordered write-back
	N8                              // tearing at wsize/rsize
	N9                              // page extension: lost update
	N10                             // unstable writes lost at server crash
	N11                             // write errors arrive late
	N12                             // O_APPEND not atomic across hosts
	N13                             // exclusive create is two RPCs
	N14                             // retransmitted replies lie
	N15                             // rename: old handles stale elsewhere
	N16                             // ESTALE on handles
	N17                             // silly rename
	N18                             // server clock, not the host's
	N19                             // locks are host-local
	N20                             // delegation recall stalls
	N21                             // server restart: outage and loss
	N22                             // caches are per host
	numAnomalies = N22
)

func (a Anomaly) String() string { return fmt.Sprintf("N%d", int(a)) }

// Anomalies is a set of anomaly ids.
type Anomalies uint32

// Of returns the set holding ids.
func Of(ids ...Anomaly) Anomalies {
	var s Anomalies
	for _, a := range ids {
		s |= 1 << uint(a)
	}
	return s
}

// Has reports whether a is in the set.
func (s Anomalies) Has(a Anomaly) bool { return s&(1<<uint(a)) != 0 }

func (s Anomalies) String() string {
	var parts []string
	for a := N1; a <= numAnomalies; a++ {
		if s.Has(a) {
			parts = append(parts, a.String())
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// kind reports whether the simulation was told to be kinder than NFS
// about a: Config.Disable switches an anomaly off so that a proof can show
// it depends on it. Nothing but such proofs should set it.
func (s *Sim) kind(a Anomaly) bool { return s.cfg.Disable.Has(a) }
