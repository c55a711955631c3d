package pglocal

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// runAs is the OS user postgres runs as: nil for the current user, else the
// unprivileged user chosen when the caller is root.
type runAs struct {
	name     string
	uid, gid uint32
}

func (r *runAs) credential() *syscall.Credential {
	if r == nil {
		return nil
	}
	return &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: []uint32{}}
}

func (r *runAs) chown(path string) error {
	if r == nil {
		return nil
	}
	return os.Chown(path, int(r.uid), int(r.gid))
}

// unprivilegedUser picks who runs PostgreSQL: the current user unless that is
// root, since PostgreSQL refuses to run as root.
func unprivilegedUser() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		if uid == 0 {
			continue
		}
		return &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf(`running as root, and neither a "postgres" nor a "nobody" user exists to run PostgreSQL as (it refuses root): create one, e.g. "useradd --system postgres"`)
}

// reachable reports whether r can traverse every ancestor of dir, judged by
// permission bits (ACLs aside): what postgres needs to reach dir, which is
// then handed to it.
func (r *runAs) reachable(dir string) bool {
	if r == nil {
		return true
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		mode := fi.Mode().Perm()
		switch {
		case st.Uid == r.uid:
			if mode&0o100 == 0 {
				return false
			}
		case st.Gid == r.gid:
			if mode&0o010 == 0 {
				return false
			}
		default:
			if mode&0o001 == 0 {
				return false
			}
		}
		if d == "/" {
			return true
		}
	}
}

// fallbackDir is where the data directory goes when r cannot reach the one
// asked for: a folder under /var/tmp (kept across reboots, unlike /tmp)
// named after the requested directory, so each dev directory keeps its own.
func fallbackDir(requested string) string {
	sum := sha256.Sum256([]byte(requested))
	base := "/var/tmp"
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		base = os.TempDir()
	}
	return filepath.Join(base, "fieldseal-pg-"+hex.EncodeToString(sum[:6]))
}
