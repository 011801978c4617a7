package nfssim

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// Host is one NFS client machine: its mount options and its caches
// (attributes, names, directory listings, pages, permissions), shared by
// every file it opens (N22). FS returns its view of the file system.
type Host struct {
	sim   *Sim
	name  string
	mount Mount
	rng   *rand.Rand

	down        bool // crashed and not restarted
	paused      bool
	incarnation int

	counts  Counts
	retrans uint64
	xid     uint64

	*caches
}

// caches is everything a host keeps in memory and loses in a crash.
type caches struct {
	attrs    map[fileID]*attrEntry
	access   map[fileID]bool
	dents    map[fileID]map[string]*dentry
	listings map[fileID]*listing
	links    map[fileID]string
	pages    map[fileID]*cachedFile
	inflight []*writeReq
	retained map[fileID][]*writeReq
	// opened counts this host's open descriptors per name they were
	// opened through: Linux silly-renames a name (a dentry) that is open
	// (N17), not an inode.
	opened   map[dirent]*openName
	sillyN   uint32
	werr     map[fileID]error // write errors awaiting fsync/close (N11)
	failNext map[fileID]syscall.Errno
	deleg    map[fileID]bool // v4 read delegations held (N20)
	locks    map[fileID]bool // local-only locks (N19)
	// localOpen: the last v4 open was served by a delegation.
	localOpen bool
	// symlinkDepth bounds O_CREAT opens through chains of symlinks.
	symlinkDepth int
}

type attrEntry struct {
	a         attrs
	fetchedAt time.Duration
	timeo     time.Duration
	// gen counts changes made by others that this host noticed; dentries
	// and listings cached under an older gen are no longer trusted.
	gen uint64
}

type dentry struct {
	id  fileID
	neg bool
	gen uint64 // parent's gen when cached
}

type listing struct {
	names []string
	gen   uint64
}

type dirent struct {
	dir  fileID
	name string
}

// openName is a name some descriptors of this host were opened through.
// It follows the file through renames made by this host.
type openName struct {
	at    dirent
	count int
	silly bool // renamed to .nfs…: removed at the last close
}

type writeReq struct {
	id    fileID
	off   int64
	data  []byte
	epoch uint64
}

func newHost(s *Sim, name string, m Mount) *Host {
	h := &Host{sim: s, name: name, mount: m,
		rng: rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64()))}
	h.reset()
	return h
}

// reset empties every cache: a fresh boot.
func (h *Host) reset() {
	if h.sim.kind(N22) { // one cache for every host: kinder than NFS
		for _, o := range h.sim.hosts {
			if o != h && o.caches != nil {
				h.caches = o.caches
				return
			}
		}
	}
	h.caches = &caches{}
	h.attrs = map[fileID]*attrEntry{}
	h.access = map[fileID]bool{}
	h.dents = map[fileID]map[string]*dentry{}
	h.listings = map[fileID]*listing{}
	h.links = map[fileID]string{}
	h.pages = map[fileID]*cachedFile{}
	h.inflight = nil
	h.retained = map[fileID][]*writeReq{}
	h.opened = map[dirent]*openName{}
	h.werr = map[fileID]error{}
	h.failNext = map[fileID]syscall.Errno{}
	h.deleg = map[fileID]bool{}
	h.locks = map[fileID]bool{}
}

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// Mount returns the host's mount options.
func (h *Host) Mount() Mount { return h.mount }

// FS returns this host's view of the export. Every FS of a host shares its
// caches; FSs of different hosts share only the server.
func (h *Host) FS() vfs.FS { return hostFS{h} }

// Clock returns the host's local clock, skewed from the server's (N18).
func (h *Host) Clock() time.Time {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if h.sim.kind(N18) {
		return h.sim.srv.stamp()
	}
	return epoch.Add(h.sim.now + h.mount.ClockSkew)
}

// RPCs returns the RPCs this host has sent.
func (h *Host) RPCs() Counts {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	return h.counts
}

// Retransmissions returns how many RPCs this host sent twice (lost replies).
func (h *Host) Retransmissions() uint64 {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	return h.retrans
}

// Crash crashes the host now: its dirty pages reach the server in the
// subset keep selects (see Fault.Keep) and the rest is lost with every
// cache; files it had open stay silly-renamed; its tasks end.
func (h *Host) Crash(keep Fault) {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	h.crash(keep)
}

// Restart boots a crashed host with empty caches.
func (h *Host) Restart() {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if !h.down {
		return
	}
	h.down = false
	h.reset()
}

// Pause stops the host: its tasks are not scheduled until Resume. It
// holds everything it held (N20, a host that stops forever).
func (h *Host) Pause() {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	h.paused = true
}

// Resume lets a paused host run again.
func (h *Host) Resume() {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	h.paused = false
}

// Down reports whether the host has crashed and not been restarted.
func (h *Host) Down() bool {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	return h.down
}

// InjectWriteError makes the next WRITE of the file at name fail at the
// server with errno; the error reaches the next Sync or Close of that file
// on this host, once, and the data of that WRITE is lost (N11).
func (h *Host) InjectWriteError(name string, errno syscall.Errno) error {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	_, _, id, err := h.resolve(name, true)
	if err != nil {
		return err
	}
	h.failNext[id] = errno
	return nil
}

// DirtyUnit is a piece of data a host has written but the server has not
// received: the units a crash keeps or loses (Fault.Keep).
type DirtyUnit struct {
	File     uint64 // server file id
	Offset   int64
	Length   int
	InFlight bool // already sent in a WRITE whose reply has not come back
}

