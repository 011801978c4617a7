package main

import (
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// Result is one row of the table and one element of the JSON "results".
// The workload names are fixed (workloadNames) so that results compare
// across runs and versions.
type Result struct {
	// System is what ran the workload: "nfsindex" (the engine), "raw-floor"
	// (pwrite+fdatasync of the same bytes), "bbolt" or "sqlite".
	System   string `json:"system"`
	Workload string `json:"workload"`
	// Mode is "sim" (nfssim), "local" (a local file system) or "nfs".
	Mode  string `json:"mode"`
	Hosts int    `json:"hosts"`
	// Ops is the number of timed operations; ItemsPerOp the messages or
	// flag changes each carries (a build commit appends -batch messages).
	Ops        int     `json:"ops"`
	ItemsPerOp float64 `json:"items_per_op"`
	// OpsPerS is Ops / Seconds. Seconds is the sum of the operations'
	// latencies when one host runs them one after the other, and the
	// elapsed time of the whole run when several hosts run at once. Under
	// the simulator it is simulated time (Clock "simulated").
	OpsPerS     float64 `json:"ops_per_s"`
	Seconds     float64 `json:"seconds"`
	Clock       string  `json:"clock"`
	WallSeconds float64 `json:"wall_seconds"`
	LatencyUS   Latency `json:"latency_us"`
	// ByKind splits the latencies of mixed by operation: deliver, flags,
	// sync.
	ByKind map[string]Latency `json:"latency_us_by_kind,omitempty"`
	// Contended counts commits of mixed that returned
	// engine.ErrContended and were retried.
	Contended int `json:"contended_retries,omitempty"`
	// AvgGroup is the average number of commits that shared one group
	// commit's durability barriers in flags-concurrent (commits over
	// groups, groups counted by syncs; 0 when it could not be told).
	AvgGroup float64 `json:"avg_group_size,omitempty"`
	// RPCsPerOp has "total" and one key per RPC procedure (mountstats
	// names); it is null when RPCs cannot be counted, and RPCSource says
	// why.
	RPCsPerOp map[string]float64 `json:"rpcs_per_op"`
	RPCSource string             `json:"rpc_source"`
	// BytesPerOp is what the program asked to write per operation (file
	// data and symbolic link targets); SyncsPerOp its durability barriers
	// (fsync, fdatasync, directory sync, O_DSYNC writes).
	// SyncsPerOp is null for the baselines, whose libraries sync inside.
	BytesPerOp float64  `json:"bytes_written_per_op"`
	SyncsPerOp *float64 `json:"syncs_per_op"`
	// Notes say what a reader needs to read the row right.
	Notes []string `json:"notes,omitempty"`
	// Compact is the compaction of expunge-compact; Verify the check of
	// the mixed workload's acknowledged operations.
	Compact *Phase        `json:"compact,omitempty"`
	Verify  *VerifyReport `json:"verify,omitempty"`
}

// Latency holds percentiles in microseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
}

// percentiles returns the nearest-rank percentiles of lats (sorted in
// place).
func percentiles(lats []time.Duration) Latency {
	if len(lats) == 0 {
		return Latency{}
	}
	slices.Sort(lats)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(lats)))) - 1
		i = max(0, min(i, len(lats)-1))
		return math.Round(float64(lats[i])/float64(time.Microsecond)*10) / 10
	}
	return Latency{P50: at(0.50), P99: at(0.99), P999: at(0.999)}
}

// meter measures the operations of one host: latency on the env's clock,
// what went through the host's counting FS, and RPCs. It is used by one
// goroutine (or simulator task).
type meter struct {
	e    env
	host string
	fs   *countFS
	// each takes an RPC snapshot around every operation, so that only the
	// operations' RPCs count (not set-up, not another host's work).
	each  bool
	lats  []time.Duration
	sum   time.Duration
	rpcs  rpcCounts
	rpcOK bool
	err   error // of reading RPC counts
	io    ioStats
	prog  *atomic.Int64
}

func newMeter(e env, host string, each bool, prog *atomic.Int64) *meter {
	_, ok, _ := e.rpcs(host)
	return &meter{e: e, host: host, fs: e.fs(host), each: each, rpcs: rpcCounts{}, rpcOK: ok, prog: prog}
}

