package db

import (
	"strings"
)

// On a Citus coordinator (Open finds out: dialect.go), a subject's rows
// live on one shard of each table, all co-located (fieldseal migrate
// distributes them), and the Store runs each request there:
//
//   - The transaction's settings are SET LOCAL statements, which Citus
//     sends on to the workers (citus.propagate_set_commands = 'local');
//     set_config() would stay on the coordinator, and row-level security
//     on the shards would see no subject.
//   - Every statement names its subject as a literal: the queries say
//     "subject = current_setting('fieldseal.subject', true)" and bind
//     writes the subject in its place. Citus routes a statement to one
//     shard only when the subject is a constant in its text; given as a
//     parameter, it would route too, but then Citus writes every
//     parameter, the key among them, into the statement it sends to the
//     worker, whose log_statement would log it. With the subject a
//     literal a SELECT's parameters stay parameters there, and parameter
//     logging is off on every node (the SET LOCALs). An UPDATE's or
//     INSERT's parameters Citus still evaluates on the coordinator and
//     writes in: no write sends a key to a worker (encryption for a write
//     runs on the coordinator; rotation re-encrypts in a SELECT).
//   - Citus evaluates a data-modifying statement's stable functions on
//     the coordinator, and the throttle's answer (set_config of
//     fieldseal.key_use, by AdmitKeyUse) is set on the worker that ran
//     it: so a transaction that uses a key hears that answer first, in a
//     round trip of its own, and then sets fieldseal.key_use on every
//     node with SET LOCAL before any statement tries the key. For the
//     same reason the read's audit entry, appended only if the read
//     decrypted (fieldseal.decrypted, set on the worker), is not sent
//     with the read but after it, once the Store has seen it decrypt.

// Where one PostgreSQL runs a key-using INSERT or UPDATE, the Store on
// Citus splits it: a SELECT does the key's work on the worker and returns
// only what may be logged (ciphertexts, tags), and a write sends that.
// So rotation (reencrypt) and tagging (index, reindexRecords,
// reindexAll); a batch create inserts record by record (createRecords),
// each INSERT ... VALUES encrypting on the coordinator, as a single
// create does. dialect.go holds each path's two forms side by side.

// subjectSetting is the text bind replaces.
const subjectSetting = "current_setting('fieldseal.subject', true)"

// keyUseAdmitted is what AdmitKeyUse sets when it admits, for every node.
const keyUseAdmitted = "SET LOCAL fieldseal.key_use = 'admitted'"

// quote is a SQL string literal of v: an escape string, which reads the
// same whatever standard_conforming_strings says. runTx refuses a
// subject with a NUL byte, which would end the statement's text.
func quote(v string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(v) + "'"
}
