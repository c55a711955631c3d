package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db"
)

// An export is one snapshot, but its audit entry joins the subject's
// chain as it is at the end: writes the subject makes while the export
// streams must neither fail the export nor break the chain.
func TestExportWhileTheSubjectWrites(t *testing.T) {
	t.Parallel()
	database, store := seed(t)
	ctx := context.Background()
	alice := fieldseal.Caller{Subject: "alice", TokenID: "t"}
	in := fieldseal.RecordInput{Collection: "c", Public: json.RawMessage(`{}`), Secret: json.RawMessage(`{"n":1}`)}

	exported := 0
	err := store.Export(ctx, alice, func(fieldseal.ExportedRecord) error {
		exported++
		// Mid-export, the same subject writes twice (each with its own
		// audit entry, committed before the export's).
		for range 2 {
			if _, err := store.CreateRecord(ctx, alice, key(t, keyA), fieldseal.NewID(time.Now()), in, nil); err != nil {
				t.Errorf("create during export: %v", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("export while the subject writes: %v", err)
	}
	if exported != 1 {
		t.Errorf("exported %d records; want 1 (the snapshot at the export's start)", exported)
	}
	rep, err := openAdmin(t, database.AdminURL).VerifyAuditTrail(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	// create (seed), create, create, export.
	if len(rep.Breaks) != 0 || rep.Entries != 4 {
		t.Errorf("alice's chain after the export: %+v; want 4 entries, intact", rep)
	}
}

// The first entries of a new subject, appended at once, make one chain.
func TestAuditFirstAppendsOfASubjectRace(t *testing.T) {
	t.Parallel()
	database, store := seed(t)
	ctx := context.Background()
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			caller := fieldseal.Caller{Subject: "newcomer", JTI: "j", RequestID: fmt.Sprint("r", i)}
			errs <- store.RecordRefusal(ctx, caller, fieldseal.ActionRead, "not_found")
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent first append: %v", err)
		}
	}
	rep, err := openAdmin(t, database.AdminURL).VerifyAuditTrail(ctx, "newcomer", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 0 || rep.Entries != n {
		t.Errorf("newcomer's chain: %+v; want %d entries, intact", rep, n)
	}
}

// openAdmin is an admin connection to url, closed when t ends.
func openAdmin(t testing.TB, url string) *db.Admin {
	t.Helper()
	a, err := db.OpenAdmin(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a
}
