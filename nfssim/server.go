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
	data    blob
	stable  blob
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
	return attrs{id: n.id, gen: n.gen, mode: n.mode, nlink: n.nlink, size: n.data.size,
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
	n.data.write(off, p)
	if stable {
		n.stable.write(off, p)
	}
	srv.touch(n, true)
}

// commit makes all of n's data stable (knfsd fsyncs the file).
func (srv *server) commit(n *inode) { n.stable = n.data.clone() }

// truncate is a synchronous SETATTR of the size.
func (srv *server) truncate(n *inode, size int64) {
	n.data.truncate(size)
	n.stable.truncate(size)
	srv.touch(n, true)
}

func (srv *server) read(n *inode, off int64, length int) []byte {
	return n.data.read(off, length)
}

// blob is a file's bytes, stored sparsely in chunks so that a byte
// written far beyond the end (a marker at 2^40) costs one chunk.
type blob struct {
	size   int64
	chunks map[int64][]byte // chunk index -> chunkSize bytes
}

const chunkSize = 4096

func (b *blob) write(off int64, p []byte) {
	if b.chunks == nil {
		b.chunks = map[int64][]byte{}
	}
	for len(p) > 0 {
		idx, in := off/chunkSize, off%chunkSize
		c := b.chunks[idx]
		if c == nil {
			c = make([]byte, chunkSize)
			b.chunks[idx] = c
		}
		n := copy(c[in:], p)
		p, off = p[n:], off+int64(n)
	}
	if off > b.size {
		b.size = off
	}
}

func (b *blob) read(off int64, length int) []byte {
	if off >= b.size || length <= 0 {
		return nil
	}
	end := min(off+int64(length), b.size)
	out := make([]byte, end-off)
	for pos := off; pos < end; {
		idx, in := pos/chunkSize, pos%chunkSize
		n := min(int64(chunkSize)-in, end-pos)
		if c := b.chunks[idx]; c != nil {
			copy(out[pos-off:], c[in:in+n])
		}
		pos += n
	}
	return out
}

func (b *blob) truncate(size int64) {
	if size < b.size {
		for idx := range b.chunks {
			switch start := idx * chunkSize; {
			case start >= size:
				delete(b.chunks, idx)
			case start+chunkSize > size:
				clear(b.chunks[idx][size-start:])
			}
		}
	}
	b.size = size
}

func (b blob) clone() blob {
	c := blob{size: b.size, chunks: make(map[int64][]byte, len(b.chunks))}
	for idx, data := range b.chunks {
		c.chunks[idx] = append([]byte(nil), data...)
	}
	return c
}

func blobOf(p []byte) blob {
	var b blob
	b.write(0, p)
	return b
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
			n.data = n.stable.clone()
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
