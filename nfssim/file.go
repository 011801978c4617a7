package nfssim

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nfsindex/nfsindex/vfs"
)

// ---- page cache (N7, N8, N9) ----

type cachedFile struct {
	pages map[int64]*page
}

// page is one cached page. dlo..dhi is its dirty range (empty when dhi is
// 0): Linux keeps one contiguous dirty request per page.
type page struct {
	data     []byte
	uptodate bool
	dlo, dhi int
}

func (p *page) dirty() bool { return p.dhi > p.dlo }

func (cf *cachedFile) hasDirty() bool {
	if cf == nil {
		return false
	}
	for _, p := range cf.pages {
		if p.dirty() {
			return true
		}
	}
	return false
}

func (cf *cachedFile) sortedDirty() []int64 {
	var idx []int64
	for i, p := range cf.pages {
		if p.dirty() {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	return idx
}

func (h *Host) pageFile(id fileID) *cachedFile {
	cf := h.pages[id]
	if cf == nil {
		cf = &cachedFile{pages: map[int64]*page{}}
		h.pages[id] = cf
	}
	return cf
}

// invalidateData drops a file's clean pages after a change by someone
// else was noticed; dirty pages keep their dirty bytes but no longer
// vouch for the rest of the page.
func (h *Host) invalidateData(id fileID) {
	cf := h.pages[id]
	if cf == nil {
		return
	}
	for i, p := range cf.pages {
		if p.dirty() {
			p.uptodate = false
		} else {
			delete(cf.pages, i)
		}
	}
}

// takeDirty removes the dirty ranges of the selected pages (all when pick
// is nil) and returns them as WRITE requests: contiguous ranges coalesced,
// split at wsize boundaries.
func (h *Host) takeDirty(id fileID, pick func() bool) []*writeReq {
	cf := h.pages[id]
	if cf == nil {
		return nil
	}
	ps, ws := int64(h.mount.PageSize), int64(h.mount.WSize)
	if h.sim.kind(N8) {
		ws = 1 << 62
	}
	var reqs []*writeReq
	var cur *writeReq
	for _, idx := range cf.sortedDirty() {
		if pick != nil && !pick() {
			cur = nil
			continue
		}
		p := cf.pages[idx]
		off := idx*ps + int64(p.dlo)
		b := p.data[p.dlo:p.dhi]
		p.dlo, p.dhi = 0, 0
		if cur != nil && cur.off+int64(len(cur.data)) == off && off%ws != 0 {
			cur.data = append(cur.data, b...)
		} else {
			cur = &writeReq{id: id, off: off, data: append([]byte(nil), b...)}
			reqs = append(reqs, cur)
		}
		if (off+int64(len(b)))%ws == 0 {
			cur = nil
		}
	}
	return reqs
}

// flush writes a file's dirty pages as WRITE RPCs sent in an order the
// program does not choose (N7), each at its own step, and with commit
// makes them stable: a lone WRITE with nothing awaiting COMMIT goes
// FILE_SYNC, otherwise UNSTABLE WRITEs and a COMMIT (N10). Write errors
// are kept for the next Sync or Close (N11).
func (h *Host) flush(id fileID, p string, commit bool) error {
	reqs := h.takeDirty(id, nil)
	stable := commit && len(reqs) == 1 && len(h.retained[id]) == 0
	if !h.sim.kind(N7) {
		h.rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	}
	h.inflight = append(h.inflight, reqs...)
	for _, w := range reqs {
		if err := h.sendWrite(w, stable, p); errors.Is(err, ErrHostDown) {
			return err
		}
	}
	if !commit {
		return nil
	}
	return h.commit(id, p)
}

func (h *Host) dropInflight(w *writeReq) {
	for i, x := range h.inflight {
		if x == w {
			h.inflight = append(h.inflight[:i], h.inflight[i+1:]...)
			return
		}
	}
}

func (h *Host) sendWrite(w *writeReq, stable bool, p string) error {
	stable = stable || h.sim.kind(N10)
	var pre, post attrs
	var ep uint64
	err := h.rpc(WRITE, p, len(w.data), func() error {
		srv := h.sim.srv
		n, err := srv.get(w.id)
		if err != nil {
			return err
		}
		if errno := h.failNext[w.id]; errno != 0 {
			delete(h.failNext, w.id)
			return errno
		}
		pre = srv.attrsOf(n)
		srv.write(n, w.off, w.data, stable)
		post, ep = srv.attrsOf(n), srv.epoch
		return nil
	})
	if errors.Is(err, ErrHostDown) {
		return err
	}
	h.dropInflight(w)
	if err != nil {
		if h.werr[w.id] == nil {
			h.werr[w.id] = err
		}
		return err
	}
	h.update(post, false, &pre)
	if !stable {
		w.epoch = ep
		h.retained[w.id] = append(h.retained[w.id], w)
	}
	return nil
}

// commit sends COMMIT until every retained write carries the server's
// current write verifier, resending those written before a server crash.
func (h *Host) commit(id fileID, p string) error {
	for try := 0; try < 16; try++ {
		if len(h.retained[id]) == 0 {
			return nil
		}
		var ep uint64
		err := h.rpc(COMMIT, p, 0, func() error {
			n, err := h.sim.srv.get(id)
			if err != nil {
				return err
			}
			h.sim.srv.commit(n)
			ep = h.sim.srv.epoch
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrHostDown) {
				delete(h.retained, id)
				if h.werr[id] == nil {
					h.werr[id] = err
				}
			}
			return err
		}
		var resend []*writeReq
		for _, w := range h.retained[id] {
			if w.epoch != ep {
				resend = append(resend, w)
			}
		}
		delete(h.retained, id)
		for _, w := range resend {
			h.inflight = append(h.inflight, w)
			if err := h.sendWrite(w, false, p); errors.Is(err, ErrHostDown) {
				return err
			}
		}
	}
	return syscall.EIO
}

// backgroundWriteback sends a random subset of one random file's dirty
// pages, unstable and unordered, without COMMIT (N7). It runs from the
// scheduler, outside any task, so it takes no steps of its own.
func (h *Host) backgroundWriteback() {
	var ids []fileID
	for id, cf := range h.pages {
		if cf.hasDirty() {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	id := ids[h.rng.IntN(len(ids))]
	reqs := h.takeDirty(id, func() bool { return h.rng.IntN(2) == 0 })
	h.rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	h.sim.bg = true
	defer func() { h.sim.bg = false }()
	for _, w := range reqs {
		h.inflight = append(h.inflight, w)
		_ = h.sendWrite(w, false, "(writeback)")
	}
}

// ---- open ----

type file struct {
	h     *Host
	id    fileID
	name  string
	flag  vfs.Flag
	inc   int
	pos   int64
	dir   bool
	v4    bool // holds v4 open state: CLOSE at close
	close bool
	on    *openName // the name it was opened through
}

var _ vfs.File = (*file)(nil)

func (h *Host) open(name string, flag vfs.Flag, perm fs.FileMode) (*file, error) {
	acc := flag.AccessMode()
	parts, err := splitPath("open", name)
	if err != nil {
		return nil, err
	}
	var id fileID
	created := false
	if len(parts) == 0 { // the export's root
		id = rootID
		if _, err := h.revalidate(id, name, !h.mount.NoCTO); err != nil {
			return nil, err
		}
	} else {
		dir, base, err := h.resolveParent("open", name)
		if err != nil {
			return nil, err
		}
		if flag.Has(vfs.Create) && !flag.Has(vfs.Excl) {
			// O_CREAT follows a final symlink, dangling or not. (v4 sends
			// OPEN by name at once: only a cached name is checked.)
			lookup := h.lookup
			if h.v4() {
				lookup = func(dir fileID, base, _ string) (fileID, bool, error) {
					if d, ok := h.cachedDentry(dir, base); ok && !d.neg {
						return d.id, false, nil
					}
					return 0, false, syscall.ENOENT
				}
			}
			if id, _, err := lookup(dir, base, name); err == nil {
				if ka, err := h.known(id, name); err == nil && ka.mode&fs.ModeSymlink != 0 {
					target, err := h.readlinkID(id, name)
					if err != nil {
						return nil, err
					}
					if strings.HasPrefix(target, "/") || h.symlinkDepth >= maxSymlinks {
						return nil, syscall.ELOOP
					}
					h.symlinkDepth++
					defer func() { h.symlinkDepth-- }()
					f, err := h.open(path.Join(path.Dir(name), target), flag, perm)
					if f != nil {
						f.name = name // Name and Stat report the name it was opened by
					}
					return f, err
				}
			}
		}
		if h.v4() {
			h.localOpen = false
			id, created, err = h.openV4(dir, base, name, flag, perm)
		} else {
			id, created, err = h.openV3(dir, base, name, flag, perm)
		}
		if err != nil {
			return nil, err
		}
	}
	a, err := h.known(id, name)
	if err != nil {
		return nil, err
	}
	if a.mode.IsDir() && acc != vfs.ReadOnly {
		h.releaseV4(id, name)
		return nil, syscall.EISDIR
	}
	if flag.Has(vfs.Truncate) && acc != vfs.ReadOnly && !created && a.size > 0 && a.mode.IsRegular() {
		if err := h.setSize(id, name, 0); err != nil {
			return nil, err
		}
	}
	var on *openName
	if len(parts) > 0 {
		// The name held open is the final one, after symlinks: Linux
		// keeps the target's dentry. Cached by now: no RPC.
		if dir, base, rid, err := h.resolve(name, true); err == nil && rid == id {
			on = h.noteOpen(dir, base)
		} else if dir, base, err := h.resolveParent("open", name); err == nil {
			on = h.noteOpen(dir, base)
		}
	}
	return &file{h: h, id: id, name: name, flag: flag, inc: h.incarnation, dir: a.mode.IsDir(),
		v4: h.v4() && id != rootID && !h.localOpen, on: on}, nil
}

// openV3: exclusive create is CREATE(EXCLUSIVE)+SETATTR (N13) with no
// lookup; any other open looks the name up (or takes it from the name
// cache, N4/N5) and creates it with CREATE(UNCHECKED) if absent and asked
// to; a cached name is revalidated by GETATTR (close-to-open, N2), which
// meets ESTALE if the file was replaced and is gone (N5).
func (h *Host) openV3(dir fileID, base, p string, flag vfs.Flag, perm fs.FileMode) (fileID, bool, error) {
	if flag.Has(vfs.Create | vfs.Excl) {
		if err := h.checkAccess(dir, p); err != nil {
			return 0, false, err
		}
		id, err := h.createExclusive(dir, base, p, perm)
		return id, err == nil, err
	}
	if flag.Has(vfs.Create) {
		if _, _, err := h.lookup(dir, base, p); errors.Is(err, syscall.ENOENT) {
			if err := h.checkAccess(dir, p); err != nil {
				return 0, false, err
			}
			return h.createUnchecked(dir, base, p, perm)
		}
	}
	// A stale cached name is looked up afresh within the same walk, and a
	// walk that still meets ESTALE is retried once with forced lookups by
	// the VFS (LOOKUP_REVAL): three chances in all (N16).
	for try := 0; try < 3; try++ {
		id, fresh, err := h.lookup(dir, base, p)
		if h.sim.kind(N5) { // the server resolves the name, as v4 does
			id, fresh, err = h.lookupRPC(dir, base, p)
		}
		if err != nil {
			return 0, false, err
		}
		ka, err := h.known(id, p)
		if err != nil {
			return 0, false, err
		}
		if ka.mode&fs.ModeSymlink != 0 {
			_, _, id, err = h.resolve(p, true)
			if err != nil {
				return 0, false, err
			}
			fresh = false
		}
		if !fresh {
			_, err = h.revalidate(id, p, !h.mount.NoCTO)
			if errors.Is(err, syscall.ESTALE) {
				if h.mount.NoESTALERetry {
					return 0, false, err
				}
				continue // the dentry is dropped: LOOKUP again
			}
			if err != nil {
				return 0, false, err
			}
		}
		if err := h.checkAccess(id, p); err != nil {
			if errors.Is(err, syscall.ESTALE) && !h.mount.NoESTALERetry {
				h.forget(id)
				continue
			}
			return 0, false, err
		}
		return id, false, nil
	}
	return 0, false, syscall.ESTALE
}

// garbageTime is what a v3 exclusive create leaves in the times until its
// SETATTR: knfsd stores the verifier there (N13, N18).
func garbageTime(verf uint64) time.Time {
	return time.Unix(int64(verf&0x7fffffff), 0).UTC()
}

func (h *Host) createExclusive(dir fileID, base, p string, perm fs.FileMode) (fileID, error) {
	verf := h.rng.Uint64()
	guarded := h.sim.cfg.Server.NoExclusive
	var a, da, pre attrs
	err := h.rpc(CREATE, p, 0, func() error {
		srv := h.sim.srv
		d, err := srv.dir(dir)
		if err != nil {
			return err
		}
		if id, ok := d.entries[base]; ok {
			n := srv.inodes[id]
			if !guarded && n.hasVerf && n.verf == verf && n.data.size == 0 {
				a, da = srv.attrsOf(n), srv.attrsOf(d)
				return nil // our own retransmission
			}
			return syscall.EEXIST
		}
		pre = srv.attrsOf(d)
		n, _ := srv.create(dir, base, 0)
		if h.sim.kind(N13) || h.sim.kind(N18) { // one atomic RPC with the attributes
			n.mode = perm.Perm()
			guarded = true
		} else if !guarded {
			n.verf, n.hasVerf = verf, true
			n.mtime, n.ctime = garbageTime(verf), garbageTime(verf>>32)
		}
		a, da = srv.attrsOf(n), srv.attrsOf(d)
		return nil
	})
	if err != nil {
		if errors.Is(err, syscall.EEXIST) {
			h.cacheDentryIfAbsent(dir, base)
		}
		return 0, err
	}
	h.update(da, false, &pre)
	h.update(a, false, nil)
	h.cacheDentry(dir, base, a.id, false)
	if guarded {
		return a.id, nil
	}
	// The follow-up SETATTR sets mode and times: a separate RPC and a
	// separate crash point.
	err = h.rpc(SETATTR, p, 0, func() error {
		srv := h.sim.srv
		n, err := srv.get(a.id)
		if err != nil {
			return err
		}
		n.mode = perm.Perm()
		n.hasVerf = false
		now := srv.stamp()
		n.mtime, n.ctime = now, now
		n.change++
		a = srv.attrsOf(n)
		return nil
	})
	if err != nil {
		return 0, err
	}
	h.attrs[a.id].a = a
	return a.id, nil
}

func (h *Host) createUnchecked(dir fileID, base, p string, perm fs.FileMode) (fileID, bool, error) {
	var id fileID
	var created bool
	var a, da, pre attrs
	err := h.rpc(CREATE, p, 0, func() error {
		srv := h.sim.srv
		d, err := srv.dir(dir)
		if err != nil {
			return err
		}
		pre = srv.attrsOf(d)
		if old, ok := d.entries[base]; ok {
			id = old
			if srv.inodes[old].isDir() {
				return syscall.EISDIR
			}
		} else {
			n, _ := srv.create(dir, base, perm.Perm())
			id, created = n.id, true
		}
		a, da = srv.attrsOf(srv.inodes[id]), srv.attrsOf(d)
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	h.update(da, false, &pre)
	h.update(a, false, nil)
	h.cacheDentry(dir, base, id, false)
	return id, created, nil
}

// openV4 sends OPEN by (directory, name): the server resolves the name,
// so a replaced file is never reopened by a stale binding (N5). A valid
// negative name still answers ENOENT with no RPC (N4), and a delegation
// makes a reopen free (N20). Exclusive create is OPEN+SETATTR.
func (h *Host) openV4(dir fileID, base, p string, flag vfs.Flag, perm fs.FileMode) (fileID, bool, error) {
	create, excl := flag.Has(vfs.Create), flag.Has(vfs.Create|vfs.Excl)
	cached := false
	if d, ok := h.cachedDentry(dir, base); ok {
		if d.neg && !create {
			return 0, false, syscall.ENOENT
		}
		if !d.neg && h.deleg[d.id] && flag.AccessMode() == vfs.ReadOnly {
			h.localOpen = true
			return d.id, false, nil
		}
		cached = !d.neg
	}
	if create {
		if err := h.checkAccess(dir, p); err != nil {
			return 0, false, err
		}
	}
	if h.sim.now < h.sim.srv.graceUntil { // N21: v4 opens wait out the grace period
		h.sim.yield(h, h.sim.srv.graceUntil-h.sim.now)
	}
	r := OPEN
	if cached && !create {
		r = OPEN_NOATTR
	}
	verf := h.rng.Uint64()
	var a, da attrs
	var pre *attrs
	created := false
	err := h.rpc(r, p, 0, func() error {
		srv := h.sim.srv
		d, err := srv.dir(dir)
		if err != nil {
			return err
		}
		var n *inode
		if id, ok := d.entries[base]; ok {
			n = srv.inodes[id]
			if excl && !(n.hasVerf && n.verf == verf) {
				return syscall.EEXIST
			}
		} else {
			if !create {
				return syscall.ENOENT
			}
			dpre := srv.attrsOf(d)
			pre = &dpre
			n, _ = srv.create(dir, base, perm.Perm())
			if excl {
				n.verf, n.hasVerf = verf, true
			}
			created = true
		}
		if n.isDir() && flag.AccessMode() != vfs.ReadOnly {
			return syscall.EISDIR
		}
		if n.openers == nil {
			n.openers = map[*Host]int{}
		}
		n.openers[h]++
		h.recallDelegations(n)
		a, da = srv.attrsOf(n), srv.attrsOf(d)
		return nil
	})
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			h.cacheDentry(dir, base, 0, true)
		}
		if errors.Is(err, syscall.EEXIST) {
			h.cacheDentryIfAbsent(dir, base)
		}
		return 0, false, err
	}
	h.update(da, false, pre)
	h.update(a, true, nil)
	h.cacheDentry(dir, base, a.id, false)
	if excl {
		err = h.rpc(SETATTR, p, 0, func() error {
			n, err := h.sim.srv.get(a.id)
			if err != nil {
				return err
			}
			n.hasVerf = false
			h.sim.srv.touch(n, false)
			a = h.sim.srv.attrsOf(n)
			return nil
		})
		if err != nil {
			return 0, false, err
		}
		h.attrs[a.id].a = a
	}
	if h.sim.cfg.Server.Delegations && flag.AccessMode() == vfs.ReadOnly && !created {
		h.grantDelegation(a.id)
	}
	return a.id, created, nil
}

// grantDelegation gives h a read delegation on a file nobody else has
// open (N20).
func (h *Host) grantDelegation(id fileID) {
	n := h.sim.srv.inodes[id]
	for o, k := range n.openers {
		if o != h && k > 0 {
			return
		}
	}
	h.deleg[id] = true
}

// recallDelegations recalls the delegations other hosts hold on n before
// a conflicting operation by h proceeds; a paused holder makes h wait out
// the lease (N20).
func (h *Host) recallDelegations(n *inode) {
	for _, name := range h.sim.order {
		o := h.sim.hosts[name]
		if o == h || !o.deleg[n.id] {
			continue
		}
		if o.paused && !h.sim.kind(N20) {
			h.sim.now += h.sim.cfg.Server.LeaseTime
		}
		delete(o.deleg, n.id)
	}
}

func (h *Host) releaseV4(id fileID, p string) {
	if !h.v4() || id == rootID {
		return
	}
	_ = h.rpc(CLOSE, p, 0, func() error {
		if n := h.sim.srv.inodes[id]; n != nil {
			h.sim.srv.releaseOpen(n, h)
		}
		return nil
	})
}

// setSize is SETATTR of the size, after writing back dirty pages.
func (h *Host) setSize(id fileID, p string, size int64) error {
	if h.pages[id].hasDirty() {
		if err := h.flush(id, p, true); err != nil {
			return err
		}
	}
	var pre, post attrs
	err := h.rpc(SETATTR, p, 0, func() error {
		srv := h.sim.srv
		n, err := srv.get(id)
		if err != nil {
			return err
		}
		for _, name := range srv.sim.order {
			if o := srv.sim.hosts[name]; o != h && o.deleg[id] {
				h.recallDelegations(n)
				break
			}
		}
		pre = srv.attrsOf(n)
		srv.truncate(n, size)
		post = srv.attrsOf(n)
		return nil
	})
	if err != nil {
		return err
	}
	h.update(post, false, &pre)
	h.attrs[id].a.size = size
	if cf := h.pages[id]; cf != nil {
		ps := int64(h.mount.PageSize)
		for i, pg := range cf.pages {
			switch {
			case i*ps >= size:
				delete(cf.pages, i)
			case (i+1)*ps > size:
				clear(pg.data[size-i*ps:])
				if pg.dhi > int(size-i*ps) {
					pg.dhi = int(size - i*ps)
				}
			}
		}
	}
	return nil
}

// ---- the vfs.File methods ----

// enter locks the simulation and checks the file is usable.
func (f *file) enter(call string) error {
	f.h.sim.mu.Lock()
	if f.close {
		return fs.ErrClosed
	}
	if f.h.down || f.inc != f.h.incarnation {
		return ErrHostDown
	}
	return f.h.call(call, f.name)
}

func (f *file) Name() string { return f.name }

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	defer f.h.sim.mu.Unlock()
	if err := f.enter("ReadAt"); err != nil {
		return 0, pathErr("read", f.name, err)
	}
	if f.flag.AccessMode() == vfs.WriteOnly {
		return 0, pathErr("read", f.name, syscall.EBADF)
	}
	n, err := f.h.read(f, p, off)
	if err == io.EOF {
		return n, err
	}
	return n, pathErr("read", f.name, err)
}

func (h *Host) read(f *file, p []byte, off int64) (int, error) {
	if f.dir {
		return 0, syscall.EISDIR
	}
	if off < 0 {
		return 0, syscall.EINVAL
	}
	a, err := h.revalidate(f.id, f.name, h.sim.kind(N2)) // N1: only when expired
	if err != nil {
		return 0, err
	}
	size := a.size
	ps := int64(h.mount.PageSize)
	n := 0
	for pos := off; pos < off+int64(len(p)); {
		if pos >= size {
			break
		}
		idx := pos / ps
		pg := h.pageFile(f.id).pages[idx]
		if pg == nil || !pg.uptodate {
			if err := h.fill(f.id, f.name, pos); err != nil {
				return n, err
			}
			size = h.attrs[f.id].a.size
			if pos >= size {
				break
			}
			pg = h.pageFile(f.id).pages[idx]
			if pg == nil || !pg.uptodate {
				return n, syscall.EIO // unreachable: fill makes pages below size uptodate
			}
		}
		in := pos - idx*ps
		end := ps
		if rem := size - idx*ps; rem < end {
			end = rem
		}
		if want := off + int64(len(p)) - idx*ps; want < end {
			end = want
		}
		c := copy(p[n:], pg.data[in:end])
		n += c
		pos += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fill reads the rsize-aligned chunk holding pos with one READ (N8) into
// the pages that are not uptodate, keeping this host's dirty bytes and
// overlaying its in-flight writes.
func (h *Host) fill(id fileID, p string, pos int64) error {
	ps, rs := int64(h.mount.PageSize), int64(h.mount.RSize)
	cf := h.pageFile(id)
	if pg := cf.pages[pos/ps]; pg != nil && pg.dirty() {
		if err := h.flush(id, p, false); err != nil {
			return err
		}
	}
	start := pos / rs * rs
	data, a, err := h.readRPC(id, p, start, int(rs))
	if err != nil {
		return err
	}
	h.update(a, false, nil)
	cf = h.pageFile(id)
	size := h.attrs[id].a.size
	for off := start; off < start+rs && off < size; off += ps {
		idx := off / ps
		pg := cf.pages[idx]
		if pg == nil {
			pg = &page{data: make([]byte, ps)}
			cf.pages[idx] = pg
		}
		if pg.uptodate {
			continue
		}
		fresh := make([]byte, ps)
		if off-start < int64(len(data)) {
			copy(fresh, data[off-start:])
		}
		if pg.dirty() {
			copy(fresh[pg.dlo:pg.dhi], pg.data[pg.dlo:pg.dhi])
		}
		for _, w := range h.inflight {
			if w.id == id {
				overlay(fresh, off, w)
			}
		}
		pg.data = fresh
		pg.uptodate = true
	}
	return nil
}

func overlay(page []byte, pageOff int64, w *writeReq) {
	lo, hi := w.off, w.off+int64(len(w.data))
	if hi <= pageOff || lo >= pageOff+int64(len(page)) {
		return
	}
	if lo < pageOff {
		lo = pageOff
	}
	if hi > pageOff+int64(len(page)) {
		hi = pageOff + int64(len(page))
	}
	copy(page[lo-pageOff:hi-pageOff], w.data[lo-w.off:hi-w.off])
}

// readRPC is one READ. With a read tear unit the server serves it in
// pieces at different steps, so WRITEs from other hosts interleave (N8).
func (h *Host) readRPC(id fileID, p string, off int64, length int) ([]byte, attrs, error) {
	var data []byte
	var a attrs
	unit := h.sim.cfg.Server.ReadTearUnit
	if h.sim.kind(N8) {
		unit = 0
	}
	first := length
	if unit > 0 && unit < length {
		first = unit
	}
	err := h.rpc(READ, p, length, func() error {
		n, err := h.sim.srv.get(id)
		if err != nil {
			return err
		}
		data, a = h.sim.srv.read(n, off, first), h.sim.srv.attrsOf(n)
		return nil
	})
	if err != nil {
		return nil, attrs{}, err
	}
	for got := first; unit > 0 && got < length && len(data) == got; got += unit {
		h.sim.yield(h, 0)
		n, err := h.sim.srv.get(id)
		if err != nil {
			return nil, attrs{}, err
		}
		k := unit
		if got+k > length {
			k = length - got
		}
		data = append(data, h.sim.srv.read(n, off+int64(got), k)...)
		a = h.sim.srv.attrsOf(n)
	}
	return data, a, nil
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	defer f.h.sim.mu.Unlock()
	if err := f.enter("WriteAt"); err != nil {
		return 0, pathErr("write", f.name, err)
	}
	if off < 0 {
		return 0, pathErr("write", f.name, syscall.EINVAL)
	}
	n, err := f.h.write(f, p, off)
	return n, pathErr("write", f.name, err)
}

func (f *file) Write(p []byte) (int, error) {
	defer f.h.sim.mu.Unlock()
	if err := f.enter("Write"); err != nil {
		return 0, pathErr("write", f.name, err)
	}
	h := f.h
	off := f.pos
	if f.flag.Has(vfs.Append) {
		// N12: append at this host's cached size, refreshed only when
		// the attribute cache says so.
		a, err := h.revalidate(f.id, f.name, false)
		if err != nil {
			return 0, pathErr("write", f.name, err)
		}
		off = a.size
		if h.sim.kind(N12) { // append at the server's end of file
			if n, err := h.sim.srv.get(f.id); err == nil {
				off = max(n.data.size, off)
			}
		}
	}
	n, err := h.write(f, p, off)
	f.pos = off + int64(n)
	return n, pathErr("write", f.name, err)
}

func (h *Host) write(f *file, p []byte, off int64) (int, error) {
	if f.flag.AccessMode() == vfs.ReadOnly || f.dir {
		return 0, syscall.EBADF
	}
	e := h.attrs[f.id]
	if e == nil {
		if _, err := h.getattr(f.id, f.name); err != nil {
			return 0, err
		}
		e = h.attrs[f.id]
	}
	ps := int64(h.mount.PageSize)
	oldSize := e.a.size
	newSize := oldSize
	if end := off + int64(len(p)); end > newSize {
		newSize = end
	}
	sync := f.flag.Has(vfs.DSync) || h.mount.NoAC || h.sim.kind(N7)
	extend := !h.mount.NoAlignWrite && !sync && !h.sim.kind(N9)
	if errno := h.failNext[f.id]; errno != 0 && h.sim.kind(N11) {
		delete(h.failNext, f.id)
		return 0, errno
	}
	for done := 0; done < len(p); {
		pos := off + int64(done)
		idx := pos / ps
		lo := int(pos - idx*ps)
		hi := lo + len(p) - done
		if hi > int(ps) {
			hi = int(ps)
		}
		cf := h.pageFile(f.id)
		pg := cf.pages[idx]
		if pg == nil {
			pg = &page{data: make([]byte, ps)}
			cf.pages[idx] = pg
		}
		full := lo == 0 && hi == int(ps)
		inEOF := oldSize - idx*ps // bytes of the page below the old EOF
		if !pg.uptodate && !full {
			switch {
			case f.flag.AccessMode() == vfs.ReadWrite && inEOF > 0 && !pg.dirty():
				// nfs_want_read_modify_write: read the page first.
				if err := h.fill(f.id, f.name, idx*ps); err != nil {
					return done, err
				}
				pg = h.pageFile(f.id).pages[idx]
			case pg.dirty() && (hi < pg.dlo || lo > pg.dhi):
				// A disjoint dirty range cannot be merged: flush it.
				if err := h.flush(f.id, f.name, false); err != nil {
					return done, err
				}
			}
		}
		copy(pg.data[lo:hi], p[done:hi-lo+done])
		if !pg.uptodate && (full || inEOF <= 0 || (lo == 0 && int64(hi) >= inEOF)) {
			pg.uptodate = true // nfs_write_end: nothing below EOF is unknown
		}
		switch {
		case pg.uptodate && extend:
			// N9: the write widens to the whole page (up to EOF), resending
			// this host's cached copy of bytes it did not write.
			pg.dlo, pg.dhi = 0, int(min(ps, newSize-idx*ps))
		case pg.dirty():
			pg.dlo, pg.dhi = min(pg.dlo, lo), max(pg.dhi, hi)
		default:
			pg.dlo, pg.dhi = lo, hi
		}
		done += hi - lo
	}
	e.a.size = newSize
	if sync {
		if err := h.flush(f.id, f.name, true); err != nil {
			return len(p), err
		}
		if err := h.takeWriteErr(f.id); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

func (h *Host) takeWriteErr(id fileID) error {
	err := h.werr[id]
	delete(h.werr, id)
	return err
}

func (f *file) Sync() error     { return f.sync("Sync") }
func (f *file) Datasync() error { return f.sync("Datasync") }

func (f *file) sync(call string) error {
	defer f.h.sim.mu.Unlock()
	if err := f.enter(call); err != nil {
		return pathErr("fsync", f.name, err)
	}
	if f.dir {
		return nil
	}
	if err := f.h.flush(f.id, f.name, true); err != nil && errors.Is(err, ErrHostDown) {
		return pathErr("fsync", f.name, err)
	}
	return pathErr("fsync", f.name, f.h.takeWriteErr(f.id))
}

func (f *file) Stat() (vfs.FileInfo, error) {
	defer f.h.sim.mu.Unlock()
	if err := f.enter("FileStat"); err != nil {
		return vfs.FileInfo{}, pathErr("stat", f.name, err)
	}
	a, err := f.h.statID(f.id, f.name)
	if err != nil {
		return vfs.FileInfo{}, pathErr("stat", f.name, err)
	}
	return info(f.name, a), nil
}

func (f *file) Truncate(size int64) error {
	defer f.h.sim.mu.Unlock()
	if err := f.enter("Truncate"); err != nil {
		return pathErr("truncate", f.name, err)
	}
	if f.flag.AccessMode() == vfs.ReadOnly || f.dir {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	if size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	return pathErr("truncate", f.name, f.h.setSize(f.id, f.name, size))
}

// Close writes back and commits what this host wrote to the file (N2),
// reports a write error that happened in the background (N11), sends
// CLOSE on v4, and removes silly-renamed names at the last close (N17).
func (f *file) Close() error {
	h := f.h
	defer h.sim.mu.Unlock()
	if err := f.enter("Close"); err != nil {
		if errors.Is(err, ErrHostDown) {
			f.close = true
		}
		return pathErr("close", f.name, err)
	}
	f.close = true
	var err error
	if f.flag.AccessMode() != vfs.ReadOnly && !f.dir && !h.mount.NoCloseFlush {
		if ferr := h.flush(f.id, f.name, true); errors.Is(ferr, ErrHostDown) {
			return pathErr("close", f.name, ferr)
		}
		err = h.takeWriteErr(f.id)
	}
	if f.v4 {
		h.releaseV4(f.id, f.name)
	}
	if f.on != nil {
		h.noteClose(f.on, f.name)
	}
	return pathErr("close", f.name, err)
}
