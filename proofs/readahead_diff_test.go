package proofs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/nfsindex/nfsindex/nfssim"
	"github.com/nfsindex/nfsindex/readahead"
	"github.com/nfsindex/nfsindex/vfs"
	"pgregory.net/rapid"
)

// The log the writer of TestReadaheadMatchesUncachedOnNFS keeps: a 64-byte
// header rewritten in place, then 64-byte records appended after it.
//
//	| magic (8B) | generation (8B) | committed length (8B) | check (8B) | zero (32B) |
//
// The committed length counts the header; every record below it is durable
// (the writer syncs the records before it writes the header that covers
// them, and syncs the header before it counts as published). A record's
// bytes are a function of (generation, index), so a reader can tell which
// file and which place any 64 bytes came from.
const (
	raHeaderSize = 64
	raRecordSize = 64
	raLogName    = "log"
	raTmpName    = "log.tmp"
)

var raMagic = [8]byte{'R', 'A', 'P', 'R', 'O', 'O', 'F', 1}

// raMix is splitmix64's finaliser: bytes that differ for every input.
func raMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// raExpected returns the bytes [off, off+n) of the records of generation gen,
// as the writer writes them; off >= raHeaderSize.
func raExpected(gen uint64, off, n int64) []byte {
	out := make([]byte, 0, n+2*raRecordSize)
	first := (off - raHeaderSize) / raRecordSize
	var rec [raRecordSize]byte
	for i := first; int64(len(out)) < off-raHeaderSize-first*raRecordSize+n; i++ {
		for w := range raRecordSize / 8 {
			binary.LittleEndian.PutUint64(rec[8*w:], raMix(gen<<40^uint64(i)<<8^uint64(w)))
		}
		out = append(out, rec[:]...)
	}
	skip := off - raHeaderSize - first*raRecordSize
	return out[skip : skip+n]
}

func raHeader(gen uint64, committed int64) []byte {
	h := make([]byte, raHeaderSize)
	copy(h, raMagic[:])
	binary.LittleEndian.PutUint64(h[8:], gen)
	binary.LittleEndian.PutUint64(h[16:], uint64(committed))
	binary.LittleEndian.PutUint64(h[24:], raMix(gen^uint64(committed)<<1))
	return h
}

// raParseHeader returns the generation and committed length of a header,
// or an error for bytes that are not a whole, valid header.
func raParseHeader(h []byte) (gen uint64, committed int64, err error) {
	if len(h) < raHeaderSize || !bytes.Equal(h[:8], raMagic[:]) {
		return 0, 0, fmt.Errorf("no header: %x", h)
	}
	gen = binary.LittleEndian.Uint64(h[8:])
	committed = int64(binary.LittleEndian.Uint64(h[16:]))
	if binary.LittleEndian.Uint64(h[24:]) != raMix(gen^uint64(committed)<<1) || committed < raHeaderSize ||
		(committed-raHeaderSize)%raRecordSize != 0 {
		return 0, 0, fmt.Errorf("torn or invalid header: %x", h)
	}
	return gen, committed, nil
}

// raSchedules is how many schedules (simulation seeds) each drawn scenario
// runs under: the races between tasks that share a cache are rare in any one
// schedule, and a scenario is cheap to run again.
const raSchedules = 32

// raScenario is everything rapid draws for one run; the interleaving of the
// tasks then comes from the simulation's seed.
type raScenario struct {
	seed          uint64
	granularity   time.Duration
	writebackProb float64
	wsize         int
	initial       int // records committed before the run
	writer        []raWriterOp
	readers       []raReaderHost
}

type raWriterOp struct {
	kind    string // "commit", "append" (no sync, no publish), "replace"
	records int
	// closeFirst (replace): close the old file before the rename, so the
	// server frees it and other hosts' handles go stale (N15, N16); else
	// the writer's own open makes it silly-rename the old file (N17).
	closeFirst bool
}

