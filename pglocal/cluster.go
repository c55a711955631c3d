package pglocal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options says where a cluster lives and how it runs.
type Options struct {
	// Dir holds the cluster: data directory "pgdata", its log "postgres.log"
	// and the superuser password. Created if missing; reused if it holds a
	// cluster already.
	Dir string
	// BinDir holds initdb and postgres; empty means FindBinDir("").
	BinDir string
	// Settings are extra server settings, passed as -c name=value.
	Settings map[string]string
	// Port is the loopback TCP port to listen on; 0 picks a free one. A
	// restart on the port it had lets clients reconnect.
	Port int
	// Password is the superuser's password for a new cluster; empty
	// picks a random one. Nodes of one Citus cluster share theirs.
	Password string
}

// Cluster is a running PostgreSQL server started by Start.
type Cluster struct {
	// DataDir is the data directory actually used (see the package doc for
	// when it differs from Options.Dir).
	DataDir string
	// LogFile receives the server's log.
	LogFile string
	// Port is the loopback TCP port the server listens on.
	Port int

	password string
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
}

const superuser = "postgres"

// Start initialises the cluster if Dir holds none, then starts it on a free
// loopback port and waits until it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	binDir, err := FindBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	if major, err := version(binDir); err != nil {
		return nil, err
	} else if major < 15 {
		return nil, fmt.Errorf("PostgreSQL %d in %s is too old: fieldseal needs 15 or newer", major, binDir)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	as, err := unprivilegedUser()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	home := dir
	if !as.reachable(dir) {
		home = fallbackDir(dir)
		if err := os.MkdirAll(home, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", home, err)
		}
	}
	if err := as.chown(home); err != nil {
		return nil, err
	}
	c := &Cluster{
		DataDir: filepath.Join(home, "pgdata"),
		LogFile: filepath.Join(dir, "postgres.log"),
		exited:  make(chan struct{}),
	}
	// The password lives beside the data directory it belongs to.
	pwPath := filepath.Join(home, "superuser.password")
	_, statErr := os.Stat(filepath.Join(c.DataDir, "PG_VERSION"))
	if _, err := os.Stat(pwPath); statErr == nil && err != nil {
		return nil, fmt.Errorf("the cluster in %s has no superuser.password beside it; remove %s to start afresh", c.DataDir, home)
	}
	if c.password, err = ensurePassword(pwPath, opts.Password); err != nil {
		return nil, err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := initdb(ctx, binDir, c.DataDir, c.password, as); err != nil {
			return nil, err
		}
	}
	// A free port may be taken by someone else before postgres binds it:
	// then try another, a few times.
	for attempt := 1; ; attempt++ {
		c.Port = opts.Port
		if c.Port == 0 {
			if c.Port, err = freePort(); err != nil {
				return nil, err
			}
		}
		logStart := c.logSize()
		if err := c.start(binDir, opts.Settings, as); err != nil {
			return nil, err
		}
		err := c.waitReady(ctx)
		if err == nil {
			return c, nil
		}
		_ = c.Stop()
		if opts.Port != 0 || attempt == 5 || !c.portTaken(logStart) {
			return nil, err
		}
		c.exited = make(chan struct{})
	}
}

// logSize is how long the server's log is now.
func (c *Cluster) logSize() int64 {
	fi, err := os.Stat(c.LogFile)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// portTaken reports whether the log written since offset says the port
// was in use.
func (c *Cluster) portTaken(offset int64) bool {
	b, _ := os.ReadFile(c.LogFile)
	return int64(len(b)) > offset && strings.Contains(string(b[offset:]), "Address already in use")
}

// ensurePassword returns the password kept at path, or keeps pw there
// (a random one if pw is empty) if nothing is kept yet.
func ensurePassword(path, pw string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if pw == "" {
		pw = randomPassword()
	}
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write superuser password: %w", err)
	}
	return pw, nil
}

func initdb(ctx context.Context, binDir, dataDir, password string, as *runAs) error {
	// The password file must be readable by the user initdb runs as; it sits
	// beside the data directory only while initdb runs.
	pwfile := filepath.Join(filepath.Dir(dataDir), ".initdb-pw")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if err := as.chown(pwfile); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"--pgdata", dataDir, "--username", superuser, "--pwfile", pwfile,
		"--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--no-instructions")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: as.credential()}
	cmd.Dir = filepath.Dir(dataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb failed: %w\n%s", err, out)
	}
	return nil
}

// freePort picks a loopback port nobody listens on now (a variable, so a
// test can hand out a taken one).
var freePort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) start(binDir string, settings map[string]string, as *runAs) error {
	logf, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	args := []string{"-D", c.DataDir, "-p", strconv.Itoa(c.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="}
	for k, v := range settings {
		args = append(args, "-c", k+"="+v)
	}
	c.cmd = exec.Command(filepath.Join(binDir, "postgres"), args...)
	c.cmd.Dir = filepath.Dir(c.DataDir)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: as.credential(),
		Pdeathsig:  syscall.SIGINT, // fast shutdown if we die first
		Setpgid:    true,           // a Ctrl-C in the terminal is ours to handle
	}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited during start-up (%v); its log: %s\n%s", c.waitErr, c.LogFile, c.logTail())
		default:
		}
		// Each attempt is short: whatever else listens on the port (it may
		// have been taken meanwhile) must not hold the start-up.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(actx, c.URL("postgres"))
		cancel()
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited during start-up (%v); its log: %s\n%s", c.waitErr, c.LogFile, c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections within a minute: %w; its log: %s\n%s", err, c.LogFile, c.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.LogFile)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// URL returns a superuser connection URL for database.
func (c *Cluster) URL(database string) string {
	return c.URLAs(superuser, c.password, database)
}

// URLAs returns a connection URL for database as user with password.
func (c *Cluster) URLAs(user, password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Stop shuts the server down in fast mode (open sessions are ended) and
// waits for it to exit.
func (c *Cluster) Stop() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	return nil
}

// Crash stops the server in immediate mode, as a crash would (pg_ctl stop
// -m immediate: no checkpoint, sessions cut), and waits for it to exit.
func (c *Cluster) Crash() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	<-c.exited
}

func randomPassword() string {
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(buf)
}
