package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// TestAuditUsage: a trail written by real requests, from several client
// addresses, reported per subject and token; the tokens that look wrong
// are flagged (exit 1), and --revoke revokes them, each in its subject's
// audit chain, after which the service refuses them and the trail still
// verifies.
func TestAuditUsage(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	vars, alice := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	srv := startServer(t, vars)
	_, bob := tokenSetupWith(t, vars, "bob", 0)
	_, carol := tokenSetupWith(t, vars, "carol", 0)
	_, dave := tokenSetupWith(t, vars, "dave", 0)
	key := dataKey(t)
	// from sends a request from a client address of the loopback network.
	from := func(addr, method, path, token, key string, body string) (int, map[string]any) {
		t.Helper()
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}}
		c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Encryption-Key", key)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	create := func(token string) string {
		t.Helper()
		status, m := from("127.0.0.1", "POST", "/v1/records", token, key, `{"collection":"c","secret":{"s":"usage"}}`)
		if status != http.StatusCreated {
			t.Fatalf("create: %d %v", status, m)
		}
		return m["id"].(string)
	}
	read := func(addr, token, id, k string, want int) {
		t.Helper()
		if status, m := from(addr, "GET", "/v1/records/"+id, token, k, ""); status != want {
			t.Fatalf("read from %s: %d %v; want %d", addr, status, m, want)
		}
	}
	// alice: read from five addresses; bob: six wrong keys; carol: two
	// reads from one address; dave: five reads from one address.
	id := create(alice)
	for i := 1; i <= 5; i++ {
		read(fmt.Sprintf("127.0.0.%d", i), alice, id, key, http.StatusOK)
	}
	id = create(bob)
	for range 6 {
		read("127.0.0.1", bob, id, dataKey(t), http.StatusForbidden)
	}
	id = create(carol)
	read("127.0.0.1", carol, id, key, http.StatusOK)
	read("127.0.0.1", carol, id, key, http.StatusOK)
	id = create(dave)
	for range 5 {
		read("127.0.0.1", dave, id, key, http.StatusOK)
	}

	admin := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL}
	ctx := context.Background()
	code, out, errOut := runCmd(t, ctx, admin, "audit", "usage", "--json", "--decrypt-min", "5")
	if code != 1 {
		t.Fatalf("audit usage: exit %d (%s); want 1: tokens are flagged", code, errOut)
	}
	var rep fieldseal.UsageReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("audit usage --json: %v\n%s", err, out)
	}
	jti := func(token string) string { return decodeClaims(t, token)["jti"].(string) }
	want := map[string]struct {
		requests, decrypts, wrongKeys, addresses int64
		flags                                    string
	}{
		jti(alice): {6, 5, 0, 5, "many_addresses,decrypts_above_usual"},
		jti(bob):   {7, 0, 6, 1, "wrong_key_burst"},
		jti(carol): {3, 2, 0, 1, ""},
		jti(dave):  {6, 5, 0, 1, "decrypts_above_usual"},
	}
	if len(rep.Tokens) != len(want) || len(rep.Subjects) != 4 {
		t.Fatalf("report of %d tokens and %d subjects; want 4 of each: %s", len(rep.Tokens), len(rep.Subjects), out)
	}
	for _, tu := range rep.Tokens {
		w, ok := want[tu.TokenID]
		if !ok {
			t.Errorf("a token the requests did not use: %+v", tu)
			continue
		}
		if tu.Requests != w.requests || tu.Decrypts != w.decrypts || tu.WrongKeys != w.wrongKeys || tu.Addresses != w.addresses || strings.Join(tu.Flags, ",") != w.flags {
			t.Errorf("%s's token: %d requests, %d decrypts, %d wrong keys, %d addresses, flags %v; want %+v", tu.Subject, tu.Requests, tu.Decrypts, tu.WrongKeys, tu.Addresses, tu.Flags, w)
		}
		if tu.FirstSeen.IsZero() || tu.LastSeen.Before(tu.FirstSeen) {
			t.Errorf("%s's token: first seen %s, last seen %s", tu.Subject, tu.FirstSeen, tu.LastSeen)
		}
	}
	// The text report says the same, and names no key or token.
	code, text, _ := runCmd(t, ctx, admin, "audit", "usage", "--decrypt-min", "5")
	if code != 1 || !strings.Contains(text, "3 of 4 tokens flagged") || !strings.Contains(text, "wrong_key_burst") {
		t.Errorf("audit usage: exit %d\n%s", code, text)
	}
	for _, secret := range []string{key, alice, bob} {
		if strings.Contains(text+out, secret) {
			t.Error("the usage report holds a key or a token")
		}
	}
	// Limits that flag nothing: exit 0.
	if code, _, errOut := runCmd(t, ctx, admin, "audit", "usage", "--addresses", "10", "--wrong-keys", "100"); code != 0 {
		t.Errorf("audit usage with nothing over its limits: exit %d (%s); want 0", code, errOut)
	}
	if code, _, _ := runCmd(t, ctx, admin, "audit", "usage", "--addresses", "0"); code != 2 {
		t.Errorf("audit usage --addresses 0: exit %d; want 2 (usage)", code)
	}

	// --revoke: the three flagged tokens revoked, each recorded in its
	// subject's chain; the service refuses them; carol's still works.
	code, _, errOut = runCmd(t, ctx, admin, "audit", "usage", "--decrypt-min", "5", "--revoke")
	if code != 1 || strings.Count(errOut, "revoked the token") != 3 {
		t.Fatalf("audit usage --revoke: exit %d\n%s", code, errOut)
	}
	conn := adminConn(t, database.AdminURL)
	var revoked, entries int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM fieldseal.revocations WHERE jti = ANY($1)),
		(SELECT count(*) FROM fieldseal.audit_events WHERE action = 'token.revoke' AND token_id = ANY($1) AND client_id = 'fieldseal audit usage')`,
		[]string{jti(alice), jti(bob), jti(dave)}).Scan(&revoked, &entries); err != nil {
		t.Fatal(err)
	}
	if revoked != 3 || entries != 3 {
		t.Errorf("%d revocations and %d audit entries for the flagged tokens; want 3 and 3", revoked, entries)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, _ := from("127.0.0.1", "GET", "/v1/records?limit=1", alice, "", "")
		if status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's revoked token still answers %d", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	read("127.0.0.1", carol, create(carol), key, http.StatusOK)
	if code, out, _ := runCmd(t, ctx, admin, "audit", "verify"); code != 0 {
		t.Errorf("audit verify after the revocations: exit %d\n%s", code, out)
	}
}
