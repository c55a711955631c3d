package pglocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PgBouncer is a running PgBouncer in transaction pooling mode, in front
// of a cluster: what production PostgreSQL often sits behind. For tests.
type PgBouncer struct {
	// Port is the loopback TCP port it listens on.
	Port int
	// LogFile receives its log.
	LogFile string

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartPgBouncer starts PgBouncer (Debian's package: apt-get install
// pgbouncer) in dir, pooling by transaction every database of the server
// on serverPort for the users given with their passwords. Like postgres,
// it refuses to run as root, so it then runs as the unprivileged user the
// clusters run as.
func StartPgBouncer(ctx context.Context, dir string, serverPort int, users map[string]string) (*PgBouncer, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/pgbouncer"); statErr != nil {
			return nil, errors.New("pgbouncer is not installed: install it (Debian: apt-get install pgbouncer)")
		}
		bin = "/usr/sbin/pgbouncer"
	}
	as, err := unprivilegedUser()
	if err != nil {
		return nil, err
	}
	if err := as.chown(dir); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var userlist strings.Builder
	for u, pw := range users {
		fmt.Fprintf(&userlist, "%q %q\n", u, pw)
	}
	b := &PgBouncer{Port: port, LogFile: filepath.Join(dir, "pgbouncer.log"), exited: make(chan struct{})}
	ini := fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
logfile = %s
`, serverPort, port, filepath.Join(dir, "userlist.txt"), b.LogFile)
	for name, content := range map[string]string{"userlist.txt": userlist.String(), "pgbouncer.ini": ini} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return nil, err
		}
		if err := as.chown(p); err != nil {
			return nil, err
		}
	}
	b.cmd = exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	b.cmd.Dir = dir
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: as.credential(), Pdeathsig: syscall.SIGINT, Setpgid: true}
	out := &strings.Builder{}
	b.cmd.Stdout, b.cmd.Stderr = out, out
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return b, nil
		}
		select {
		case <-b.exited:
			log, _ := os.ReadFile(b.LogFile)
			return nil, fmt.Errorf("pgbouncer exited during start-up: %s %s", out.String(), log)
		case <-ctx.Done():
			b.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, errors.New("pgbouncer did not listen within 10 s")
		}
	}
}

// Stop shuts PgBouncer down and waits for it to exit.
func (b *PgBouncer) Stop() {
	_ = b.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
}
