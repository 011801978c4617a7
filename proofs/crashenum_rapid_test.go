package proofs

import (
	"fmt"
	"slices"
	"time"

	"pgregory.net/rapid"

	"github.com/nfsindex/nfsindex/internal/explore"
	"github.com/nfsindex/nfsindex/nfssim"
)

// rapidFault is a fault a property test draws: it fires at the first armed
// point at or after At that suits it (a crash of the writer at one of the
// writer's points, a lost reply at an RPC, a server crash anywhere).
type rapidFault struct {
	At   int
	Kind explore.FaultKind // CrashHost, DropReply or CrashServer
	Keep uint64
}

// rapidDrawFaults draws up to three faults over the first maxAt armed points.
func rapidDrawFaults(t *rapid.T, maxAt int) []rapidFault {
	n := rapid.IntRange(0, 3).Draw(t, "faults")
	specs := make([]rapidFault, n)
	for i := range specs {
		specs[i] = rapidFault{
			At:   rapid.IntRange(0, maxAt).Draw(t, "fault.at"),
			Kind: rapid.SampledFrom([]explore.FaultKind{explore.CrashHost, explore.DropReply, explore.CrashServer}).Draw(t, "fault.kind"),
			Keep: rapid.Uint64().Draw(t, "fault.keep"),
		}
	}
	slices.SortStableFunc(specs, func(a, b rapidFault) int { return a.At - b.At })
	return specs
}

// rapidScriptFaults returns the Run.Script that injects specs in order. fired
// is called (with the simulation's lock held: no Sim or Host calls) when
// one fires.
func rapidScriptFaults(writer string, specs []rapidFault, fired func(rapidFault)) func(nfssim.Point) nfssim.Fault {
	next := 0
	return func(p nfssim.Point) nfssim.Fault {
		if next >= len(specs) || p.Seq < specs[next].At {
			return nfssim.Fault{}
		}
		f := specs[next]
		var out nfssim.Fault
		switch f.Kind {
		case explore.CrashHost:
			if p.Host != writer {
				return nfssim.Fault{}
			}
			out = nfssim.Fault{Kind: nfssim.CrashHost, Keep: f.Keep}
		case explore.DropReply:
			if p.Kind != nfssim.PointRPC {
				return nfssim.Fault{}
			}
			out = nfssim.Fault{Kind: nfssim.DropReply}
		case explore.CrashServer:
			out = nfssim.Fault{Kind: nfssim.CrashServer}
		}
		next++
		fired(f)
		return out
	}
}

// rapidDrawProfile draws the network model of a property test: the NFS
// profile with the duplicate request cache on or off and a latency
// jitter, so that the interleaving of hosts changes with the seed.
func rapidDrawProfile(t *rapid.T) explore.Profile {
	p := explore.NFS()
	drc := rapid.Bool().Draw(t, "drc")
	jitter := time.Duration(rapid.IntRange(0, 300).Draw(t, "jitter.us")) * time.Microsecond
	base := p.Config
	p.Config = func(seed uint64) nfssim.Config {
		c := base(seed)
		if !drc {
			c.Server.DRCSize = 0
		}
		c.Latency.Jitter = jitter
		return c
	}
	return p
}

// rapidDrawReaders adds 1 or 2 reader hosts, each NFSv3 or v4.2, each with its
// own speed.
func rapidDrawReaders(t *rapid.T) []nfssim.Mount {
	n := rapid.IntRange(1, 2).Draw(t, "readers")
	out := make([]nfssim.Mount, n)
	for i := range out {
		m := explore.NFS().Mount
		if rapid.Bool().Draw(t, "reader.v4") {
			m.Version = nfssim.V4
		}
		m.Slowdown = rapid.SampledFrom([]float64{0.1, 0.3, 1, 2}).Draw(t, "reader.slowdown")
		out[i] = m
	}
	return out
}

func rapidAddReaders(r *explore.Run, mounts []nfssim.Mount) ([]*nfssim.Host, error) {
	var hs []*nfssim.Host
	for i, m := range mounts {
		h, err := r.Sim.AddHost(fmt.Sprintf("r%d", i+1), m)
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}
