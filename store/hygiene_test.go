package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/osio/osio-bot/actions"
)

// setSequence makes the next request id R-(n+1).
func setSequence(t *testing.T, s *Store, n uint64) {
	t.Helper()
	if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bRequests).SetSequence(n) }); err != nil {
		t.Fatalf("setting the sequence: %v", err)
	}
}

// realStoreFile writes a sound store file with n requests and returns its
// bytes.
func realStoreFile(t *testing.T, path string, n int) []byte {
	t.Helper()
	s := openAt(t, path, nil)
	for i := range n {
		r := newReq()
		r.Plan = []string{strings.Repeat("plan line ", 30)}
		mustCreate(t, s, r, fmt.Sprint("env", i), msg("hello"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestOpenCorruptFileFailsClearly(t *testing.T) {
	dir := t.TempDir()
	good := realStoreFile(t, filepath.Join(dir, "good.db"), 300)
	if len(good) < 16*4096 {
		t.Fatalf("test store is only %d bytes", len(good))
	}
	scribbled := slices.Clone(good)
	for i := 4 * 4096; i < 8*4096; i++ {
		scribbled[i] = 0xff
	}
	cases := map[string][]byte{
		"garbage":     []byte("this is not a bbolt file, only some text somebody wrote here\n"),
		"truncated":   good[:len(good)/2],
		"three-pages": good[:3*4096],
		"scribbled":   scribbled,
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			var s *Store
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Open panicked on a corrupt file: %v", p)
					}
				}()
				s, err = Open(path, Options{})
			}()
			if err == nil {
				s.Close()
				t.Fatal("Open of a corrupt file succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Open error %q does not wrap ErrCorrupt", err)
			}
			for _, want := range []string{path, "store check", "backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestCheckReport(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	data := realStoreFile(t, good, 300)
	rep, err := Check(good)
	if err != nil {
		t.Fatalf("Check of a sound file: %v", err)
	}
	if rep.Requests != 300 || rep.Newest != "R-000300" || len(rep.Problems) != 0 {
		t.Errorf("Check = %+v, want 300 requests, newest R-000300, no problems", rep)
	}
	bad := filepath.Join(dir, "bad.db")
	for i := 4 * 4096; i < 8*4096; i++ {
		data[i] = 0xff
	}
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = Check(bad)
	if err != nil {
		t.Fatalf("Check of a corrupt file: %v (want a report with problems)", err)
	}
	if len(rep.Problems) == 0 {
		t.Errorf("Check of a corrupt file found no problem: %+v", rep)
	}
	if _, err := Check(filepath.Join(dir, "missing.db")); err == nil {
		t.Error("Check of a missing file succeeded")
	}
}

func TestIDsPastSixDigitsKeepOrder(t *testing.T) {
	s, _ := newStore(t)
	mustCreate(t, s, newReq(), "")
	setSequence(t, s, 999_998)
	var ids []string
	for i := range 3 {
		ids = append(ids, mustCreate(t, s, newReq(), fmt.Sprint("e", i), msg("x")).ID)
	}
	if want := []string{"R-999999", "R-1000000", "R-1000001"}; !slices.Equal(ids, want) {
		t.Fatalf("ids = %v, want %v", ids, want)
	}
	rs, err := s.List(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.ID)
	}
	if want := []string{"R-1000001", "R-1000000", "R-999999", "R-000001"}; !slices.Equal(got, want) {
		t.Errorf("List order = %v, want newest first %v", got, want)
	}
	ob, err := s.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"R-999999", "R-1000000", "R-1000001"}; !slices.Equal(ob, want) {
		t.Errorf("Outbox order = %v, want oldest first %v", ob, want)
	}
	for _, id := range append(ids, "R-000001") {
		if r, err := s.Get(id); err != nil || r.ID != id {
			t.Errorf("Get(%s) = %v, %v", id, r, err)
		}
	}
	for _, id := range []string{"R-1", "R-0000001", "R-", "X-000001", "R-00000a"} {
		if _, err := s.Get(id); !errors.Is(err, actions.ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want not found", id, err)
		}
	}
}

// TestOpenMigratesOldKeys: a file written before request keys were
// width-independent ("R-000001" as the key) still reads, in order.
func TestOpenMigratesOldKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bRequests, bEvents, bCursors, bOutbox, bCheckpoints, bLocks, bEnvelopes, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		rb := tx.Bucket(bRequests)
		for i := 1; i <= 3; i++ {
			id := fmt.Sprintf("R-%06d", i)
			if err := rb.Put([]byte(id), []byte(fmt.Sprintf(`{"id":%q,"kind":"export","state":"pending","version":1}`, id))); err != nil {
				return err
			}
		}
		return rb.SetSequence(3)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openAt(t, path, nil)
	defer s.Close()
	rs, err := s.List(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].ID != "R-000003" || rs[2].ID != "R-000001" {
		t.Fatalf("List after migration = %v", rs)
	}
	if _, err := s.Get("R-000002"); err != nil {
		t.Errorf("Get after migration: %v", err)
	}
	if id := mustCreate(t, s, newReq(), "").ID; id != "R-000004" {
		t.Errorf("next id after migration = %s, want R-000004", id)
	}
	if _, err := s.Transition("R-000001", nil, actions.Cancelled, nil); err != nil {
		t.Errorf("Transition after migration: %v", err)
	}
	if n := count(t, s); n != 4 {
		t.Errorf("%d requests after migration, want 4 (no duplicates under old keys)", n)
	}
}

