package main

import (
	"context"
	"fmt"
	"log"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/devissuer"
)

// Sizes of the skewed rows (issue "Plans that do not depend on luck"): a
// backend subject with many records among many subjects with few, as a
// real deployment grows.
const (
	skewedBig      = 200000
	skewedSubjects = 10000
	skewedEach     = 10
	readRepeats    = 5 // each read row is the median of this many
)

// skewed measures the subject-wide requests of one subject of skewedBig
// records among skewedSubjects of skewedEach, made in the order a
// deployment makes them: the small subjects first, the service's plans
// made while they were all there was (its connections served them), the
// big subject after, no ANALYZE (autovacuum off); then the same requests
// after an ANALYZE. The two should be within 1.5x of each other.
func skewed(ctx context.Context, admin string, srv *server, iss *devissuer.Issuer, key string) []bulkRow {
	conn, err := pgx.Connect(ctx, admin)
	check(err)
	defer conn.Close(ctx)
	first, key2 := key, randomKey() // a rotation goes from one to the other
	mint := func(sub string) string {
		tok, err := iss.Mint(sub, audience, "records:read records:write keys:rotate", 6*time.Hour, nil)
		check(err)
		return tok
	}
	type request struct {
		name string
		run  func(tok, key string) (string, time.Duration) // the key after
	}
	// do sends one request with the key and wants 200.
	do := func(what, method, path, tok, key string, header map[string]string, body string) time.Duration {
		h := map[string]string{"Encryption-Key": key, "Content-Type": "application/json"}
		maps.Copy(h, header)
		status, b, took := srv.call(method, path, tok, h, []byte(body))
		if status != http.StatusOK {
			log.Fatalf("bench: skewed %s: %d %.300s", what, status, b)
		}
		return took
	}
	// read is a request that leaves the key as it is: the median of
	// readRepeats, so that one slow spell (the first read of tags just
	// written sets their hint bits) does not pass for a plan's cost.
	read := func(name, what, path string, withKey bool) request {
		return request{name, func(tok, key string) (string, time.Duration) {
			k := key
			if !withKey {
				k = ""
			}
			took := make([]time.Duration, readRepeats)
			for i := range took {
				took[i] = do(what, "GET", path, tok, k, nil, "")
			}
			slices.Sort(took)
			return key, took[len(took)/2]
		}}
	}
	// A reindex sets settings other than the subject's (the same again
	// change nothing): email case-insensitive or not, in turn.
	reindexed := map[string]bool{}
	var middle string
	requests := []request{
		{"reindex (PUT collection)", func(tok, key string) (string, time.Duration) {
			reindexed[tok] = !reindexed[tok]
			body := fmt.Sprintf(`{"searchable":{"email":{"case_insensitive":%t},"ward":{}}}`, reindexed[tok])
			return key, do("reindex", "PUT", "/v1/collections/people", tok, key, nil, body)
		}},
		read("search of a rare value", "search", "/v1/records?collection=people&secret.email=user7@example.org", true),
		read("search of a common value, page 1", "search", "/v1/records?collection=people&secret.ward=3&limit=50", true),
		{"list page of 50 halfway", func(tok, key string) (string, time.Duration) {
			return key, do("list", "GET", "/v1/records?limit=50&after="+middle, tok, key, nil, "") // middle is set later
		}},
		read("list page of 50 of the collection, public filter", "list", "/v1/records?collection=people&public.ward=3&limit=50", true),
		read("export", "export", "/v1/export", false),
		{"rotation with reencrypt", func(tok, key string) (string, time.Duration) {
			next := key2
			if key == key2 {
				next = first
			}
			// Every record and tag re-encrypted: a subject-wide pass, whose
			// plan is the one to watch (a rewrap touches one row). (A binary
			// before keys in layers ignores the body and re-encrypts anyway.)
			return next, do("rotation", "POST", "/v1/keys/rotate", tok, key, map[string]string{"New-Encryption-Key": next}, `{"reencrypt":true}`)
		}},
	}

	// Autovacuum off for the section, so that the plans made on small
	// subjects stay the plans until the ANALYZE: an autoanalyze part-way
	// would make them again (and its autovacuum, the seeding's debt, would
	// weigh on the first rows alone). Back on at the end.
	maintenance := func(on bool) {
		for _, table := range []string{"subjects", "records", "collections", "search_tags", "audit_events", "audit_heads"} {
			_, err := conn.Exec(ctx, fmt.Sprintf(`ALTER TABLE fieldseal.%s SET (autovacuum_enabled = %t)`, table, on))
			check(err)
		}
	}
	maintenance(false)
	defer maintenance(true)
	log.Printf("bench: skewed: %d subjects of %d records", skewedSubjects, skewedEach)
	form := formOf(ctx, conn)
	keyColumn, keyValue := form.subject("$1")
	versionColumn, encrypt := form.records()
	_, err = conn.Exec(ctx, `INSERT INTO fieldseal.subjects (subject, `+keyColumn+`)
		SELECT 'skew-' || i, `+keyValue+` FROM generate_series(1, $2::int) i`, key, skewedSubjects)
	check(err)
	_, err = conn.Exec(ctx, `INSERT INTO fieldseal.records (subject, id, collection, public, secret`+versionColumn+`)
		SELECT 'skew-' || i, gen_random_uuid(), 'people', jsonb_build_object('ward', j % 20),
		       `+encrypt(`format('{"email":"user%s@example.org","ward":%s}', j, j % 20)`, "'skew-' || i", "'people'", "$1")+`
		FROM generate_series(1, $2::int) i, generate_series(1, $3::int) j`, key, skewedSubjects, skewedEach)
	check(err)
	// The service's connections plan every request on small subjects.
	var midSmall string
	check(conn.QueryRow(ctx, `SELECT id::text FROM fieldseal.records WHERE subject = 'skew-1' ORDER BY id OFFSET 5 LIMIT 1`).Scan(&midSmall))
	for i := 1; i <= 3; i++ {
		tok, k := mint(fmt.Sprintf("skew-%d", i)), key
		middle = midSmall
		for _, r := range requests {
			k, _ = r.run(tok, k)
		}
	}
	log.Printf("bench: skewed: one subject of %d records", skewedBig)
	_, err = conn.Exec(ctx, `INSERT INTO fieldseal.subjects (subject, `+keyColumn+`) VALUES ('skew-big', `+keyValue+`)`, key)
	check(err)
	_, err = conn.Exec(ctx, `INSERT INTO fieldseal.records (subject, id, collection, public, secret`+versionColumn+`)
		SELECT 'skew-big', gen_random_uuid(), 'people', jsonb_build_object('ward', g % 20),
		       `+encrypt(`format('{"email":"user%s@example.org","ward":%s,"note":"%s"}', g, g % 20, repeat('x', 100))`, "'skew-big'", "'people'", "$1")+`
		FROM generate_series(1, $2::int) g`, key, skewedBig)
	check(err)
	check(conn.QueryRow(ctx, `SELECT id::text FROM fieldseal.records WHERE subject = 'skew-big' ORDER BY id OFFSET $1 LIMIT 1`, skewedBig/2).Scan(&middle))
	// One read of every row, as the service's own reads would have done
	// over time: the first reader of rows just inserted sets their hint
	// bits (a write), which is the seeding's cost, not a plan's. (No
	// VACUUM: it would update the table's size in pg_class and so
	// replan.)
	var n int64
	check(conn.QueryRow(ctx, `SELECT count(secret) FROM fieldseal.records`).Scan(&n))
	tok := mint("skew-big")
	measure := func(label string, k string) (map[string]time.Duration, string) {
		took := map[string]time.Duration{}
		for _, r := range requests {
			log.Printf("bench: skewed, %s: %s", label, r.name)
			stop := watchMaintenance(ctx, conn, 5*time.Second)
			var d time.Duration
			k, d = r.run(tok, k)
			stop()
			took[r.name] = d
			// The writes' checkpoint now, not during the next row: the
			// reindex and the rotation write every record's tags and rows,
			// and their flush slowed the next reads by a millisecond or
			// two (auto_explain: the same plans, the same buffers read).
			_, err := conn.Exec(ctx, `CHECKPOINT`)
			check(err)
		}
		return took, k
	}
	stale, k := measure("plans made on small subjects, no ANALYZE", key)
	_, err = conn.Exec(ctx, `ANALYZE`)
	check(err)
	analysed, _ := measure("after ANALYZE", k)
	var rows []bulkRow
	for _, r := range requests {
		s, a := stale[r.name], analysed[r.name]
		rows = append(rows, bulkRow{fmt.Sprintf("skewed (%d records among %d subjects of %d), %s: planned on small subjects, no ANALYZE / after ANALYZE", skewedBig, skewedSubjects, skewedEach, r.name),
			fmt.Sprintf("%s / %s (%.2f×)", seconds(s), seconds(a), s.Seconds()/a.Seconds())})
	}
	return rows
}

func seconds(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// watchMaintenance logs, every interval until stopped, what autovacuum
// has done to the big tables so far: a row that ran beside autovacuum or
// an autoanalyze (which also makes the plans again) says so in the log.
func watchMaintenance(ctx context.Context, conn *pgx.Conn, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	report := func() { // conn is the caller's, idle until stop returns
		rows, err := conn.Query(ctx, `SELECT relname, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables
			WHERE relname IN ('records', 'search_tags') ORDER BY relname`)
		if err != nil {
			return
		}
		var line []string
		for rows.Next() {
			var name string
			var vac, an int64
			if rows.Scan(&name, &vac, &an) == nil {
				line = append(line, fmt.Sprintf("%s: %d autovacuums, %d autoanalyzes", name, vac, an))
			}
		}
		log.Printf("bench: skewed: %s", strings.Join(line, "; "))
	}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				report()
			}
		}
	}()
	return func() {
		close(done)
		<-exited
		report()
	}
}
