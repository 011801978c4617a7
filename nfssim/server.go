package nfssim

import (
	"io/fs"
	"syscall"
	"time"
)

type fileID uint64

const rootID fileID = 1

// inode is the server's object. data is what READs see (stable data with
// unstable writes applied); stable is what survives a server crash.
type inode struct {
	id      fileID
	gen     uint32
	mode    fs.FileMode // type bits | permission bits
	nlink   int
	data    []byte
	stable  []byte
	mtime   time.Time
	ctime   time.Time
	change  uint64
	ver     uint64            // a true modification counter, for Disable(N3)
	target  string            // symlink
	entries map[string]fileID // directory
	// verf is the EXCLUSIVE create verifier stored with the file (N13).
	verf    uint64
	hasVerf bool
	// dead: no name left and nobody may read it (ESTALE).
	dead bool
	// openers counts v4 open state per host, for UnlinkedPreserve.
	openers map[*Host]int
}

func (n *inode) isDir() bool { return n.mode.IsDir() }

// attrs is what GETATTR returns and hosts cache.
type attrs struct {
	id     fileID
	gen    uint32
	mode   fs.FileMode
	nlink  int
	size   int64
	mtime  time.Time
	ctime  time.Time
	change uint64
	ver    uint64
}

type drcKey struct {
	host *Host
	xid  uint64
}

type server struct {
	sim        *Sim
	inodes     map[fileID]*inode
	nextID     fileID
	epoch      uint64 // write verifier
	upAt       time.Duration
	graceUntil time.Duration
	drc        map[drcKey]error
	drcQ       []drcKey
}

func newServer(s *Sim) *server {
	srv := &server{sim: s, inodes: map[fileID]*inode{}, nextID: rootID, epoch: 1}
	srv.drc = map[drcKey]error{}
	root := srv.newInode(fs.ModeDir | 0o755)
	root.nlink = 2
	return srv
}

// stamp is the server's clock, quantized to its timestamp granularity.
func (srv *server) stamp() time.Time {
	g, skew := srv.sim.cfg.Server.Granularity, srv.sim.cfg.Server.Skew
	if srv.sim.kind(N18) {
		g, skew = 1, 0
	}
	t := srv.sim.now + skew
	return epoch.Add(t - t%g)
}

func (srv *server) newInode(mode fs.FileMode) *inode {
	id := srv.nextID
	srv.nextID++
	now := srv.stamp()
	n := &inode{id: id, gen: uint32(srv.sim.rng.Uint32()), mode: mode, nlink: 1, mtime: now, ctime: now, change: 1}
	if mode.IsDir() {
		n.entries = map[string]fileID{}
	}
	srv.inodes[id] = n
	return n
}

// touch records a modification: data (mtime and ctime) or metadata (ctime).
func (srv *server) touch(n *inode, data bool) {
	now := srv.stamp()
	if data {
		n.mtime = now
	}
	n.ctime = now
	n.change++
	n.ver++
	if srv.sim.cfg.Server.ChangeMode == ChangeCTime {
		n.change = uint64(now.UnixNano())
	}
}

func (srv *server) attrsOf(n *inode) attrs {
	return attrs{id: n.id, gen: n.gen, mode: n.mode, nlink: n.nlink, size: int64(len(n.data)),
		mtime: n.mtime, ctime: n.ctime, change: n.change, ver: n.ver}
}

// get returns the live inode of a file handle, or ESTALE.
func (srv *server) get(id fileID) (*inode, error) {
	n := srv.inodes[id]
	if n == nil || n.dead {
		return nil, syscall.ESTALE
	}
	return n, nil
}

func (srv *server) dir(id fileID) (*inode, error) {
	d, err := srv.get(id)
	if err != nil {
		return nil, err
	}
	if !d.isDir() {
		return nil, syscall.ENOTDIR
	}
	return d, nil
}

