package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// BenchmarkRotate100k rotates the key of a subject with 100,000 records
// (about 200-byte secrets) through a real `fieldseal serve` process, and
// reports the time per rotation and the server's peak resident memory:
//
//	go test -run '^$' -bench Rotate100k -benchtime 3x ./cmd/fieldseal/
func BenchmarkRotate100k(b *testing.B) {
	const n = 100000
	database := pgtest.NewDB(b)
	keys := []string{dataKey(b), dataKey(b)}
	seedRecords(b, database.AdminURL, "alice", keys[0], n)
	vars, tok := tokenSetup(b, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	srv := startServer(b, vars)
	b.ResetTimer()
	for i := range b.N {
		if s := <-rotateAsync(srv.URL, tok, keys[i%2], keys[(i+1)%2]); s != 200 {
			b.Fatalf("rotation %d answered %d", i, s)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/rotation")
	b.ReportMetric(peakRSS(b, srv.cmd.Process.Pid)/1024, "MiB-peak-RSS")
}

// peakRSS reads a process's peak resident set size (VmHWM) in KiB.
func peakRSS(b *testing.B, pid int) float64 {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kib, _ := strconv.ParseFloat(f[1], 64)
			return kib
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}
