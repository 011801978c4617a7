package rename

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/cespare/xxhash/v2"

	"github.com/nfsindex/nfsindex/vfs"
)

// Version is one installed version, open for reading. It is opened
// through a pin: a hard link <name>.pin.<id> of its own, made by OpenLatest
// and removed by Close. So it keeps reading the file it opened after any
// number of installs, on every server (the pin keeps the file alive where
// it would otherwise go stale, N15), and it never makes the version's name
// busy on its host: a host that holds <name> itself open and installs over
// it makes its NFS client silly-rename the old file first (N17), a second
// rename of <name> at the server, which leaves the name absent for other
// hosts in between and, if that host pauses there, later moves away
// whatever version is installed by then (see the package documentation).
// A Version never mixes two versions: every byte comes from the one file
// whose header it checked.
type Version struct {
	f      vfs.File
	fsys   vfs.FS
	name   string // the version's name, for errors
	pin    string // the pin it was opened through
	info   Info
	closed bool
}

// File returns the version's open file, for a read cache (package
// readahead) that keys it by Info.ClaimID: the payload starts at offset
// HeaderSize, and the file never changes. Do not close it: Close the
// Version.
func (v *Version) File() vfs.File { return v.f }

// Info returns the version's header.
func (v *Version) Info() Info { return v.info }

// ReadAt reads payload bytes at payload offset off, like io.ReaderAt: it
// returns io.EOF when fewer than len(p) bytes remain.
func (v *Version) ReadAt(p []byte, off int64) (int, error) {
	if v.closed {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: v.name, Err: fs.ErrInvalid}
	}
	if off >= v.info.Size {
		return 0, io.EOF
	}
	want := p
	if rem := v.info.Size - off; int64(len(want)) > rem {
		want = want[:rem]
	}
	n, err := v.f.ReadAt(want, HeaderSize+off)
	if n == len(want) {
		err = nil
	}
	if err == io.EOF {
		// The file is shorter than its header says: OpenLatest checked
		// the size, so the file changed, which an installed version never
		// does.
		return n, &CorruptError{Path: v.name, Reason: fmt.Sprintf("file ends inside the payload at %d", off+int64(n))}
	}
	if err == nil && len(want) < len(p) {
		err = io.EOF
	}
	return n, err
}

// Close closes the file and removes its pin.
func (v *Version) Close() error {
	if v.closed {
		return ErrClosed
	}
	v.closed = true
	err := v.f.Close()
	if rerr := v.fsys.Remove(v.pin); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// readAll reads the whole payload and checks its hash.
func (v *Version) readAll(ctx context.Context, chunk int) ([]byte, error) {
	if v.info.Size > 1<<40 {
		return nil, &CorruptError{Path: v.name, Reason: fmt.Sprintf("payload of %d bytes is too large to load", v.info.Size)}
	}
	out := make([]byte, v.info.Size)
	for off := 0; off < len(out); off += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(off+chunk, len(out))
		if _, err := v.ReadAt(out[off:end], int64(off)); err != nil {
			return nil, err
		}
	}
	if sum := xxhash.Sum64(out); sum != v.info.Checksum {
		return nil, &CorruptError{Path: v.name, Reason: fmt.Sprintf("payload hash %#x, header says %#x", sum, v.info.Checksum)}
	}
	return out, nil
}