type raReaderHost struct {
	version nfssim.Version
	rsize   int
	actimeo time.Duration // 0: the default attribute cache
	noac    bool          // no attribute cache: every read and Stat asks the server
	opts    readahead.Options
	tasks   [][]raReaderOp // one script per task; the tasks share the host's cache
}

type raReaderOp struct {
	kind       string // "refresh", "read", "scan", "peek" (the header through the cache)
	revalidate bool   // refresh: Revalidate after reopening
	claim      int    // refresh: mark 0: nothing more, 1: half, 2: all of the committed records immutable
	pos        int    // read, scan: where, in thousandths of the committed records
	length     int    // read: bytes; scan: records
}

func raDraw(t *rapid.T) raScenario {
	sc := raScenario{
		seed:          rapid.Uint64().Draw(t, "seed"),
		granularity:   rapid.SampledFrom([]time.Duration{time.Nanosecond, 4 * time.Millisecond}).Draw(t, "granularity"),
		writebackProb: rapid.SampledFrom([]float64{0, 0.3}).Draw(t, "writebackProb"),
		wsize:         rapid.SampledFrom([]int{4096, 1 << 20}).Draw(t, "wsize"),
		initial:       rapid.IntRange(1, 200).Draw(t, "initial"),
	}
	sc.writer = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) raWriterOp {
		return raWriterOp{
			kind:       rapid.SampledFrom([]string{"commit", "commit", "commit", "append", "replace"}).Draw(t, "kind"),
			records:    rapid.IntRange(1, 80).Draw(t, "records"),
			closeFirst: rapid.Bool().Draw(t, "closeFirst"),
		}
	}), 1, 60).Draw(t, "writer")
	op := rapid.Custom(func(t *rapid.T) raReaderOp {
		return raReaderOp{
			kind:       rapid.SampledFrom([]string{"refresh", "read", "read", "scan", "peek"}).Draw(t, "kind"),
			revalidate: rapid.Bool().Draw(t, "revalidate"),
			claim:      rapid.IntRange(0, 2).Draw(t, "claim"),
			pos:        rapid.IntRange(0, 1000).Draw(t, "pos"),
			length:     rapid.IntRange(1, 600).Draw(t, "length"),
		}
	})
	for h := range rapid.IntRange(1, 2).Draw(t, "readerHosts") {
		bsz := rapid.SampledFrom([]int64{64, 512, 4096}).Draw(t, fmt.Sprint("blockSize", h))
		rh := raReaderHost{
			version: rapid.SampledFrom([]nfssim.Version{nfssim.V3, nfssim.V4}).Draw(t, fmt.Sprint("version", h)),
			rsize:   rapid.SampledFrom([]int{4096, 1 << 20}).Draw(t, fmt.Sprint("rsize", h)),
			actimeo: rapid.SampledFrom([]time.Duration{0, 60 * time.Second}).Draw(t, fmt.Sprint("actimeo", h)),
			noac:    rapid.Bool().Draw(t, fmt.Sprint("noac", h)),
			opts: readahead.Options{
				BlockSize:          bsz,
				MemoryBytes:        rapid.Int64Range(2, 64).Draw(t, fmt.Sprint("memoryBlocks", h)) * bsz,
				MaxReadAheadBlocks: rapid.IntRange(1, 8).Draw(t, fmt.Sprint("maxReadAhead", h)),
			},
		}
		// The first host always has two or three tasks on one cache: their
		// races (a fetch in flight across another task's drop) are rarer
		// than the rest and need the most schedules.
		for range rapid.IntRange(2-min(h, 1), 3).Draw(t, fmt.Sprint("tasks", h)) {
			rh.tasks = append(rh.tasks, rapid.SliceOfN(op, 1, 40).Draw(t, "script"))
		}
		sc.readers = append(sc.readers, rh)
	}
	return sc
}