// DirtyUnits lists the host's dirty units in the order Fault.Keep numbers
// them: in-flight writes first, then dirty pages by file and offset.
func (h *Host) DirtyUnits() []DirtyUnit {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	var out []DirtyUnit
	for _, u := range h.dirtyUnits() {
		out = append(out, DirtyUnit{File: uint64(u.id), Offset: u.off, Length: len(u.data), InFlight: u.epoch == inflightMark})
	}
	return out
}

const inflightMark = ^uint64(0)

func (h *Host) crashUnit() int {
	if u := h.sim.cfg.CrashUnit; u > 0 {
		return u
	}
	return h.mount.PageSize
}

// dirtyUnits splits in-flight writes and dirty page ranges at crash-unit
// boundaries, in a deterministic order.
func (h *Host) dirtyUnits() []writeReq {
	unit := int64(h.crashUnit())
	var out []writeReq
	split := func(id fileID, off int64, data []byte, mark uint64) {
		for len(data) > 0 {
			n := unit - off%unit
			if n > int64(len(data)) {
				n = int64(len(data))
			}
			out = append(out, writeReq{id: id, off: off, data: data[:n], epoch: mark})
			off += n
			data = data[n:]
		}
	}
	for _, w := range h.inflight {
		split(w.id, w.off, w.data, inflightMark)
	}
	ids := make([]fileID, 0, len(h.pages))
	for id := range h.pages {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	ps := int64(h.mount.PageSize)
	for _, id := range ids {
		cf := h.pages[id]
		for _, idx := range cf.sortedDirty() {
			p := cf.pages[idx]
			split(id, idx*ps+int64(p.dlo), p.data[p.dlo:p.dhi], 0)
		}
	}
	return out
}

func (h *Host) crash(f Fault) {
	if h.down {
		return
	}
	for i, u := range h.dirtyUnits() {
		keep := (i < 64 && f.Keep>>uint(i)&1 == 1) || (f.RandomKeep && h.sim.rng.IntN(2) == 1)
		if !keep {
			continue
		}
		if n, err := h.sim.srv.get(u.id); err == nil {
			h.sim.srv.write(n, u.off, u.data, false)
		}
	}
	for _, n := range h.sim.srv.inodes {
		if n.openers != nil && n.openers[h] > 0 {
			delete(n.openers, h)
			if n.nlink <= 0 && n.openCount() == 0 {
				n.dead = true
			}
		}
	}
	h.down = true
	h.paused = false
	h.incarnation++
	h.reset()
	h.sim.killTasks(h)
}

// exitIfKilled ends the running task if its host went down under it.
func (h *Host) exitIfKilled() {
	s := h.sim
	if s.inRun && s.running != nil && s.running.host == h && s.running.killed {
		runtime.Goexit()
	}
}

// call is the entry of every file system call: a scheduling step (of no
// simulated cost) and a fault point.
func (h *Host) call(name, p string) error {
	if h.down {
		return ErrHostDown
	}
	h.sim.yield(h, 0)
	f := h.sim.point(h, PointCall, 0, name, p)
	if f.Kind == CrashHost {
		h.exitIfKilled()
		return ErrHostDown
	}
	if f.Kind == PauseHost {
		if err := h.parkPaused(); err != nil {
			return err
		}
	}
	return nil
}

// errPaused is returned outside Run by a call on a paused host, which
// inside Run would never return.
var errPaused = errors.New("nfssim: host is paused")

func (h *Host) parkPaused() error {
	if !h.sim.inRun || h.sim.running == nil || h.sim.running.host != h {
		return errPaused
	}
	for h.paused {
		h.sim.yield(h, 0)
	}
	return nil
}

// nonIdempotent RPCs are answered from the DRC on retransmission, or
// executed again when it has forgotten them (N14).
func nonIdempotent(r RPC) bool {
	switch r {
	case CREATE, MKDIR, SYMLINK, REMOVE, RMDIR, RENAME, LINK:
		return true
	}
	return false
}

// rpc performs one RPC: simulated time passes (others may run), the fault
// point is consulted, the server executes exec, and a lost reply leads to
// a retransmission.
func (h *Host) rpc(r RPC, p string, payload int, exec func() error) error {
	s := h.sim
	if h.down {
		return ErrHostDown
	}
	if !s.bg {
		s.yield(h, s.latency(h, payload))
	}
	if h.down {
		return ErrHostDown
	}
	if err := h.waitServer(); err != nil {
		return err
	}
	var f Fault
	if !s.bg {
		f = s.point(h, PointRPC, r, "", p)
		switch f.Kind {
		case CrashHost:
			h.exitIfKilled()
			return ErrHostDown
		case PauseHost:
			if err := h.parkPaused(); err != nil {
				return err
			}
		}
	}
	h.xid++
	key := drcKey{h, h.xid}
	h.counts[r]++
	err := exec()
	if nonIdempotent(r) {
		s.srv.remember(key, err)
	}
	if f.Kind != DropReply {
		return err
	}
	// The reply was lost: retransmit the same xid.
	h.retrans++
	if h.sim.kind(N14) {
		return err // a perfect reply cache
	}
	if nonIdempotent(r) {
		if cached, ok := s.srv.drc[key]; ok {
			return cached
		}
	}
	return exec()
}

// waitServer makes a call wait for a crashed server (hard mount) or fail
// with ETIMEDOUT (soft mount, N11).
func (h *Host) waitServer() error {
	s := h.sim
	if s.now >= s.srv.upAt {
		return nil
	}
	if h.mount.Soft {
		return syscall.ETIMEDOUT
	}
	s.yield(h, s.srv.upAt-s.now)
	return nil
}

// ---- attribute cache (N1, N3) ----

func (h *Host) v4() bool { return h.mount.Version == V4 }

// differs is the host's "changed?" test: mtime, ctime and size for v3,
// the change attribute for v4 (N3).
func (h *Host) differs(a, b attrs) bool {
	if a.id != b.id || a.gen != b.gen {
		return true
	}
	if h.sim.kind(N3) {
		return a.ver != b.ver
	}
	if h.v4() {
		return a.change != b.change
	}
	return !a.mtime.Equal(b.mtime) || !a.ctime.Equal(b.ctime) || a.size != b.size
}

// attrValid returns the cached attributes if they are within the timeout.
func (h *Host) attrValid(id fileID) (*attrEntry, bool) {
	e := h.attrs[id]
	if e == nil {
		return nil, false
	}
	if h.deleg[id] {
		return e, true
	}
	if h.sim.kind(N1) && !e.a.mode.IsDir() {
		return e, false
	}
	return e, h.sim.now < e.fetchedAt+e.timeo
}

// update stores attributes from a reply. revalidation says the reply
// answers a GETATTR of a cached entry (the timeout doubles when nothing
// changed). pre, for this host's own modifications, is the server's
// pre-operation attributes (wcc_data): if they match the cache, the change
// is ours alone and nothing is invalidated.
func (h *Host) update(a attrs, revalidation bool, pre *attrs) *attrEntry {
	lo, hi := h.mount.attrTimeouts(a.mode.IsDir())
	e := h.attrs[a.id]
	if e == nil {
		e = &attrEntry{a: a, fetchedAt: h.sim.now, timeo: lo}
		h.attrs[a.id] = e
		return e
	}
	cmp := e.a
	pending := h.pending(a.id)
	if pending {
		// Our own unwritten extension explains a smaller server size.
		cmp.size = a.size
	}
	changed := h.differs(cmp, a)
	if pre != nil && a.mode.IsDir() {
		delete(h.listings, a.id) // our own create/remove/rename in it
	}
	if pre != nil {
		// wcc_data: the size before our own write may differ from our
		// cached size (our extension); times tell a change by others.
		cmp.size = pre.size
		changed = h.differs(cmp, *pre)
	}
	switch {
	case changed:
		e.timeo = lo
		e.gen++
		h.invalidateData(a.id)
		delete(h.access, a.id)
		delete(h.links, a.id)
	case revalidation:
		e.timeo *= 2
		if e.timeo < lo {
			e.timeo = lo
		}
		if e.timeo > hi {
			e.timeo = hi
		}
	}
	if pending && a.size < e.a.size {
		a.size = e.a.size // our own unwritten extension
	}
	e.a = a
	e.fetchedAt = h.sim.now
	return e
}

// pending reports whether this host has written data of the file that the
// server may not have yet (dirty pages or WRITEs in flight).
func (h *Host) pending(id fileID) bool {
	if h.pages[id].hasDirty() {
		return true
	}
	for _, w := range h.inflight {
		if w.id == id {
			return true
		}
	}
	return false
}

// fetch sends an RPC that returns a file's attributes (GETATTR, ACCESS).
func (h *Host) fetch(r RPC, id fileID, p string) (attrs, error) {
	var a attrs
	err := h.rpc(r, p, 0, func() error {
		n, err := h.sim.srv.get(id)
		if err != nil {
			return err
		}
		a = h.sim.srv.attrsOf(n)
		return nil
	})
	return a, err
}

// getattr sends GETATTR and updates the cache.
func (h *Host) getattr(id fileID, p string) (attrs, error) {
	a, err := h.fetch(GETATTR, id, p)
	if err != nil {
		if errors.Is(err, syscall.ESTALE) {
			h.forget(id)
		}
		return attrs{}, err
	}
	return h.update(a, true, nil).a, nil
}

// revalidate returns the attributes, from the cache if they are still
// within their timeout and force is false (N1).
func (h *Host) revalidate(id fileID, p string, force bool) (attrs, error) {
	if e, ok := h.attrValid(id); ok && (!force || h.deleg[id]) {
		return e.a, nil
	}
	return h.getattr(id, p)
}

// known returns cached attributes, expired or not, fetching them only if
// the host has none (the file type never changes).
func (h *Host) known(id fileID, p string) (attrs, error) {
	if e := h.attrs[id]; e != nil {
		return e.a, nil
	}
	return h.getattr(id, p)
}

// forget drops everything cached about a file whose handle is stale.
func (h *Host) forget(id fileID) {
	delete(h.attrs, id)
	delete(h.access, id)
	delete(h.links, id)
	if cf := h.pages[id]; cf != nil && !cf.hasDirty() {
		delete(h.pages, id)
	}
	for _, m := range h.dents {
		for name, d := range m {
			if !d.neg && d.id == id {
				delete(m, name)
			}
		}
	}
}

// ---- names (N4, N5, N6) ----

func (h *Host) cacheDentry(dir fileID, name string, id fileID, neg bool) {
	m := h.dents[dir]
	if m == nil {
		m = map[string]*dentry{}
		h.dents[dir] = m
	}
	var gen uint64
	if e := h.attrs[dir]; e != nil {
		gen = e.gen
	}
	m[name] = &dentry{id: id, neg: neg, gen: gen}
}

// cachedDentry returns a cached name if the rules of N4 let the host
// trust it: the parent's attributes are within their timeout and no
// change by others was noticed since the name was cached.
func (h *Host) cachedDentry(dir fileID, name string) (*dentry, bool) {
	d := h.dents[dir][name]
	if d == nil || h.mount.LookupCache == LookupNone {
		return nil, false
	}
	if d.neg && (h.mount.LookupCache == LookupPositive || h.sim.kind(N4)) {
		return nil, false
	}
	e, ok := h.attrValid(dir)
	if !ok || e.gen != d.gen {
		return nil, false
	}
	return d, true
}

// lookup resolves one name in a directory, from the cache or by LOOKUP.
// fresh reports whether the answer came from the server.
func (h *Host) lookup(dir fileID, name, p string) (id fileID, fresh bool, err error) {
	if d, ok := h.cachedDentry(dir, name); ok {
		if d.neg {
			return 0, false, syscall.ENOENT
		}
		return d.id, false, nil
	}
	return h.lookupRPC(dir, name, p)
}

func (h *Host) lookupRPC(dir fileID, name, p string) (fileID, bool, error) {
	var a, da attrs
	var found bool
	err := h.rpc(LOOKUP, p, 0, func() error {
		d, err := h.sim.srv.dir(dir)
		if err != nil {
			return err
		}
		da = h.sim.srv.attrsOf(d)
		n, err := h.sim.srv.lookup(dir, name)
		if err != nil {
			return err
		}
		a, found = h.sim.srv.attrsOf(n), true
		return nil
	})
	if da.id != 0 {
		h.update(da, false, nil)
	}
	if errors.Is(err, syscall.ENOENT) && da.id != 0 {
		h.cacheDentry(dir, name, 0, true)
		return 0, true, err
	}
	if err != nil {
		if errors.Is(err, syscall.ESTALE) {
			h.forget(dir)
		}
		return 0, true, err
	}
	if found {
		h.update(a, false, nil)
		h.cacheDentry(dir, name, a.id, false)
	}
	return a.id, true, nil
}

// splitPath cleans a slash path relative to the export's root.
func splitPath(op, name string) ([]string, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return nil, &fs.PathError{Op: op, Path: name, Err: syscall.EINVAL}
	}
	c := path.Clean(name)
	if c == "." {
		return nil, nil
	}
	parts := strings.Split(c, "/")
	for _, p := range parts {
		if p == ".." {
			return nil, &fs.PathError{Op: op, Path: name, Err: syscall.EINVAL}
		}
	}
	return parts, nil
}

