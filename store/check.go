package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrCorrupt is wrapped by every error that says the store file is
// damaged.
var ErrCorrupt = errors.New("store file is corrupt")

// CorruptError says which file is damaged, how, and how to recover.
type CorruptError struct {
	Path     string
	Problems []string
}

func (e *CorruptError) Error() string {
	ps := e.Problems
	more := ""
	if len(ps) > 3 {
		more = fmt.Sprintf(" (and %d more)", len(ps)-3)
		ps = ps[:3]
	}
	return fmt.Sprintf("store file %s is corrupt: %s%s. To recover, stop osio-bot, keep a copy of the file, "+
		"and restore it from a backup; or move it aside to start with an empty store (its requests, checkpoints "+
		"and undelivered thread messages are then lost). `osio-bot store check --config FILE` checks a file "+
		"without changing it", e.Path, strings.Join(ps, "; "), more)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// maxProblems bounds how many problems a check collects.
const maxProblems = 20

// schemaVersion 2: request keys are the id's number, 8 bytes big-endian,
// so that they sort whatever the id's width. Version 1 keyed them by the
// id's text ("R-000001"), which put R-1000000 before R-999999.
// schemaVersion 3: the envelope claims are kept in time order (bClaims,
// claims.go), not by envelope id (bEnvelopes, with bOldEnvelopeTimes).
const schemaVersion = 3

var metaSchema = []byte("schema")

// formatID is a request id's text for sequence number n.
func formatID(n uint64) string { return fmt.Sprintf("R-%06d", n) }

// parseID returns the number of a well-formed request id.
func parseID(id string) (uint64, bool) {
	digits, ok := strings.CutPrefix(id, "R-")
	if !ok || digits == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || formatID(n) != id {
		return 0, false
	}
	return n, true
}

// reqKey is the requests bucket's key for id.
func reqKey(id string) ([]byte, bool) {
	n, ok := parseID(id)
	if !ok {
		return nil, false
	}
	return seqKey(n), true
}

// compareIDs orders request ids by number (malformed ones by text, last).
func compareIDs(a, b string) int {
	na, oka := parseID(a)
	nb, okb := parseID(b)
	switch {
	case oka && okb:
		return cmpUint(na, nb)
	case oka:
		return -1
	case okb:
		return 1
	}
	return strings.Compare(a, b)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// migrate brings the file's layout to schemaVersion inside tx.
func migrate(tx *bbolt.Tx) error {
	meta := tx.Bucket(bMeta)
	// Schema 2's claims are moved whatever the file's version says (see
	// migrateClaims).
	if err := migrateClaims(tx); err != nil {
		return err
	}
	if v := meta.Get(metaSchema); len(v) == 1 && v[0] >= schemaVersion {
		return nil
	}
	rb := tx.Bucket(bRequests)
	var oldKeys, vals [][]byte
	err := rb.ForEach(func(k, v []byte) error {
		if bytes.HasPrefix(k, []byte("R-")) {
			oldKeys = append(oldKeys, slices.Clone(k))
			vals = append(vals, slices.Clone(v))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, k := range oldKeys {
		nk, ok := reqKey(string(k))
		if !ok {
			return fmt.Errorf("migrating request key %q: not a request id", k)
		}
		if rb.Get(nk) != nil {
			return fmt.Errorf("migrating request key %q: its new key is taken", k)
		}
		if err := rb.Put(nk, vals[i]); err != nil {
			return err
		}
		if err := rb.Delete(k); err != nil {
			return err
		}
	}
	return meta.Put(metaSchema, []byte{schemaVersion})
}

// openBolt opens the file and turns bbolt's panics and memory faults on a
// damaged file into a CorruptError.
func openBolt(path string, opts *bbolt.Options) (db *bbolt.DB, err error) {
	if err := precheck(path); err != nil {
		return nil, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			// bbolt keeps the file open and locked; the process is about
			// to stop on this error anyway.
			db, err = nil, &CorruptError{Path: path, Problems: []string{fmt.Sprint(p)}}
		}
	}()
	db, err = bbolt.Open(path, 0o600, opts)
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return nil, &CorruptError{Path: path, Problems: []string{"not a sound bbolt file: " + err.Error()}}
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	return db, nil
}

// precheck reads the file's two meta pages and checks that the pages they
// reference lie within the file, so that a truncated file is reported
// instead of faulting when bbolt maps it. A missing or empty file is fine
// (bbolt creates it).
func precheck(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening store %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("opening store %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	corrupt := func(format string, args ...any) error {
		return &CorruptError{Path: path, Problems: []string{fmt.Sprintf(format, args...)}}
	}
	type meta struct {
		pageSize         uint32
		root, free, pgid uint64
		txid             uint64
	}
	read := func(off int64) (meta, bool) {
		// Page header (16 bytes), then magic, version, page size, flags,
		// root bucket (root, sequence), freelist, pgid, txid, checksum.
		b := make([]byte, 16+64)
		if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return meta{}, false
		}
		m := b[16:]
		le := binary.NativeEndian
		if le.Uint32(m[0:]) != 0xED0CDAED || le.Uint32(m[4:]) != 2 {
			return meta{}, false
		}
		h := fnv.New64a()
		h.Write(m[:56])
		if h.Sum64() != le.Uint64(m[56:]) {
			return meta{}, false
		}
		return meta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), free: le.Uint64(m[32:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
	}
	m0, ok0 := read(0)
	var best meta
	var ok bool
	if ok0 {
		best, ok = m0, true
		if m1, ok1 := read(int64(m0.pageSize)); ok1 && m1.txid > m0.txid {
			best = m1
		}
	} else {
		for _, ps := range []int64{4096, 8192, 16384, 65536} {
			if m1, ok1 := read(ps); ok1 && int64(m1.pageSize) == ps {
				best, ok = m1, true
				break
			}
		}
	}
	if !ok {
		return corrupt("no valid bbolt meta page (not a store file, or its header is damaged)")
	}
	if best.pageSize < 1024 || best.pageSize > 1<<20 {
		return corrupt("meta page gives page size %d", best.pageSize)
	}
	if need := int64(best.pgid) * int64(best.pageSize); best.pgid > 1<<40 || size < need {
		return corrupt("file is %d bytes but its pages reach %d bytes (truncated)", size, int64(best.pgid)*int64(best.pageSize))
	}
	if best.root >= best.pgid || (best.free >= best.pgid && best.free != ^uint64(0)) {
		return corrupt("meta page references page %d/%d beyond the file's %d pages", best.root, best.free, best.pgid)
	}
	return nil
}

// verify walks every page and decodes every request; it returns the
// problems found (none for a sound file).
func verify(db *bbolt.DB) (problems []string) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			problems = append(problems, fmt.Sprint(p))
		}
	}()
	_ = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			if len(problems) < maxProblems {
				problems = append(problems, err.Error())
			}
		}
		if len(problems) > 0 {
			return nil
		}
		rb := tx.Bucket(bRequests)
		if rb == nil {
			return nil
		}
		return rb.ForEach(func(k, v []byte) error {
			if len(problems) >= maxProblems {
				return nil
			}
			var r struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(v, &r); err != nil {
				problems = append(problems, fmt.Sprintf("request under key %x does not decode: %v", k, err))
				return nil
			}
			if nk, ok := reqKey(r.ID); !ok || (!bytes.Equal(k, nk) && string(k) != r.ID) {
				problems = append(problems, fmt.Sprintf("request %q is stored under key %x", r.ID, k))
			}
			return nil
		})
	})
	return problems
}

