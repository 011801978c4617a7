package main

import (
	"database/sql"
	"fmt"
	"strings"

	_ "modernc.org/sqlite"
)

// sqliteStore keeps the mailbox in SQLite (modernc.org/sqlite, pure Go):
// a messages table keyed by UID and a one-row header, in WAL mode with
// synchronous=FULL, so every COMMIT fsyncs the WAL before it returns: the
// engine's durability.
type sqliteStore struct {
	path    string
	db      *sql.DB
	getStmt *sql.Stmt
}

func (s *sqliteStore) name() string { return "sqlite" }

func (s *sqliteStore) dsn() string {
	return "file:" + s.path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)"
}

func (s *sqliteStore) open() error {
	db, err := sql.Open("sqlite", s.dsn())
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return err
	}
	var sync int
	if err := db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil {
		db.Close()
		return err
	}
	if !strings.EqualFold(mode, "wal") || sync != 2 {
		db.Close()
		return fmt.Errorf("sqlite: journal_mode %s, synchronous %d: want wal and 2 (FULL)", mode, sync)
	}
	s.db = db
	return nil
}

func (s *sqliteStore) prepare() error {
	var err error
	s.getStmt, err = s.db.Prepare("SELECT flags, modseq FROM messages WHERE uid = ?")
	return err
}

func (s *sqliteStore) create(path string) error {
	s.path = path
	if err := s.open(); err != nil {
		return err
	}
	_, err := s.db.Exec(`CREATE TABLE messages (uid INTEGER PRIMARY KEY, flags INTEGER NOT NULL, modseq INTEGER NOT NULL, fields BLOB);
CREATE TABLE header (id INTEGER PRIMARY KEY CHECK (id = 1), uidnext INTEGER NOT NULL, modseq INTEGER NOT NULL, count INTEGER NOT NULL);
INSERT INTO header VALUES (1, 1, 0, 0);`)
	if err != nil {
		return err
	}
	return s.prepare()
}

// tx runs fn in one transaction that bumps HIGHESTMODSEQ.
func (s *sqliteStore) tx(fn func(tx *sql.Tx, modseq int64) error) error {
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var ms int64
	if err := tx.QueryRow("UPDATE header SET modseq = modseq + 1 WHERE id = 1 RETURNING modseq").Scan(&ms); err != nil {
		return err
	}
	if err := fn(tx, ms); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *sqliteStore) appendMsgs(n int, field []byte) error {
	return s.tx(func(tx *sql.Tx, ms int64) error {
		var next int64
		if err := tx.QueryRow("SELECT uidnext FROM header WHERE id = 1").Scan(&next); err != nil {
			return err
		}
		ins, err := tx.Prepare("INSERT INTO messages (uid, flags, modseq, fields) VALUES (?, 0, ?, ?)")
		if err != nil {
			return err
		}
		defer ins.Close()
		var f any
		if len(field) > 0 {
			f = field
		}
		for i := range int64(n) {
			if _, err := ins.Exec(next+i, ms, f); err != nil {
				return err
			}
		}
		_, err = tx.Exec("UPDATE header SET uidnext = ?, count = count + ? WHERE id = 1", next+int64(n), n)
		return err
	})
}

func (s *sqliteStore) setFlags(uids []uint32, add, remove uint16) error {
	return s.tx(func(tx *sql.Tx, ms int64) error {
		up, err := tx.Prepare("UPDATE messages SET flags = (flags & ~?) | ?, modseq = ? WHERE uid = ?")
		if err != nil {
			return err
		}
		defer up.Close()
		for _, uid := range uids {
			res, err := up.Exec(remove, add, ms, uid)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("no message %d", uid)
			}
		}
		return nil
	})
}

func (s *sqliteStore) lookup(uid uint32) (bool, error) {
	var flags, ms int64
	err := s.getStmt.QueryRow(uid).Scan(&flags, &ms)
	if err == sql.ErrNoRows {
		return false, nil
	}
	return err == nil, err
}

func (s *sqliteStore) scan() (int, error) {
	rows, err := s.db.Query("SELECT uid, flags FROM messages")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n, seen := 0, 0
	for rows.Next() {
		var uid, flags int64
		if err := rows.Scan(&uid, &flags); err != nil {
			return n, err
		}
		if flags&1 != 0 {
			seen++
		}
		n++
	}
	return n, rows.Err()
}

func (s *sqliteStore) expunge(uids []uint32) error {
	return s.tx(func(tx *sql.Tx, _ int64) error {
		del, err := tx.Prepare("DELETE FROM messages WHERE uid = ?")
		if err != nil {
			return err
		}
		defer del.Close()
		for _, uid := range uids {
			if _, err := del.Exec(uid); err != nil {
				return err
			}
		}
		_, err = tx.Exec("UPDATE header SET count = count - ? WHERE id = 1", len(uids))
		return err
	})
}

func (s *sqliteStore) compactHow() string { return "VACUUM, then PRAGMA wal_checkpoint(TRUNCATE)" }

func (s *sqliteStore) compact() error {
	if _, err := s.db.Exec("VACUUM"); err != nil {
		return err
	}
	_, err := s.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

func (s *sqliteStore) reopen() (int, error) {
	if err := s.open(); err != nil {
		return 0, err
	}
	if err := s.prepare(); err != nil {
		return 0, err
	}
	var next, ms, n int64
	err := s.db.QueryRow("SELECT uidnext, modseq, count FROM header WHERE id = 1").Scan(&next, &ms, &n)
	return int(n), err
}

func (s *sqliteStore) close() error {
	if s.db == nil {
		return nil
	}
	if s.getStmt != nil {
		s.getStmt.Close()
		s.getStmt = nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}
