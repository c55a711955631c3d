package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
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
)

// skewed measures the subject-wide requests of one subject of skewedBig
// records among skewedSubjects of skewedEach, made in the order a
// deployment makes them: the small subjects first, the service's plans
// made while they were all there was (its connections served them), the
// big subject after, no manual ANALYZE; then the same requests after an
// ANALYZE. The two should be within 1.5x of each other.
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
	call := func(method, path, token, key string, hdr map[string]string, body string) (int, []byte, time.Duration) {
		req, err := http.NewRequest(method, srv.url+path, bytes.NewReader([]byte(body)))
		check(err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Encryption-Key", key)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		check(err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		check(err)
		return resp.StatusCode, b, time.Since(start)
	}
	type request struct {
		name string
		run  func(tok, key string) (string, time.Duration) // the key after
	}
	want := func(what string, status, code int, body []byte) {
		if status != code {
			log.Fatalf("bench: skewed %s: %d %.300s", what, status, body)
		}
	}
	var middle string
	requests := []request{
		{"reindex (PUT collection)", func(tok, key string) (string, time.Duration) {
			s, b, took := call("PUT", "/v1/collections/people", tok, key, nil, `{"searchable":{"email":{"case_insensitive":true},"ward":{}}}`)
			want("reindex", s, http.StatusOK, b)
			return key, took
		}},
		{"search of a rare value", func(tok, key string) (string, time.Duration) {
			s, b, took := call("GET", "/v1/records?collection=people&secret.email=user7@example.org", tok, key, nil, "")
			want("search", s, http.StatusOK, b)
			return key, took
		}},
		{"search of a common value, page 1", func(tok, key string) (string, time.Duration) {
			s, b, took := call("GET", "/v1/records?collection=people&secret.ward=3&limit=50", tok, key, nil, "")
			want("search", s, http.StatusOK, b)
			return key, took
		}},
		{"list page of 50 halfway", func(tok, key string) (string, time.Duration) {
			s, b, took := call("GET", "/v1/records?limit=50&after="+middle, tok, key, nil, "")
			want("list", s, http.StatusOK, b)
			return key, took
		}},
		{"list page of 50 of the collection, public filter", func(tok, key string) (string, time.Duration) {
			s, b, took := call("GET", "/v1/records?collection=people&public.ward=3&limit=50", tok, key, nil, "")
			want("list", s, http.StatusOK, b)
			return key, took
		}},
		{"export", func(tok, key string) (string, time.Duration) {
			s, b, took := call("GET", "/v1/export", tok, "", nil, "")
			want("export", s, http.StatusOK, b)
			return key, took
		}},
		{"rotation", func(tok, key string) (string, time.Duration) {
			next := key2
			if key == key2 {
				next = first
			}
			s, b, took := call("POST", "/v1/keys/rotate", tok, key, map[string]string{"New-Encryption-Key": next}, "")
			want("rotation", s, http.StatusOK, b)
			return next, took
		}},
	}

	log.Printf("bench: skewed: %d subjects of %d records", skewedSubjects, skewedEach)
	_, err = conn.Exec(ctx, `INSERT INTO fieldseal.subjects (subject, key_verifier)
		SELECT 'skew-' || i, fieldseal.new_key_verifier($1) FROM generate_series(1, $2::int) i`, key, skewedSubjects)
	check(err)
	_, err = conn.Exec(ctx, `INSERT INTO fieldseal.records (subject, id, collection, public, secret)
		SELECT 'skew-' || i, gen_random_uuid(), 'people', jsonb_build_object('ward', j % 20),
		       fieldseal.pgp_sym_encrypt(format('{"email":"user%s@example.org","ward":%s}', j, j % 20), $1, 'cipher-algo=aes256, s2k-mode=1')
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
	_, err = conn.Exec(ctx, `INSERT INTO fieldseal.subjects (subject, key_verifier) VALUES ('skew-big', fieldseal.new_key_verifier($1))`, key)
	check(err)
	_, err = conn.Exec(ctx, `INSERT INTO fieldseal.records (subject, id, collection, public, secret)
		SELECT 'skew-big', gen_random_uuid(), 'people', jsonb_build_object('ward', g % 20),
		       fieldseal.pgp_sym_encrypt(format('{"email":"user%s@example.org","ward":%s,"note":"%s"}', g, g % 20, repeat('x', 100)), $1, 'cipher-algo=aes256, s2k-mode=1')
		FROM generate_series(1, $2::int) g`, key, skewedBig)
	check(err)
	check(conn.QueryRow(ctx, `SELECT id::text FROM fieldseal.records WHERE subject = 'skew-big' ORDER BY id OFFSET $1 LIMIT 1`, skewedBig/2).Scan(&middle))
	tok := mint("skew-big")
	measure := func(label string, k string) (map[string]time.Duration, string) {
		took := map[string]time.Duration{}
		for _, r := range requests {
			log.Printf("bench: skewed, %s: %s", label, r.name)
			var d time.Duration
			k, d = r.run(tok, k)
			took[r.name] = d
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
