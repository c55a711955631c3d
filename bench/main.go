// Command bench measures what fieldseal costs on top of PostgreSQL, in one
// run on one machine (`make bench`): a throwaway cluster, `fieldseal serve`
// as a process, a load generator at a fixed concurrency issuing reads of
// random records with the key, creates of ~200-byte secrets and list pages
// of 50 with the key, and pgbench at the same concurrency running first
// the bare crypto statements, then exactly the statements fieldseal issues
// per request. It prints one table and writes bench/RESULTS.md.
//
// Every phase runs for a fixed time and stops by itself; everything
// listens on 127.0.0.1 only.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/devissuer"
	"github.com/fieldseal/fieldseal/pglocal"
)

const (
	audience = "fieldseal-bench"
	records  = 10000 // in all, spread over the subjects
	readIDs  = 64    // ids the read phases pick from at random; every subject has them
)

// Each client (load generator or pgbench) is a subject of its own:
// subjects never wait for one another, a subject's requests do (its audit
// chain), as in real use.
func subjectName(i int) string { return "bench-" + strconv.Itoa(i) }

var (
	concurrency = flag.Int("c", 8, "concurrent clients")
	duration    = flag.Duration("d", 10*time.Second, "measured time of each row, split over the rounds")
	rounds      = flag.Int("rounds", 2, "rounds per workload: its rows take turns this many times, so that a slow spell of the machine weighs on all of them")
	out         = flag.String("o", "bench/RESULTS.md", "where to write the results")
	prebuilt    = flag.String("bin", "", "a fieldseal binary to measure instead of building this tree's (for A/B runs)")
	withPgbench = flag.Bool("pgbench", true, "also run the pgbench rows (false: only the service, for quick A/B runs)")
	withHot     = flag.Bool("hot", true, "also run the hot-subject rows: reads and creates of one subject against as many subjects as clients, with 2 ms commits")
	withBulk    = flag.Bool("bulk", true, "also run the search, batch and import rows")
	withArchive = flag.Bool("archive", true, "also archive a million audit entries while creates go on")
	withSkewed  = flag.Bool("skewed", true, "also run the skewed rows: one subject of 200,000 records among 10,000 of 10, its requests planned on the small subjects, before and after ANALYZE")
	withLayers  = flag.Bool("layers", true, "also run the rotation rows: a rewrap of subjects of 1,000, 100,000 and 1,000,000 records (keys in layers)")
	withService = flag.Bool("service", true, "run the main rows (read, create, list; false: only the sections asked for)")
	onCitus     = flag.Bool("citus", false, "run the main rows against a Citus coordinator and two workers on this machine (Citus installed: make test-citus installs it), with PostgreSQL's CPU per request on each node, and the search, batch and import rows")
)

// sample is what one measured phase saw; a row's rounds add up.
type sample struct {
	n                      int     // requests or transactions
	seconds                float64 // measured time
	lat                    []time.Duration
	fieldseal, client, pgs float64   // CPU seconds: fieldseal serve's, the client's, PostgreSQL's
	nodes                  []float64 // PostgreSQL's CPU seconds on each node (one but with -citus)
}

func (a *sample) add(b sample) {
	a.n += b.n
	a.seconds += b.seconds
	a.lat = append(a.lat, b.lat...)
	a.fieldseal += b.fieldseal
	a.client += b.client
	a.pgs += b.pgs
	if a.nodes == nil {
		a.nodes = make([]float64, len(b.nodes))
	}
	for i, v := range b.nodes {
		a.nodes[i] += v
	}
}

func (a sample) result(name string) result {
	perReq := func(cpu float64) float64 { return cpu * 1000 / float64(a.n) }
	r := result{name: name, rps: float64(a.n) / a.seconds,
		cpuPerReq: perReq(a.fieldseal), clientCPUPerReq: perReq(a.client), pgCPUPerReq: perReq(a.pgs)}
	r.p50, r.p99 = percentiles(a.lat)
	for _, v := range a.nodes {
		r.nodeCPUPerReq = append(r.nodeCPUPerReq, perReq(v))
	}
	return r
}

