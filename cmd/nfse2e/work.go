package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nfsindex/nfsindex/engine"
	"github.com/nfsindex/nfsindex/vfs/osfs"
)

// workEvent is one line of a guest's workload log (work-<inc>.jsonl in its
// 9p output directory, written before or after the engine call it
// describes, so an "ack" line exists only for a Commit that returned nil).
type workEvent struct {
	Ev     string   `json:"ev"` // open, try, ack, err, resolved, sync, compact, final, done
	Host   string   `json:"host"`
	Inc    int      `json:"inc"`
	T      int64    `json:"t"` // unix ns (host-synced clock)
	Owner  uint64   `json:"owner,omitempty"`
	N      uint64   `json:"n,omitempty"`
	Kind   string   `json:"kind,omitempty"` // append, flags
	Seq    uint64   `json:"seq,omitempty"`
	UIDs   []uint32 `json:"uids,omitempty"`
	Files  []string `json:"files,omitempty"` // the "file" field of each appended message
	UID    uint32   `json:"uid,omitempty"`   // flags: the message
	Flags  uint16   `json:"flags,omitempty"` // flags: added
	DSeq   uint64   `json:"dseq,omitempty"`  // Mailbox.Digest after the call
	Digest uint64   `json:"digest,omitempty"`
	OK     bool     `json:"ok,omitempty"`
	Err    string   `json:"err,omitempty"`
	Ms     float64  `json:"ms,omitempty"` // duration of the call
}

type workLog struct {
	mu   sync.Mutex
	f    *os.File
	host string
	inc  int
}

func (l *workLog) put(e workEvent) {
	e.Host, e.Inc, e.T = l.host, l.inc, time.Now().UnixNano()
	b, _ := json.Marshal(e)
	l.mu.Lock()
	defer l.mu.Unlock()
	// one write(2) per line on a 9p file opened O_APPEND with cache=none:
	// on the host when it returns, whatever happens to the guest next
	l.f.Write(append(b, '\n'))
}

// guestWork runs the mixed engine workload: appends (with a cached field),
// flag changes, syncs and an occasional Compact, for -ops operations.
func guestWork(args []string) error {
	fl := flag.NewFlagSet("work", flag.ExitOnError)
	ops := fl.Int("ops", 60, "operations")
	dir := fl.String("dir", "mbox", "mailbox directory on the mount")
	compactEvery := fl.Int("compact-every", 25, "try Compact every N operations (0: never)")
	pause := fl.Duration("pause", 0, "sleep between operations")
	fl.Parse(args)
	ge := getGuestEnv()
	ctx := context.Background()
	lf, err := os.OpenFile(filepath.Join(ge.Out, fmt.Sprintf("work-%d.jsonl", ge.Inc)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	log := &workLog{f: lf, host: ge.Host, inc: ge.Inc}
	fsys, err := osfs.New(ge.Mnt)
	if err != nil {
		return err
	}
	if ge.Inc == 1 {
		// start together: guests boot seconds apart under TCG
		signalFile(ge.Shared, "work-ready."+ge.Host)
		for i := 1; i <= ge.Hosts; i++ {
			if !waitFile(ge.Shared, fmt.Sprintf("work-ready.host%d", i), 180*time.Second) {
				return fmt.Errorf("host%d never got ready", i)
			}
		}
	}
	seed := uint64(time.Now().UnixNano())
	t0 := time.Now()
	m, err := engine.Open(ctx, engine.Options{FS: fsys, Dir: *dir, Host: ge.Host, NamespaceDurable: true,
		Rand: rand.New(rand.NewPCG(seed, uint64(ge.Index)))})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer m.Close()
	s, d := m.Digest()
	log.put(workEvent{Ev: "open", DSeq: s, Digest: d, Ms: ms(t0)})
	rng := rand.New(rand.NewPCG(seed, 7))
	flagsOf := []engine.Flags{engine.Seen, engine.Answered, engine.Flagged, engine.Draft}
	var commits, fails int
	for i := 1; i <= *ops; i++ {
		if *pause > 0 {
			time.Sleep(*pause)
		}
		v := m.View()
		r := rng.IntN(100)
		switch {
		case *compactEvery > 0 && i%*compactEvery == *compactEvery/2: // not last: leave records after the snapshot
			t := time.Now()
			ok, err := m.Compact(ctx)
			e := workEvent{Ev: "compact", OK: ok, Ms: ms(t)}
			if err != nil {
				e.Err = err.Error()
			}
			e.DSeq, e.Digest = m.Digest()
			log.put(e)
			continue
		case r < 40 || v.Len() == 0:
			tx := m.Begin()
			var files []string
			for j := range 1 + rng.IntN(3) {
				f := fmt.Sprintf("%s.%d.%d.%d", ge.Host, ge.Inc, i, j)
				files = append(files, f)
				tx.Append(engine.NewMessage{Flags: engine.Flags(rng.IntN(2)), Fields: map[string][]byte{"file": []byte(f)}})
			}
			commit(ctx, m, tx, log, workEvent{Kind: "append", Files: files}, &commits, &fails)
		case r < 85:
			seq := 1 + rng.IntN(v.Len())
			msg, _ := v.BySeq(seq)
			fg := flagsOf[rng.IntN(len(flagsOf))]
			tx := m.Begin()
			tx.SetFlags(msg.UID, fg, 0)
			commit(ctx, m, tx, log, workEvent{Kind: "flags", UID: msg.UID, Flags: uint16(fg)}, &commits, &fails)
		default:
			t := time.Now()
			err := m.Sync(ctx)
			e := workEvent{Ev: "sync", Ms: ms(t)}
			if err != nil {
				e.Err = err.Error()
			}
			e.DSeq, e.Digest = m.Digest()
			log.put(e)
		}
	}
	t := time.Now()
	err = m.Sync(ctx)
	e := workEvent{Ev: "final", Ms: ms(t)}
	if err != nil {
		e.Err = err.Error()
	}
	e.DSeq, e.Digest = m.Digest()
	log.put(e)
	log.put(workEvent{Ev: "done", Ms: ms(t0)})
	fmt.Printf("%s inc %d: %d ops, %d commits acknowledged, %d failed, %.1f s, last seq %d\n",
		ge.Host, ge.Inc, *ops, commits, fails, time.Since(t0).Seconds(), e.DSeq)
	return nil
}

func ms(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// commit commits tx and logs try / ack, or err and the resolution by
// Mailbox.Committed.
func commit(ctx context.Context, m *engine.Mailbox, tx *engine.Tx, log *workLog, e workEvent, commits, fails *int) {
	k := tx.Key()
	e.Owner, e.N = k.Owner, k.N
	try := e
	try.Ev = "try"
	log.put(try)
	t := time.Now()
	res, err := tx.Commit(ctx)
	e.Ms = ms(t)
	if err == nil {
		*commits++
		e.Ev, e.Seq, e.UIDs = "ack", res.Seq, res.UIDs
		e.DSeq, e.Digest = m.Digest()
		log.put(e)
		return
	}
	*fails++
	e.Ev, e.Err = "err", err.Error()
	log.put(e)
	for attempt := 0; attempt < 20; attempt++ {
		ok, cerr := m.Committed(ctx, k)
		if cerr == nil {
			log.put(workEvent{Ev: "resolved", Owner: k.Owner, N: k.N, OK: ok})
			return
		}
		if errors.Is(cerr, engine.ErrKeyUnknown) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
}
