package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/vfs"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// The engine's RPC costs per operation, measured the same way on the real
// client (2 guests, mountstats deltas) and on nfssim (2 hosts, Host.RPCs),
// in the same order: host1 fills 100 messages in one record; host2 opens
// and idles; host1 changes flags (with and without the directory sync),
// idles, delivers; then host1 changes a flag and host2 syncs, R times.

type costRow struct {
	Name string  `json:"name"`
	Host string  `json:"host"`
	N    int     `json:"n"`
	RPCs string  `json:"rpcs"` // total over the N operations
	Ms   float64 `json:"ms_per_op,omitempty"`
	// Stale counts remote rounds whose Sync did not see the other host's
	// committed change (the engine's freshness contract says it must).
	Stale int `json:"stale,omitempty"`
}

type engRPCResult struct {
	Side string    `json:"side"`
	Opts string    `json:"opts"`
	Rows []costRow `json:"rows"`
}

const (
	rowOpen        = "Open (100 messages in 1 record), other host"
	rowFlagDirSync = "durable flag change (NamespaceDurable=false: + directory sync)"
	rowFlag        = "durable flag change (NamespaceDurable=true)"
	rowIdle        = "idle Sync (own host)"
	rowIdleOther   = "idle Sync (other host, nothing new)"
	rowAppend      = "append 1 message with a 600-byte cached field"
	rowRemote      = "Sync after 1 flag change by another host"
)

var rowOrder = []string{rowFlagDirSync, rowFlag, rowIdle, rowIdleOther, rowRemote, rowAppend, rowOpen}

// measurer counts one host's RPCs.
type measurer func() opCounts