// op runs fn as one timed operation.
func (m *meter) op(fn func() error) error { return m.opOn(m.host, fn) }

// opOn runs fn as one timed operation of host: its RPCs and file system
// calls are those counted.
func (m *meter) opOn(host string, fn func() error) error { return m.opsOn(host, 1, fn) }

// opN runs fn as n operations that start and finish together (the
// transactions of one Mailbox.CommitGroup): each has fn's latency, and
// fn's time counts once in the sum.
func (m *meter) opN(n int, fn func() error) error { return m.opsOn(m.host, n, fn) }

func (m *meter) opsOn(host string, n int, fn func() error) error {
	if host != m.host {
		m.host, m.fs = host, m.e.fs(host)
	}
	var before rpcCounts
	if m.each && m.rpcOK {
		before, _, m.err = m.e.rpcs(m.host)
	}
	io0 := m.fs.stats()
	t0 := m.e.now()
	err := fn()
	lat := m.e.now() - t0
	m.io = m.io.add(m.fs.stats().sub(io0))
	if m.each && m.rpcOK && m.err == nil {
		var after rpcCounts
		after, _, m.err = m.e.rpcs(m.host)
		m.rpcs.add(after.sub(before))
	}
	for range n {
		m.lats = append(m.lats, lat)
	}
	m.sum += lat
	if m.prog != nil {
		m.prog.Add(int64(n))
	}
	return err
}

// window measures the RPCs of a whole phase, for hosts that share one
// counter and run at once (several mailboxes of one process on NFS).
type window struct {
	e      env
	before rpcCounts
	ok     bool
	err    error
	t0     time.Duration
	wall   time.Time
}

func startWindow(e env, host string) *window {
	w := &window{e: e, t0: e.now(), wall: time.Now()}
	w.before, w.ok, w.err = e.rpcs(host)
	return w
}

// stop returns the RPCs and the time since start.
func (w *window) stop(host string) (rpcCounts, time.Duration, error) {
	d := w.e.now() - w.t0
	if !w.ok || w.err != nil {
		return nil, d, w.err
	}
	after, _, err := w.e.rpcs(host)
	if err != nil {
		return nil, d, err
	}
	return after.sub(w.before), d, nil
}

// summarize builds a Result from the meters of every host that ran the
// workload. seconds is the elapsed time of a concurrent run (0: the sum of
// latencies); rpcs, when not nil, replaces the meters' per-op counts.
func summarize(e env, workload string, meters []*meter, items float64, seconds time.Duration, rpcs rpcCounts, wall time.Duration) Result {
	r := Result{System: "nfsindex", Workload: workload, Mode: e.mode(), Hosts: len(meters), ItemsPerOp: items,
		Clock: "wall", WallSeconds: wall.Seconds(), RPCSource: e.rpcSource()}
	if e.mode() == "sim" {
		r.Clock = "simulated"
	}
	var lats []time.Duration
	var sum time.Duration
	var io ioStats
	all := rpcCounts{}
	rpcOK := true
	var rpcErr error
	for _, m := range meters {
		lats = append(lats, m.lats...)
		sum += m.sum
		io = io.add(m.io)
		all.add(m.rpcs)
		rpcOK = rpcOK && m.rpcOK
		if m.err != nil {
			rpcErr = m.err
		}
	}
	if rpcs != nil {
		all = rpcs
	}
	r.Ops = len(lats)
	if seconds == 0 {
		seconds = sum
	}
	r.Seconds = seconds.Seconds()
	if r.Ops > 0 && seconds > 0 {
		r.OpsPerS = float64(r.Ops) / seconds.Seconds()
	}
	r.LatencyUS = percentiles(lats)

	if r.Ops > 0 {
		r.BytesPerOp = float64(io.Bytes) / float64(r.Ops)
		syncs := float64(io.Syncs) / float64(r.Ops)
		r.SyncsPerOp = &syncs
	}
	switch {
	case rpcErr != nil:
		r.RPCSource = "unavailable: " + rpcErr.Error()
	case rpcOK && r.Ops > 0:
		r.RPCsPerOp = map[string]float64{"total": float64(all.total()) / float64(r.Ops)}
		for k, v := range all {
			if v > 0 {
				r.RPCsPerOp[k] = float64(v) / float64(r.Ops)
			}
		}
	}
	return r
}