// raCoverage counts what the runs exercised, so that the test can show it
// met ESTALE, new identities and dropping revalidations, not just hits.
type raCoverage struct {
	runs, compared, bytes, stale, identities, carried, revalidations, changed int
	sandwiches, shortReads, reopenRetries, n3Stale, n3Uncached, n3Diverged    int
	stats                                                                     readahead.Stats
}

// TestReadaheadMatchesUncachedOnNFS is the differential property test of
// package readahead on nfssim: under random multi-host schedules, every read
// through the cache returns exactly what an uncached read of the same
// committed state returns.
//
// One writer host appends records to a log and commits them: sync the
// records, then rewrite the header in place with the new committed length
// and sync it (publish). Sometimes it replaces the log by rename with a new
// generation (N15), so other hosts' handles go stale (N16). One or two
// reader hosts, each with one cache shared by one to three tasks, follow the
// engine's protocol: reopen by name (close-to-open, N2), read the header
// directly, open the cache under (inode, generation), Revalidate or not,
// mark some or all of the committed records immutable, and read, at random
// and in sequential scans, only below the committed length they know. On
// ESTALE they reopen.
//
// Each read is done twice on the same descriptor, through the cache and
// directly, and the two must be equal and equal the writer's bytes for that
// generation; any error other than ESTALE fails. After a Revalidate, the
// header read through the cache (a mutable block) must lie between the
// direct reads of the header just before and just after it. Cache.Check
// runs after every reader op.
//
// The server clock is drawn fine (1 ns) or Linux-like (4 ms). The exact
// checks hold under the fine clock, where every change shows in the
// attributes. Under the 4 ms clock a same-size change in one tick is
// invisible (N3) to the NFS client as well as to the cache, so an uncached
// read is not the committed state either (see compare): there the reads
// must be the writer's bytes or holes, never another file's or offset's,
// and the N3 cases are counted in the log.
//
// Each drawn scenario runs under raSchedules simulation seeds. Replay a
// failure with the -rapid.seed rapid prints, or its fail file under
// testdata/rapid; the failure names the simulation seed.
func TestReadaheadMatchesUncachedOnNFS(t *testing.T) {
	var cov raCoverage
	rapid.Check(t, func(t *rapid.T) {
		sc := raDraw(t)
		seed := sc.seed
		for i := range raSchedules {
			sc.seed = seed + uint64(i)
			if err := raRun(sc, &cov); err != nil {
				t.Fatalf("simulation seed %d (schedule %d of the drawn seed %d): %v", sc.seed, i, seed, err)
			}
		}
	})
	t.Logf("%d runs: %d reads compared (%d bytes), %d ESTALE, %d new identities, %d identities carried over a reopen, %d revalidations (%d changed), %d header checks (%d stale by N3 under the 4 ms clock), %d reopen retries",
		cov.runs, cov.compared, cov.bytes, cov.stale, cov.identities, cov.carried, cov.revalidations, cov.changed, cov.sandwiches, cov.n3Stale, cov.reopenRetries)
	t.Logf("4 ms clock, N3: %d direct reads of committed bytes returned zeros; %d reads through the cache differed from the direct read", cov.n3Uncached, cov.n3Diverged)
	t.Logf("cache counters over all runs: %+v", cov.stats)
}