func measureN(name, host string, n int, count measurer, fn func(i int) error) (costRow, error) {
	before := count()
	t := time.Now()
	for i := range n {
		if err := fn(i); err != nil {
			return costRow{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return costRow{Name: name, Host: host, N: n, RPCs: count().sub(before).String(), Ms: ms(t) / float64(n)}, nil
}

func openBox(ctx context.Context, fsys vfs.FS, host string, nsDurable bool) (*engine.Mailbox, error) {
	return engine.Open(ctx, engine.Options{FS: fsys, Dir: "engrpc", Host: host, NamespaceDurable: nsDurable,
		Rand: rand.New(rand.NewPCG(1, uint64(len(host))))})
}

func flagTx(ctx context.Context, m *engine.Mailbox, i int) error {
	tx := m.Begin()
	tx.SetFlags(uint32(1+i%100), engine.Flagged<<uint(i%2), 0)
	_, err := tx.Commit(ctx)
	return err
}

func appendTx(ctx context.Context, m *engine.Mailbox, n int, env []byte) error {
	tx := m.Begin()
	for range n {
		msg := engine.NewMessage{Flags: engine.Seen}
		if env != nil {
			msg.Fields = map[string][]byte{"envelope": env}
		}
		tx.Append(msg)
	}
	_, err := tx.Commit(ctx)
	return err
}

// engScenario runs the sequence. For the real client, only the rows of
// the local host are run (role 1 or 2) and wait/signal go through 9p; for
// nfssim both roles run here, in order, and wait/signal are no-ops.
type engScenario struct {
	role   int // 0: both (nfssim)
	fs     [3]vfs.FS
	count  [3]measurer
	wait   func(name string) error
	signal func(name string)
	n, r   int
}

func (sc engScenario) run(ctx context.Context) (rows []costRow, err error) {
	add := func(r costRow, err error) error {
		rows = append(rows, r)
		return err
	}
	me := func(role int) bool { return sc.role == 0 || sc.role == role }
	env := make([]byte, 600)
	var m1, m2 *engine.Mailbox
	if me(1) {
		if m1, err = openBox(ctx, sc.fs[1], "host1", false); err != nil {
			return rows, err
		}
		if err := appendTx(ctx, m1, 100, nil); err != nil {
			return rows, err
		}
		sc.signal("filled")
	}
	if me(2) {
		if err := sc.wait("filled"); err != nil {
			return rows, err
		}
		if err := add(measureN(rowOpen, "host2", 1, sc.count[2], func(int) error {
			m2, err = openBox(ctx, sc.fs[2], "host2", true)
			return err
		})); err != nil {
			return rows, err
		}
		if err := add(measureN(rowIdleOther, "host2", sc.n, sc.count[2], func(int) error { return m2.Sync(ctx) })); err != nil {
			return rows, err
		}
		sc.signal("idle-done")
	}
	if me(1) {
		if err := sc.wait("idle-done"); err != nil {
			return rows, err
		}
		if err := add(measureN(rowFlagDirSync, "host1", sc.n, sc.count[1], func(i int) error { return flagTx(ctx, m1, i) })); err != nil {
			return rows, err
		}
		m1.Close()
		if m1, err = openBox(ctx, sc.fs[1], "host1", true); err != nil {
			return rows, err
		}
		if err := add(measureN(rowFlag, "host1", sc.n, sc.count[1], func(i int) error { return flagTx(ctx, m1, i) })); err != nil {
			return rows, err
		}
		if err := add(measureN(rowIdle, "host1", sc.n, sc.count[1], func(int) error { return m1.Sync(ctx) })); err != nil {
			return rows, err
		}
		if err := add(measureN(rowAppend, "host1", sc.n/2, sc.count[1], func(int) error { return appendTx(ctx, m1, 1, env) })); err != nil {
			return rows, err
		}
		sc.signal("host1-done")
	}
	// remote rounds
	var remote opCounts = opCounts{}
	var remoteMs float64
	stale := 0
	if me(2) {
		if err := sc.wait("host1-done"); err != nil {
			return rows, err
		}
		if err := m2.Sync(ctx); err != nil { // catch up with host1's rows
			return rows, err
		}
		sc.signal("caught-up")
	}
	for i := range sc.r {
		if me(1) {
			// each round's commit starts after host2 applied everything
			// before it, so that its Sync has exactly one record to find
			prev := "caught-up"
			if i > 0 {
				prev = fmt.Sprintf("s%d", i-1)
			}
			if err := sc.wait(prev); err != nil {
				return rows, err
			}
			if err := flagTx(ctx, m1, 1000+i); err != nil {
				return rows, err
			}
			sc.signal(fmt.Sprintf("c%d", i))
		}
		if me(2) {
			if err := sc.wait(fmt.Sprintf("c%d", i)); err != nil {
				return rows, err
			}
			before := sc.count[2]()
			t := time.Now()
			h0, _ := m2.Digest()
			if err := m2.Sync(ctx); err != nil {
				return rows, err
			}
			if h1, _ := m2.Digest(); h1 != h0+1 {
				stale++
				if sc.role != 0 {
					// what the missing Sync sent, and whether a second one sees it
					d := sc.count[2]().sub(before).String()
					t2 := time.Now()
					b2 := sc.count[2]()
					err2 := m2.Sync(ctx)
					h2, _ := m2.Digest()
					fmt.Printf("remote round %d: Sync after the other host's commit moved from seq %d to %d, want one record; its RPCs: %s; a second Sync %.1f ms later reached seq %d (err %v) with %s\n",
						i, h0, h1, d, ms(t2), h2, err2, sc.count[2]().sub(b2))
				}
			}
			remoteMs += ms(t)
			for k, v := range sc.count[2]().sub(before) {
				remote[k] += v
			}
			sc.signal(fmt.Sprintf("s%d", i))
		}
	}
	if me(2) {
		rows = append(rows, costRow{Name: rowRemote, Host: "host2", N: sc.r, RPCs: remote.String(), Ms: remoteMs / float64(sc.r), Stale: stale})
		if stale > 0 {
			defer func() {
				err = fmt.Errorf("FRESHNESS: %d of %d Syncs missed a change committed on another host before they started", stale, sc.r)
			}()
		}
		m2.Close()
	}
	if me(1) {
		if sc.role != 0 {
			sc.wait(fmt.Sprintf("s%d", sc.r-1))
		}
		m1.Close()
	}
	return rows, nil
}

func guestEngRPC(args []string) error {
	fl := flag.NewFlagSet("engrpc", flag.ExitOnError)
	n := fl.Int("n", 20, "operations per measured row")
	r := fl.Int("r", 10, "remote rounds")
	fl.Parse(args)
	ge := getGuestEnv()
	if ge.Hosts < 2 {
		return fmt.Errorf("engrpc needs 2 guests")
	}
	if ge.Index == 1 {
		os.RemoveAll(filepath.Join(ge.Mnt, "engrpc"))
	}
	fsys, err := osfs.New(ge.Mnt)
	if err != nil {
		return err
	}
	defer fsys.Close()
	count := func() opCounts { c, _ := readCounts(ge.Mnt); return c }
	sc := engScenario{role: ge.Index, n: *n, r: *r,
		signal: func(name string) { signalFile(ge.Shared, "eng."+name) },
		wait: func(name string) error {
			if !waitFile(ge.Shared, "eng."+name, 300*time.Second) {
				return fmt.Errorf("timed out waiting for %s", name)
			}
			return nil
		}}
	sc.fs[ge.Index], sc.count[ge.Index] = fsys, count
	rows, err := sc.run(context.Background())
	for _, row := range rows {
		fmt.Printf("%-64s n=%-3d %s (%.1f ms/op)\n", row.Name, row.N, perOp(parseCounts(row.RPCs), row.N), row.Ms)
	}
	if werr := writeJSON(filepath.Join(ge.Out, "engrpc.json"), engRPCResult{Side: "real", Opts: stripServerOpts(ge.Opts), Rows: rows}); err == nil {
		err = werr
	}
	return err
}

func simEngRPC(opts string, n, r int) ([]costRow, error) {
	m, err := optsToMount(opts)
	if err != nil {
		return nil, err
	}
	s := nfssim.New(nfssim.DefaultConfig(1))
	defer s.Close()
	h1, err := s.AddHost("host1", m)
	if err != nil {
		return nil, err
	}
	h2, err := s.AddHost("host2", m)
	if err != nil {
		return nil, err
	}
	cnt := func(h *nfssim.Host) measurer {
		return func() opCounts {
			c := opCounts{}
			for k, v := range h.RPCs().Map() {
				c[k] = v
			}
			return c
		}
	}
	sc := engScenario{role: 0, n: n, r: r, signal: func(string) {}, wait: func(string) error { return nil }}
	sc.fs[1], sc.fs[2] = h1.FS(), h2.FS()
	sc.count[1], sc.count[2] = cnt(h1), cnt(h2)
	return sc.run(context.Background())
}

// perOp formats counts divided by n: "3.00: SYMLINK 1, WRITE 1, GETATTR 1".
func perOp(c opCounts, n int) string {
	if n == 0 {
		return "-"
	}
	var names []string
	for k, v := range c {
		if v > 0 {
			names = append(names, k)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		if c[names[i]] != c[names[j]] {
			return c[names[i]] > c[names[j]]
		}
		return names[i] < names[j]
	})
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %s", k, trimFloat(float64(c[k])/float64(n))))
	}
	if len(parts) == 0 {
		return "0"
	}
	return fmt.Sprintf("%s: %s", trimFloat(float64(c.Total())/float64(n)), strings.Join(parts, ", "))
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func reportEngRPC(args []string) error {
	files, err := findFiles(args, "engrpc.json")
	if err != nil {
		return err
	}
	byOpts := map[string][]costRow{}
	var order []string
	for _, f := range files {
		var res engRPCResult
		if err := readJSON(f, &res); err != nil {
			return err
		}
		if _, ok := byOpts[res.Opts]; !ok {
			order = append(order, res.Opts)
		}
		byOpts[res.Opts] = append(byOpts[res.Opts], res.Rows...)
	}
	if len(order) == 0 {
		return fmt.Errorf("no engrpc.json under %v", args)
	}
	for _, opts := range order {
		real := byOpts[opts]
		n, r := 20, 10
		for _, row := range real {
			if row.Name == rowIdle {
				n = row.N
			}
			if row.Name == rowRemote {
				r = row.N
			}
		}
		sim, err := simEngRPC(opts, n, r)
		if err != nil && !strings.HasPrefix(err.Error(), "FRESHNESS") {
			return err
		}
		find := func(rows []costRow, name string) (costRow, bool) {
			for _, x := range rows {
				if x.Name == name {
					return x, true
				}
			}
			return costRow{}, false
		}
		fmt.Printf("\n### Engine RPCs per operation, %s (real: mountstats deltas; averages over n operations)\n\n", opts)
		fmt.Println("| operation | n | real client | nfssim | real ms/op (TCG guest) |")
		fmt.Println("|---|---|---|---|---|")
		for _, name := range rowOrder {
			rr, ok1 := find(real, name)
			sr, ok2 := find(sim, name)
			if !ok1 || !ok2 {
				continue
			}
			rs, ss := perOp(parseCounts(rr.RPCs), rr.N), perOp(parseCounts(sr.RPCs), sr.N)
			if rr.Stale > 0 {
				rs += fmt.Sprintf(" — **%d of %d Syncs missed the change**", rr.Stale, rr.N)
			}
			if sr.Stale > 0 {
				ss += fmt.Sprintf(" — **%d of %d Syncs missed the change**", sr.Stale, sr.N)
			}
			fmt.Printf("| %s | %d | %s | %s | %.1f |\n", name, rr.N, rs, ss, rr.Ms)
		}
	}
	return nil
}
