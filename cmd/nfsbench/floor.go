package main

import (
	"fmt"
	"math"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// floorWorkloads are the durable workloads that get a raw floor.
var floorWorkloads = []string{"build", "flags-durable", "flags-batched", "flags-concurrent", "expunge-compact"}

// rawFloor measures the floor of an engine result r on a real directory:
// as many operations, each a pwrite of the bytes the engine wrote per
// operation, appended to one file, then fdatasync: what the same bytes
// cost to make durable with nothing else around them.
func (s *session) rawFloor(r Result) (Result, error) {
	host := "floor"
	size := max(1, int(math.Round(r.BytesPerOp)))
	fsys := s.e.fs(host)
	name := "floor." + r.Workload
	f, err := fsys.OpenFile(name, vfs.ReadWrite|vfs.Create|vfs.Truncate, 0o644)
	if err != nil {
		return Result{}, fmt.Errorf("raw floor: %w", err)
	}
	defer func() {
		f.Close()
		fsys.Remove(name)
	}()
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	s.prog.start(s.e.mode(), "raw floor of "+r.Workload, r.Ops)
	defer s.prog.done()
	wall := time.Now()
	mt := newMeter(s.e, host, true, s.prog.counter())
	for i := range r.Ops {
		err := mt.op(func() error {
			if _, err := f.WriteAt(buf, int64(i)*int64(size)); err != nil {
				return err
			}
			return f.Datasync()
		})
		if err != nil {
			return Result{}, fmt.Errorf("raw floor: %w", err)
		}
	}
	fr := summarize(s.e, r.Workload, []*meter{mt}, r.ItemsPerOp, 0, nil, 0)
	fr.System = "raw-floor"
	fr.WallSeconds = time.Since(wall).Seconds()
	fr.Notes = []string{fmt.Sprintf("pwrite of %d bytes (the engine's bytes per op) appended to one file, then fdatasync", size)}
	return fr, nil
}
