//go:build citus

package handlers_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// The service on a Citus coordinator and two workers (make test-citus):
// a subject's requests each run on the subject's shard alone (Citus's
// own counters of single- and multi-shard executions), a rotation too,
// no key, token or secret reaches any node's log with every statement
// logged, and the audit trail verifies.
func TestServiceOnCitus(t *testing.T) {
	if !pgtest.Citus() {
		t.Fatalf("this test needs a Citus cluster: run it with %s=1 (make test-citus does)", pgtest.CitusVariable)
	}
	database := pgtest.NewDB(t)
	a := startAPI(t, database, apitest.Options{Throttle: db.Throttle{TokenLimit: 5, SubjectLimit: 10, Window: time.Minute}})
	ctx := context.Background()
	counters := func() (single, multi int64) {
		t.Helper()
		conn, err := pgx.Connect(ctx, database.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, `SELECT query_execution_single_shard, query_execution_multi_shard FROM citus_stat_counters WHERE name = current_database()`).Scan(&single, &multi); err != nil {
			t.Fatal(err)
		}
		return single, multi
	}

	single0, multi0 := counters()
	used := serviceScenario(t, a)
	// Every request above ran on its subject's shard alone.
	single1, multi1 := counters()
	if multi1 != multi0 || single1-single0 < 20 {
		t.Errorf("Citus ran %d multi-shard and %d single-shard statements for one subject's requests; want none and every one", multi1-multi0, single1-single0)
	}

	// The grants report over HTTP (the app's role) says whether it
	// compared the workers.
	if r := a.do(req{method: "GET", path: "/v1/audit/grants", token: a.token("dba", "audit:read")}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"workers`) {
		t.Errorf("grants report on Citus: %d %.300s; want it to say what it checked on the workers", r.status, r.body)
	}
	rep, err := openAdmin(t, database.AdminURL).VerifyAuditTrail(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 0 || rep.Subjects != 3 || rep.Entries < 15 {
		t.Errorf("audit verify on Citus: %+v; want an intact trail of 3 subjects", rep)
	}

	// No node logged a key (the clients', the subject keys, the data
	// keys), a token or a secret.
	needles := traces(append(used.keys, used.subjectKeys(t)...), used.tokens, used.secrets)
	sawDecrypt := false
	for i, file := range pgtest.CitusNodeLogs() {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		log := string(b)
		if i > 0 && strings.Contains(log, "decrypt_or_null(") {
			sawDecrypt = true
		}
		for _, n := range needles {
			if strings.Contains(log, n) {
				t.Errorf("node %d's log holds %.20q…", i, n)
			}
		}
	}
	if !sawDecrypt {
		t.Fatal("no worker's log holds a decrypting statement: the log check would prove nothing")
	}
}
