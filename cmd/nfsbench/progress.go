package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// progress shows what runs on one line of stderr, rewritten four times a
// second, when stderr is a terminal and -q is not given. It never touches
// the simulation: tasks only add to an atomic counter.
type progress struct {
	w       io.Writer
	mu      sync.Mutex
	label   string
	total   int
	started time.Time
	n       atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
}

// newProgress returns nil (no progress) unless w is a terminal.
func newProgress(w io.Writer, quiet bool) *progress {
	f, ok := w.(*os.File)
	if quiet || !ok {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	p := &progress{w: w, stop: make(chan struct{})}
	p.wg.Add(1)
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.label != "" {
				fmt.Fprintf(p.w, "\r\033[K%s: %d/%d (%.0fs)", p.label, p.n.Load(), p.total, time.Since(p.started).Seconds())
			}
			p.mu.Unlock()
		}
	}
}

// counter is what meters add each finished operation to.
func (p *progress) counter() *atomic.Int64 {
	if p == nil {
		return nil
	}
	return &p.n
}

func (p *progress) start(mode, name string, total int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.label, p.total, p.started = "["+mode+"] "+name, total, time.Now()
	p.n.Store(0)
}

func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.label = ""
	fmt.Fprint(p.w, "\r\033[K")
}

// status shows a message (waiting at a barrier, building baselines).
func (p *progress) status(msg string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r\033[K%s", msg)
}

func (p *progress) close() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	fmt.Fprint(p.w, "\r\033[K")
}