func TestPing(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping of an open store: %v", err)
	}
	s.Close()
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping of a closed store succeeded")
	}
}

func TestCheckWhileInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 2s lock timeout")
	}
	s, _ := newStore(t)
	_, err := Check(s.Path())
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("Check of a file held by a running bot: %v, want 'in use by another process'", err)
	}
}

// TestOpenMigratesEnvelopeClaims: a schema 2 file's claims (a bucket by
// envelope id, their times in another) move to the time-ordered claims:
// they still refuse a redelivery, are pruned by their times (one with no
// time that decodes, at once), the old buckets are emptied, and a claim a
// binary from before schema 3 adds to them later is moved at the next
// open.
func TestOpenMigratesEnvelopeClaims(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.db")
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	c := &clock{t: t0}
	s := openAt(t, path, c.Now)
	mustCreate(t, s, newReq(), "e-slash")
	s.Close()
	// Back to schema 2's layout.
	// fresh: the file is as schema 2 wrote it (no claims bucket); else
	// an older binary claims into the old buckets of a newer file.
	toV2 := func(fresh bool, claims map[string]time.Time, bad ...string) {
		t.Helper()
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bbolt.Tx) error {
			meta := tx.Bucket(bMeta)
			if fresh {
				if err := meta.DeleteBucket(bClaims); err != nil {
					return err
				}
			}
			old, err := meta.CreateBucketIfNotExists(bOldEnvelopeTimes)
			if err != nil {
				return err
			}
			for key, at := range claims {
				v, _ := at.MarshalBinary()
				value := []byte{1}
				if key == "slash:e-slash" {
					value = []byte("R-000001")
				}
				if err := tx.Bucket(bEnvelopes).Put([]byte(key), value); err != nil {
					return err
				}
				if err := old.Put([]byte(key), v); err != nil {
					return err
				}
			}
			for _, key := range bad {
				if err := tx.Bucket(bEnvelopes).Put([]byte(key), []byte{1}); err != nil {
					return err
				}
				if err := old.Put([]byte(key), []byte("not a time")); err != nil {
					return err
				}
			}
			return meta.Put(metaSchema, []byte{2})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	toV2(true, map[string]time.Time{"slash:e-slash": t0, "click:e-old": t0.Add(-2 * time.Hour), "click:e-new": t0.Add(time.Hour)}, "click:e-bad")

	c.Set(t0.Add(3 * time.Hour))
	s = openAt(t, path, c.Now)
	if first, err := s.ClaimEnvelope("e-new"); first || err != nil {
		t.Errorf("ClaimEnvelope(e-new) after migration = %v, %v; want claimed before", first, err)
	}
	if res, err := s.Create(newReq(), "e-slash"); err != nil || !res.Duplicate || res.Request.ID != "R-000001" {
		t.Errorf("Create(e-slash) after migration = %+v, %v; want the duplicate of R-000001", res, err)
	}
	cont, err := s.Export()
	if err != nil {
		t.Fatal(err)
	}
	if got := cont.Envelopes["click:e-old"].At; !got.Equal(t0.Add(-2 * time.Hour)) {
		t.Errorf("e-old's time after migration = %v", got)
	}
	if got := cont.Envelopes["slash:e-slash"]; got.Request != "R-000001" || !got.At.Equal(t0) {
		t.Errorf("e-slash after migration = %+v", got)
	}
	// Before t0: e-old and e-bad (no time).
	if n, err := s.PruneEnvelopes(t0); n != 2 || err != nil {
		t.Errorf("PruneEnvelopes(t0) = %d, %v; want 2 (e-old, e-bad)", n, err)
	}
	if first, err := s.ClaimEnvelope("e-old"); !first || err != nil {
		t.Errorf("ClaimEnvelope(e-old) after its prune = %v, %v; want first", first, err)
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bMeta).Bucket(bOldEnvelopeTimes) != nil {
			t.Error("the old envelope_times bucket is still there")
		}
		if k, _ := tx.Bucket(bEnvelopes).Cursor().First(); k != nil {
			t.Errorf("the old envelopes bucket still holds %q", k)
		}
		if v := tx.Bucket(bMeta).Get(metaSchema); len(v) != 1 || v[0] != schemaVersion {
			t.Errorf("schema after migration = %v, want %d", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	// An older binary claims into the old buckets again; the next open
	// takes its claim.
	toV2(false, map[string]time.Time{"click:e-downgrade": t0.Add(2 * time.Hour)})
	s = openAt(t, path, c.Now)
	defer s.Close()
	for _, e := range []string{"e-downgrade", "e-new", "e-old"} {
		if first, err := s.ClaimEnvelope(e); first || err != nil {
			t.Errorf("ClaimEnvelope(%s) after the second open = %v, %v; want claimed before", e, first, err)
		}
	}
}
