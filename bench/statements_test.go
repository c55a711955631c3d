package main

import (
	"strings"
	"testing"
)

// The scripts build from the repository's queries: a query renamed, or
// given a parameter the bench has no value for, fails here rather than
// in the next make bench.
func TestStatementScriptsBuildFromQueries(t *testing.T) {
	queries, err := namedQueries("../queries")
	if err != nil {
		t.Fatal(err)
	}
	reads, create, list, err := statementScripts(queries, []string{"0192f3a4-5b6c-7d8e-9f01-23456789abcd"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, script string
		roundTrips   int // as db.Store sends them
	}{{"read", reads[0], 1}, {"create", create, 2}, {"list", list, 2}} {
		s := tc.script
		if strings.ContainsAny(s, "@$") || strings.Contains(s, "sqlc.") {
			t.Errorf("%s script still has a sqlc parameter:\n%s", tc.name, s)
		}
		if !strings.HasPrefix(s, "\\startpipeline\nBEGIN;\nSELECT set_config('fieldseal.subject', ('bench-' || :client_id)::text, true), set_config('statement_timeout', ") ||
			!strings.HasSuffix(s, "COMMIT;\n\\endpipeline\n") || strings.Count(s, "\\startpipeline") != tc.roundTrips {
			t.Errorf("%s script is not BEGIN…COMMIT in %d round trips:\n%s", tc.name, tc.roundTrips, s)
		}
	}
	if !strings.Contains(reads[0], "AND r.id = '0192f3a4-5b6c-7d8e-9f01-23456789abcd'") {
		t.Errorf("read script does not read the record by its id:\n%s", reads[0])
	}
	// A parameter the bench does not know is refused.
	queries["CheckKey"] += " AND @new_param"
	if _, _, _, err := statementScripts(queries, nil); err == nil || !strings.Contains(err.Error(), "new_param") {
		t.Errorf("a new parameter: err = %v; want it named", err)
	}
}
