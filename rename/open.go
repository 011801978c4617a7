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

// Version is one installed version, open for reading. It keeps reading
// the file it opened even after another host installs a newer one (on a
// local disk, and on NFS until the server says the file is gone: then
// ReadAt returns an error matching vfs.ErrStale and the caller reopens
// with OpenLatest). It never mixes two versions: every byte comes from the
// one file whose header it checked.
type Version struct {
	f      vfs.File
	name   string
	info   Info
	closed bool
}

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

// Close closes the file.
func (v *Version) Close() error {
	if v.closed {
		return ErrClosed
	}
	v.closed = true
	return v.f.Close()
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
// of any concurrent install, never a mix. A file that went stale under the
// open or the header read (ESTALE: another host replaced it, N15/N16) is
// reopened by name after revalidating the directory (so a cached name is
// looked up again, N5), at most Options.StaleRetries times, then a
// *StaleError (ErrStale) is returned. A name that is absent gives an
// error matching fs.ErrNotExist (after one revalidated retry, N4); a file
// that is not a complete version gives a *CorruptError (ErrCorrupt).
//
// On a v3 mount with a stale name cache, OpenLatest may return an older
// version than the newest installed one (N5): use a Reader to never go
// back.
func OpenLatest(ctx context.Context, fsys vfs.FS, name string, opts Options) (*Version, error) {
	n, err := newNames(name)
	if err != nil {
		return nil, err
	}
	return openLatest(ctx, fsys, n, readerDefaults(opts), false)
}

// readerDefaults fills what readers use, without drawing a Rand.
func readerDefaults(o Options) Options {
	if o.StaleRetries <= 0 {
		o.StaleRetries = DefaultStaleRetries
	}
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	return o
}

// revalidateDir opens and closes a directory: close-to-open makes the
// client revalidate its attributes and forget the names it cached under
// it if they changed (N4, N5).
func revalidateDir(fsys vfs.FS, dir string) {
	if f, err := fsys.OpenFile(dir, vfs.ReadOnly, 0); err == nil {
		_ = f.Close()
	}
}

func openLatest(ctx context.Context, fsys vfs.FS, n names, opts Options, revalidateFirst bool) (*Version, error) {
	var last error
	tries := 0
	for try := 0; try <= opts.StaleRetries; try++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if try > 0 || revalidateFirst {
			revalidateDir(fsys, n.dir)
		}
		tries++
		v, err := openOnce(fsys, n.name)
		switch {
		case err == nil:
			return v, nil
		case errors.Is(err, vfs.ErrStale):
			last = err
		case errors.Is(err, fs.ErrNotExist) && try == 0 && !revalidateFirst:
			last = err // perhaps a negative name cached by this host (N4)
		default:
			return nil, err
		}
	}
	return nil, &StaleError{Name: n.name, Tries: tries, Err: last}
}

// openOnce opens name and checks its header and size.
func openOnce(fsys vfs.FS, name string) (*Version, error) {
	f, err := fsys.OpenFile(name, vfs.ReadOnly, 0)
	if err != nil {
		return nil, err
	}
	v, err := check(f, name)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
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
	return load(ctx, fsys, n, readerDefaults(opts), false)
}

func load(ctx context.Context, fsys vfs.FS, n names, opts Options, revalidate bool) (Info, []byte, error) {
	var last error
	tries := 0
	for try := 0; try <= opts.StaleRetries; try++ {
		tries++
		v, err := openLatest(ctx, fsys, n, opts, revalidate || try > 0)
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
	return &Reader{fsys: fsys, n: n, opts: readerDefaults(opts)}, nil
}

// Generation returns the newest generation the Reader has returned (0 if
// none).
func (r *Reader) Generation() uint64 { return r.seen }

// Open is OpenLatest that never returns a generation older than one it
// returned before.
func (r *Reader) Open(ctx context.Context) (*Version, error) {
	for try := 0; ; try++ {
		v, err := openLatest(ctx, r.fsys, r.n, r.opts, try > 0)
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
		info, data, err := load(ctx, r.fsys, r.n, r.opts, try > 0)
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
