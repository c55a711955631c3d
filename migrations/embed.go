package migrations

import (
	"embed"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// FS holds the goose migrations, embedded in the binary.
//
//go:embed *.sql
var FS embed.FS

// Head is the version of the newest embedded migration: the schema version
// this binary needs. readyz compares it with the database's.
func Head() int64 {
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		panic(err) // embedded at build time; cannot fail
	}
	var head int64
	for _, e := range entries {
		prefix, _, _ := strings.Cut(path.Base(e.Name()), "_")
		if v, err := strconv.ParseInt(prefix, 10, 64); err == nil && v > head {
			head = v
		}
	}
	return head
}
