package auth_test

import (
	"testing"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/auth"
)

func TestRevocationRules(t *testing.T) {
	cut := time.Now()
	r := auth.NewRevocations()
	r.Replace([]fieldseal.Revocation{
		{JTI: "stolen"},
		{Subject: "bob", RevokedBefore: cut.Add(-time.Hour)},
		{Subject: "bob", RevokedBefore: cut}, // the later one wins
	})
	for _, tc := range []struct {
		name    string
		c       auth.Claims
		revoked bool
	}{
		{"revoked jti", auth.Claims{Subject: "alice", ID: "stolen", IssuedAt: cut}, true},
		{"other jti", auth.Claims{Subject: "alice", ID: "fine", IssuedAt: cut}, false},
		{"no jti", auth.Claims{Subject: "alice", IssuedAt: cut}, false},
		{"subject's token issued before", auth.Claims{Subject: "bob", ID: "x", IssuedAt: cut.Add(-time.Minute)}, true},
		{"subject's token issued after", auth.Claims{Subject: "bob", ID: "x", IssuedAt: cut.Add(time.Second)}, false},
		{"subject's token without iat", auth.Claims{Subject: "bob", ID: "x"}, true},
	} {
		if got := r.Revoked(tc.c); got != tc.revoked {
			t.Errorf("%s: Revoked = %v; want %v", tc.name, got, tc.revoked)
		}
	}
	r.Replace(nil)
	if r.Revoked(auth.Claims{Subject: "alice", ID: "stolen"}) {
		t.Error("a revocation outlived its removal from the list")
	}
}
