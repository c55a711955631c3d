package fieldseal

import (
	"strings"
	"testing"
)

// Judge flags what each limit names, and weighs decrypts against the
// subject's own usual: the same count is ordinary for a subject that
// always reads that much and suspect for one that never does.
func TestUsageJudge(t *testing.T) {
	rep := UsageReport{
		Subjects: []SubjectUsage{
			{Subject: "busy", Use: Use{Decrypts: 5000}, BaselineDecrypts: 4000},
			{Subject: "quiet", Use: Use{Decrypts: 5000}, BaselineDecrypts: 20},
			{Subject: "new", Use: Use{Decrypts: 99}},
		},
		Tokens: []TokenUsage{
			{Subject: "busy", TokenID: "a", Use: Use{Decrypts: 5000, Addresses: 3}},
			{Subject: "quiet", TokenID: "b", Use: Use{Decrypts: 5000, Addresses: 4}},
			{Subject: "new", TokenID: "c", Use: Use{Decrypts: 99, WrongKeys: 5}},
			{Subject: "new", TokenID: "d", Use: Use{WrongKeys: 4}, UsedAfterRevocation: true},
			{Subject: "busy", TokenID: "e", Use: Use{Decrypts: 100}},
		},
	}
	if n := rep.Judge(DefaultUsageLimits); n != 3 {
		t.Errorf("%d tokens flagged; want 3", n)
	}
	want := map[string]string{
		"a": "",
		"b": "many_addresses,decrypts_above_usual",
		"c": "wrong_key_burst", // 99 decrypts: under DecryptMin
		"d": "used_after_revocation",
		"e": "", // 100 decrypts is under ten times busy's usual
	}
	for _, tu := range rep.Tokens {
		if got := strings.Join(tu.Flags, ","); got != want[tu.TokenID] {
			t.Errorf("token %s: flags %q; want %q", tu.TokenID, got, want[tu.TokenID])
		}
	}
	if len(rep.Tokens[0].Flags) < len(rep.Tokens[len(rep.Tokens)-1].Flags) {
		t.Error("flagged tokens should come first")
	}
	subjects := map[string]string{}
	for _, s := range rep.Subjects {
		subjects[s.Subject] = strings.Join(s.Flags, ",")
	}
	if subjects["busy"] != "" || subjects["quiet"] != "decrypts_above_usual" || subjects["new"] != "" {
		t.Errorf("subject flags: %v", subjects)
	}
	for _, bad := range []UsageLimits{{Addresses: 0, DecryptFactor: 10, WrongKeys: 5}, {Addresses: 3, DecryptFactor: 0.5, WrongKeys: 5}, {Addresses: 3, DecryptFactor: 10}} {
		if bad.Validate() == nil {
			t.Errorf("limits %+v validated", bad)
		}
	}
}
