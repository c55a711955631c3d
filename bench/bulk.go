package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/devissuer"
)

// Sizes of the search, batch and import rows.
const (
	searchRecords = 100000 // in the one collection searched
	batchSize     = 1000
	importRecords = 10000
)

// bulkRow is one figure of the search, batch and import section.
type bulkRow struct {
	name, value string
}

// bulk measures what issue "Find records without decrypting everything"
// asks for: a secret. equality search in a collection of 100,000 records
// of one subject (reindexing them first), a batch of 1,000 against 1,000
// single creates, and an import of 10,000 records.
func bulk(ctx context.Context, admin string, srv *server, iss *devissuer.Issuer, key string, d time.Duration) []bulkRow {
	var rows []bulkRow
	mint := func(sub string) string {
		tok, err := iss.Mint(sub, audience, "records:read records:write", 6*time.Hour, nil)
		check(err)
		return tok
	}
	call := func(method, path, token, contentType string, body []byte) (int, []byte, time.Duration) {
		return srv.call(method, path, token, map[string]string{"Encryption-Key": key, "Content-Type": contentType}, body)
	}

	// Search.
	conn, err := pgx.Connect(ctx, admin)
	check(err)
	defer conn.Close(ctx)
	log.Printf("bench: seeding %d records of one subject", searchRecords)
	form := formOf(ctx, conn)
	keyColumn, keyValue := form.subject("$1")
	versionColumn, encrypt := form.records()
	_, err = conn.Exec(ctx, `INSERT INTO fieldseal.subjects (subject, `+keyColumn+`) VALUES ('bench-search', `+keyValue+`)`, key)
	check(err)
	_, err = conn.Exec(ctx, `INSERT INTO fieldseal.records (subject, id, collection, public, secret`+versionColumn+`)
		SELECT 'bench-search', gen_random_uuid(), 'people', jsonb_build_object('ward', g % 20),
		       `+encrypt(`format('{"email":"user%s@example.org","note":"%s"}', g, repeat('x', 150))`, "'bench-search'", "'people'", "$1")+`
		FROM generate_series(1, $2::int) g`, key, searchRecords)
	check(err)
	_, err = conn.Exec(ctx, `VACUUM ANALYZE fieldseal.records`)
	check(err)
	tok := mint("bench-search")
	// The subject's keyed reads, idle and while the reindex runs (it used
	// to hold them off from start to end: issue "What comes back in",
	// item 5). Each load runs for the same time; the one during the
	// reindex starts with it.
	var people []string
	idRows, err := conn.Query(ctx, `SELECT id::text FROM fieldseal.records WHERE subject = 'bench-search' ORDER BY id LIMIT $1`, readIDs)
	check(err)
	people, err = pgx.CollectRows(idRows, pgx.RowTo[string])
	check(err)
	readers := make([]string, *concurrency)
	for i := range readers {
		readers[i] = tok
	}
	log.Printf("bench: keyed reads of the subject, %d clients, idle", *concurrency)
	idle := load(srv, readers, key, people, "GET", "/v1/records/%s", "", d).result("idle")
	log.Printf("bench: reindex of %d records, and the same reads meanwhile", searchRecords)
	reindexed := make(chan time.Duration, 1)
	go func() {
		status, body, took := call("PUT", "/v1/collections/people", tok, "application/json", []byte(`{"searchable":{"email":{"case_insensitive":true}}}`))
		if status != http.StatusOK {
			log.Fatalf("bench: PUT collection: %d %s", status, body)
		}
		reindexed <- took
	}()
	busy := load(srv, readers, key, people, "GET", "/v1/records/%s", "", d).result("during")
	took := <-reindexed
	covered := ""
	if took < d+time.Second { // load's warm-up second, then d
		covered = " (the reindex ended before the reads did: they ran partly idle)"
	}
	rows = append(rows, bulkRow{fmt.Sprintf("make email searchable in a collection of %d records (reindex)", searchRecords), fmt.Sprintf("%.1f s", took.Seconds())})
	rows = append(rows, bulkRow{fmt.Sprintf("the subject's keyed reads, %d clients, idle and during that reindex: req/s, p50, p99", *concurrency),
		fmt.Sprintf("%.0f/s, %.2f ms, %.2f ms idle; %.0f/s, %.2f ms, %.2f ms during (p99 %.1f× idle)%s",
			idle.rps, idle.p50, idle.p99, busy.rps, busy.p50, busy.p99, busy.p99/idle.p99, covered)})
	_, err = conn.Exec(ctx, `VACUUM ANALYZE fieldseal.search_tags`)
	check(err)
	var emails []string
	for i := range readIDs {
		emails = append(emails, url.QueryEscape(fmt.Sprintf("User%d@Example.org", 1+i*(searchRecords/readIDs))))
	}
	log.Printf("bench: service secret.email search, %d clients of one subject, %s", *concurrency, d)
	tokens := make([]string, *concurrency)
	for i := range tokens {
		tokens[i] = tok
	}
	s := load(srv, tokens, key, emails, "GET", "/v1/records?collection=people&secret.email=%s", "", d).result("search")
	rows = append(rows, bulkRow{fmt.Sprintf("`secret.email` search, %d records, %d clients of one subject: req/s, p50, p99", searchRecords, *concurrency),
		fmt.Sprintf("%.0f/s, %.2f ms, %.2f ms", s.rps, s.p50, s.p99)})

	// Batch against single creates, one client, one after another.
	tok = mint("bench-batch")
	record := `{"collection":"batch","public":{"kind":"bench"},"secret":` + secret + `}`
	batch := []byte(`{"records":[` + strings.TrimSuffix(strings.Repeat(record+",", batchSize), ",") + `]}`)
	var singles, batches time.Duration
	for range *rounds {
		log.Printf("bench: %d single creates, then one batch of %d", batchSize, batchSize)
		for range batchSize {
			status, body, took := call("POST", "/v1/records", tok, "application/json", []byte(record))
			if status != http.StatusCreated {
				log.Fatalf("bench: create: %d %s", status, body)
			}
			singles += took
		}
		status, body, took := call("POST", "/v1/records/batch", tok, "application/json", batch)
		if status != http.StatusCreated {
			log.Fatalf("bench: batch: %d %s", status, body)
		}
		batches += took
	}
	perSingle := singles.Seconds() * 1000 / float64(*rounds*batchSize)
	perBatched := batches.Seconds() * 1000 / float64(*rounds*batchSize)
	rows = append(rows, bulkRow{fmt.Sprintf("%d single creates against one batch of %d, one client: ms per record", batchSize, batchSize),
		fmt.Sprintf("%.3f against %.3f: the batch is %.1f× faster per record", perSingle, perBatched, perSingle/perBatched)})

	// Import: an export of 10,000 records, deleted, imported back.
	tok = mint("bench-import")
	for range importRecords / batchSize {
		if status, body, _ := call("POST", "/v1/records/batch", tok, "application/json", batch); status != http.StatusCreated {
			log.Fatalf("bench: batch: %d %s", status, body)
		}
	}
	status, export, _ := call("GET", "/v1/export", tok, "", nil)
	if status != http.StatusOK {
		log.Fatalf("bench: export: %d", status)
	}
	var imports time.Duration
	for range *rounds {
		_, err = conn.Exec(ctx, `DELETE FROM fieldseal.records WHERE subject = 'bench-import'`)
		check(err)
		log.Printf("bench: import of %d records (%.1f MiB)", importRecords, float64(len(export))/(1<<20))
		status, body, took := call("POST", "/v1/import", tok, "application/x-ndjson", export)
		if status != http.StatusOK || !bytes.Contains(body, []byte(fmt.Sprintf(`"imported":%d`, importRecords))) {
			log.Fatalf("bench: import: %d %s", status, body)
		}
		imports += took
	}
	per := imports / time.Duration(*rounds)
	rows = append(rows, bulkRow{fmt.Sprintf("import of %d records (%.1f MiB of NDJSON)", importRecords, float64(len(export))/(1<<20)),
		fmt.Sprintf("%.2f s (%.0f records/s)", per.Seconds(), importRecords/per.Seconds())})
	return rows
}