// OpenLatest opens the version installed at name: the old or the new file
// of any concurrent install, never a mix. It first opens the directory, so
// that the client revalidates it and looks the name up again if it
// changed (close-to-open on the directory: N4, N5; one GETATTR), then
// opens the name (one GETATTR or v4 OPEN) and reads the header (one READ
// unless cached: a version never changes). A file that went stale under
// the open or the header read (ESTALE: another host replaced it,
// N15/N16) is reopened the same way, at most Options.StaleRetries times,
// then a *StaleError (ErrStale) is returned. A name that is absent gives
// an error matching fs.ErrNotExist; a file that is not a complete version
// gives a *CorruptError (ErrCorrupt).
//
// On NFSv3, a directory changed within one timestamp tick of this
// client's last look at it shows no change (N3), so a version installed
// in that tick may be missed for up to acdirmax if the replaced file is
// still alive (another host's .nfs file, N17, or a server that keeps
// unlinked open files): OpenLatest then returns the older version. Use a
// Reader to never go back.
func OpenLatest(ctx context.Context, fsys vfs.FS, name string, opts Options) (*Version, error) {
	n, err := newNames(name)
	if err != nil {
		return nil, err
	}
	opts, err = readerDefaults(opts)
	if err != nil {
		return nil, err
	}
	return openLatest(ctx, fsys, n, opts)
}

// readerDefaults fills what readers use.
func readerDefaults(o Options) (Options, error) { return o.withDefaults() }

// revalidateDir opens and closes a directory: close-to-open makes the
// client revalidate its attributes and forget the names it cached under
// it if they changed (N4, N5).
func revalidateDir(fsys vfs.FS, dir string) {
	if f, err := fsys.OpenFile(dir, vfs.ReadOnly, 0); err == nil {
		_ = f.Close()
	}
}

// refreshNames lists a directory after revalidating it: a READDIRPLUS
// gives the client every name's current file (Linux primes its dentries
// from it), which replaces names this client cached before its own
// namespace operation whose reply was lost (N14), when the directory's
// timestamps could not show the change (N3). Used only to resolve an
// ambiguous answer: a listing costs RPCs in proportion to the directory.
func refreshNames(fsys vfs.FS, dir string) {
	revalidateDir(fsys, dir)
	_, _ = fsys.ReadDir(dir)
}

// absentRetries is how many times openLatest looks an absent name up
// again (see the N17 window in the package documentation).
const absentRetries = 2

func openLatest(ctx context.Context, fsys vfs.FS, n names, opts Options) (*Version, error) {
	var last error
	tries := 0
	for try := 0; try <= opts.StaleRetries; try++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if errors.Is(last, vfs.ErrStale) {
			// Our client still holds the name's old file, dead at the
			// server, and the directory's timestamps did not show the
			// change (N3): a listing gives it the current file. (Not
			// an open of the name, which would make the name busy on
			// this host for a moment: see Version.)
			refreshNames(fsys, n.dir)
		} else {
			revalidateDir(fsys, n.dir)
		}
		tries++
		v, err := openOnce(fsys, n, opts)
		switch {
		case err == nil:
			return v, nil
		case errors.Is(err, vfs.ErrStale):
			last = err
		case errors.Is(err, fs.ErrNotExist) && try < absentRetries:
			// Look an absent name up again: an install by a host that
			// holds the old version open is two RPCs at the server, a
			// silly rename of the old version (N17) and the rename, and
			// the name is absent in between for every other host.
			last = err
		default:
			return nil, err
		}
	}
	if errors.Is(last, fs.ErrNotExist) {
		return nil, last
	}
	return nil, &StaleError{Name: n.name, Tries: tries, Err: last}
}

// openOnce pins the file at the name with a hard link of its own, opens
// the pin, and checks the header and size. A lost reply of the LINK that
// answers EEXIST (N14) is ours: the pin's name is random.
func openOnce(fsys vfs.FS, n names, opts Options) (*Version, error) {
	pin := fmt.Sprintf("%s%s%016x", n.name, pinInfix, opts.Rand.Uint64())
	if err := fsys.Link(n.name, pin); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	f, err := fsys.OpenFile(pin, vfs.ReadOnly, 0)
	if err != nil {
		_ = fsys.Remove(pin)
		return nil, err
	}
	v, err := check(f, n.name)
	if err != nil {
		_ = f.Close()
		_ = fsys.Remove(pin)
		return nil, err
	}
	v.fsys, v.pin = fsys, pin
	return v, nil
}

