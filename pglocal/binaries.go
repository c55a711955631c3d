package pglocal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNoBinaries is returned when no PostgreSQL server binaries can be found.
var ErrNoBinaries = errors.New(`no PostgreSQL server binaries found (initdb, postgres): ` +
	`install PostgreSQL 15 or newer with its contrib modules, e.g. ` +
	`"apt-get install postgresql postgresql-contrib" on Debian or Ubuntu, ` +
	`or point FIELDSEAL_PG_BINDIR at the directory holding initdb and postgres`)

// FindBinDir returns the directory holding initdb and postgres: dir if it is
// not empty, else the newest /usr/lib/postgresql/<major>/bin (Debian's
// layout), else the directory of initdb on PATH.
func FindBinDir(dir string) (string, error) {
	if dir != "" {
		if !hasServer(dir) {
			return "", fmt.Errorf("%s holds no initdb and postgres: %w", dir, ErrNoBinaries)
		}
		return dir, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(matches, func(i, j int) bool { return majorOf(matches[i]) > majorOf(matches[j]) })
	for _, m := range matches {
		if majorOf(m) >= 15 && hasServer(m) {
			return m, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if d := filepath.Dir(p); hasServer(d) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// version returns the server's major version, as `postgres --version` prints it.
func version(binDir string) (int, error) {
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("postgres --version: %w", err)
	}
	// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
	fields := strings.Fields(string(out))
	if len(fields) < 3 {
		return 0, fmt.Errorf("postgres --version printed %q", out)
	}
	major, _, _ := strings.Cut(fields[2], ".")
	return strconv.Atoi(major)
}