// Report is what Check found in a store file.
type Report struct {
	Path string
	// Requests is how many requests the file holds; Newest is the newest
	// one's id.
	Requests int
	Newest   string
	// Problems are the damage found; none for a sound file.
	Problems []string
}

// Check reads the store file at path without changing it. A damaged file
// gives a Report with Problems; an error means the file could not be
// checked at all (missing, or in use by a running osio-bot).
func Check(path string) (Report, error) {
	rep := Report{Path: path}
	if _, err := os.Stat(path); err != nil {
		return rep, fmt.Errorf("checking store: %w", err)
	}
	db, err := openBolt(path, &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	var ce *CorruptError
	if errors.As(err, &ce) {
		rep.Problems = ce.Problems
		return rep, nil
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return rep, fmt.Errorf("checking store %s: it is in use by another process (stop osio-bot first)", path)
	}
	if err != nil {
		return rep, fmt.Errorf("checking store: %w", err)
	}
	defer db.Close()
	if rep.Problems = verify(db); len(rep.Problems) > 0 {
		return rep, nil
	}
	err = db.View(func(tx *bbolt.Tx) error {
		rb := tx.Bucket(bRequests)
		if rb == nil {
			return nil
		}
		return rb.ForEach(func(_, v []byte) error {
			var r struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(v, &r) == nil {
				rep.Requests++
				if rep.Newest == "" || compareIDs(r.ID, rep.Newest) > 0 {
					rep.Newest = r.ID
				}
			}
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("checking store %s: %w", path, err)
	}
	return rep, nil
}

// Ping writes to the store, to tell that it is writable; for readiness.
func (s *Store) Ping(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		done <- s.db.Update(func(tx *bbolt.Tx) error {
			v, _ := s.now().UTC().MarshalBinary()
			return tx.Bucket(bMeta).Put([]byte("probe"), v)
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("writing to the store: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("writing to the store: %w", ctx.Err())
	}
}
