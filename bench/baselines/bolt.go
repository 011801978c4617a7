package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// boltStore keeps the mailbox in bbolt: bucket "msgs" maps a big-endian
// UID to flags (2 bytes), MODSEQ (8) and the field bytes; bucket "meta"
// holds UIDNEXT, HIGHESTMODSEQ and the message count. bbolt's defaults
// are durable: every Update fdatasyncs before it returns (NoSync false).
type boltStore struct {
	path string
	db   *bolt.DB
}

var (
	bucketMsgs = []byte("msgs")
	bucketMeta = []byte("meta")
	keyUIDNext = []byte("uidnext")
	keyModSeq  = []byte("modseq")
	keyCount   = []byte("count")
)

func (s *boltStore) name() string { return "bbolt" }

func (s *boltStore) create(path string) error {
	s.path = path
	db, err := bolt.Open(path, 0o644, nil)
	if err != nil {
		return err
	}
	s.db = db
	return db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket(bucketMsgs); err != nil {
			return err
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keyUIDNext, u64(1)); err != nil {
			return err
		}
		if err := meta.Put(keyModSeq, u64(0)); err != nil {
			return err
		}
		return meta.Put(keyCount, u64(0))
	})
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func uidKey(uid uint32) []byte { return binary.BigEndian.AppendUint32(nil, uid) }

// bump increments HIGHESTMODSEQ: every transaction is a new MODSEQ.
func bump(meta *bolt.Bucket) (uint64, error) {
	ms := binary.BigEndian.Uint64(meta.Get(keyModSeq)) + 1
	return ms, meta.Put(keyModSeq, u64(ms))
}

func add(meta *bolt.Bucket, key []byte, d int64) error {
	return meta.Put(key, u64(uint64(int64(binary.BigEndian.Uint64(meta.Get(key)))+d)))
}

func (s *boltStore) appendMsgs(n int, field []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		msgs, meta := tx.Bucket(bucketMsgs), tx.Bucket(bucketMeta)
		ms, err := bump(meta)
		if err != nil {
			return err
		}
		next := binary.BigEndian.Uint64(meta.Get(keyUIDNext))
		for i := range n {
			v := make([]byte, 10, 10+len(field))
			binary.BigEndian.PutUint64(v[2:], ms)
			if err := msgs.Put(uidKey(uint32(next)+uint32(i)), append(v, field...)); err != nil {
				return err
			}
		}
		if err := meta.Put(keyUIDNext, u64(next+uint64(n))); err != nil {
			return err
		}
		return add(meta, keyCount, int64(n))
	})
}

func (s *boltStore) setFlags(uids []uint32, addF, removeF uint16) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		msgs, meta := tx.Bucket(bucketMsgs), tx.Bucket(bucketMeta)
		ms, err := bump(meta)
		if err != nil {
			return err
		}
		for _, uid := range uids {
			old := msgs.Get(uidKey(uid))
			if old == nil {
				return fmt.Errorf("no message %d", uid)
			}
			v := append([]byte(nil), old...)
			f := binary.BigEndian.Uint16(v)&^removeF | addF
			binary.BigEndian.PutUint16(v, f)
			binary.BigEndian.PutUint64(v[2:], ms)
			if err := msgs.Put(uidKey(uid), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltStore) lookup(uid uint32) (bool, error) {
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketMsgs).Get(uidKey(uid)) != nil
		return nil
	})
	return found, err
}

func (s *boltStore) scan() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMsgs).Cursor()
		seen := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if binary.BigEndian.Uint16(v)&1 != 0 {
				seen++
			}
			n++
		}
		return nil
	})
	return n, err
}

func (s *boltStore) expunge(uids []uint32) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		msgs, meta := tx.Bucket(bucketMsgs), tx.Bucket(bucketMeta)
		if _, err := bump(meta); err != nil {
			return err
		}
		for _, uid := range uids {
			if err := msgs.Delete(uidKey(uid)); err != nil {
				return err
			}
		}
		return add(meta, keyCount, -int64(len(uids)))
	})
}

func (s *boltStore) compactHow() string {
	return "bbolt.Compact into a new file, fsync, rename over the old one"
}

// compact copies the database into a new file (bbolt never shrinks a file
// in place) and renames it over the old one.
func (s *boltStore) compact() error {
	tmp := s.path + ".compact"
	dst, err := bolt.Open(tmp, 0o644, nil)
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, s.db, 64<<20); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	if err := errors.Join(dst.Close(), s.db.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	db, err := bolt.Open(s.path, 0o644, nil)
	s.db = db
	return err
}

func (s *boltStore) reopen() (int, error) {
	db, err := bolt.Open(s.path, 0o644, nil)
	if err != nil {
		return 0, err
	}
	s.db = db
	var n uint64
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		_ = binary.BigEndian.Uint64(meta.Get(keyUIDNext)) + binary.BigEndian.Uint64(meta.Get(keyModSeq))
		n = binary.BigEndian.Uint64(meta.Get(keyCount))
		return nil
	})
	return int(n), err
}

func (s *boltStore) close() error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}
