package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/devissuer"
)

// rotationSizes are the subjects whose rotation (a rewrap of the subject
// key: issue "Keys in layers", item 2) the rotation rows time.
var rotationSizes = []int{1000, 100000, 1000000}

// rotationRepeats: each row is the median of this many rotations.
const rotationRepeats = 5

// rotationRows times POST /v1/keys/rotate, which rewraps the subject key
// and re-encrypts nothing, for subjects of rotationSizes records: its
// time should not grow with them. (A binary before keys in layers
// re-encrypts every record instead; run it with -layers=false.)
func rotationRows(ctx context.Context, admin string, srv *server, iss *devissuer.Issuer, key string) []bulkRow {
	conn, err := pgx.Connect(ctx, admin)
	check(err)
	defer conn.Close(ctx)
	form := formOf(ctx, conn)
	if !form.layered {
		log.Fatal("bench: the rotation rows need keys in layers (migration 00023): run an older binary with -layers=false")
	}
	keyColumn, keyValue := form.subject("$2")
	versionColumn, encrypt := form.records()
	var rows []bulkRow
	took := map[int]time.Duration{}
	for _, n := range rotationSizes {
		subject := fmt.Sprintf("rotate-%d", n)
		log.Printf("bench: rotation: seeding a subject of %d records", n)
		_, err := conn.Exec(ctx, `INSERT INTO fieldseal.subjects (subject, `+keyColumn+`) VALUES ($1, `+keyValue+`)`, subject, key)
		check(err)
		_, err = conn.Exec(ctx, `INSERT INTO fieldseal.records (subject, id, collection, public, secret`+versionColumn+`)
			SELECT $1, gen_random_uuid(), 'c', '{}', `+encrypt("format('{\"n\":%s,\"note\":\"%s\"}', g, repeat('x', 150))", "$1::text", "'c'", "$2")+`
			FROM generate_series(1, $3::int) g`, subject, key, n)
		check(err)
		_, err = conn.Exec(ctx, `VACUUM ANALYZE fieldseal.records`)
		check(err)
		tok, err := iss.Mint(subject, audience, "records:read keys:rotate", time.Hour, nil)
		check(err)
		keys := []string{key, randomKey()}
		times := make([]time.Duration, rotationRepeats)
		for i := range times {
			current, next := keys[i%2], keys[(i+1)%2]
			status, body, d := srv.call("POST", "/v1/keys/rotate", tok, map[string]string{"Encryption-Key": current, "New-Encryption-Key": next}, nil)
			if status != http.StatusOK || string(body) != "{\"rotated\":0}\n" {
				log.Fatalf("bench: rotation of %d records: %d %.300s; want a rewrap", n, status, body)
			}
			times[i] = d
		}
		// The subject reads under the key it ended with.
		last := keys[rotationRepeats%2]
		if status, body, _ := srv.call("GET", "/v1/records?limit=1", tok, map[string]string{"Encryption-Key": last}, nil); status != http.StatusOK {
			log.Fatalf("bench: a read after the rotations: %d %.300s", status, body)
		}
		slices.Sort(times)
		took[n] = times[len(times)/2]
		rows = append(rows, bulkRow{fmt.Sprintf("rotation (a rewrap) of a subject of %d records, median of %d", n, rotationRepeats), seconds(took[n])})
	}
	smallest, largest := took[rotationSizes[0]], took[rotationSizes[len(rotationSizes)-1]]
	rows = append(rows, bulkRow{fmt.Sprintf("rotation, %d records against %d", rotationSizes[len(rotationSizes)-1], rotationSizes[0]),
		fmt.Sprintf("%.2f×", largest.Seconds()/smallest.Seconds())})
	return rows
}