type result struct {
	name             string
	rps, p50, p99    float64   // p50, p99 in ms
	cpuPerReq        float64   // server CPU ms per request; 0 for pgbench rows
	clientCPUPerReq  float64   // the client's own CPU ms per request (load generator or pgbench)
	pgCPUPerReq      float64   // PostgreSQL's CPU ms per request, all its processes
	nodeCPUPerReq    []float64 // the same on each node
	bare, statements string    // the pgbench rows this one is compared with
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	phase := *duration / time.Duration(*rounds)
	if *rounds < 1 || phase < time.Second || phase%time.Second != 0 {
		log.Fatalf("bench: -d %s over -rounds %d must give whole seconds per phase", *duration, *rounds)
	}
	ctx := context.Background()
	work, err := os.MkdirTemp("", "fieldseal-bench-")
	check(err)
	defer os.RemoveAll(work)
	check(os.Chmod(work, 0o755)) // PostgreSQL runs as another user when we are root

	var admin, appURL string
	if *onCitus {
		// The service rows and the bulk ones (search, batch, import): the
		// pgbench rows replay the single-node statements, and the hot-subject
		// and archive rows measure single-node matters (commit_delay is set
		// on the admin URL's node alone).
		*withPgbench, *withHot, *withArchive = false, false, false
		if *out == "bench/RESULTS.md" {
			*out = "bench/RESULTS-citus.md"
		}
		log.Print("bench: starting a Citus coordinator and two workers")
		cc, err := pglocal.StartCitus(ctx, pglocal.CitusOptions{Dir: filepath.Join(work, "citus"), Workers: 2, Settings: map[string]string{"max_connections": "100"}})
		check(err)
		defer cc.Stop()
		for _, n := range cc.Nodes() {
			pgDataDirs = append(pgDataDirs, n.DataDir)
		}
		admin, appURL, err = cc.Provision(ctx, "fieldseal", "bench_app", "bench")
		check(err)
	} else {
		log.Print("bench: starting PostgreSQL")
		cluster, err := pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(work, "pg"), Settings: map[string]string{"max_connections": "100"}})
		check(err)
		defer cluster.Stop()
		pgDataDirs = []string{cluster.DataDir}
		admin, appURL, err = pglocal.Provision(ctx, cluster.URL("postgres"), "postgres", "bench_app", "bench")
		check(err)
	}

	key := randomKey()
	ids := seed(ctx, admin, key)

	log.Print("bench: building and starting fieldseal serve")
	bin := *prebuilt
	if bin == "" {
		bin = filepath.Join(work, "fieldseal")
		build := exec.Command("go", "build", "-o", bin, "./cmd/fieldseal")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		check(build.Run())
	}
	signingKey, err := devissuer.LoadOrCreateKey(filepath.Join(work, "signing.pem"))
	check(err)
	iss := devissuer.New("https://bench.invalid", signingKey)
	jwks := filepath.Join(work, "jwks.json")
	check(os.WriteFile(jwks, iss.JWKS(), 0o600))
	var tokens []string
	for i := range *concurrency {
		tok, err := iss.Mint(subjectName(i), audience, "records:read records:write", 6*time.Hour, nil)
		check(err)
		tokens = append(tokens, tok)
	}
	srv := startServer(bin, map[string]string{
		"FIELDSEAL_DATABASE_URL": appURL + os.Getenv("BENCH_URL_SUFFIX"), // e.g. &pool_max_conns=16
		"FIELDSEAL_ISSUER":       iss.URL, "FIELDSEAL_AUDIENCE": audience, "FIELDSEAL_JWKS_FILE": jwks,
		"FIELDSEAL_LISTEN": "127.0.0.1:0", "FIELDSEAL_LOG_LEVEL": "info", "FIELDSEAL_TOKEN_MAX_LIFETIME": "7h",
		"FIELDSEAL_WRONG_KEY_SUBJECT_LIMIT": "1000", "FIELDSEAL_WRONG_KEY_LIMIT": "1000",
	})
	defer srv.stop()

	pgURL := appURL
	vars := map[string]string{"key": key, "tokenid": "jti:bench", "jti": "bench", "secret": secret,
		"after": "00000000-0000-0000-0000-000000000000", "maxrows": "50"}
	queries, err := namedQueries("queries")
	check(err)
	reads, create, list, err := statementScripts(queries, ids)
	check(err)
	var bareReads []string
	for i := range ids {
		bareReads = append(bareReads, bareReadScript(i+1))
	}
	type pgPhase struct {
		name    string
		scripts []string
	}
	var service, pg []result
	workloads := []struct {
		name, method, path, body string
		same, bare               pgPhase
	}{
		{"read", "GET", "/v1/records/%s", "", pgPhase{"read statements", reads}, pgPhase{"bare select-decrypt", bareReads}},
		{"create", "POST", "/v1/records", `{"collection":"bench","public":{"kind":"bench"},"secret":` + secret + `}`,
			pgPhase{"create statements", []string{create}}, pgPhase{"bare encrypt-insert", []string{bareInsertScript}}},
		{"list 50", "GET", "/v1/records?limit=50", "", pgPhase{"list statements", []string{list}}, pgPhase{}},
	}
	for _, w := range workloads {
		if !*withService {
			break
		}
		// A workload's rows take turns, round after round, so that a slow
		// spell of a shared machine weighs on the service and its
		// references alike.
		var svc sample
		refs := map[string]*sample{}
		var refNames []string
		for range *rounds {
			log.Printf("bench: service %s, %d clients, %s", w.name, *concurrency, phase)
			svc.add(load(srv, tokens, key, ids, w.method, w.path, w.body, phase))
			for _, p := range []pgPhase{w.same, w.bare} {
				if p.name == "" || !*withPgbench {
					continue
				}
				if refs[p.name] == nil {
					refs[p.name] = &sample{}
					refNames = append(refNames, p.name)
				}
				log.Printf("bench: pgbench %s, %d clients, %s", p.name, *concurrency, phase)
				refs[p.name].add(pgbench(work, pgURL, p.name, p.scripts, vars, phase))
			}
		}
		r := svc.result("service " + w.name)
		r.bare, r.statements = w.bare.name, w.same.name
		service = append(service, r)
		for _, name := range refNames {
			pg = append(pg, refs[name].result("pgbench "+name))
		}
	}

	// One busy subject (a backend signed in with client credentials has
	// one sub for all its traffic) against as many subjects as clients,
	// with every commit made to wait 2 ms, as on a cloud disk.
	var hot []result
	if *withHot {
		log.Print("bench: commits made to wait 2 ms (commit_delay = 2000, commit_siblings = 0)")
		commitDelay(ctx, admin, "2000")
		for _, w := range workloads[:2] {
			var many, one sample
			for range *rounds {
				log.Printf("bench: service %s, %d clients of %d subjects, 2 ms commits, %s", w.name, *concurrency, *concurrency, phase)
				many.add(load(srv, tokens, key, ids, w.method, w.path, w.body, phase))
				log.Printf("bench: service %s, %d clients of 1 subject, 2 ms commits, %s", w.name, *concurrency, phase)
				one.add(load(srv, tokens[:1], key, ids, w.method, w.path, w.body, phase))
			}
			hot = append(hot, many.result(fmt.Sprintf("%s, %d subjects", w.name, *concurrency)), one.result(w.name+", 1 subject"))
		}
		commitDelay(ctx, admin, "")
	}
	var bulkRows []bulkRow
	if *withBulk {
		bulkRows = bulk(ctx, admin, srv, iss, key, phase)
	}
	if *withSkewed && !*onCitus {
		bulkRows = append(bulkRows, skewed(ctx, admin, srv, iss, key)...)
	}
	if *withLayers && !*onCitus {
		bulkRows = append(bulkRows, rotationRows(ctx, admin, srv, iss, key)...)
	}
	if *withArchive {
		bulkRows = append(bulkRows, archiveRows(ctx, admin, bin, work, srv, tokens, key)...)
	}
	report(append(service, pg...), hot, bulkRows, srv.peakRSS())
}