func (srv *server) lookup(dirID fileID, name string) (*inode, error) {
	d, err := srv.dir(dirID)
	if err != nil {
		return nil, err
	}
	id, ok := d.entries[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	return srv.inodes[id], nil
}

// contains reports whether directory d is dir or holds it at any depth.
func (srv *server) contains(d *inode, dir fileID) bool {
	if d.id == dir {
		return true
	}
	for _, id := range d.entries {
		if c := srv.inodes[id]; c != nil && c.isDir() && srv.contains(c, dir) {
			return true
		}
	}
	return false
}

// addEntry adds name -> n in d.
func (srv *server) addEntry(d *inode, name string, n *inode) {
	d.entries[name] = n.id
	srv.touch(d, true)
}

// unlinkInode drops one link of n; when none is left the inode dies
// unless the server preserves files that hosts hold open.
func (srv *server) unlinkInode(n *inode, byRename bool) {
	n.nlink--
	if n.isDir() {
		n.nlink = 0
	}
	srv.touch(n, false)
	if n.nlink <= 0 {
		if srv.sim.cfg.Server.Unlinked == UnlinkedPreserve && n.openCount() > 0 {
			return
		}
		if (byRename && srv.sim.kind(N15)) || (!byRename && srv.sim.kind(N16)) {
			return // kinder than NFS: the object outlives its names
		}
		n.dead = true
	}
}

func (n *inode) openCount() int {
	c := 0
	for _, k := range n.openers {
		c += k
	}
	return c
}

// releaseOpen drops a host's v4 open state; a preserved unlinked file dies
// with its last opener.
func (srv *server) releaseOpen(n *inode, h *Host) {
	if n.openers == nil || n.openers[h] == 0 {
		return
	}
	n.openers[h]--
	if n.nlink <= 0 && n.openCount() == 0 {
		n.dead = true
	}
}

func (srv *server) create(dirID fileID, name string, mode fs.FileMode) (*inode, error) {
	d, err := srv.dir(dirID)
	if err != nil {
		return nil, err
	}
	if _, ok := d.entries[name]; ok {
		return nil, syscall.EEXIST
	}
	n := srv.newInode(mode)
	if mode.IsDir() {
		n.nlink = 2
	}
	srv.addEntry(d, name, n)
	return n, nil
}

// write applies a WRITE. Stable writes go to both images.
func (srv *server) write(n *inode, off int64, p []byte, stable bool) {
	n.data = writeInto(n.data, off, p)
	if stable {
		n.stable = writeInto(n.stable, off, p)
	}
	srv.touch(n, true)
}

func writeInto(b []byte, off int64, p []byte) []byte {
	end := off + int64(len(p))
	if end > int64(len(b)) {
		if end <= int64(cap(b)) {
			b = b[:end]
		} else {
			nb := make([]byte, end, end+end/4)
			copy(nb, b)
			b = nb
		}
	}
	copy(b[off:], p)
	return b
}

// commit makes all of n's data stable (knfsd fsyncs the file).
func (srv *server) commit(n *inode) {
	n.stable = append(n.stable[:0:0], n.data...)
}

// truncate is a synchronous SETATTR of the size.
func (srv *server) truncate(n *inode, size int64) {
	n.data = resize(n.data, size)
	n.stable = resize(n.stable, size)
	srv.touch(n, true)
}

func resize(b []byte, size int64) []byte {
	if size <= int64(len(b)) {
		return b[:size:size]
	}
	nb := make([]byte, size)
	copy(nb, b)
	return nb
}

func (srv *server) read(n *inode, off int64, length int) []byte {
	if off >= int64(len(n.data)) {
		return nil
	}
	end := off + int64(length)
	if end > int64(len(n.data)) {
		end = int64(len(n.data))
	}
	return append([]byte(nil), n.data[off:end]...)
}

// crash loses the unstable overlays and the DRC and changes the write
// verifier; the namespace and stable data survive. The server is back
// after outage; v4 opens wait for the grace period.
func (srv *server) crash(outage time.Duration) {
	if srv.sim.kind(N21) {
		return // kinder than NFS: the server never loses anything
	}
	for _, n := range srv.inodes {
		if !n.isDir() && n.mode&fs.ModeSymlink == 0 {
			n.data = append(n.stable[:0:0], n.stable...)
		}
		n.openers = nil
		if n.nlink <= 0 {
			n.dead = true
		}
	}
	srv.drc = map[drcKey]error{}
	srv.drcQ = nil
	srv.epoch++
	srv.upAt = srv.sim.now + outage
	srv.graceUntil = srv.upAt + srv.sim.cfg.Server.GracePeriod
}

// remember stores a reply in the duplicate request cache (N14).
func (srv *server) remember(k drcKey, err error) {
	size := srv.sim.cfg.Server.DRCSize
	if size <= 0 {
		return
	}
	if len(srv.drcQ) >= size {
		delete(srv.drc, srv.drcQ[0])
		srv.drcQ = srv.drcQ[1:]
	}
	srv.drc[k] = err
	srv.drcQ = append(srv.drcQ, k)
}
