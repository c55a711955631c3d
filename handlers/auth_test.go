package handlers_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fieldseal/fieldseal/devissuer"
)

func TestTokenRefusals(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	good := a.token("alice", allScopes)
	parts := strings.Split(good, ".")
	untrusted := devissuer.New(a.idp.URL, loadKey(t, "other-signing-key.pem"))

	mint := func(claims map[string]any) string {
		tok, err := a.idp.Mint("alice", audience, allScopes, time.Hour, claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	now := time.Now()
	hs256, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": a.idp.URL, "aud": audience, "sub": "alice", "exp": now.Add(time.Hour).Unix(), "scope": allScopes,
	}).SignedString([]byte("secret"))
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	untrustedTok, _ := untrusted.Mint("alice", audience, allScopes, time.Hour, nil)

	for _, tc := range []struct {
		name, auth, reason string
	}{
		{"no header", "", "missing bearer token"},
		{"basic auth", "Basic YWxpY2U6cHc=", "missing bearer token"},
		{"garbage", "Bearer not.a.jwt", "malformed token"},
		{"two parts", "Bearer " + parts[0] + "." + parts[1], "malformed token"},
		{"alg none", "Bearer " + noneHeader + "." + parts[1] + ".", ""},
		{"stripped signature", "Bearer " + parts[0] + "." + parts[1] + ".", ""},
		{"HS256", "Bearer " + hs256, ""},
		{"untrusted key", "Bearer " + untrustedTok, ""},
		{"tampered payload", "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"bob"}`)) + "." + parts[2], ""},
		{"expired", "Bearer " + mint(map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}), "token expired"},
		{"not yet valid", "Bearer " + mint(map[string]any{"nbf": now.Add(time.Hour).Unix()}), "token not valid yet"},
		{"issued in the future", "Bearer " + mint(map[string]any{"iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), "token issued in the future"},
		{"wrong issuer", "Bearer " + mint(map[string]any{"iss": "https://evil.invalid"}), "wrong issuer"},
		{"wrong audience", "Bearer " + mint(map[string]any{"aud": "someone-else"}), "wrong audience"},
		{"no exp", "Bearer " + mint(map[string]any{"exp": nil}), ""},
		{"no aud", "Bearer " + mint(map[string]any{"aud": nil}), ""},
		{"no iss", "Bearer " + mint(map[string]any{"iss": nil}), ""},
		{"aud array without us", "Bearer " + mint(map[string]any{"aud": []string{"a", "b"}}), "wrong audience"},
		{"no sub", "Bearer " + mint(map[string]any{"sub": ""}), "missing subject"},
		{"numeric sub", "Bearer " + mint(map[string]any{"sub": 42}), ""},
		{"year-long lifetime", "Bearer " + mint(map[string]any{"exp": now.Add(365 * 24 * time.Hour).Unix()}), "token lifetime too long"},
		{"oversized", "Bearer " + mint(map[string]any{"pad": strings.Repeat("x", 9000)}), "token too large"},
		{"unknown crit", "Bearer " + mintHeader(t, a, map[string]any{"crit": []string{"exp-ext"}, "exp-ext": true}), "unsupported critical header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			r := a.do(req{method: "GET", path: "/v1/records", header: h})
			wantProblem(t, r, http.StatusUnauthorized, "invalid_token")
			wa := r.header.Get("WWW-Authenticate")
			if !strings.HasPrefix(wa, `Bearer error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q; want Bearer error=\"invalid_token\"...", wa)
			}
			if tc.reason != "" && !strings.Contains(wa, `error_description="`+tc.reason+`"`) {
				t.Errorf("WWW-Authenticate = %q; want reason %q", wa, tc.reason)
			}
			if len(tc.auth) > 20 && strings.Contains(wa+string(r.body), tc.auth[7:27]) {
				t.Errorf("the refusal echoes the token")
			}
		})
	}
	// Interoperability: RFC 9068 tokens as OpenID providers issue them,
	// aud as a string (the good token) or an array, typ at+jwt.
	if r := a.do(req{method: "GET", path: "/v1/records", token: mint(map[string]any{"aud": []string{"other-api", audience}})}); r.status != http.StatusOK {
		t.Errorf("aud as an array holding ours: %d %s", r.status, r.body)
	}
	// The server is still healthy and the good token still works.
	if r := a.do(req{method: "GET", path: "/v1/records", token: good}); r.status != http.StatusOK {
		t.Errorf("good token after refusals: %d %s", r.status, r.body)
	}
	if r := a.do(req{method: "GET", path: "/healthz"}); r.status != http.StatusOK {
		t.Errorf("healthz: %d", r.status)
	}
}

// mintHeader mints a valid token with extra protected headers.
func mintHeader(t *testing.T, a *api, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": a.idp.URL, "aud": audience, "sub": "alice", "scope": allScopes,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = a.idp.KeyID()
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(loadKey(t, "signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScopes(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	key := newKey(t)
	id := a.create(a.token("alice", allScopes), key, map[string]any{"collection": "c", "secret": map[string]any{}})
	readOnly, writeOnly := a.token("alice", "records:read"), a.token("alice", "records:write")
	// scp as an array grants scopes too.
	scp, err := a.idp.Mint("alice", audience, "", time.Hour, map[string]any{"scp": []string{"records:read"}})
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"collection": "c", "secret": map[string]any{}}
	for _, tc := range []struct {
		name  string
		r     req
		scope string
	}{
		{"create needs write", req{method: "POST", path: "/v1/records", token: readOnly, key: key, body: body}, "records:write"},
		{"replace needs write", req{method: "PUT", path: "/v1/records/" + id, token: readOnly, key: key, body: body}, "records:write"},
		{"delete needs write", req{method: "DELETE", path: "/v1/records/" + id, token: readOnly}, "records:write"},
		{"get needs read", req{method: "GET", path: "/v1/records/" + id, token: writeOnly}, "records:read"},
		{"list needs read", req{method: "GET", path: "/v1/records", token: writeOnly}, "records:read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(tc.r)
			wantProblem(t, r, http.StatusForbidden, "insufficient_scope")
			if wa := r.header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, tc.scope) {
				t.Errorf("WWW-Authenticate = %q; want insufficient_scope naming %s", wa, tc.scope)
			}
		})
	}
	if n := a.count(`SELECT count(*)::int FROM fieldseal.records`); n != 1 {
		t.Errorf("records = %d; want 1: a refused request wrote or deleted", n)
	}
	if r := a.do(req{method: "GET", path: "/v1/records/" + id, token: scp}); r.status != http.StatusOK {
		t.Errorf("scp [records:read]: %d %s", r.status, r.body)
	}
}