// commitDelay sets commit_delay (with commit_siblings 0, so every commit
// waits it out) on the running cluster; "" resets both.
func commitDelay(ctx context.Context, admin, micros string) {
	conn, err := pgx.Connect(ctx, admin)
	check(err)
	defer conn.Close(ctx)
	stmts := []string{`ALTER SYSTEM RESET commit_delay`, `ALTER SYSTEM RESET commit_siblings`}
	if micros != "" {
		stmts = []string{`ALTER SYSTEM SET commit_delay = ` + micros, `ALTER SYSTEM SET commit_siblings = 0`}
	}
	for _, stmt := range append(stmts, `SELECT pg_reload_conf()`) {
		_, err := conn.Exec(ctx, stmt)
		check(err)
	}
}

// secret is every record's secret: about 200 bytes of JSON.
var secret = `{"note":"` + strings.Repeat("x", 190) + `"}`

// seed stores the records of the measured subject (as the app would, under
// its key verifier) and the bare table, and creates the login role.
func seed(ctx context.Context, admin, key string) []string {
	conn, err := pgx.Connect(ctx, admin)
	check(err)
	defer conn.Close(ctx)
	for _, stmt := range []string{
		`CREATE SCHEMA bench`,
		`CREATE TABLE bench.bare (n int PRIMARY KEY, secret bytea NOT NULL)`,
		`CREATE TABLE bench.bare_insert (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, secret bytea NOT NULL)`,
		`GRANT USAGE ON SCHEMA bench TO bench_app`,
		`GRANT SELECT ON bench.bare TO bench_app`,
		`GRANT INSERT ON bench.bare_insert TO bench_app`,
	} {
		_, err := conn.Exec(ctx, stmt)
		check(err)
	}
	rows, err := conn.Query(ctx, `SELECT gen_random_uuid()::text FROM generate_series(1, $1::int)`, readIDs)
	check(err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	check(err)
	form := formOf(ctx, conn)
	keyColumn, keyValue := form.subject("$2")
	versionColumn, encrypt := form.records()
	for i := range *concurrency {
		sub := subjectName(i)
		_, err = conn.Exec(ctx, `INSERT INTO fieldseal.subjects (subject, `+keyColumn+`) VALUES ($1, `+keyValue+`)`, sub, key)
		check(err)
		_, err = conn.Exec(ctx, `INSERT INTO fieldseal.records (subject, id, collection, public, secret`+versionColumn+`)
			SELECT $1, id::uuid, 'bench', '{"kind":"bench"}'::jsonb, `+encrypt("$3", "$1", "'bench'", "$2")+`
			FROM unnest($5::text[]) id
			UNION ALL
			SELECT $1, gen_random_uuid(), 'bench', '{"kind":"bench"}'::jsonb, `+encrypt("$3", "$1", "'bench'", "$2")+`
			FROM generate_series(1, $4::int)`, sub, key, secret, records / *concurrency, ids)
		check(err)
	}
	_, err = conn.Exec(ctx, `INSERT INTO bench.bare SELECT g, fieldseal.pgp_sym_encrypt($2, $1, 'cipher-algo=aes256, s2k-mode=1') FROM generate_series(1, $3::int) g`, key, secret, readIDs)
	check(err)
	_, err = conn.Exec(ctx, `VACUUM ANALYZE`)
	check(err)
	return ids
}

type server struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

// call sends one request to the service with token and the headers
// given (an empty value is left out) and returns its status, body and
// how long it took; any failure to talk to the service stops the bench.
func (s *server) call(method, path, token string, header map[string]string, body []byte) (int, []byte, time.Duration) {
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	check(err)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	check(err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	check(err)
	return resp.StatusCode, b, time.Since(start)
}

func startServer(bin string, env map[string]string) *server {
	cmd := exec.Command(bin, "serve")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	check(err)
	check(cmd.Start())
	s := &server{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		started := false
		for sc.Scan() {
			var line struct{ Msg, Address string }
			// Decoded only until the server says where it listens: one
			// access log line comes per request, and decoding each would
			// be the load generator's CPU.
			if !started && json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				started = true
				addr <- line.Address
			} else if !bytes.Contains(sc.Bytes(), []byte(`"level":"INFO"`)) {
				os.Stderr.Write(append(sc.Bytes(), '\n'))
			}
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	select {
	case s.url = <-addr:
	case err := <-s.done:
		log.Fatalf("fieldseal serve exited: %v", err)
	case <-time.After(30 * time.Second):
		log.Fatal("fieldseal serve did not start")
	}
	return s
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
	}
}

// cpuSeconds is the server process's user+system CPU time so far.
func (s *server) cpuSeconds() float64 {
	f := procStat(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if f == nil {
		log.Fatal("bench: fieldseal serve is gone")
	}
	return ticks(f[11]) + ticks(f[12])
}

// peakRSS is the server process's peak resident set, in MiB.
func (s *server) peakRSS() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kib, _ := strconv.ParseFloat(f[1], 64)
			return kib / 1024
		}
	}
	return 0
}

