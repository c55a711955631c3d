//go:build citus

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fieldseal dev --citus: the same banner and curl lines work against a
// coordinator and two workers of dev's own, and a restart reuses them.
func TestDevCitus(t *testing.T) {
	parent, err := os.MkdirTemp("", "fieldseal-dev-citus-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil { // PostgreSQL runs as another user when we are root
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "dev")
	vars := map[string]string{"FIELDSEAL_DEV_DIR": dir, "FIELDSEAL_LISTEN": "127.0.0.1:0", "FIELDSEAL_CITUS": "true"}
	banner, stop := startDev(t, vars)
	out := pasteCurlLines(t, banner)
	if !strings.Contains(out, `"secret":{"body":"only my key opens this"}`) {
		t.Errorf("the curl examples did not store and read back a record on Citus:\n%s", out)
	}
	if code := stop(); code != 0 {
		t.Errorf("dev exit code after Ctrl-C = %d; want 0", code)
	}
	for _, node := range []string{"coordinator", "worker1", "worker2"} {
		if _, err := os.Stat(filepath.Join(dir, "citus", node, "pgdata", "postmaster.pid")); !os.IsNotExist(err) {
			t.Errorf("the %s still runs after dev stopped (%v)", node, err)
		}
	}
	banner2, _ := startDev(t, vars)
	if out := pasteCurlLines(t, banner2); strings.Count(out, `"only my key opens this"`) != 2 {
		t.Errorf("after a restart, the list should hold the first run's record and the new one:\n%s", out)
	}
}
