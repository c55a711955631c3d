package main

import "fmt"

// The statements fieldseal issues per request, in order, as in
// queries/*.sql (db's generated code holds the same text). pgbench runs
// them with the same parameters, except that the record id is a literal:
// pgbench cannot produce a random UUID parameter.

const (
	// Each pgbench client is a subject of its own, as each load client is.
	sqlSetSubject     = `SELECT set_config('fieldseal.subject', 'bench-' || :client_id, true);`
	sqlGetKeyFailures = `SELECT coalesce(sum(failures) FILTER (WHERE token_id = :tokenid::text), 0)::int, coalesce(sum(failures), 0)::int, coalesce(max(window_start) FILTER (WHERE token_id = :tokenid::text), now())::timestamptz, coalesce(max(window_start), now())::timestamptz FROM fieldseal.key_failures WHERE window_start > now() - make_interval(secs => 60::int);`
	sqlAppendAudit    = `INSERT INTO fieldseal.audit_events (action, outcome, record_id, record_count, token_id, client_id, request_id, client_addr) VALUES ('%s', 'ok', %s, %s, nullif(:jti::text, ''), nullif('fieldseal-dev'::text, ''), nullif('bench-request'::text, ''), nullif('127.0.0.1'::text, ''));`
)

func readScript(id string) string {
	return "BEGIN;\n" + sqlSetSubject + "\n" + sqlGetKeyFailures + "\n" +
		fmt.Sprintf(`SELECT r.id, r.collection, r.public, coalesce(CASE WHEN k.matches THEN fieldseal.pgp_sym_decrypt(r.secret, :key::text) END, '')::text AS secret, k.matches::boolean, r.version, r.created_at, r.updated_at FROM fieldseal.records r CROSS JOIN LATERAL (SELECT fieldseal.key_matches(s.key_verifier, :key::text) AS matches FROM fieldseal.subjects s) k WHERE r.id = '%s';`, id) + "\n" +
		fmt.Sprintf(sqlAppendAudit, "record.read", "'"+id+"'", "NULL") + "\nCOMMIT;\n"
}

func createScript() string {
	return "BEGIN;\n" + sqlSetSubject + "\n" + sqlGetKeyFailures + "\n" +
		`INSERT INTO fieldseal.subjects (key_verifier) VALUES (fieldseal.new_key_verifier(:key::text)) ON CONFLICT (subject) DO NOTHING;` + "\n" +
		`SELECT fieldseal.key_matches(key_verifier, :key::text)::boolean FROM fieldseal.subjects FOR SHARE;` + "\n" +
		`INSERT INTO fieldseal.records (id, collection, public, secret) VALUES (gen_random_uuid(), 'bench', '{"kind":"bench"}', fieldseal.pgp_sym_encrypt(:secret::text, :key::text, 'cipher-algo=aes256, s2k-mode=1')) RETURNING id, collection, public, version, created_at, updated_at;` + "\n" +
		fmt.Sprintf(sqlAppendAudit, "record.create", "gen_random_uuid()", "NULL") + "\nCOMMIT;\n"
}

func listScript() string {
	return "BEGIN;\n" + sqlSetSubject + "\n" + sqlGetKeyFailures + "\n" +
		`SELECT fieldseal.key_matches(key_verifier, :key::text)::boolean FROM fieldseal.subjects FOR SHARE;` + "\n" +
		`SELECT id, collection, public, fieldseal.pgp_sym_decrypt(secret, :key::text)::text AS secret, version, created_at, updated_at FROM fieldseal.records WHERE id > '00000000-0000-0000-0000-000000000000' AND (''::text = '' OR collection = ''::text) ORDER BY id LIMIT 50;` + "\n" +
		fmt.Sprintf(sqlAppendAudit, "record.list", "NULL", "50") + "\nCOMMIT;\n"
}

// The bare statements: the same crypto with nothing around it.
func bareReadScript(n int) string {
	return fmt.Sprintf("SELECT fieldseal.pgp_sym_decrypt(secret, :key::text) FROM bench.bare WHERE n = %d;\n", n)
}

const bareInsertScript = "INSERT INTO bench.bare_insert (secret) VALUES (fieldseal.pgp_sym_encrypt(:secret::text, :key::text, 'cipher-algo=aes256, s2k-mode=1'));\n"