const maxSymlinks = 8

// resolve walks name to (parent directory, base name, file id). With
// follow, a final symlink is followed. The Linux VFS retries a walk that
// met ESTALE once with forced lookups (N16).
func (h *Host) resolve(name string, follow bool) (dir fileID, base string, id fileID, err error) {
	for try := 0; ; try++ {
		dir, base, id, err = h.walk(name, follow, try > 0)
		if err == nil || !errors.Is(err, syscall.ESTALE) || h.mount.NoESTALERetry || try >= 1 {
			return dir, base, id, err
		}
	}
}

func (h *Host) walk(name string, follow, forceLookup bool) (fileID, string, fileID, error) {
	parts, err := splitPath("lookup", name)
	if err != nil {
		return 0, "", 0, err
	}
	if len(parts) == 0 {
		return rootID, ".", rootID, nil
	}
	stack := []fileID{rootID} // directories from the root to cur
	cur := rootID
walkLoop:
	for depth := 0; ; depth++ {
		if depth > maxSymlinks {
			return 0, "", 0, syscall.ELOOP
		}
		for i, p := range parts {
			if p == "." {
				continue
			}
			if p == ".." {
				if len(stack) == 1 {
					return 0, "", 0, syscall.EXDEV // above the export's root
				}
				stack = stack[:len(stack)-1]
				cur = stack[len(stack)-1]
				if i == len(parts)-1 {
					return cur, ".", cur, nil
				}
				continue
			}
			var id fileID
			var err error
			if forceLookup {
				id, _, err = h.lookupRPC(cur, p, name)
			} else {
				id, _, err = h.lookup(cur, p, name)
			}
			if err != nil {
				if i < len(parts)-1 || !errors.Is(err, syscall.ENOENT) {
					return 0, "", 0, err
				}
				return cur, p, 0, err
			}
			last := i == len(parts)-1
			ca, err := h.known(id, name)
			if err != nil {
				return 0, "", 0, err
			}
			mode := ca.mode
			if last && (!follow || mode&fs.ModeSymlink == 0) {
				return cur, p, id, nil
			}
			if mode&fs.ModeSymlink != 0 {
				target, err := h.readlinkID(id, name)
				if err != nil {
					return 0, "", 0, err
				}
				rest := append(strings.Split(target, "/"), parts[i+1:]...)
				if strings.HasPrefix(target, "/") {
					return 0, "", 0, syscall.EXDEV // outside the export
				}
				parts = rest
				continue walkLoop
			}
			if !mode.IsDir() {
				return 0, "", 0, syscall.ENOTDIR
			}
			cur = id
			stack = append(stack, id)
		}
		return cur, ".", cur, nil // the path ended in "." or ".."

	}
}

