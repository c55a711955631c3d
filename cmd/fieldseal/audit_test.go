package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/internal/pgtest"
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
			INSERT INTO fieldseal.audit_events (subject, seq, at, action, outcome, prev_hash, hash)
			SELECT 'alice', 3, now(), 'record.delete', 'ok', hash, hash FROM fieldseal.audit_events WHERE subject = 'alice' AND seq = 2`,
			`subject "alice" lane 0 at entry 3: its contents do not match its hash`},
		{"newest entries deleted", `DELETE FROM fieldseal.audit_events WHERE subject = 'alice' AND seq >= 4`,
			`subject "alice" lane 0 at entry 4: entries 4 to 5 are missing: the newest entries were deleted`},
		{"whole chain deleted", `DELETE FROM fieldseal.audit_events WHERE subject = 'alice'`,
			`subject "alice" lane 0 at entry 1: every entry (1 to 5) is missing`},
		{"appended without the trigger, hash and all", `SET session_replication_role = replica;
			INSERT INTO fieldseal.audit_events (subject, seq, at, action, outcome, prev_hash, hash)
			SELECT 'alice', 6, now(), 'record.delete', 'ok', hash, '\x00' FROM fieldseal.audit_events WHERE subject = 'alice' AND seq = 5;
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
