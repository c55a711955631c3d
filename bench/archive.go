package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Size of the archive row: entries old enough to archive, over as many
// subjects, each with one lane.
const (
	archiveEntries  = 1000000
	archiveSubjects = 100
)

// archiveRows measures `fieldseal audit archive` of a million entries
// while clients keep appending (creates, each with its audit entry): the
// archive's time, and the p50 and p99 of the creates that started while it
// ran, beside those of the same load just before.
func archiveRows(ctx context.Context, admin, bin, work string, srv *server, tokens []string, key string) []bulkRow {
	conn, err := pgx.Connect(ctx, admin)
	check(err)
	defer conn.Close(ctx)
	log.Printf("bench: writing %d audit entries of %d subjects, 40 days old", archiveEntries, archiveSubjects)
	// Written as the trigger writes them (same hashes), without it: one
	// chain per subject, each entry 1 ms after the one before.
	start := time.Now()
	_, err = conn.Exec(ctx, `SET session_replication_role = replica`)
	check(err)
	_, err = conn.Exec(ctx, `
DO $$
DECLARE
    e    fieldseal.audit_events;
    prev bytea;
    base timestamptz := now() - interval '40 days';
BEGIN
    FOR s IN 1..`+fmt.Sprint(archiveSubjects)+` LOOP
        prev := '\x0000000000000000000000000000000000000000000000000000000000000000';
        FOR n IN 1..`+fmt.Sprint(archiveEntries/archiveSubjects)+` LOOP
            e := ROW('archive-' || s, n, base + n * interval '1 ms', 'record.read', 'ok',
                     gen_random_uuid(), NULL, 'jti-' || s, 'bench', 'req-' || n, '127.0.0.1', prev, NULL, 0)::fieldseal.audit_events;
            e.hash := fieldseal.audit_hash(prev, e);
            INSERT INTO fieldseal.audit_events VALUES (e.*);
            prev := e.hash;
        END LOOP;
        INSERT INTO fieldseal.audit_heads (subject, lane, seq, hash) VALUES ('archive-' || s, 0, `+fmt.Sprint(archiveEntries/archiveSubjects)+`, prev);
    END LOOP;
END
$$`)
	check(err)
	_, err = conn.Exec(ctx, `RESET session_replication_role`)
	check(err)
	_, err = conn.Exec(ctx, `VACUUM ANALYZE fieldseal.audit_events`)
	check(err)
	log.Printf("bench: written in %s", time.Since(start).Round(time.Second))

	create := `{"collection":"bench","public":{"kind":"bench"},"secret":` + secret + `}`
	log.Printf("bench: creates, %d clients, 10 s, before the archive", *concurrency)
	calm := appendUntil(srv, tokens, key, create, func() { time.Sleep(10 * time.Second) })
	file := filepath.Join(work, "archive.ndjson")
	var took time.Duration
	log.Printf("bench: creates, %d clients, while %d entries are archived", *concurrency, archiveEntries)
	during := appendUntil(srv, tokens, key, create, func() {
		time.Sleep(time.Second)
		t0 := time.Now()
		cmd := exec.Command(bin, "audit", "archive", "--before", time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339), "--out", file)
		cmd.Env = append(os.Environ(), "FIELDSEAL_ADMIN_DATABASE_URL="+admin)
		out, err := cmd.CombinedOutput()
		took = time.Since(t0)
		if err != nil || !strings.Contains(string(out), fmt.Sprintf("archived %d entries", archiveEntries)) {
			log.Fatalf("bench: fieldseal audit archive: %v\n%s", err, out)
		}
	})
	info, err := os.Stat(file)
	check(err)
	c50, c99 := percentiles(calm)
	d50, d99 := percentiles(during)
	return []bulkRow{
		{fmt.Sprintf("`fieldseal audit archive` of %d entries (%d subjects), creates going on", archiveEntries, archiveSubjects),
			fmt.Sprintf("%.1f s, %.0f MiB of NDJSON", took.Seconds(), float64(info.Size())/(1<<20))},
		{fmt.Sprintf("creates by %d clients: p50 / p99 before, and while the archive ran", *concurrency),
			fmt.Sprintf("%.2f / %.2f ms before; %.2f / %.2f ms during (%d creates)", c50, c99, d50, d99, len(during))},
	}
}

// appendUntil runs creates on every client while work runs, and returns
// the latencies of the creates that started before work returned.
func appendUntil(s *server, tokens []string, key, body string, work func()) []time.Duration {
	addr := strings.TrimPrefix(s.url, "http://")
	stop := make(chan struct{})
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	failed := 0
	for w := range *concurrency {
		request := httpRequest("POST", addr, "/v1/records", tokens[w%len(tokens)], key, body)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{addr: addr, deadline: time.Now().Add(time.Hour)}
			defer c.close()
			var mine []time.Duration
			for {
				select {
				case <-stop:
					mu.Lock()
					all = append(all, mine...)
					mu.Unlock()
					return
				default:
				}
				t0 := time.Now()
				status, err := c.do(request)
				if err != nil || status != 201 {
					mu.Lock()
					failed++
					mu.Unlock()
				}
				mine = append(mine, time.Since(t0))
			}
		}()
	}
	work()
	close(stop)
	wg.Wait()
	if failed > 0 {
		log.Fatalf("bench: %d creates failed", failed)
	}
	return all
}