// resolveParent walks to the directory that holds name's last element.
func (h *Host) resolveParent(op, name string) (fileID, string, error) {
	parts, err := splitPath(op, name)
	if err != nil {
		return 0, "", err
	}
	if len(parts) == 0 {
		return 0, "", syscall.EEXIST
	}
	if len(parts) == 1 {
		return rootID, parts[0], nil
	}
	_, _, dir, err := h.resolve(strings.Join(parts[:len(parts)-1], "/"), true)
	if err != nil {
		return 0, "", err
	}
	if da, err := h.known(dir, name); err != nil {
		return 0, "", err
	} else if !da.mode.IsDir() {
		return 0, "", syscall.ENOTDIR
	}
	return dir, parts[len(parts)-1], nil
}

func (h *Host) readlinkID(id fileID, p string) (string, error) {
	if t, ok := h.links[id]; ok {
		if _, valid := h.attrValid(id); valid {
			return t, nil
		}
	}
	var target string
	var a attrs
	err := h.rpc(READLINK, p, 0, func() error {
		n, err := h.sim.srv.get(id)
		if err != nil {
			return err
		}
		if n.mode&fs.ModeSymlink == 0 {
			return syscall.EINVAL
		}
		target, a = n.target, h.sim.srv.attrsOf(n)
		return nil
	})
	if err != nil {
		return "", err
	}
	h.update(a, false, nil)
	h.links[id] = target
	return target, nil
}

