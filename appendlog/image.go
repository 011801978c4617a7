package appendlog

import (
	"context"
	"errors"
	"io"
	"io/fs"

	"github.com/nfsindex/nfsindex/vfs"
)

// ReadImage is the pure form of recovery and reading, for proofs that
// enumerate crash states as byte images: given the bytes of host's log
// file, it returns the committed state that Open and OpenReader would find
// and every committed record in log order, or the error they would return.
// It does no I/O and never panics.
func ReadImage(img []byte, host string) (Info, []Record, error) {
	lf, err := newLogFile(imageFile(img), LogName(host), host, Options{Rereads: -1})
	if err != nil {
		return Info{}, nil, err
	}
	ctx := context.Background()
	if err := lf.refresh(ctx); err != nil {
		return Info{}, nil, err
	}
	var recs []Record
	if err := lf.scan(ctx, func(r Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		return lf.info(), nil, err
	}
	return lf.info(), recs, nil
}

// imageFile is a read-only vfs.File over a byte slice.
type imageFile []byte

var errReadOnly = errors.New("appendlog: image is read-only")

func (b imageFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (imageFile) WriteAt([]byte, int64) (int, error) { return 0, errReadOnly }
func (imageFile) Write([]byte) (int, error)          { return 0, errReadOnly }
func (imageFile) Sync() error                        { return errReadOnly }
func (imageFile) Datasync() error                    { return errReadOnly }
func (b imageFile) Stat() (vfs.FileInfo, error)      { return vfs.FileInfo{Size: int64(len(b))}, nil }
func (imageFile) Truncate(int64) error               { return errReadOnly }
func (imageFile) Close() error                       { return nil }
func (imageFile) Name() string                       { return "image" }
