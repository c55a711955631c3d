package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// TestPlansMadeOnTinyTables (issue "Plans that do not depend on luck"):
// keyed transactions run generic plans, made once per connection from the
// statistics of that moment. Here every subject-wide statement is planned
// on one connection while the subjects are tiny, then one subject grows to
// bigRecords among many small ones, autovacuum off, and each is run again
// on that connection: it must cost about what it costs on a fresh
// connection after ANALYZE (a quadratic plan costs tens of times more at
// this size: a rotation took 104 s instead of 1.75 s). Two moments the
// plans are made at: tiny tables just analysed, and many small subjects
// never analysed (as make bench's skewed rows: there a plan read the
// subject's records once per row of a filtered page).
func TestPlansMadeOnTinyTables(t *testing.T) {
	t.Run("tiny tables analysed", func(t *testing.T) { plansMadeOnTinyTables(t, true) })
	t.Run("small subjects never analysed", func(t *testing.T) { plansMadeOnTinyTables(t, false) })
}

func plansMadeOnTinyTables(t *testing.T, analysed bool) {
	const bigRecords, smallSubjects = 20000, 2000
	ctx := context.Background()
	database := pgtest.NewDB(t)
	admin, err := pgx.Connect(ctx, database.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	adminExec := func(sql string, args ...any) {
		t.Helper()
		if _, err := admin.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%.80s: %v", sql, err)
		}
	}
	for _, table := range []string{"subjects", "records", "collections", "search_tags", "audit_events", "audit_heads", "key_failures", "idempotency_keys"} {
		adminExec(`ALTER TABLE fieldseal.` + table + ` SET (autovacuum_enabled = off)`)
	}
	open := func() *db.Store {
		s, err := db.Open(ctx, db.Config{URL: database.AppURL + "&pool_max_conns=1"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	// Two settings that differ in one field's case_insensitive: setting
	// one after the other reindexes every record (setting the same again
	// changes nothing).
	searchable := fieldseal.Collection{Collection: "p", Searchable: map[string]fieldseal.SearchableField{"e": {}, "g": {}}}
	other := fieldseal.Collection{Collection: "p", Searchable: map[string]fieldseal.SearchableField{"e": {CaseInsensitive: true}, "g": {}}}
	settings := []fieldseal.Collection{searchable, other}
	set := map[string]int{} // each subject's settings: settings[set[subject]]
	keys := []fieldseal.Key{key(t, keyA), key(t, keyB)}

	// ops are the subject-wide statements' requests, each given the
	// subject's current key; it returns the key after it.
	type op struct {
		name   string
		run    func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error)
		writes bool // changes what the next request finds (run once)
	}
	var middle fieldseal.ID // an id halfway through the big subject's records
	ops := []op{
		{"reindex", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			set[c.Subject] = 1 - set[c.Subject]
			_, err := s.SetCollection(ctx, c, k, settings[set[c.Subject]])
			return k, err
		}, true},
		{"list page", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			_, err := s.ListRecords(ctx, c, k, fieldseal.ListOptions{Limit: 50, After: middle})
			return k, err
		}, false},
		{"list page of a collection", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			_, err := s.ListRecords(ctx, c, k, fieldseal.ListOptions{Collection: "p", Limit: 50, After: middle})
			return k, err
		}, false},
		{"list page without a key", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			_, err := s.ListRecords(ctx, c, fieldseal.Key{}, fieldseal.ListOptions{Limit: 50, After: middle})
			return k, err
		}, false},
		{"public filter", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			_, err := s.ListRecords(ctx, c, k, fieldseal.ListOptions{Collection: "p", Limit: 50, Public: []fieldseal.Filter{{Field: "g", Value: "7"}}})
			return k, err
		}, false},
		{"public filter, page halfway", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			_, err := s.ListRecords(ctx, c, k, fieldseal.ListOptions{Collection: "p", Limit: 50, After: middle, Public: []fieldseal.Filter{{Field: "g", Value: "7"}}})
			return k, err
		}, false},
		{"public filter without a key, page halfway", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			_, err := s.ListRecords(ctx, c, fieldseal.Key{}, fieldseal.ListOptions{Limit: 50, After: middle, Public: []fieldseal.Filter{{Field: "g", Value: "7"}}})
			return k, err
		}, false},
		{"search", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			_, err := s.ListRecords(ctx, c, k, fieldseal.ListOptions{Collection: "p", Limit: 50, Secret: []fieldseal.Filter{{Field: "e", Value: "p7@example.org"}}})
			return k, err
		}, false},
		{"search of a common value", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			_, err := s.ListRecords(ctx, c, k, fieldseal.ListOptions{Collection: "p", Limit: 50, Secret: []fieldseal.Filter{{Field: "g", Value: "3"}}})
			return k, err
		}, false},
		{"export", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			return k, s.Export(ctx, c, func(fieldseal.ExportedRecord) error { return nil })
		}, false},
		{"import of lines the subject has", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			var recs []fieldseal.ImportedRecord
			err := s.Export(ctx, c, func(r fieldseal.ExportedRecord) error {
				if len(recs) < 2000 {
					m, err := fieldseal.Dearmor(r.Ciphertext)
					recs = append(recs, fieldseal.ImportedRecord{ID: r.ID, Collection: r.Collection, Public: r.Public, Version: r.Version,
						CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Ciphertext: m, KeyVersion: r.KeyVersion, SubjectKey: r.SubjectKey})
					return err
				}
				return nil
			})
			if err == nil {
				_, err = s.Import(ctx, c, k, recs, nil)
			}
			return k, err
		}, false},
		{"rotation", func(s *db.Store, c fieldseal.Caller, k fieldseal.Key) (fieldseal.Key, error) {
			next := keys[0]
			if next == k {
				next = keys[1]
			}
			_, err := s.RotateKey(ctx, c, k, next, true, nil)
			return next, err
		}, true},
	}

	// Tiny tables: three subjects of three records, analysed; every
	// request planned on stale's one connection (after the ANALYZE, which
	// invalidates earlier plans).
	stale := open()
	current := map[string]fieldseal.Key{}
	tiny := func() {
		for i := range 3 {
			c := fieldseal.Caller{Subject: fmt.Sprintf("tiny-%d", i), TokenID: "t"}
			k, ok := current[c.Subject]
			if !ok {
				k = keys[0]
				for j := range 3 {
					if _, err := stale.CreateRecord(ctx, c, k, fieldseal.NewID(time.Now()), fieldseal.RecordInput{
						Collection: "p", Public: json.RawMessage(fmt.Sprintf(`{"g":%d}`, j)), Secret: json.RawMessage(fmt.Sprintf(`{"e":"p%d@example.org","g":%d}`, j, j%3)),
					}, nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, o := range ops {
				if k, err = o.run(stale, c, k); err != nil {
					t.Fatalf("%s on a tiny subject: %v", o.name, err)
				}
			}
			current[c.Subject] = k
		}
	}
	// smallSubjects of five records; their key is keyA.
	smalls := func() {
		adminExec(`INSERT INTO fieldseal.subjects (subject, key_verifier)
			SELECT 'small-' || i, fieldseal.new_key_verifier($1) FROM generate_series(1, $2::int) i`, keyA, smallSubjects)
		adminExec(`INSERT INTO fieldseal.records (subject, id, collection, public, secret)
			SELECT 'small-' || i, gen_random_uuid(), 'p', jsonb_build_object('g', j),
			       fieldseal.pgp_sym_encrypt(format('{"e":"s%s@example.org","g":%s}', j, j % 10), $1, 'cipher-algo=aes256, s2k-mode=1')
			FROM generate_series(1, $2::int) i, generate_series(1, 5) j`, keyA, smallSubjects)
	}
	if analysed {
		tiny()
		adminExec(`ANALYZE`)
		tiny()
		smalls()
	} else {
		smalls()
		tiny()
	}

	// One subject grows to bigRecords; no ANALYZE. Its key is keyA.
	big := fieldseal.Caller{Subject: "big", TokenID: "t"}
	if _, err := stale.SetCollection(ctx, big, keys[0], searchable); err != nil {
		t.Fatal(err)
	}
	adminExec(`INSERT INTO fieldseal.records (subject, id, collection, public, secret)
		SELECT 'big', ('0192f3a4-0000-7000-8000-' || lpad(to_hex(j), 12, '0'))::uuid, 'p', jsonb_build_object('g', j % 100),
		       fieldseal.pgp_sym_encrypt(format('{"e":"p%s@example.org","g":%s}', j, j % 10), $1, 'cipher-algo=aes256, s2k-mode=1')
		FROM generate_series(1, $2::int) j`, keyA, bigRecords)
	middle = fieldseal.ID(must(pgtypeUUID(admin, ctx, `SELECT id FROM fieldseal.records WHERE subject = 'big' ORDER BY id OFFSET $1 LIMIT 1`, bigRecords/2)))
	set["big"] = 1
	if _, err := stale.SetCollection(ctx, big, keys[0], settings[1]); err != nil { // tags the big subject's records
		t.Fatal(err)
	}

	// timed runs each request on s; a request that changes nothing (a
	// read) runs three times and keeps its fastest, so that one slow
	// spell of a busy machine does not pass for a plan's cost.
	timed := func(s *db.Store, k fieldseal.Key) (map[string]time.Duration, fieldseal.Key) {
		took := map[string]time.Duration{}
		for _, o := range ops {
			runs := 1
			if !o.writes {
				runs = 3
			}
			for range runs {
				start := time.Now()
				var err error
				if k, err = o.run(s, big, k); err != nil {
					t.Fatalf("%s: %v", o.name, err)
				}
				if d := time.Since(start); took[o.name] == 0 || d < took[o.name] {
					took[o.name] = d
				}
			}
		}
		return took, k
	}
	staleTook, k := timed(stale, keys[0])
	adminExec(`ANALYZE`)
	freshTook, _ := timed(open(), k)
	var report strings.Builder
	for _, o := range ops {
		s, f := staleTook[o.name], freshTook[o.name]
		fmt.Fprintf(&report, "%-32s planned on tiny tables %8.3fs, fresh after ANALYZE %8.3fs\n", o.name, s.Seconds(), f.Seconds())
		if s > 3*f+10*time.Millisecond {
			t.Errorf("%s over %d records: %s on a connection whose plans were made on tiny tables, %s on a fresh one after ANALYZE", o.name, bigRecords, s, f)
		}
	}
	t.Logf("\n%s", report.String())
}

func pgtypeUUID(conn *pgx.Conn, ctx context.Context, sql string, args ...any) ([16]byte, error) {
	var id [16]byte
	err := conn.QueryRow(ctx, sql, args...).Scan(&id)
	return id, err
}