// checkAccess sends ACCESS when the host has no valid permission entry
// for the file (dropped when the file's attributes change).
func (h *Host) checkAccess(id fileID, p string) error {
	if h.access[id] {
		return nil
	}
	a, err := h.fetch(ACCESS, id, p)
	if err != nil {
		return err
	}
	h.update(a, false, nil)
	h.access[id] = true
	return nil
}

// cachedTarget returns the file a cached positive name refers to, without
// any RPC.
func (h *Host) cachedTarget(dir fileID, name string) (fileID, error) {
	if d, ok := h.cachedDentry(dir, name); ok && !d.neg {
		return d.id, nil
	}
	return 0, syscall.ENOENT
}

// errSameFile is how a rename between two links of one file reports that
// it did nothing (rename(2) then succeeds).
var errSameFile = errors.New("nfssim: same file")

// sillyRename hides a file this host still has open under .nfsXXXX and
// removes it at the last close (N17).
func (h *Host) sillyRename(dir fileID, name string, id fileID, p string) error {
	h.sillyN++
	silly := fmt.Sprintf(".nfs%016x%08x", uint64(id), h.sillyN)
	if err := h.renameRPC(dir, name, dir, silly, p); err != nil {
		return err
	}
	h.opened[dirent{dir, silly}].silly = true
	return nil
}

// busy reports whether this host has descriptors open through a name.
func (h *Host) busy(dir fileID, name string) bool {
	o := h.opened[dirent{dir, name}]
	return o != nil && o.count > 0 && !h.sim.kind(N17)
}

// noteOpen records a descriptor opened through dir/name.
func (h *Host) noteOpen(dir fileID, name string) *openName {
	k := dirent{dir, name}
	o := h.opened[k]
	if o == nil {
		o = &openName{at: k}
		h.opened[k] = o
	}
	o.count++
	return o
}

// noteClose drops a descriptor; the last close of a silly-renamed name
// removes it.
func (h *Host) noteClose(o *openName, p string) {
	o.count--
	if o.count > 0 {
		return
	}
	if h.opened[o.at] == o {
		delete(h.opened, o.at)
	}
	if o.silly {
		_ = h.removeRPC(o.at.dir, o.at.name, REMOVE, p)
	}
}

func (h *Host) renameRPC(odir fileID, oname string, ndir fileID, nname, p string) error {
	var moved attrs
	var od, nd, opre, npre attrs
	err := h.rpc(RENAME, p, 0, func() error {
		srv := h.sim.srv
		o, err := srv.dir(odir)
		if err != nil {
			return err
		}
		n, err := srv.dir(ndir)
		if err != nil {
			return err
		}
		id, ok := o.entries[oname]
		if !ok {
			return syscall.ENOENT
		}
		opre, npre = srv.attrsOf(o), srv.attrsOf(n)
		src := srv.inodes[id]
		if src.isDir() && srv.contains(src, ndir) {
			return syscall.EINVAL
		}
		if old, ok := n.entries[nname]; ok {
			if old == id {
				return errSameFile
			}
			dst := srv.inodes[old]
			if dst.isDir() != src.isDir() {
				if dst.isDir() {
					return syscall.EISDIR
				}
				return syscall.ENOTDIR
			}
			if dst.isDir() && len(dst.entries) > 0 {
				return syscall.ENOTEMPTY
			}
			srv.unlinkInode(dst, true)
		}
		delete(o.entries, oname)
		srv.touch(o, true)
		n.entries[nname] = id
		srv.touch(n, true)
		srv.touch(src, false)
		moved, od, nd = srv.attrsOf(src), srv.attrsOf(o), srv.attrsOf(n)
		return nil
	})
	if err == errSameFile { // both names are one file: rename does nothing
		return nil
	}
	if err != nil {
		return err
	}
	h.update(od, false, &opre)
	if nd.id != od.id {
		h.update(nd, false, &npre)
	}
	h.update(moved, false, nil)
	h.cacheDentry(odir, oname, 0, true)
	h.cacheDentry(ndir, nname, moved.id, false)
	if o := h.opened[dirent{odir, oname}]; o != nil { // the dentry moves
		delete(h.opened, o.at)
		o.at = dirent{ndir, nname}
		h.opened[o.at] = o
	}
	return nil
}

