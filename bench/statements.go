package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The pgbench scripts that run exactly what fieldseal sends per request.
// The SQL is read from queries/*.sql, the files sqlc generates db's code
// from, so it cannot drift from what the service runs; only the order and
// the round trips are restated here, as db's run (db/tx.go) and the Store's
// methods issue them: one pipeline (BEGIN, subject, throttle check and the
// request's own queries), one pipeline (audit entry, COMMIT); a read is
// all in one.

// queryParam is a sqlc parameter: @name or sqlc.narg(name).
var queryParam = regexp.MustCompile(`sqlc\.n?arg\((\w+)\)|@(\w+)`)

// namedQueries reads every "-- name: X" query of dir/*.sql, comments
// dropped and lines joined.
func namedQueries(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no queries in %s (run make bench from the repository's top)", dir)
	}
	queries := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var name string
		var body []string
		flush := func() {
			if name != "" {
				queries[name] = strings.TrimSuffix(strings.Join(body, " "), ";")
			}
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if rest, ok := strings.CutPrefix(line, "-- name: "); ok {
				flush()
				name, body = strings.Fields(rest)[0], nil
				continue
			}
			if line != "" && !strings.HasPrefix(line, "--") {
				body = append(body, line)
			}
		}
		flush()
	}
	return queries, nil
}

// script builds one pgbench script. Each step is a query name, a literal
// statement ("BEGIN", "COMMIT"), or a pipeline marker; args gives each
// sqlc parameter's value as SQL (pgbench :variables, literals). A
// parameter without a value is an error: a query grew one the bench does
// not know.
type script struct {
	queries map[string]string
	args    map[string]string
	b       strings.Builder
	err     error
}

func (s *script) pipeline(steps ...string) *script {
	return s.startPipeline().run(steps...).endPipeline()
}

func (s *script) startPipeline() *script {
	s.b.WriteString("\\startpipeline\n")
	return s
}

func (s *script) endPipeline() *script {
	s.b.WriteString("\\endpipeline\n")
	return s
}

func (s *script) run(steps ...string) *script {
	for _, step := range steps {
		if step == "BEGIN" || step == "COMMIT" {
			s.b.WriteString(step + ";\n")
			continue
		}
		sql, ok := s.queries[step]
		if !ok {
			s.fail(fmt.Errorf("queries/: no query named %s", step))
			continue
		}
		sql = queryParam.ReplaceAllStringFunc(sql, func(p string) string {
			m := queryParam.FindStringSubmatch(p)
			name := m[1] + m[2]
			v, ok := s.args[name]
			if !ok {
				s.fail(fmt.Errorf("query %s: no bench value for parameter %s", step, name))
			}
			return v
		})
		s.b.WriteString(sql + ";\n")
	}
	return s
}

func (s *script) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

func (s *script) text() (string, error) { return s.b.String(), s.err }

// statementScripts returns the read scripts (one per record id: pgbench
// cannot draw a random UUID), the create script and the list script.
func statementScripts(queries map[string]string, ids []string) (reads []string, create, list string, err error) {
	base := map[string]string{
		// Each pgbench client is a subject of its own, as each load client is.
		"subject": "('bench-' || :client_id)", "token_id": ":tokenid", "window_seconds": "60",
		"token_limit": "1000", "subject_limit": "1000",
		"key": ":key", "outcome": "'ok'", "client_id": "'fieldseal-dev'", "request_id": "'bench-request'",
		"client_addr": "'127.0.0.1'", "record_count": "NULL",
		"statement_timeout": "'15000ms'", "lock_timeout": "'5000ms'",
		// Every measured transaction carries a key: generic plans (SetSubject).
		"plan_cache_mode": "'force_generic_plan'",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	open := []string{"BEGIN", "SetSubject", "AdmitKeyUse"}
	closing := []string{"AppendAuditEvent", "COMMIT"}
	for _, id := range ids {
		// The audit entry's token_id is the jti; the throttle's is "jti:…".
		// One round trip: the entry is appended if the read decrypted.
		s := &script{queries: queries, args: with(map[string]string{"id": "'" + id + "'"})}
		s.startPipeline().run(append(open, "GetRecordDecrypted")...)
		s.args = with(map[string]string{"action": "'record.read'", "record_id": "'" + id + "'", "token_id": ":jti"})
		text, err := s.run("AppendAuditEventIfDecrypted", "COMMIT").endPipeline().text()
		if err != nil {
			return nil, "", "", err
		}
		reads = append(reads, text)
	}
	s := &script{queries: queries, args: with(map[string]string{
		"id": "gen_random_uuid()", "collection": "'bench'", "public": `'{"kind":"bench"}'`, "secret": ":secret",
		// Tags: none, 'bench' has no searchable field (the statement still runs).
		"ids": "ARRAY[gen_random_uuid()]", "collections": "ARRAY['bench']", "secrets": "ARRAY[:secret]",
	})}
	s.pipeline(append(open, "RegisterSubjectKey", "CheckKey", "CreateRecord", "IndexRecords")...)
	s.args = with(map[string]string{"action": "'record.create'", "record_id": "gen_random_uuid()", "token_id": ":jti"})
	if create, err = s.pipeline(closing...).text(); err != nil {
		return nil, "", "", err
	}

	// Cursor and size are parameters, as the service sends them (a
	// literal would let PostgreSQL plan for its value).
	s = &script{queries: queries, args: with(map[string]string{
		"after": ":after", "max_rows": ":maxrows",
	})}
	s.pipeline(append(open, "CheckKey", "ListRecordsDecrypted")...)
	s.args = with(map[string]string{"action": "'record.list'", "record_id": "NULL", "record_count": "50", "token_id": ":jti"})
	list, err = s.pipeline(closing...).text()
	return reads, create, list, err
}

// The bare statements: the same crypto with nothing around it.
func bareReadScript(n int) string {
	return fmt.Sprintf("SELECT fieldseal.pgp_sym_decrypt(secret, :key::text) FROM bench.bare WHERE n = %d;\n", n)
}

const bareInsertScript = "INSERT INTO bench.bare_insert (secret) VALUES (fieldseal.pgp_sym_encrypt(:secret::text, :key::text, 'cipher-algo=aes256, s2k-mode=1'));\n"
