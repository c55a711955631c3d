package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

func TestAuditVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper string // run as a superuser
		want   string
	}{
		{"intact", ``, ""},
		{"edited", `UPDATE fieldseal.audit_events SET outcome = 'wrong_key' WHERE subject = 'alice' AND seq = 3`,
			`subject "alice" lane 0 at entry 3: its contents do not match its hash`},
		{"edited with its hash recomputed", `UPDATE fieldseal.audit_events e SET outcome = 'wrong_key' WHERE subject = 'alice' AND seq = 3;
			UPDATE fieldseal.audit_events e SET hash = fieldseal.audit_hash(e.prev_hash, e) WHERE subject = 'alice' AND seq = 3`,
			`subject "alice" lane 0 at entry 4: its prev_hash is not the previous entry's hash`},
		{"deleted", `DELETE FROM fieldseal.audit_events WHERE subject = 'alice' AND seq = 2`,
			`subject "alice" lane 0 at entry 2: entry 2 is missing`},
		{"inserted without the trigger", `SET session_replication_role = replica;
			UPDATE fieldseal.audit_events SET seq = seq + 100 WHERE subject = 'alice' AND seq >= 3;
			UPDATE fieldseal.audit_events SET seq = seq - 99 WHERE subject = 'alice' AND seq >= 103;
			INSERT INTO fieldseal.audit_events (subject, lane, seq, at, action, outcome, prev_hash, hash)
			SELECT 'alice', 0, 3, now(), 'record.delete', 'ok', hash, hash FROM fieldseal.audit_events WHERE subject = 'alice' AND seq = 2`,
			`subject "alice" lane 0 at entry 3: its contents do not match its hash`},
		{"newest entries deleted", `DELETE FROM fieldseal.audit_events WHERE subject = 'alice' AND seq >= 4`,
			`subject "alice" lane 0 at entry 4: entries 4 to 5 are missing: the newest entries were deleted`},
		{"whole chain deleted", `DELETE FROM fieldseal.audit_events WHERE subject = 'alice'`,
			`subject "alice" lane 0 at entry 1: every entry (1 to 5) is missing`},
		{"appended without the trigger, hash and all", `SET session_replication_role = replica;
			INSERT INTO fieldseal.audit_events (subject, lane, seq, at, action, outcome, prev_hash, hash)
			SELECT 'alice', 0, 6, now(), 'record.delete', 'ok', hash, '\x00' FROM fieldseal.audit_events WHERE subject = 'alice' AND seq = 5;
			UPDATE fieldseal.audit_events e SET hash = fieldseal.audit_hash(e.prev_hash, e) WHERE subject = 'alice' AND seq = 6`,
			`subject "alice" lane 0 at entry 6: the chain's head is entry 5: entries after it were written around the chain`},
		{"newest entry rewritten, hash and all", `UPDATE fieldseal.audit_events e SET outcome = 'wrong_key' WHERE subject = 'alice' AND seq = 5;
			UPDATE fieldseal.audit_events e SET hash = fieldseal.audit_hash(e.prev_hash, e) WHERE subject = 'alice' AND seq = 5`,
			`subject "alice" lane 0 at entry 5: its hash is not the chain's head`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			database := pgtest.NewDB(t)
			pgtest.AppendAudit(t, database.AdminURL, "alice", 5)
			pgtest.AppendAudit(t, database.AdminURL, "bob", 3)
			if tc.tamper != "" {
				conn, err := pgx.Connect(context.Background(), database.AdminURL)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(context.Background(), tc.tamper); err != nil {
					t.Fatalf("tampering: %v", err)
				}
				conn.Close(context.Background())
			}
			admin := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL}
			out := wantVerify(t, admin, tc.want, "audit trail intact: 8 entries, 2 subjects")
			if tc.want == "" {
				return
			}
			if strings.Contains(out, `"bob"`) {
				t.Errorf("bob's untouched chain reported broken: %s", out)
			}
			// --subject bob: intact.
			if code, out, _ := runCmd(t, context.Background(), admin, "audit", "verify", "--subject", "bob"); code != 0 || !strings.Contains(out, "3 entries, 1 subjects") {
				t.Errorf("verify --subject bob: exit %d %q", code, out)
			}
		})
	}
}

