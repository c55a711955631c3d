package db_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// BenchmarkAuditAppend appends audit entries from 8 concurrent clients
// (one transaction each, as a refused request does), either each to a
// subject of its own or all to one subject, whose chain serialises them:
//
//	go test -run '^$' -bench AuditAppend ./db/
func BenchmarkAuditAppend(b *testing.B) {
	for _, shared := range []bool{false, true} {
		name := "subjects=many"
		if shared {
			name = "subjects=one"
		}
		b.Run(name, func(b *testing.B) {
			database := pgtest.NewDB(b)
			store, err := db.Open(context.Background(), db.Config{URL: database.AppURL + "&pool_max_conns=8"})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			var next atomic.Int64
			b.SetParallelism(4) // 8 goroutines on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				subject := fmt.Sprintf("s%d", next.Add(1))
				if shared {
					subject = "everyone"
				}
				caller := fieldseal.Caller{Subject: subject, JTI: "j", RequestID: "r"}
				for pb.Next() {
					if err := store.RecordRefusal(context.Background(), caller, fieldseal.ActionRead, "not_found"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