// raRun runs one scenario and returns the first violation any task saw.
func raRun(sc raScenario, cov *raCoverage) error {
	cfg := nfssim.DefaultConfig(sc.seed)
	cfg.Server.Granularity = sc.granularity
	cfg.WritebackProb = sc.writebackProb
	cfg.Latency.Jitter = 150 * time.Microsecond
	s := nfssim.New(cfg)
	defer s.Close()
	wm := nfssim.DefaultMount()
	wm.WSize = sc.wsize
	wh, err := s.AddHost("w", wm)
	if err != nil {
		return err
	}
	w := &raWriter{fsys: wh.FS(), gen: 1}
	if err := w.create(sc.initial); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var errs []error
	fail := func(who string, err error) { errs = append(errs, fmt.Errorf("%s at %v: %w", who, s.Now(), err)) }
	s.Go(wh, "writer", func() {
		for i, op := range sc.writer {
			if err := w.do(op); err != nil {
				fail(fmt.Sprintf("writer op %d %+v", i, op), err)
				return
			}
		}
		if err := w.f.Close(); err != nil {
			fail("writer close", err)
		}
	})
	var caches []*readahead.Cache
	for h, rh := range sc.readers {
		m := nfssim.DefaultMount()
		m.Version, m.RSize, m.ActimeO, m.NoAC = rh.version, rh.rsize, rh.actimeo, rh.noac
		host, err := s.AddHost(fmt.Sprint("r", h+1), m)
		if err != nil {
			return err
		}
		c, err := readahead.New(rh.opts)
		if err != nil {
			return err
		}
		caches = append(caches, c)
		for i, script := range rh.tasks {
			r := &raReader{name: fmt.Sprintf("%s/%d", host.Name(), i), fsys: host.FS(), c: c, model: w, cov: cov, fineClock: sc.granularity < 100*time.Microsecond}
			s.Go(host, r.name, func() {
				defer r.close()
				for j, op := range script {
					if err := r.do(op); err != nil {
						fail(fmt.Sprintf("reader %s op %d %+v", r.name, j, op), err)
						return
					}
					if err := c.Check(); err != nil {
						fail("reader "+r.name, err)
						return
					}
				}
			})
		}
	}
	if err := s.Run(5_000_000); err != nil {
		return err
	}
	cov.runs++
	for _, c := range caches {
		st := c.Stats()
		cov.stats.Hits += st.Hits
		cov.stats.Misses += st.Misses
		cov.stats.ReadAheadBlocks += st.ReadAheadBlocks
		cov.stats.ReadCalls += st.ReadCalls
		cov.stats.BytesRead += st.BytesRead
		cov.stats.RPCsSaved += st.RPCsSaved
		cov.stats.StatCalls += st.StatCalls
		cov.stats.Evictions += st.Evictions
		cov.stats.Drops += st.Drops
		if err := c.Check(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w\nscenario: %s", errors.Join(errs...), sc)
	}
	return nil
}

func (sc raScenario) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "granularity %v, writeback %v, wsize %d, %d initial records\n  writer %+v", sc.granularity, sc.writebackProb, sc.wsize, sc.initial, sc.writer)
	for i, rh := range sc.readers {
		fmt.Fprintf(&b, "\n  r%d: v%d rsize %d actimeo %v noac %v block %d memory %d window %d", i+1, rh.version, rh.rsize, rh.actimeo, rh.noac, rh.opts.BlockSize, rh.opts.MemoryBytes, rh.opts.MaxReadAheadBlocks)
		for j, script := range rh.tasks {
			fmt.Fprintf(&b, "\n    task %d: %+v", j, script)
		}
	}
	return b.String()
}

// raWriter is the one writer. Its published map is the model: for each
// generation, the largest committed length it has written into a header
// (set before the header write, since a reader may see the header before
// the writer's sync returns). Tasks run one at a time, and the scheduler's
// hand-offs order them, so the readers read it without a lock.
type raWriter struct {
	fsys      vfs.FS
	f         vfs.File
	gen       uint64
	committed int64 // the committed length of the current generation
	written   int64 // end of the records written, committed or not
	published map[uint64]int64
}

func (w *raWriter) records(from, to int64) error {
	if to <= from {
		return nil
	}
	_, err := w.f.WriteAt(raExpected(w.gen, from, to-from), from)
	return err
}

