package db_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// BenchmarkS2K measures one pgp_sym_encrypt + pgp_sym_decrypt round of a
// 200-byte secret inside PostgreSQL under each string-to-key mode, batched
// 100 per statement so the network does not dominate. It backs the choice
// of s2k-mode=1 stated in the migrations and queries:
//
//	go test -run '^$' -bench S2K ./db/
func BenchmarkS2K(b *testing.B) {
	database := pgtest.NewDB(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, database.AdminURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	const key = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
	for _, mode := range []struct{ name, opts string }{
		{"s2k-mode=1", "cipher-algo=aes256, s2k-mode=1"},
		{"s2k-mode=3 (default iterated)", "cipher-algo=aes256, s2k-mode=3"},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				_, err := conn.Exec(ctx, `SELECT count(fieldseal.pgp_sym_decrypt(fieldseal.pgp_sym_encrypt(repeat('x', 200), $1, $2), $1))
					FROM generate_series(1, 100)`, key, mode.opts)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*100), "µs/encrypt+decrypt")
		})
	}
}