// load runs concurrency clients for a second of warm-up, then for duration,
// and measures the latter.
func load(s *server, tokens []string, key string, ids []string, method, path, body string, d time.Duration) sample {
	addr := strings.TrimPrefix(s.url, "http://")
	run := func(d time.Duration) ([]time.Duration, int) {
		var mu sync.Mutex
		var all []time.Duration
		errors := 0
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := range *concurrency {
			// Each client's requests, prepared once: one per record id for
			// reads (picked in a fixed pseudo-random order), else one.
			var requests [][]byte
			tok := tokens[w%len(tokens)]
			if strings.Contains(path, "%s") {
				for i := range ids {
					requests = append(requests, httpRequest(method, addr, fmt.Sprintf(path, ids[(w*7919+i*104729)%len(ids)]), tok, key, body))
				}
			} else {
				requests = append(requests, httpRequest(method, addr, path, tok, key, body))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &client{addr: addr, deadline: deadline.Add(10 * time.Second)}
				defer c.close()
				var mine []time.Duration
				bad := 0
				for i := 0; time.Now().Before(deadline); i++ {
					start := time.Now()
					status, err := c.do(requests[i%len(requests)])
					if err != nil || status >= 300 {
						bad++
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				all = append(all, mine...)
				errors += bad
				mu.Unlock()
			}()
		}
		wg.Wait()
		return all, errors
	}
	run(time.Second)
	cpu0, self0, pg0 := s.cpuSeconds(), selfCPUSeconds(), pgCPUByNode()
	lat, errs := run(d)
	cpu, self, pg := s.cpuSeconds()-cpu0, selfCPUSeconds()-self0, pgCPUByNode()
	total := 0.0
	for i := range pg {
		pg[i] -= pg0[i]
		total += pg[i]
	}
	if errs > 0 {
		log.Fatalf("bench: %d of %d requests failed", errs, len(lat))
	}
	return sample{n: len(lat), seconds: d.Seconds(), lat: lat, fieldseal: cpu, client: self, pgs: total, nodes: pg}
}

// client is one load generator connection: each request written as
// prepared bytes, its response read with http.ReadResponse, on one
// goroutine. net/http's Transport hands every request between three
// goroutines, which on 2 cores shared with the server and PostgreSQL
// cost CPU the server then lacked: 0.11 ms per read against 0.06 here.
// pgbench, the reference, is a lean C client too.
type client struct {
	addr     string
	deadline time.Time
	conn     net.Conn
	br       *bufio.Reader
}

func (c *client) do(request []byte) (status int, err error) {
	if c.conn == nil {
		if c.conn, err = net.Dial("tcp", c.addr); err != nil {
			return 0, err
		}
		_ = c.conn.SetDeadline(c.deadline)
		c.br = bufio.NewReaderSize(c.conn, 64<<10)
	}
	keep := false
	defer func() {
		if !keep {
			c.close()
		}
	}()
	if _, err := c.conn.Write(request); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	keep = err == nil && !resp.Close
	return resp.StatusCode, err
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// httpRequest is one HTTP/1.1 request as it goes on the wire.
func httpRequest(method, host, path, token, key, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nEncryption-Key: %s\r\n", method, path, host, token, key)
	if body != "" {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	return []byte(b.String())
}

// selfCPUSeconds is this process's user+system CPU time so far: the load
// generator's, which shares the machine with the server and PostgreSQL.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// pgDataDirs are the data directories of the benchmark's PostgreSQL
// nodes: one, or a Citus coordinator and its workers.
var pgDataDirs []string

// pgCPUSeconds is the CPU time of every node's processes.
func pgCPUSeconds() float64 {
	total := 0.0
	for _, v := range pgCPUByNode() {
		total += v
	}
	return total
}

// pgCPUByNode is the CPU time of each node's processes.
func pgCPUByNode() []float64 {
	var out []float64
	for _, dir := range pgDataDirs {
		out = append(out, nodeCPUSeconds(dir))
	}
	return out
}

// pgCPUSeconds is the CPU time PostgreSQL has used so far: the postmaster
// and every process it started, running (backends, background workers) or
// ended (pgbench's backends, counted in the postmaster's children's time).
func nodeCPUSeconds(dataDir string) float64 {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	check(err)
	pid, _, _ := strings.Cut(string(b), "\n")
	total := 0.0
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		f := procStat(p)
		switch {
		case len(f) < 15:
		case f[1] == pid: // ppid: a child of the postmaster
			total += ticks(f[11]) + ticks(f[12])
		case p == "/proc/"+pid+"/stat":
			total += ticks(f[11]) + ticks(f[12]) + ticks(f[13]) + ticks(f[14])
		}
	}
	return total
}

// procStat is the fields of /proc/<pid>/stat after the command name
// (state first), or nil if the process is gone.
func procStat(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
}

func ticks(f string) float64 {
	v, _ := strconv.ParseFloat(f, 64)
	return v / 100 // USER_HZ
}

func percentiles(lat []time.Duration) (p50, p99 float64) {
	if len(lat) == 0 {
		return 0, 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	return ms(0.50), ms(0.99)
}

// pgbench runs scripts (picked at random, equal weights) as the app role.
func pgbench(work, url, name string, scripts []string, vars map[string]string, d time.Duration) sample {
	dir, err := os.MkdirTemp(work, "pgbench-")
	check(err)
	args := []string{"-n", "-c", strconv.Itoa(*concurrency), "-j", strconv.Itoa(min(*concurrency, runtime.NumCPU())),
		"-T", strconv.Itoa(int(d.Seconds())), "-M", "prepared", "-l", "--log-prefix", filepath.Join(dir, "log")}
	for k, v := range vars {
		args = append(args, "-D", k+"="+v)
	}
	for i, s := range scripts {
		f := filepath.Join(dir, fmt.Sprintf("s%d.sql", i))
		check(os.WriteFile(f, []byte(s), 0o600))
		args = append(args, "-f", f)
	}
	args = append(args, url)
	bin, err := pglocal.FindBinDir("")
	check(err)
	cmd := exec.Command(filepath.Join(bin, "pgbench"), args...)
	pg0 := pgCPUSeconds()
	outb, err := cmd.CombinedOutput()
	if err != nil {
		log.Fatalf("pgbench %s: %v\n%s", name, err, outb)
	}
	pg := pgCPUSeconds() - pg0
	n := 0
	for _, line := range strings.Split(string(outb), "\n") {
		if v, ok := strings.CutPrefix(line, "number of transactions actually processed: "); ok {
			n, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	if n == 0 {
		log.Fatalf("pgbench %s processed nothing:\n%s", name, outb)
	}
	var lat []time.Duration
	logs, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 3 {
				us, _ := strconv.Atoi(f[2])
				lat = append(lat, time.Duration(us)*time.Microsecond)
			}
		}
	}
	return sample{n: n, seconds: d.Seconds(), lat: lat,
		client: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(), pgs: pg}
}

func report(results, hot []result, bulk []bulkRow, peakRSS float64) {
	by := map[string]result{}
	for _, r := range results {
		by[strings.TrimPrefix(r.name, "pgbench ")] = r
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| workload | req/s | p50 ms | p99 ms | fieldseal CPU ms/req | client CPU ms/req | PostgreSQL CPU ms/req | service / bare | service / same statements |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		ratio := func(other string) string {
			o, ok := by[other]
			if other == "" || !ok || o.rps == 0 || !strings.HasPrefix(r.name, "service") {
				return ""
			}
			return fmt.Sprintf("%.0f %%", 100*r.rps/o.rps)
		}
		cpu := ""
		if r.cpuPerReq > 0 {
			cpu = fmt.Sprintf("%.3f", r.cpuPerReq)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.2f | %s | %.3f | %.3f | %s | %s |\n", r.name, r.rps, r.p50, r.p99, cpu, r.clientCPUPerReq, r.pgCPUPerReq, ratio(r.bare), ratio(r.statements))
	}
	if len(hot) > 0 {
		fmt.Fprintf(&b, "\nOne busy subject, every commit made to wait 2 ms (`commit_delay = 2000`, `commit_siblings = 0`), %d clients:\n\n", *concurrency)
		fmt.Fprintf(&b, "| workload | req/s | p50 ms | p99 ms | PostgreSQL CPU ms/req | 1 subject / %d subjects |\n|---|---|---|---|---|---|\n", *concurrency)
		for i, r := range hot {
			ratio := ""
			if i%2 == 1 && hot[i-1].rps > 0 {
				ratio = fmt.Sprintf("%.0f %%", 100*r.rps/hot[i-1].rps)
			}
			fmt.Fprintf(&b, "| service %s | %.0f | %.2f | %.2f | %.3f | %s |\n", r.name, r.rps, r.p50, r.p99, r.pgCPUPerReq, ratio)
		}
	}
	if len(bulk) > 0 {
		fmt.Fprintf(&b, "\nSearch, batch, import and audit archive (ordinary commits):\n\n| figure | measured |\n|---|---|\n")
		for _, r := range bulk {
			fmt.Fprintf(&b, "| %s | %s |\n", r.name, r.value)
		}
	}
	if *onCitus {
		fmt.Fprintf(&b, "\nPostgreSQL CPU ms per request on each node (the coordinator, then the workers):\n\n| workload | coordinator | worker 1 | worker 2 |\n|---|---|---|---|\n")
		for _, r := range results {
			fmt.Fprintf(&b, "| %s |", r.name)
			for _, v := range r.nodeCPUPerReq {
				fmt.Fprintf(&b, " %.3f |", v)
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "\nServer peak RSS: %.1f MiB.\n", peakRSS)
	table := b.String()
	fmt.Print("\n" + table)

	var md strings.Builder
	if *onCitus {
		md.WriteString("# fieldseal benchmark on Citus\n\nWritten by `go run ./bench -citus`: the service against a Citus coordinator and two workers, all three on this one machine (docs/scale.md reads it).\n\n")
	} else {
		md.WriteString("# fieldseal benchmark\n\nWritten by `make bench` (`go run ./bench`); rerun it to refresh this file.\n\n")
	}
	fmt.Fprintf(&md, "Concurrency %d (one subject per client), %s measured per row in %d rounds (the service's each after 1 s of warm-up); %d records of ~200-byte secrets in all; reads pick among %d records of the client's subject at random.\n\n", *concurrency, *duration, *rounds, records, readIDs)
	md.WriteString(table)
	md.WriteString("\n## What is compared\n\n" +
		"- **service**: HTTP requests to `fieldseal serve` (JWT check, JSON, one subject-scoped transaction with the key check, throttle check and audit entry).\n" +
		"- **pgbench bare**: only the crypto: one `pgp_sym_decrypt` select by primary key, or one `pgp_sym_encrypt` insert.\n" +
		"- **pgbench statements**: exactly the statements fieldseal issues per request, their SQL read from `queries/*.sql` (what sqlc generates the service's code from), in the same round trips: one pipeline (BEGIN, subject, throttle check and the request's queries), one pipeline (audit entry, COMMIT); prepared, as the app role. The record id is a literal in the read scripts (pgbench cannot draw a random UUID parameter).\n" +
		"- *fieldseal CPU* is `fieldseal serve`'s own (user+system, /proc); *client CPU* is the load generator's (a Go program keeping one HTTP/1.1 connection per client) or pgbench's (C); *PostgreSQL CPU* is every PostgreSQL process's, background ones included (autovacuum, which each create phase sets off, lands in the phases after it). All three share the same 2 cores, so a row's rate is bounded by about 2 / (their sum) requests per ms.\n" +
		"- **one busy subject**: the same service reads and creates with every commit made to wait 2 ms (`commit_delay`, `commit_siblings = 0`, set on the running cluster), by all clients as one subject against each client as a subject of its own, the two taking turns; a subject's audit entries spread over lanes (migration 00012), so the first should stay close to the second.\n" +
		"- **search, batch, import**: one subject's collection of 100,000 records made searchable (`PUT /v1/collections`, timed), then searched by `secret.email` (case-insensitive) by all clients, each search finding one record among 100,000 and decrypting it only; 1,000 single creates one after another against one `POST /v1/records/batch` of 1,000, by one client; an export of 10,000 records deleted and imported back with `POST /v1/import` (one request).\n" +
		"- **rotation**: `POST /v1/keys/rotate` (a rewrap of the subject key: keys in layers, migration 00023) of subjects of 1,000, 100,000 and 1,000,000 records, each the median of 5 rotations, and the largest against the smallest: its time should not grow with the records.\n" +
		"- **audit archive**: a million audit entries 40 days old (100 subjects, written with the trigger's hashes), archived by `fieldseal audit archive --before <yesterday>` while every client keeps creating records (each create appends an entry); the creates' latencies while it runs beside those of the 10 s before.\n" +
		"- Order: a workload's service row and its pgbench rows take turns, round after round, so that a slow spell of the machine weighs on a ratio's both sides. Noise: on a shared 2-core machine, rows move ±20 % between runs with nothing changed. Compare levers with alternating runs of `go run ./bench -bin <binary> -pgbench=false`.\n\n")
	md.WriteString("## Machine\n\n")
	fmt.Fprintf(&md, "- %s, %d CPUs (%s)\n- %s\n- %s\n- %s\n", cpuModel(), runtime.NumCPU(), runtime.GOARCH, memTotal(), pgVersion(), runtime.Version())
	fmt.Fprintf(&md, "- Measured %s.\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	check(os.WriteFile(*out, []byte(md.String()), 0o644))
	fmt.Println("\nwritten to", *out)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			return strings.TrimSpace(line[strings.Index(line, ":")+1:])
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.Join(strings.Fields(line), " ")
}

func pgVersion() string {
	bin, err := pglocal.FindBinDir("")
	if err != nil {
		return "PostgreSQL (unknown)"
	}
	v, _ := exec.Command(filepath.Join(bin, "postgres"), "--version").Output()
	return strings.TrimSpace(string(v))
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