func (h *Host) removeRPC(dir fileID, name string, r RPC, p string) error {
	var da, pre, ta attrs
	err := h.rpc(r, p, 0, func() error {
		srv := h.sim.srv
		d, err := srv.dir(dir)
		if err != nil {
			return err
		}
		id, ok := d.entries[name]
		if !ok {
			return syscall.ENOENT
		}
		n := srv.inodes[id]
		if r == RMDIR && !n.isDir() {
			return syscall.ENOTDIR
		}
		if r == REMOVE && n.isDir() {
			return syscall.EISDIR
		}
		if n.isDir() && len(n.entries) > 0 {
			return syscall.ENOTEMPTY
		}
		pre = srv.attrsOf(d)
		delete(d.entries, name)
		srv.touch(d, true)
		srv.unlinkInode(n, false)
		da, ta = srv.attrsOf(d), srv.attrsOf(n)
		return nil
	})
	if err != nil {
		return err
	}
	h.update(da, false, &pre)
	if e := h.attrs[ta.id]; e != nil {
		e.a.nlink = ta.nlink
	}
	h.cacheDentry(dir, name, 0, true)
	return nil
}

// ---- the vfs.FS view ----

type hostFS struct{ h *Host }

var _ vfs.FS = hostFS{}

func pathErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: op, Path: p, Err: err}
}

func linkErr(op, o, n string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &vfs.LinkError{Op: op, Old: o, New: n, Err: err}
}

func (f hostFS) OpenFile(name string, flag vfs.Flag, perm fs.FileMode) (vfs.File, error) {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("OpenFile", name); err != nil {
		return nil, pathErr("open", name, err)
	}
	file, err := h.open(name, flag, perm)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return file, nil
}

func (f hostFS) Stat(name string) (vfs.FileInfo, error) { return f.stat("stat", name, true) }

func (f hostFS) Lstat(name string) (vfs.FileInfo, error) { return f.stat("lstat", name, false) }

func (f hostFS) stat(op, name string, follow bool) (vfs.FileInfo, error) {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("Stat", name); err != nil {
		return vfs.FileInfo{}, pathErr(op, name, err)
	}
	_, _, id, err := h.resolve(name, follow)
	if err != nil {
		return vfs.FileInfo{}, pathErr(op, name, err)
	}
	a, err := h.statID(id, name)
	if err != nil {
		return vfs.FileInfo{}, pathErr(op, name, err)
	}
	return info(name, a), nil
}

// StatFresh is statx(2) with AT_STATX_FORCE_SYNC (Linux nfs_getattr with
// force_sync): the path walk of Stat, this host's dirty pages of the file
// written back, then a GETATTR every time, whatever the attribute cache
// holds and even under a delegation (force_sync bypasses both). The reply
// refreshes the cache like any GETATTR: a change drops cached pages and
// marks the directory entries cached under the old attributes untrusted.
//
// A GETATTR that meets ESTALE (the file was removed or replaced at the
// server) makes the VFS redo the whole call once with forced lookups
// (vfs_statx's retry_estale with LOOKUP_REVAL), so a removed file is
// ENOENT after GETATTR + LOOKUP, and a replaced one is the new file after
// GETATTR + LOOKUP + GETATTR (N16). A cached negative entry still answers
// ENOENT with no RPC (N4): force_sync does not touch the walk.
func (f hostFS) StatFresh(name string) (vfs.FileInfo, error) {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("StatFresh", name); err != nil {
		return vfs.FileInfo{}, pathErr("stat", name, err)
	}
	a, err := h.statFresh(name, false)
	if errors.Is(err, syscall.ESTALE) && !h.mount.NoESTALERetry {
		a, err = h.statFresh(name, true)
	}
	if err != nil {
		return vfs.FileInfo{}, pathErr("stat", name, err)
	}
	return info(name, a), nil
}

// statFresh walks name (with forced lookups on the VFS's retry) and
// fetches the file's attributes from the server.
func (h *Host) statFresh(name string, reval bool) (attrs, error) {
	var id fileID
	var err error
	if reval {
		_, _, id, err = h.walk(name, true, true)
	} else {
		_, _, id, err = h.resolve(name, true)
	}
	if err != nil {
		return attrs{}, err
	}
	if h.pages[id].hasDirty() {
		if err := h.flush(id, name, false); err != nil {
			return attrs{}, err
		}
	}
	return h.getattr(id, name)
}

// statID is stat(2) on a file: write back this host's dirty pages first
// (nfs_getattr), then the attribute cache rule (N1).
func (h *Host) statID(id fileID, p string) (attrs, error) {
	if h.pages[id].hasDirty() {
		if err := h.flush(id, p, false); err != nil {
			return attrs{}, err
		}
	}
	return h.revalidate(id, p, false)
}

func info(base string, a attrs) vfs.FileInfo {
	return vfs.FileInfo{Name: path.Base(base), Size: a.size, Mode: a.mode, ModTime: a.mtime,
		ChangeTime: a.ctime, Ino: uint64(a.id), Nlink: uint64(a.nlink)}
}

func (f hostFS) Link(oldname, newname string) error {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("Link", newname); err != nil {
		return linkErr("link", oldname, newname, err)
	}
	_, _, id, err := h.resolve(oldname, false)
	if err != nil {
		return linkErr("link", oldname, newname, err)
	}
	dir, base, err := h.resolveParent("link", newname)
	if err != nil {
		return linkErr("link", oldname, newname, err)
	}
	var a, da, pre attrs
	err = h.rpc(LINK, newname, 0, func() error {
		srv := h.sim.srv
		n, err := srv.get(id)
		if err != nil {
			return err
		}
		a = srv.attrsOf(n) // LINK3resfail carries them too
		d, err := srv.dir(dir)
		if err != nil {
			return err
		}
		if _, ok := d.entries[base]; ok {
			return syscall.EEXIST
		}
		if n.isDir() {
			return syscall.EPERM
		}
		pre = srv.attrsOf(d)
		srv.addEntry(d, base, n)
		n.nlink++
		srv.touch(n, false)
		a, da = srv.attrsOf(n), srv.attrsOf(d)
		return nil
	})
	if err != nil {
		if a.id != 0 {
			h.update(a, false, nil)
		}
		if errors.Is(err, syscall.EEXIST) {
			h.cacheDentryIfAbsent(dir, base)
		}
		return linkErr("link", oldname, newname, err)
	}
	h.update(da, false, &pre)
	h.update(a, false, nil)
	h.cacheDentry(dir, base, id, false)
	return nil
}

