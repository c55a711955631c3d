package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// TestGrantsReportDetectsDrift changes privileges as a careless or hostile
// DBA might, one at a time, and checks that `fieldseal audit grants` names
// each (exit 1), then that undoing it makes the report clean again (exit
// 0). It runs on a cluster of its own: some changes (role membership) are
// cluster-wide and would show in other tests' databases.
func TestGrantsReportDetectsDrift(t *testing.T) {
	t.Parallel()
	database, _, _ := pgtest.NewCluster(t, nil)
	admin := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL}
	ctx := context.Background()
	exec := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, database.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	report := func() (int, fieldseal.GrantsReport, string) {
		t.Helper()
		code, out, errOut := runCmd(t, ctx, admin, "audit", "grants", "--format", "json")
		var rep fieldseal.GrantsReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("audit grants --format json: exit %d, %v: %s %s", code, err, out, errOut)
		}
		return code, rep, out
	}

	code, rep, out := report()
	if code != 0 || len(rep.Drift) != 0 {
		t.Fatalf("a fresh install drifts: exit %d: %s", code, out)
	}
	foundMember := false
	for _, m := range rep.Members {
		if m.Group == "fieldseal_app" && m.Member == "cluster_app" && m.CanLogin {
			foundMember = true
		}
	}
	if !foundMember {
		t.Errorf("the report does not show the app login role holding fieldseal_app's privileges: %+v", rep.Members)
	}
	if len(rep.Privileges) < 50 || len(rep.Tables) < 5 {
		t.Errorf("report lists %d privileges and %d tables; want them all", len(rep.Privileges), len(rep.Tables))
	}
	code, table, _ := runCmd(t, ctx, admin, "audit", "grants")
	if code != 0 || !strings.Contains(table, "none: every privilege is as the policy says") || !strings.Contains(table, "fieldseal.records") {
		t.Errorf("table format: exit %d:\n%s", code, table)
	}

	for _, tc := range []struct {
		name, change, undo string
		want               fieldseal.Drift
	}{
		{"grant to a new role", `CREATE ROLE snoop; GRANT SELECT ON fieldseal.records TO snoop`, `REVOKE ALL ON fieldseal.records FROM snoop; DROP ROLE snoop`,
			fieldseal.Drift{Problem: "unexpected privilege", Role: "snoop", ObjectType: "table", Object: "fieldseal.records", Privilege: "SELECT"}},
		{"grant to PUBLIC", `GRANT SELECT ON fieldseal.audit_events TO PUBLIC`, `REVOKE SELECT ON fieldseal.audit_events FROM PUBLIC`,
			fieldseal.Drift{Problem: "unexpected privilege", Role: "PUBLIC", ObjectType: "table", Object: "fieldseal.audit_events", Privilege: "SELECT"}},
		{"function to PUBLIC", `GRANT EXECUTE ON FUNCTION fieldseal.gen_random_bytes(integer) TO PUBLIC`, `REVOKE EXECUTE ON FUNCTION fieldseal.gen_random_bytes(integer) FROM PUBLIC`,
			fieldseal.Drift{Problem: "unexpected privilege", Role: "PUBLIC", ObjectType: "function", Object: "fieldseal.gen_random_bytes(integer)", Privilege: "EXECUTE"}},
		{"row-level security disabled", `ALTER TABLE fieldseal.records DISABLE ROW LEVEL SECURITY`, `ALTER TABLE fieldseal.records ENABLE ROW LEVEL SECURITY`,
			fieldseal.Drift{Problem: "row-level security disabled", Role: "fieldseal_owner", ObjectType: "table", Object: "fieldseal.records"}},
		{"row-level security not forced", `ALTER TABLE fieldseal.subjects NO FORCE ROW LEVEL SECURITY`, `ALTER TABLE fieldseal.subjects FORCE ROW LEVEL SECURITY`,
			fieldseal.Drift{Problem: "row-level security not forced", Role: "fieldseal_owner", ObjectType: "table", Object: "fieldseal.subjects"}},
		{"BYPASSRLS member of the app role", `CREATE ROLE sneaky BYPASSRLS; GRANT fieldseal_app TO sneaky`, `DROP ROLE sneaky`,
			fieldseal.Drift{Problem: "bypasses row-level security but is a member of fieldseal_app", Role: "sneaky", ObjectType: "role", Object: "fieldseal_app", Privilege: "BYPASSRLS"}},
		{"indirect BYPASSRLS member", `CREATE ROLE mid; GRANT fieldseal_app TO mid; CREATE ROLE deep BYPASSRLS IN ROLE mid`, `DROP ROLE deep; DROP ROLE mid`,
			fieldseal.Drift{Problem: "bypasses row-level security but is a member of fieldseal_app", Role: "deep", ObjectType: "role", Object: "fieldseal_app", Privilege: "BYPASSRLS"}},
		{"extra column privilege", `GRANT SELECT (secret) ON fieldseal.records TO fieldseal_auditor`, `REVOKE SELECT (secret) ON fieldseal.records FROM fieldseal_auditor`,
			fieldseal.Drift{Problem: "unexpected privilege", Role: "fieldseal_auditor", ObjectType: "column", Object: "fieldseal.records", Column: "secret", Privilege: "SELECT"}},
		{"privilege revoked", `REVOKE DELETE ON fieldseal.records FROM fieldseal_app`, `GRANT DELETE ON fieldseal.records TO fieldseal_app`,
			fieldseal.Drift{Problem: "missing privilege", Role: "fieldseal_app", ObjectType: "table", Object: "fieldseal.records", Privilege: "DELETE"}},
		{"default privileges", `ALTER DEFAULT PRIVILEGES FOR ROLE fieldseal_owner IN SCHEMA fieldseal GRANT SELECT ON TABLES TO PUBLIC`,
			`ALTER DEFAULT PRIVILEGES FOR ROLE fieldseal_owner IN SCHEMA fieldseal REVOKE SELECT ON TABLES FROM PUBLIC`,
			fieldseal.Drift{Problem: "default privileges", Role: "fieldseal_owner", ObjectType: "default", Object: "fieldseal", Privilege: "r"}},
		{"a new table", `CREATE TABLE fieldseal.stash (x int)`, `DROP TABLE fieldseal.stash`,
			fieldseal.Drift{Problem: "table not in the policy", Role: "postgres", ObjectType: "table", Object: "fieldseal.stash"}},
		// Settings that would put keys and plaintext into PostgreSQL's log.
		{"auto_explain verbose for the database", `ALTER DATABASE postgres SET auto_explain.log_verbose = on; ALTER DATABASE postgres SET auto_explain.log_min_duration = 0`,
			`ALTER DATABASE postgres RESET auto_explain.log_verbose; ALTER DATABASE postgres RESET auto_explain.log_min_duration`,
			fieldseal.Drift{Problem: "setting puts values into the log", Role: "(every role)", ObjectType: "setting", Object: "auto_explain.log_verbose = on", Column: "database postgres"}},
		{"pgaudit parameters for the app's role", `ALTER ROLE cluster_app SET pgaudit.log_parameter = on`, `ALTER ROLE cluster_app RESET pgaudit.log_parameter`,
			fieldseal.Drift{Problem: "setting puts values into the log", Role: "cluster_app", ObjectType: "setting", Object: "pgaudit.log_parameter = on"}},
		{"parameter logging for the app's role", `ALTER ROLE cluster_app IN DATABASE postgres SET log_parameter_max_length = 100`,
			`ALTER ROLE cluster_app IN DATABASE postgres RESET log_parameter_max_length`,
			fieldseal.Drift{Problem: "setting puts values into the log", Role: "cluster_app", ObjectType: "setting", Object: "log_parameter_max_length = 100", Column: "database postgres"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec(tc.change)
			code, rep, out := report()
			found := false
			for _, d := range rep.Drift {
				if d == tc.want {
					found = true
				}
			}
			if code != 1 || !found {
				t.Errorf("after %q: exit %d, drift %+v; want exit 1 with %+v\n%s", tc.change, code, rep.Drift, tc.want, out)
			}
			exec(tc.undo)
			if code, rep, _ := report(); code != 0 || len(rep.Drift) != 0 {
				t.Fatalf("after undoing it: exit %d, drift %+v", code, rep.Drift)
			}
		})
	}
}
