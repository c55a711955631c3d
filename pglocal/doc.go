// Package pglocal runs a private PostgreSQL cluster from the installed server
// binaries, for `fieldseal dev` and for the tests.
//
// Invariants:
//   - The cluster listens on 127.0.0.1 only, on a port chosen at start, with no
//     Unix socket, and requires a password (scram-sha-256) even on loopback:
//     other local users cannot walk into it.
//   - PostgreSQL refuses to run as root. When the caller is root, initdb and
//     postgres run as an unprivileged user ("postgres" if it exists, else
//     "nobody"), and the data directory belongs to that user. If that user
//     cannot reach the requested directory (a clone under /root, say), the
//     data directory moves to a per-directory folder under /var/tmp, and
//     Cluster.DataDir says where.
//   - The superuser password is generated once and kept beside the data
//     directory (mode 0600), so a cluster is reused across runs.
//   - postgres is a child process: Stop shuts it down (fast mode), and if the
//     parent dies first the kernel sends it SIGINT.
package pglocal