// A busy subject's entries spread over lanes, each a chain: verify walks
// every lane and finds tampering in any of them, a lane deleted with its
// head included, and a trail of lanes intact passes.
func TestAuditVerifyAcrossLanes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper string // run as a superuser
		want   string
	}{
		{"intact", ``, ""},
		{"edited in lane 1", `UPDATE fieldseal.audit_events SET outcome = 'wrong_key' WHERE subject = 'alice' AND lane = 1 AND seq = 2`,
			`subject "alice" lane 1 at entry 2: its contents do not match its hash`},
		{"deleted in lane 2", `DELETE FROM fieldseal.audit_events WHERE subject = 'alice' AND lane = 2 AND seq = 1`,
			`subject "alice" lane 2 at entry 1: entry 1 is missing`},
		{"newest of lane 2 deleted", `DELETE FROM fieldseal.audit_events WHERE subject = 'alice' AND lane = 2 AND seq = 3`,
			`subject "alice" lane 2 at entry 3: entries 3 to 3 are missing`},
		{"lane 1 deleted with its head", `DELETE FROM fieldseal.audit_events WHERE subject = 'alice' AND lane = 1;
			DELETE FROM fieldseal.audit_heads WHERE subject = 'alice' AND lane = 1`,
			`subject "alice" lane 1 at entry 1: the lane is missing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			database := pgtest.NewDB(t)
			pgtest.AppendAuditLanes(t, database.AdminURL, "alice", 3, 3)
			pgtest.AppendAudit(t, database.AdminURL, "bob", 2)
			conn, err := pgx.Connect(context.Background(), database.AdminURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var lanes int
			if err := conn.QueryRow(context.Background(), `SELECT count(DISTINCT lane) FROM fieldseal.audit_events WHERE subject = 'alice'`).Scan(&lanes); err != nil || lanes != 3 {
				t.Fatalf("alice's concurrent appends used %d lanes (%v); want 3", lanes, err)
			}
			if tc.tamper != "" {
				if _, err := conn.Exec(context.Background(), tc.tamper); err != nil {
					t.Fatalf("tampering: %v", err)
				}
			}
			wantVerify(t, map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL}, tc.want, "audit trail intact: 11 entries, 2 subjects")
		})
	}
}

// wantVerify runs `fieldseal audit verify` and checks its verdict: exit 1
// naming broken, or exit 0 saying intact when broken is "". It returns
// what verify printed.
func wantVerify(t *testing.T, vars map[string]string, broken, intact string) string {
	t.Helper()
	code, out, errOut := runCmd(t, context.Background(), vars, "audit", "verify")
	switch {
	case broken == "" && (code != 0 || !strings.Contains(out, intact)):
		t.Errorf("intact trail: exit %d, %q %q; want exit 0 saying %q", code, out, errOut, intact)
	case broken != "" && (code != 1 || !strings.Contains(out, broken)):
		t.Errorf("exit %d, stdout %q; want exit 1 naming %q", code, out, broken)
	}
	return out
}

// A tail cut together with its head passes verify alone, but not against
// a checkpoint taken before: the checkpoint names the entry that is gone.
// A checkpoint altered after signing, signed by another key, or unsigned
// where a key is required, fails too.
func TestAuditCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database := pgtest.NewDB(t)
	pgtest.AppendAudit(t, database.AdminURL, "alice", 5)
	pgtest.AppendAuditLanes(t, database.AdminURL, "bob", 2, 2)
	dir := t.TempDir()
	priv, pub := ed25519Key(t, dir, "signer"), filepath.Join(dir, "signer.pub.pem")
	otherPub := filepath.Join(dir, "other.pub.pem")
	ed25519Key(t, dir, "other")
	admin := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL}
	signed, unsigned := filepath.Join(dir, "signed.json"), filepath.Join(dir, "unsigned.json")
	for _, args := range [][]string{{"--out", signed, "--signing-key", priv}, {"--out", unsigned}} {
		if code, out, errOut := runCmd(t, ctx, admin, append([]string{"audit", "checkpoint"}, args...)...); code != 0 {
			t.Fatalf("audit checkpoint %v: exit %d %s %s", args, code, out, errOut)
		}
	}
	var cp fieldseal.Checkpoint
	raw, _ := os.ReadFile(signed)
	if err := json.Unmarshal(raw, &cp); err != nil || len(cp.Heads) != 3 || cp.Signature == nil {
		t.Fatalf("the checkpoint: %v %s; want 3 heads (alice's lane, bob's two) and a signature", err, raw)
	}
	wantVerify(t, admin, "", "audit trail intact") // and with the checkpoints:
	if code, out, _ := runCmd(t, ctx, admin, "audit", "verify", "--checkpoint", signed, "--checkpoint", unsigned, "--public-key", pub); code != 1 ||
		!strings.Contains(out, "checkpoint "+signed+": every entry it names is still in its chain") || !strings.Contains(out, "BROKEN checkpoint "+unsigned+": the checkpoint is not signed") {
		t.Errorf("verify with a signed and an unsigned checkpoint and a required key: exit %d\n%s", code, out)
	}
	if code, out, _ := runCmd(t, ctx, admin, "audit", "verify", "--checkpoint", signed, "--public-key", otherPub); code != 1 || !strings.Contains(out, "signed by another key") {
		t.Errorf("verify with another key: exit %d\n%s", code, out)
	}
	altered := filepath.Join(dir, "altered.json")
	_ = os.WriteFile(altered, []byte(strings.Replace(string(raw), `"seq": 5`, `"seq": 4`, 1)), 0o600)
	if code, out, _ := runCmd(t, ctx, admin, "audit", "verify", "--checkpoint", altered); code != 1 || !strings.Contains(out, "altered after signing") {
		t.Errorf("verify with an altered checkpoint: exit %d\n%s", code, out)
	}

	// Alice's two newest entries are cut, and her head moved back to match.
	conn := adminConn(t, database.AdminURL)
	if _, err := conn.Exec(ctx, `DELETE FROM fieldseal.audit_events WHERE subject = 'alice' AND seq > 3;
		UPDATE fieldseal.audit_heads h SET seq = 3, hash = e.hash FROM fieldseal.audit_events e
		 WHERE h.subject = 'alice' AND e.subject = 'alice' AND e.lane = 0 AND e.seq = 3`); err != nil {
		t.Fatal(err)
	}
	wantVerify(t, admin, "", "audit trail intact") // the gap a checkpoint closes
	if code, out, _ := runCmd(t, ctx, admin, "audit", "verify", "--checkpoint", signed, "--public-key", pub); code != 1 ||
		!strings.Contains(out, `BROKEN subject "alice" lane 0 at entry 5: the entry checkpointed at`) || !strings.Contains(out, "is gone") || strings.Contains(out, `"bob"`) {
		t.Errorf("verify against the checkpoint after the cut: exit %d\n%s", code, out)
	}
}

// ed25519Key writes name.pem (PKCS #8) and name.pub.pem (PKIX) in dir and
// returns the private key's file.
func ed25519Key(t *testing.T, dir, name string) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(priv)
	pkix, _ := x509.MarshalPKIXPublicKey(pub)
	file := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// `fieldseal audit archive` moves old entries to a file that verifies on
// its own and joins the database's chains (and the next archive's)
// without a gap; verify walks each chain from its recorded start, and a
// checkpoint whose entries were archived is proved against the archive.
// Any edited, dropped or moved line fails; a broken trail is not archived.
func TestAuditArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database := pgtest.NewDB(t)
	admin := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL}
	dir := t.TempDir()
	conn := adminConn(t, database.AdminURL)
	now := func() string {
		var at time.Time
		if err := conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at.UTC().Format(time.RFC3339Nano)
	}
	run := func(args ...string) (int, string) {
		t.Helper()
		code, out, errOut := runCmd(t, ctx, admin, args...)
		return code, out + errOut
	}
	count := func(sql string) int {
		var n int
		if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	pgtest.AppendAudit(t, database.AdminURL, "alice", 5)
	pgtest.AppendAuditLanes(t, database.AdminURL, "bob", 2, 2)
	cp := filepath.Join(dir, "cp.json")
	if code, out := run("audit", "checkpoint", "--out", cp); code != 0 {
		t.Fatalf("checkpoint: %d %s", code, out)
	}
	before1 := now()
	pgtest.AppendAudit(t, database.AdminURL, "alice", 2)
	pgtest.AppendAudit(t, database.AdminURL, "bob", 1)

	a1 := filepath.Join(dir, "a1.ndjson")
	if code, out := run("audit", "archive", "--before", before1, "--out", a1); code != 0 || !strings.Contains(out, "archived 9 entries of 3 chains") {
		t.Fatalf("archive: %d %s", code, out)
	}
	if n := count(`SELECT count(*) FROM fieldseal.audit_events`); n != 3 {
		t.Errorf("%d entries left in the database; want the 3 newer ones", n)
	}
	wantVerify(t, admin, "", "audit trail intact: 3 entries")
	if code, out := run("audit", "verify", "--archive", a1); code != 0 || !strings.Contains(out, "archive "+a1+": intact (3 chains") {
		t.Errorf("verify --archive: %d %s", code, out)
	}
	// The checkpoint's entries are archived now: only the archive proves them.
	if code, out := run("audit", "verify", "--checkpoint", cp); code != 1 || !strings.Contains(out, "has been archived") {
		t.Errorf("verify --checkpoint without the archive: %d %s", code, out)
	}
	if code, out := run("audit", "verify", "--checkpoint", cp, "--archive", a1); code != 0 || !strings.Contains(out, "every entry it names is still in its chain") {
		t.Errorf("verify --checkpoint --archive: %d %s", code, out)
	}

	// A second archive joins the first; either alone says what it lacks.
	before2 := now()
	pgtest.AppendAudit(t, database.AdminURL, "alice", 1)
	a2 := filepath.Join(dir, "a2.ndjson")
	if code, out := run("audit", "archive", "--before", before2, "--out", a2); code != 0 || !strings.Contains(out, "archived 3 entries of 2 chains") {
		t.Fatalf("second archive: %d %s", code, out)
	}
	if code, out := run("audit", "verify", "--archive", a2, "--archive", a1); code != 0 {
		t.Errorf("verify both archives: %d %s", code, out)
	}
	if code, out := run("audit", "verify", "--archive", a1); code != 1 || !strings.Contains(out, `subject "alice" lane 0 at entry 6: entries 6 to 7 were archived to a file not given`) {
		t.Errorf("verify the first archive alone: %d %s", code, out)
	}
	if code, out := run("audit", "verify", "--archive", a2); code != 0 {
		t.Errorf("verify the second archive alone (from its recorded start): %d %s", code, out)
	}

	// Only a role that may delete archives: an auditor is told so.
	auditor := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": pgtest.LoginRole(t, database, "IN ROLE fieldseal_auditor")}
	byAuditor := filepath.Join(dir, "auditor.ndjson")
	if code, out, errOut := runCmd(t, ctx, auditor, "audit", "archive", "--before", now(), "--out", byAuditor); code != 1 ||
		!strings.Contains(errOut, "a superuser or a member of fieldseal_owner") {
		t.Errorf("archive as an auditor: exit %d %s %s", code, out, errOut)
	}
	if _, err := os.Stat(byAuditor); !os.IsNotExist(err) || count(`SELECT count(*) FROM fieldseal.audit_events`) != 1 {
		t.Errorf("a refused archive left its file (%v) or deleted entries", err)
	}

	// Tampered archives.
	raw, _ := os.ReadFile(a1)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	write := func(name string, l []string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(strings.Join(l, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	swapped := slices.Clone(lines)
	swapped[2], swapped[3] = swapped[3], swapped[2]
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"edited", append(append(slices.Clone(lines[:2]), strings.Replace(lines[2], `"outcome":"ok"`, `"outcome":"wrong_key"`, 1)), lines[3:]...), "do not match its hash: edited"},
		{"dropped in the middle", append(slices.Clone(lines[:2]), lines[3:]...), "lines were dropped, inserted or moved"},
		{"moved", swapped, "lines were dropped, inserted or moved"},
		{"dropped at a chain's end", append(slices.Clone(lines[:5]), lines[6:]...), "lines were dropped"},
		{"no header", lines[1:], "not an audit archive"},
	} {
		f := write(tc.name+".ndjson", tc.lines)
		if code, out := run("audit", "verify", "--archive", f, "--archive", a2); code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: verify exit %d; want 1 saying %q:\n%s", tc.name, code, tc.want, out)
		}
	}

	// A break in what stays does not hold an archive back (verify names it);
	// a break in what would leave refuses it: no file, nothing deleted.
	before3 := now()
	pgtest.AppendAudit(t, database.AdminURL, "alice", 1)
	if _, err := conn.Exec(ctx, `UPDATE fieldseal.audit_events SET outcome = 'forged' WHERE subject = 'alice' AND seq = 9`); err != nil {
		t.Fatal(err)
	}
	// (This one by a member of fieldseal_owner, the other role that may.)
	owner := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": pgtest.LoginRole(t, database, "IN ROLE fieldseal_owner")}
	if code, out, errOut := runCmd(t, ctx, owner, "audit", "archive", "--before", before3, "--out", filepath.Join(dir, "a2b.ndjson")); code != 0 || !strings.Contains(out, "archived 1 entries of 1 chains") {
		t.Errorf("archive of intact entries before a broken one, by an owner: %d %s %s", code, out, errOut)
	}
	wantVerify(t, admin, `subject "alice" lane 0 at entry 9`, "")
	a3 := filepath.Join(dir, "a3.ndjson")
	left := count(`SELECT count(*) FROM fieldseal.audit_events`)
	if code, out := run("audit", "archive", "--before", now(), "--out", a3); code != 1 || !strings.Contains(out, "BROKEN") {
		t.Errorf("archive of a broken trail: %d %s", code, out)
	}
	if _, err := os.Stat(a3); !os.IsNotExist(err) || count(`SELECT count(*) FROM fieldseal.audit_events`) != left {
		t.Errorf("a refused archive left a file (%v) or deleted entries", err)
	}
	// An existing file is never overwritten; --before must be a time.
	if code, out := run("audit", "archive", "--before", now(), "--out", a1); code == 0 || !strings.Contains(out, "never overwritten") {
		t.Errorf("archive over an existing file: %d %s", code, out)
	}
	if code, out := run("audit", "archive", "--before", "last month", "--out", a3); code != 2 || !strings.Contains(out, "RFC 3339") {
		t.Errorf("archive with a bad --before: %d %s", code, out)
	}
}