// create writes generation w.gen with n committed records under raTmpName,
// syncs it and renames it over raLogName, then opens it for appending.
func (w *raWriter) create(n int) error {
	end := raHeaderSize + int64(n)*raRecordSize
	if w.published == nil {
		w.published = map[uint64]int64{}
	}
	w.published[w.gen] = end
	tmp, err := w.fsys.OpenFile(raTmpName, vfs.ReadWrite|vfs.Create|vfs.Truncate, 0o644)
	if err != nil {
		return err
	}
	buf := append(raHeader(w.gen, end), raExpected(w.gen, raHeaderSize, end-raHeaderSize)...)
	if _, err := tmp.WriteAt(buf, 0); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := w.fsys.Rename(raTmpName, raLogName); err != nil {
		return err
	}
	if w.f, err = w.fsys.OpenFile(raLogName, vfs.ReadWrite, 0); err != nil {
		return err
	}
	w.committed, w.written = end, end
	return nil
}

func (w *raWriter) do(op raWriterOp) error {
	n := int64(op.records) * raRecordSize
	switch op.kind {
	case "append":
		if err := w.records(w.written, w.written+n); err != nil {
			return err
		}
		w.written += n
	case "commit":
		end := w.committed + n
		if err := w.records(w.written, end); err != nil {
			return err
		}
		w.written = max(w.written, end)
		if err := w.f.Datasync(); err != nil { // the records first ...
			return err
		}
		w.published[w.gen] = end
		if _, err := w.f.WriteAt(raHeader(w.gen, end), 0); err != nil { // ... then the header
			return err
		}
		if err := w.f.Datasync(); err != nil {
			return err
		}
		w.committed = end
	case "replace":
		old := w.f
		if op.closeFirst {
			if err := old.Close(); err != nil {
				return err
			}
		}
		w.gen++
		if err := w.create(op.records); err != nil {
			return err
		}
		if !op.closeFirst {
			if err := old.Close(); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown writer op %q", op.kind)
	}
	return nil
}

// raReader is one reader task. It holds a descriptor of the log and a
// Reader of it, and knows the committed length of the header it last read.
type raReader struct {
	name  string
	fsys  vfs.FS
	c     *readahead.Cache
	model *raWriter
	cov   *raCoverage

	f         vfs.File
	r         *readahead.Reader
	gen       uint64
	committed int64
	stale     bool // ESTALE seen: reopen before reading again
	fineClock bool // every change shows in the attributes (no N3)
}

func (r *raReader) close() {
	if r.r != nil {
		r.r.Close()
		r.r = nil
	}
	if r.f != nil {
		r.f.Close() // the file may be stale; its error says nothing here
		r.f = nil
	}
}

func raIsStale(err error) bool { return errors.Is(err, vfs.ErrStale) }

// direct reads [off, off+n) from the descriptor, without the cache.
func (r *raReader) direct(off, n int64) ([]byte, error) {
	p := make([]byte, n)
	k, err := r.f.ReadAt(p, off)
	if err == io.EOF && int64(k) == n {
		err = nil
	}
	return p[:k], err
}

func (r *raReader) do(op raReaderOp) error {
	if op.kind == "refresh" || r.f == nil || r.stale {
		if err := r.refresh(op); err != nil || op.kind == "refresh" || r.stale {
			return err
		}
	}
	records := (r.committed - raHeaderSize) / raRecordSize
	if records == 0 {
		return nil
	}
	switch op.kind {
	case "read":
		off := raHeaderSize + (r.committed-raHeaderSize)*int64(op.pos)/1001
		return r.compare(off, min(int64(op.length), r.committed-off))
	case "peek":
		// The header through the cache with no Revalidate: as old as the
		// last one, so only its identity and an upper bound are checked.
		return r.headerCheck(0)
	case "scan":
		rec := records * int64(op.pos) / 1001
		for i := rec; i < min(records, rec+int64(op.length)/8+1); i++ {
			if err := r.compare(raHeaderSize+i*raRecordSize, raRecordSize); err != nil || r.stale {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown reader op %q", op.kind)
}

// compare reads [off, off+n), below the committed length, through the cache
// and directly, on the same descriptor.
//
// With a fine server clock every change shows in the attributes, so the
// direct read after close-to-open is the committed state, and both reads
// must be exactly the writer's bytes. With the 4 ms clock a same-size change
// in one tick is invisible to the NFS client itself (N3): a page this host
// read during the writer's sync, with a hole where a record was still on its
// way, stays in its page cache after the record is committed, and a direct
// read returns the zeros. The cache, fed by that page cache, may then agree
// or (holding an older block) not. There each read must still be the
// writer's bytes of this generation at this offset, or zeros: never another
// file's bytes or another offset's; how often either read was stale is
// counted.
func (r *raReader) compare(off, n int64) error {
	got := make([]byte, n)
	k, cerr := r.r.ReadAt(got, off)
	got = got[:k]
	want, derr := r.direct(off, n)
	exp := raExpected(r.gen, off, n)
	right := func(b []byte) bool {
		if r.fineClock {
			return bytes.Equal(b, exp)
		}
		for i := range b {
			if b[i] != exp[i] && b[i] != 0 {
				return false
			}
		}
		return true
	}
	switch {
	case raIsStale(cerr) || raIsStale(derr):
		r.stale = true
		r.cov.stale++
		if cerr == nil && !right(got) {
			return fmt.Errorf("read [%d, %d) of generation %d through the cache (the direct read met ESTALE): %s", off, off+n, r.gen, raWhere(r.gen, off, got))
		}
		return nil
	case cerr != nil:
		r.cov.shortReads++
		return fmt.Errorf("read [%d, %d) of generation %d, committed %d, through the cache: %d bytes, %w (direct: %d bytes, %v)", off, off+n, r.gen, r.committed, k, cerr, len(want), derr)
	case derr != nil:
		return fmt.Errorf("read [%d, %d) of generation %d, committed %d, directly: %w", off, off+n, r.gen, r.committed, derr)
	case !right(got) || !right(want) || (r.fineClock && !bytes.Equal(got, want)):
		return fmt.Errorf("read [%d, %d) of generation %d (committed %d): the cache returned %s, an uncached read %s",
			off, off+n, r.gen, r.committed, raWhere(r.gen, off, got), raWhere(r.gen, off, want))
	}
	if !bytes.Equal(want, exp) {
		r.cov.n3Uncached++
	}
	if !bytes.Equal(got, want) {
		r.cov.n3Diverged++
	}
	r.cov.compared++
	r.cov.bytes += int(n)
	return nil
}

// raWhere describes bytes read at off: right, or where they differ from the
// writer's bytes of generation gen.
func raWhere(gen uint64, off int64, b []byte) string {
	exp := raExpected(gen, off, int64(len(b)))
	for i := range b {
		if b[i] != exp[i] {
			zeros := bytes.Count(b[i:min(len(b), i+raRecordSize)], []byte{0})
			return fmt.Sprintf("%d bytes differing from the writer's at %d (%d zero bytes in the next record)", len(b), off+int64(i), zeros)
		}
	}
	return fmt.Sprintf("%d bytes equal to the writer's", len(b))
}

// refresh reopens the log by name (close-to-open), reads its header
// directly, and opens the cache under the file's identity, carrying the
// cached blocks over when the inode and generation are the ones it had.
func (r *raReader) refresh(op raReaderOp) error {
	oldID := readahead.FileID{}
	if r.r != nil {
		oldID = r.r.ID()
	}
	r.close()
	r.stale = false
	var hdr []byte
	var fi vfs.FileInfo
	// Bounded: ESTALE means the writer replaced the file meanwhile, and
	// ENOENT that its rename over a name it had open is in the middle of a
	// silly rename (N17: RENAME log to .nfs..., then RENAME log.tmp to log).
	for attempt := 0; ; attempt++ {
		if attempt == 8 {
			r.stale = true
			return nil // try again at the next op
		}
		f, err := r.fsys.OpenFile(raLogName, vfs.ReadOnly, 0)
		if raIsStale(err) || errors.Is(err, fs.ErrNotExist) {
			r.cov.reopenRetries++
			continue
		} else if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		if fi, err = f.Stat(); err == nil {
			hdr, err = raReadAll(f, 0, raHeaderSize)
		}
		if raIsStale(err) {
			r.cov.reopenRetries++
			f.Close()
			continue
		} else if err != nil {
			f.Close()
			return fmt.Errorf("stat and header: %w", err)
		}
		r.f = f
		break
	}
	gen, committed, err := raParseHeader(hdr)
	if err != nil {
		return err
	}
	if pub := r.model.published[gen]; committed > pub {
		return fmt.Errorf("header of generation %d says %d committed, the writer published at most %d", gen, committed, pub)
	}
	r.gen, r.committed = gen, committed
	id := readahead.FileID{Ino: fi.Ino, Generation: gen}
	if id == oldID {
		r.cov.carried++
	} else {
		r.cov.identities++
	}
	r.r = r.c.Open(r.f, id)

	claimEnd := committed // without a Revalidate, only claimed blocks are fresh enough
	if op.revalidate {
		changed, err := r.r.Revalidate()
		if raIsStale(err) {
			r.stale = true
			return nil
		} else if err != nil {
			return fmt.Errorf("revalidate: %w", err)
		}
		r.cov.revalidations++
		if changed {
			r.cov.changed++
		}
		if err := r.headerCheck(committed); err != nil {
			return err
		}
		switch op.claim {
		case 0:
			claimEnd = raHeaderSize
		case 1:
			claimEnd = raHeaderSize + (committed-raHeaderSize)/2
		}
	}
	if err := r.r.MarkImmutable(raHeaderSize, claimEnd); err != nil {
		return fmt.Errorf("mark [%d, %d) immutable: %w", raHeaderSize, claimEnd, err)
	}
	return nil
}

// headerCheck reads the header through the cache, a mutable block, and then
// directly: the cached one must be a header of the reader's generation, no
// newer than the direct read after it, and, right after a Revalidate, no
// older than the direct read before it (before; 0 when there was none).
func (r *raReader) headerCheck(before int64) error {
	hdr := make([]byte, raHeaderSize)
	if _, err := r.r.ReadAt(hdr, 0); raIsStale(err) {
		r.stale = true
		return nil
	} else if err != nil {
		return fmt.Errorf("header through the cache: %w", err)
	}
	after, err := raReadAll(r.f, 0, raHeaderSize)
	if raIsStale(err) {
		r.stale = true
		return nil
	} else if err != nil {
		return fmt.Errorf("header after: %w", err)
	}
	gen, cached, err := raParseHeader(hdr)
	if err != nil {
		return fmt.Errorf("header through the cache: %w", err)
	}
	genAfter, afterLen, err := raParseHeader(after)
	if err != nil {
		return fmt.Errorf("header after: %w", err)
	}
	if gen != r.gen || genAfter != r.gen || cached > afterLen || (cached < before && r.fineClock) {
		return fmt.Errorf("header after Revalidate: generation %d, committed %d through the cache; directly before: generation %d, %d; after: generation %d, %d",
			gen, cached, r.gen, before, genAfter, afterLen)
	}
	if cached < before {
		// A coarse clock: the header was rewritten in the tick of the
		// last Revalidate, at the same size (N3). The cache is as good as
		// the attributes and kept the block; a v4 client, which compares
		// the change attribute the seam does not carry, did not.
		r.cov.n3Stale++
	}
	r.cov.sandwiches++
	return nil
}

// raReadAll reads exactly n bytes at off from f.
func raReadAll(f vfs.File, off, n int64) ([]byte, error) {
	p := make([]byte, n)
	k, err := f.ReadAt(p, off)
	if int64(k) == n {
		return p, nil
	}
	if err == nil || err == io.EOF {
		err = fmt.Errorf("%d of %d bytes at %d: %w", k, n, off, io.ErrUnexpectedEOF)
	}
	return nil, err
}
