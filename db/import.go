package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// Import implements fieldseal.ExportService, importPageLines lines at a
// time, the same three statements a page on one PostgreSQL and on
// Citus: ImportLines opens every line under the key it was written
// under, which the verified key opens (the client key, or a data key of
// the subject key the line carries: a message not in the form fieldseal
// writes, a compressed one among them, is never opened), encrypts it
// again under the key the subject writes with now, and computes its
// tags; each plaintext is checked as a create
// checks a secret (fieldseal.CheckObject); only if every line of the page
// passes, InsertImported writes the records the subject does not have
// and InsertTags their tags. The first page with a line that fails
// refuses the import (400, naming its lines: never a wrong key, which the
// key check decided first), and the transaction rolls back what the pages
// before it wrote.
func (s *Store) Import(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, recs []fieldseal.ImportedRecord, idem *fieldseal.Idempotent[fieldseal.ImportResult]) (fieldseal.ImportResult, error) {
	t := &tx[fieldseal.ImportResult]{caller: caller, note: auditNote{action: fieldseal.ActionImport}, usesKey: true, long: true, idem: idem,
		count: func(res fieldseal.ImportResult) int64 { return res.Imported }}
	writeKey := registerKey(ctx, &t.first, key)
	t.answer = func() (fieldseal.ImportResult, error) { return fieldseal.ImportResult{}, writeKey.check() }
	t.then = func(q *Queries, res fieldseal.ImportResult) (fieldseal.ImportResult, error) {
		for lo := 0; lo < len(recs); lo += importPageLines {
			n, err := importPage(ctx, q, key, recs[lo:min(lo+importPageLines, len(recs))], lo)
			if err != nil {
				return fieldseal.ImportResult{}, err
			}
			res.Imported += n
		}
		res.Skipped = int64(len(recs)) - res.Imported
		return res, nil
	}
	return run(ctx, s, t)
}

// importPageLines is how many lines of an import one page holds.
// PostgreSQL reads an element of a variable-length array parameter by
// walking the array from its start, so a statement's cost grows with the
// square of its lines: an import of 10,000 took 1.63 s in one statement,
// 0.61 s in pages of 1,000 (the import row of go run ./bench
// -pgbench=false -hot=false -archive=false -rounds 1, each binary given
// with -bin). On Citus a page's ciphertexts are in the text of the
// statement that writes them.
const importPageLines = 1000

// importPage imports one page of lines, the first being line lo+1 of the
// import, and says how many records it inserted.
func importPage(ctx context.Context, q *Queries, key fieldseal.Key, recs []fieldseal.ImportedRecord, lo int) (int64, error) {
	p := sqlc.InsertImportedParams{
		Ids: make([]pgtype.UUID, len(recs)), Collections: make([]string, len(recs)), Publics: make([][]byte, len(recs)),
		Secrets: make([][]byte, len(recs)), KeyVersions: make([]int32, len(recs)), Versions: make([]int64, len(recs)),
		Created: make([]time.Time, len(recs)), Updated: make([]time.Time, len(recs)),
	}
	exported, subjectKeys := make([][]byte, len(recs)), make([][]byte, len(recs))
	for i, r := range recs {
		p.Ids[i], p.Collections[i], p.Publics[i], exported[i], p.KeyVersions[i] = uuid(r.ID), r.Collection, r.Public, r.Ciphertext, r.KeyVersion
		p.Versions[i], p.Created[i], p.Updated[i] = r.Version, r.CreatedAt, r.UpdatedAt
		subjectKeys[i] = r.SubjectKey
		if subjectKeys[i] == nil {
			subjectKeys[i] = []byte{} // an array element, not NULL
		}
	}
	lines, err := q.ImportLines(ctx, sqlc.ImportLinesParams{
		Key: key.Passphrase(), KeyVersions: p.KeyVersions, SubjectKeys: subjectKeys, Collections: p.Collections, Secrets: exported,
	})
	if err != nil {
		return 0, err
	}
	if len(lines) != len(recs) {
		return 0, fmt.Errorf("db: %d of %d import lines were read", len(lines), len(recs))
	}
	var unopened, invalid []int64
	var why error
	for i, l := range lines {
		p.Secrets[i], p.KeyVersions[i] = l.Secret, l.KeyVersion // what the subject writes now
		n := l.N + int64(lo)
		if !l.Opened {
			unopened = appendNamed(unopened, n)
			continue
		}
		if _, err := fieldseal.CheckObject("the secret", []byte(l.Plain), false); err != nil {
			if why == nil {
				why = fmt.Errorf("line %d: %s", n, fieldseal.ErrorMessage(err))
			}
			invalid = appendNamed(invalid, n)
		}
	}
	switch {
	case len(unopened) > 0:
		return 0, fieldseal.Errorf(fieldseal.EINVALID, "the ciphertext of line %s does not open under the subject's key, or is not a message fieldseal writes "+
			"(AES-256, uncompressed): nothing was imported; records exported before a key rotation open only under the key of their time", joinInts(unopened))
	case len(invalid) > 0:
		return 0, fieldseal.Errorf(fieldseal.EINVALID, "the secret of line %s is not one a create accepts (%v); nothing was imported", joinInts(invalid), why)
	}
	ids, err := q.InsertImported(ctx, p)
	if err != nil {
		return 0, err
	}
	inserted := make(map[pgtype.UUID]bool, len(ids))
	for _, id := range ids {
		inserted[id] = true
	}
	var set tagSet
	for i, l := range lines {
		if id := p.Ids[i]; inserted[id] {
			for k := range l.Fields {
				set.add(id, l.Fields[k], l.Tags[k])
			}
		}
	}
	return int64(len(ids)), set.insert(ctx, q)
}