// cacheDentryIfAbsent drops a negative entry that the server contradicted.
func (h *Host) cacheDentryIfAbsent(dir fileID, name string) {
	if d := h.dents[dir][name]; d != nil && d.neg {
		delete(h.dents[dir], name)
	}
}

func (f hostFS) Symlink(target, name string) error {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("Symlink", name); err != nil {
		return linkErr("symlink", target, name, err)
	}
	dir, base, err := h.resolveParent("symlink", name)
	if err != nil {
		return linkErr("symlink", target, name, err)
	}
	var a, da, pre attrs
	err = h.rpc(SYMLINK, name, len(target), func() error {
		srv := h.sim.srv
		d, err := srv.dir(dir)
		if err != nil {
			return err
		}
		pre = srv.attrsOf(d)
		n, err := srv.create(dir, base, fs.ModeSymlink|0o777)
		if err != nil {
			return err
		}
		n.target = target
		n.data = blobOf([]byte(target))
		n.stable = n.data.clone()
		a, da = srv.attrsOf(n), srv.attrsOf(d)
		return nil
	})
	if err != nil {
		if errors.Is(err, syscall.EEXIST) {
			h.cacheDentryIfAbsent(dir, base)
		}
		return linkErr("symlink", target, name, err)
	}
	h.update(da, false, &pre)
	h.update(a, false, nil)
	h.links[a.id] = target
	h.cacheDentry(dir, base, a.id, false)
	return nil
}

func (f hostFS) Readlink(name string) (string, error) {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("Readlink", name); err != nil {
		return "", pathErr("readlink", name, err)
	}
	_, _, id, err := h.resolve(name, false)
	if err != nil {
		return "", pathErr("readlink", name, err)
	}
	t, err := h.readlinkID(id, name)
	return t, pathErr("readlink", name, err)
}

func (f hostFS) Rename(oldname, newname string) error {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("Rename", newname); err != nil {
		return linkErr("rename", oldname, newname, err)
	}
	// Both parents first, then the source name, as the Linux VFS does.
	odir, obase, err := h.resolveParent("rename", oldname)
	if err != nil {
		return linkErr("rename", oldname, newname, err)
	}
	ndir, nbase, err := h.resolveParent("rename", newname)
	if err != nil {
		return linkErr("rename", oldname, newname, err)
	}
	id, _, err := h.lookup(odir, obase, oldname)
	if err != nil {
		return linkErr("rename", oldname, newname, err)
	}
	if h.mount.FlushOnRename && h.pages[id].hasDirty() {
		if err := h.flush(id, oldname, true); err != nil {
			return linkErr("rename", oldname, newname, err)
		}
	}
	// The VFS refuses to move a directory under itself (it knows the
	// ancestry from its dentry cache; we ask the server's namespace), and
	// checks the types before the NFS client sees the rename.
	if src := h.sim.srv.inodes[id]; src != nil && src.isDir() && h.sim.srv.contains(src, ndir) {
		return linkErr("rename", oldname, newname, syscall.EINVAL)
	}
	// The target is looked up with LOOKUP_RENAME_TARGET: the Linux client
	// sends no LOOKUP for it and caches nothing; only a name already in
	// the cache is checked here. The server checks the rest.
	tid, terr := h.cachedTarget(ndir, nbase)
	if terr == nil && tid != id {
		if dst := h.sim.srv.inodes[tid]; dst != nil && dst.isDir() && h.sim.srv.contains(dst, odir) {
			return linkErr("rename", oldname, newname, syscall.ENOTEMPTY) // the target is an ancestor
		}
		sa, err1 := h.known(id, oldname)
		ta, err2 := h.known(tid, newname)
		switch {
		case err1 != nil || err2 != nil:
		case sa.mode.IsDir() && !ta.mode.IsDir():
			return linkErr("rename", oldname, newname, syscall.ENOTDIR)
		case !sa.mode.IsDir() && ta.mode.IsDir():
			return linkErr("rename", oldname, newname, syscall.EISDIR)
		}
	}
	// A target this host has open is silly-renamed first (N17).
	if terr == nil && tid != id && h.busy(ndir, nbase) {
		if err := h.sillyRename(ndir, nbase, tid, newname); err != nil {
			return linkErr("rename", oldname, newname, err)
		}
	}
	return linkErr("rename", oldname, newname, h.renameRPC(odir, obase, ndir, nbase, newname))
}