func check(f vfs.File, name string) (*Version, error) {
	b := make([]byte, HeaderSize)
	n, err := f.ReadAt(b, 0)
	if err != nil && !(err == io.EOF && n == HeaderSize) {
		if err == io.EOF {
			return nil, &CorruptError{Path: name, Reason: fmt.Sprintf("%d bytes, shorter than a header", n)}
		}
		return nil, err
	}
	h, err := decodeHeader(b)
	if err != nil {
		return nil, &CorruptError{Path: name, Reason: err.Error()}
	}
	if h.State != StateComplete {
		return nil, &CorruptError{Path: name, Reason: "header of a claim still being written"}
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size != HeaderSize+h.Size {
		return nil, &CorruptError{Path: name, Reason: fmt.Sprintf("file size %d, header says %d", fi.Size, HeaderSize+h.Size)}
	}
	return &Version{f: f, name: name, info: h.Info}, nil
}

// Load opens the version installed at name, reads its whole payload and
// checks it against the header's hash. A file that goes stale while it is
// read is reopened (bounded, as OpenLatest).
func Load(ctx context.Context, fsys vfs.FS, name string, opts Options) (Info, []byte, error) {
	n, err := newNames(name)
	if err != nil {
		return Info{}, nil, err
	}
	if opts, err = readerDefaults(opts); err != nil {
		return Info{}, nil, err
	}
	return load(ctx, fsys, n, opts)
}

func load(ctx context.Context, fsys vfs.FS, n names, opts Options) (Info, []byte, error) {
	var last error
	tries := 0
	for try := 0; try <= opts.StaleRetries; try++ {
		tries++
		v, err := openLatest(ctx, fsys, n, opts)
		if err != nil {
			return Info{}, nil, err
		}
		data, err := v.readAll(ctx, opts.BufferSize)
		_ = v.Close()
		if err == nil {
			return v.info, data, nil
		}
		if !errors.Is(err, vfs.ErrStale) {
			return Info{}, nil, err
		}
		last = err
	}
	return Info{}, nil, &StaleError{Name: n.name, Tries: tries, Err: last}
}

// Reader reads the versions of one name and never goes back: it remembers
// the newest generation it returned, and a version older than that is
// reopened after revalidating the directory (a stale name cache, N5) and,
// if it is still older, refused with a *RegressedError (ErrRegressed). A
// Reader is not safe for concurrent use.
type Reader struct {
	fsys vfs.FS
	n    names
	opts Options
	seen uint64
}

// NewReader returns a Reader of name.
func NewReader(fsys vfs.FS, name string, opts Options) (*Reader, error) {
	n, err := newNames(name)
	if err != nil {
		return nil, err
	}
	if opts, err = readerDefaults(opts); err != nil {
		return nil, err
	}
	return &Reader{fsys: fsys, n: n, opts: opts}, nil
}

// Generation returns the newest generation the Reader has returned (0 if
// none).
func (r *Reader) Generation() uint64 { return r.seen }

// Open is OpenLatest that never returns a generation older than one it
// returned before.
func (r *Reader) Open(ctx context.Context) (*Version, error) {
	for try := 0; ; try++ {
		v, err := openLatest(ctx, r.fsys, r.n, r.opts)
		if err != nil {
			return nil, err
		}
		if v.info.Generation >= r.seen {
			r.seen = v.info.Generation
			return v, nil
		}
		got := v.info
		_ = v.Close()
		if try > 0 {
			return nil, &RegressedError{Name: r.n.name, Seen: r.seen, Got: got}
		}
	}
}

// Load is the package's Load that never returns a generation older than
// one the Reader returned before.
func (r *Reader) Load(ctx context.Context) (Info, []byte, error) {
	for try := 0; ; try++ {
		info, data, err := load(ctx, r.fsys, r.n, r.opts)
		if err != nil {
			return Info{}, nil, err
		}
		if info.Generation >= r.seen {
			r.seen = info.Generation
			return info, data, nil
		}
		if try > 0 {
			return Info{}, nil, &RegressedError{Name: r.n.name, Seen: r.seen, Got: info}
		}
	}
}