func (f hostFS) Remove(name string) error {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("Remove", name); err != nil {
		return pathErr("remove", name, err)
	}
	dir, base, err := h.resolveParent("remove", name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	id, _, err := h.lookup(dir, base, name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	ka, err := h.known(id, name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	isDir := ka.mode.IsDir()
	if !isDir && h.busy(dir, base) {
		if strings.HasPrefix(base, ".nfs") {
			return pathErr("remove", name, syscall.EBUSY)
		}
		return pathErr("remove", name, h.sillyRename(dir, base, id, name))
	}
	r := REMOVE
	if isDir {
		r = RMDIR
	}
	return pathErr("remove", name, h.removeRPC(dir, base, r, name))
}

func (f hostFS) Mkdir(name string, perm fs.FileMode) error {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("Mkdir", name); err != nil {
		return pathErr("mkdir", name, err)
	}
	dir, base, err := h.resolveParent("mkdir", name)
	if err != nil {
		return pathErr("mkdir", name, err)
	}
	var a, da, pre attrs
	err = h.rpc(MKDIR, name, 0, func() error {
		srv := h.sim.srv
		d, err := srv.dir(dir)
		if err != nil {
			return err
		}
		pre = srv.attrsOf(d)
		n, err := srv.create(dir, base, fs.ModeDir|perm.Perm())
		if err != nil {
			return err
		}
		d.nlink++
		a, da = srv.attrsOf(n), srv.attrsOf(d)
		return nil
	})
	if err != nil {
		if errors.Is(err, syscall.EEXIST) {
			h.cacheDentryIfAbsent(dir, base)
		}
		return pathErr("mkdir", name, err)
	}
	h.update(da, false, &pre)
	h.update(a, false, nil)
	h.cacheDentry(dir, base, a.id, false)
	return nil
}

func (f hostFS) ReadDir(name string) ([]string, error) {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("ReadDir", name); err != nil {
		return nil, pathErr("readdir", name, err)
	}
	_, _, id, err := h.resolve(name, true)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	// opendir revalidates the directory (close-to-open, N2/N4).
	a, err := h.revalidate(id, name, !h.mount.NoCTO)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	if !a.mode.IsDir() {
		return nil, pathErr("readdir", name, syscall.ENOTDIR)
	}
	e := h.attrs[id]
	if l := h.listings[id]; l != nil && l.gen == e.gen && h.mount.LookupCache != LookupNone && !h.sim.kind(N6) {
		return append([]string(nil), l.names...), nil
	}
	names, err := h.readdirRPC(id, name)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	h.listings[id] = &listing{names: names, gen: h.attrs[id].gen}
	return append([]string(nil), names...), nil
}

// readdirRPC lists a directory in chunks, each a separate RPC at its own
// step, so names created or removed meanwhile can be missed (N6).
func (h *Host) readdirRPC(id fileID, p string) ([]string, error) {
	r := READDIRPLUS
	if h.v4() {
		r = READDIR
	}
	var out []string
	last, done := "", false
	for chunk := 0; !done; chunk++ {
		var got []string
		var ids []fileID
		var da attrs
		err := h.rpc(r, p, 0, func() error {
			d, err := h.sim.srv.dir(id)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(d.entries))
			for n := range d.entries {
				if chunk == 0 || n > last {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			got, ids, done = nil, nil, true
			if len(names) > h.mount.ReaddirChunk && !h.sim.kind(N6) {
				names, done = names[:h.mount.ReaddirChunk], false
			}
			for _, n := range names {
				got = append(got, n)
				ids = append(ids, d.entries[n])
			}
			da = h.sim.srv.attrsOf(d)
			return nil
		})
		if err != nil {
			return nil, err
		}
		h.update(da, false, nil)
		for i, n := range got {
			if !h.v4() { // READDIRPLUS returns handles and attributes
				if c := h.sim.srv.inodes[ids[i]]; c != nil && !c.dead {
					h.update(h.sim.srv.attrsOf(c), false, nil)
				}
				h.cacheDentry(id, n, ids[i], false)
			}
			out = append(out, n)
			last = n
		}
	}
	sort.Strings(out)
	return out, nil
}

func (f hostFS) SyncDir(name string) error {
	h := f.h
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if err := h.call("SyncDir", name); err != nil {
		return pathErr("fsync", name, err)
	}
	// open(dir) costs the close-to-open GETATTR; fsync of a directory is a
	// no-op of the Linux client because namespace operations are already
	// stable at the server (N10).
	_, _, id, err := h.resolve(name, true)
	if err != nil {
		return pathErr("fsync", name, err)
	}
	a, err := h.revalidate(id, name, !h.mount.NoCTO)
	if err == nil && !a.mode.IsDir() {
		err = syscall.ENOTDIR
	}
	return pathErr("fsync", name, err)
}

// LockLocal takes a whole-file lock as a nolock (or local_lock) mount
// does: it excludes only other lockers on this host, never other hosts
// (N19). Taking it has the kernel's side effect: dirty pages are written
// and cached pages and attributes dropped. It is not part of the vfs seam
// on purpose: the engine never locks.
func (h *Host) LockLocal(name string) (unlock func(), err error) {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	_, _, id, err := h.resolve(name, true)
	if err != nil {
		return nil, pathErr("lock", name, err)
	}
	if h.locks[id] {
		return nil, pathErr("lock", name, syscall.EAGAIN)
	}
	for _, o := range h.sim.hosts {
		if o != h && o.locks[id] && h.sim.kind(N19) { // kinder: exclusion across hosts
			return nil, pathErr("lock", name, syscall.EAGAIN)
		}
	}
	if h.pages[id].hasDirty() {
		if err := h.flush(id, name, true); err != nil {
			return nil, pathErr("lock", name, err)
		}
	}
	h.invalidateData(id)
	delete(h.attrs, id)
	h.locks[id] = true
	return func() {
		h.sim.mu.Lock()
		defer h.sim.mu.Unlock()
		delete(h.locks, id)
	}, nil
}

// Sleep lets d of simulated time pass for the calling task of this host
// (think time of a simulated process): other tasks run meanwhile. Outside
// Run it advances the clock.
func (h *Host) Sleep(d time.Duration) {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if d < 0 {
		d = 0
	}
	h.sim.yield(h, d)
}
