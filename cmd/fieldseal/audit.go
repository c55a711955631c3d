package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/hsm"
)

// errDrift marks a finding the command reported itself: exit 1, no more text.
var errDrift = errors.New("reported")

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	if len(args) > 0 && args[0] == "grants" {
		return grantsCmd(ctx, args[1:], stdout, stderr, env)
	}
	if len(args) > 0 && args[0] == "checkpoint" {
		return checkpointCmd(ctx, args[1:], stdout, stderr, env)
	}
	if len(args) > 0 && args[0] == "archive" {
		return archiveCmd(ctx, args[1:], stdout, stderr, env)
	}
	if len(args) > 0 && args[0] == "usage" {
		return usageCmd(ctx, args[1:], stdout, stderr, env)
	}
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "Usage: fieldseal audit verify [--subject S] [--checkpoint F]... [--public-key F] [--archive F]... | fieldseal audit checkpoint [--out F] [--signing-key F] | fieldseal audit archive --before TIME --out F | fieldseal audit grants [--format table|json] | fieldseal audit usage [--since D] [--json] [--revoke]")
		return errUsage
	}
	f := newFlags("audit verify", "Recompute the audit trail's hash chains (each subject's lanes) from where each starts in the database and name the first broken entry of each;\ncheck that every entry each checkpoint names is still in its chain (or in an archive given);\nverify each archive on its own and that, chain by chain, the archives join one another and the database without a gap.\nExit 0 when every chain is intact, 1 when one is broken.", stderr, env)
	adminURL := f.String("admin-database-url", "", "PostgreSQL URL of an admin role (or a member of fieldseal_auditor)")
	subject := f.fs.String("subject", "", "verify only this subject's chain")
	var checkpoints fileList
	f.fs.Var(&checkpoints, "checkpoint", "a file written by `fieldseal audit checkpoint` (repeatable)")
	publicKey := f.fs.String("public-key", "", "PEM Ed25519 public key: every checkpoint must be signed by it")
	var archives fileList
	f.fs.Var(&archives, "archive", "a file written by `fieldseal audit archive` (repeatable; give them all, oldest first or in any order)")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	if *adminURL == "" {
		return errors.New("FIELDSEAL_ADMIN_DATABASE_URL is required")
	}
	var want ed25519.PublicKey
	if *publicKey != "" {
		var err error
		if want, err = readPublicKey(*publicKey); err != nil {
			return fmt.Errorf("--public-key: %w", err)
		}
	}
	admin, err := db.OpenAdmin(ctx, *adminURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	// One snapshot: the trail, its heads, where archived chains start and
	// the entries the checkpoints name are read as of one moment.
	var rep fieldseal.AuditReport
	broken := false
	err = admin.Snapshot(ctx, func() error {
		var err error
		rep, err = admin.VerifyAuditTrail(ctx, *subject, func(n int64) {
			fmt.Fprintf(stderr, "verified %d entries…\n", n)
		})
		if err != nil {
			return err
		}
		broken = len(rep.Breaks) > 0
		for _, b := range rep.Breaks {
			fmt.Fprintf(stdout, "BROKEN subject %q lane %d at entry %d: %s\n", b.Subject, b.Lane, b.Seq, b.Problem)
		}
		// Checkpoints are read first: the archives are searched for the
		// entries they name.
		cps := map[string]fieldseal.Checkpoint{}
		named := map[chainEntry]string{} // checkpointed entry -> its hash in the archives
		for _, file := range checkpoints {
			cp, err := readCheckpoint(file, want)
			if err != nil {
				fmt.Fprintf(stdout, "BROKEN checkpoint %s: %v\n", file, err)
				broken = true
				continue
			}
			cps[file] = cp
			for _, h := range cp.Heads {
				named[chainEntry{h.Subject, h.Lane, h.Seq}] = ""
			}
		}
		if len(archives) > 0 {
			ok, err := verifyArchives(ctx, admin, archives, named, stdout)
			if err != nil {
				return err
			}
			broken = broken || !ok
		}
		archived := func(subject string, lane int16, seq int64) (string, bool) {
			h, ok := named[chainEntry{subject, lane, seq}]
			return h, ok && h != ""
		}
		for _, file := range checkpoints {
			cp, ok := cps[file]
			if !ok {
				continue
			}
			breaks, err := admin.CheckCheckpoint(ctx, cp, archived)
			if err != nil {
				fmt.Fprintf(stdout, "BROKEN checkpoint %s: %v\n", file, err)
				broken = true
				continue
			}
			for _, b := range breaks {
				fmt.Fprintf(stdout, "BROKEN subject %q lane %d at entry %d: %s (checkpoint %s)\n", b.Subject, b.Lane, b.Seq, b.Problem, file)
			}
			if len(breaks) > 0 {
				broken = true
			} else {
				fmt.Fprintf(stdout, "checkpoint %s: every entry it names is still in its chain\n", file)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !broken {
		fmt.Fprintf(stdout, "audit trail intact: %d entries, %d subjects\n", rep.Entries, rep.Subjects)
		return nil
	}
	fmt.Fprintf(stdout, "audit trail broken (%d entries read, %d subjects)\n", rep.Entries, rep.Subjects)
	return errDrift
}

// readCheckpoint reads a checkpoint file and checks its signature (by
// want if given, else by the key it names, if it is signed).
func readCheckpoint(file string, want ed25519.PublicKey) (fieldseal.Checkpoint, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return fieldseal.Checkpoint{}, err
	}
	var cp fieldseal.Checkpoint
	if err := json.Unmarshal(raw, &cp); err != nil || cp.Version != 1 {
		return cp, errors.New("not a checkpoint written by fieldseal audit checkpoint")
	}
	if want != nil || cp.Signature != nil {
		if err := cp.VerifySignature(want); err != nil {
			return cp, err
		}
	}
	return cp, nil
}

// chainEntry names one entry of one chain.
type chainEntry struct {
	subject string
	lane    int16
	seq     int64
}

// verifyArchives verifies each archive on its own, then, chain by chain,
// that the archives join one another without a gap or an overlap and that
// the newest ends right before the chain's start in the database. It
// fills in named the hashes of the entries named there that it finds.
func verifyArchives(ctx context.Context, admin *db.Admin, files []string, named map[chainEntry]string, stdout io.Writer) (bool, error) {
	database, starts, err := admin.ChainStarts(ctx)
	if err != nil {
		return false, err
	}
	ok := true
	var spans []fieldseal.ArchiveSpan
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return false, err
		}
		h, breaks, err := fieldseal.VerifyArchive(bufio.NewReaderSize(f, 1<<20), func(e fieldseal.ArchivedEntry) {
			k := chainEntry{e.Subject, e.Lane, e.Seq}
			if _, want := named[k]; want {
				named[k] = e.Hash
			}
		})
		f.Close()
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "BROKEN archive %s: %v\n", file, err)
			ok = false
			continue
		case h.Database != database:
			fmt.Fprintf(stdout, "BROKEN archive %s: it is of database %q, not %q\n", file, h.Database, database)
			ok = false
			continue
		}
		for _, b := range breaks {
			fmt.Fprintf(stdout, "BROKEN subject %q lane %d at entry %d: %s (archive %s)\n", b.Subject, b.Lane, b.Seq, b.Problem, file)
		}
		if len(breaks) > 0 {
			ok = false
			continue
		}
		for _, c := range h.Chains {
			spans = append(spans, fieldseal.ArchiveSpan{File: file, ArchiveChain: c})
		}
		fmt.Fprintf(stdout, "archive %s: intact (%d chains, entries before %s)\n", file, len(h.Chains), h.Before)
	}
	for _, b := range fieldseal.JoinArchives(spans, starts) {
		fmt.Fprintf(stdout, "BROKEN subject %q lane %d at entry %d: %s\n", b.Subject, b.Lane, b.Seq, b.Problem)
		ok = false
	}
	return ok, nil
}

// archiveCmd moves every audit entry older than --before to a file.
func archiveCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	f := newFlags("audit archive", "Move every audit entry older than --before out of the database into an NDJSON file that verifies without it\n(`fieldseal audit verify --archive`), recording in the database where each chain now starts.\nEach entry is verified as it is written (its hash, and its link from the chain's start); a break in what would be archived archives nothing.\nThe file is written and synced before anything is deleted.", stderr, env)
	adminURL := f.String("admin-database-url", "", "PostgreSQL URL of an admin role (a superuser, or a member of fieldseal_owner)")
	beforeFlag := f.fs.String("before", "", "RFC 3339 time: entries older than this are archived (required)")
	out := f.fs.String("out", "", "the archive file to create; it must not exist (required)")
	if err := f.parse(args); err != nil {
		return err
	}
	switch {
	case *adminURL == "":
		return errors.New("FIELDSEAL_ADMIN_DATABASE_URL is required")
	case *beforeFlag == "" || *out == "":
		fmt.Fprintln(stderr, "fieldseal audit archive: --before and --out are required")
		return errUsage
	}
	before, err := time.Parse(time.RFC3339Nano, *beforeFlag)
	if err != nil {
		fmt.Fprintln(stderr, "fieldseal audit archive: --before must be an RFC 3339 time, such as 2026-01-01T00:00:00Z")
		return errUsage
	}
	file, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("--out: %w (an archive is never overwritten)", err)
	}
	w := bufio.NewWriterSize(file, 1<<20)
	admin, err := db.OpenAdmin(ctx, *adminURL)
	if err != nil {
		file.Close()
		os.Remove(*out) // nothing was archived
		return err
	}
	defer admin.Close(ctx)
	res, err := admin.Archive(ctx, before, w, func() error {
		if err := w.Flush(); err != nil {
			return err
		}
		return file.Sync()
	})
	if cerr := file.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out) // nothing was deleted: the file would only mislead
		if errors.Is(err, db.ErrTrailBroken) {
			fmt.Fprintf(stdout, "BROKEN: %v\n", err)
			return errDrift
		}
		return err
	}
	fmt.Fprintf(stdout, "archived %d entries of %d chains to %s\n", res.Entries, res.Chains, *out)
	return nil
}

// checkpointCmd writes every chain head now, signed when a key is given.
func checkpointCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	f := newFlags("audit checkpoint", "Write every audit chain head (each subject's lanes) as one JSON document, signed with Ed25519 when a key is given.\nKeep it outside the database: `fieldseal audit verify --checkpoint` proves against it later.", stderr, env)
	adminURL := f.String("admin-database-url", "", "PostgreSQL URL of an admin role (or a member of fieldseal_auditor)")
	out := f.fs.String("out", "", "write to this file instead of stdout")
	signingKey := f.fs.String("signing-key", "", "the Ed25519 key to sign the checkpoint with: a PEM (PKCS #8) file, or a PKCS#11 URI of a key in an HSM (pkcs11:token=…;object=…?module-path=…&pin-source=file:…), which signs there")
	if err := f.parse(args); err != nil {
		return err
	}
	if *adminURL == "" {
		return errors.New("FIELDSEAL_ADMIN_DATABASE_URL is required")
	}
	var key crypto.Signer
	switch {
	case strings.HasPrefix(*signingKey, "pkcs11:"):
		signer, release, err := hsm.OpenSigner(*signingKey)
		if err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
		defer release()
		key = signer
	case *signingKey != "":
		k, err := readPrivateKey(*signingKey)
		if err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
		key = k
	}
	admin, err := db.OpenAdmin(ctx, *adminURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	cp, err := admin.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if key != nil {
		if err := cp.Sign(key); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *out == "" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}

// fileList is a repeatable flag.
type fileList []string

func (l *fileList) String() string     { return strings.Join(*l, ",") }
func (l *fileList) Set(v string) error { *l = append(*l, v); return nil }

func readPrivateKey(file string) (ed25519.PrivateKey, error) {
	block, err := readPEM(file)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not a PKCS #8 private key (openssl genpkey -algorithm ed25519 writes one)")
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	return key, nil
}

func readPublicKey(file string) (ed25519.PublicKey, error) {
	block, err := readPEM(file)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not a PKIX public key (openssl pkey -pubout writes one)")
	}
	key, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	return key, nil
}

func readPEM(file string) (*pem.Block, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	return block, nil
}

func grantsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	f := newFlags("audit grants", "Compare every privilege on fieldseal's objects with the least-privilege policy the migrations define.\nExit 0 when nothing drifted, 1 when something did (each drift names role, object and privilege).", stderr, env)
	adminURL := f.String("admin-database-url", "", "PostgreSQL URL of an admin role (or a member of fieldseal_auditor)")
	format := f.fs.String("format", "table", "table or json")
	if err := f.parse(args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintln(stderr, "fieldseal audit grants: --format is table or json")
		return errUsage
	}
	if *adminURL == "" {
		return errors.New("FIELDSEAL_ADMIN_DATABASE_URL is required")
	}
	admin, err := db.OpenAdmin(ctx, *adminURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	rep, err := admin.Grants(ctx)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printGrants(stdout, rep)
	}
	if len(rep.Drift) > 0 {
		return errDrift
	}
	return nil
}

func printGrants(w io.Writer, rep fieldseal.GrantsReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(rep.Drift) == 0 {
		fmt.Fprintln(tw, "DRIFT\tnone: every privilege is as the policy says")
	} else {
		fmt.Fprintln(tw, "DRIFT\tROLE\tOBJECT\tCOLUMN\tPRIVILEGE")
		for _, d := range rep.Drift {
			fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\n", d.Problem, d.Role, d.ObjectType, d.Object, d.Column, d.Privilege)
		}
	}
	fmt.Fprintln(tw, "\nPRIVILEGE\tGRANTEE\tOBJECT\tCOLUMN")
	for _, p := range rep.Privileges {
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\n", p.Privilege, p.Grantee, p.ObjectType, p.Object, p.Column)
	}
	fmt.Fprintln(tw, "\nGROUP\tMEMBER\tVIA\tCAN LOG IN")
	for _, m := range rep.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", m.Group, m.Member, m.Via, m.CanLogin)
	}
	fmt.Fprintln(tw, "\nBYPASSES ROW-LEVEL SECURITY\tHOW\tCAN LOG IN")
	for _, b := range rep.Bypassers {
		fmt.Fprintf(tw, "%s\t%s\t%v\n", b.Role, b.How, b.CanLogin)
	}
	fmt.Fprintln(tw, "\nTABLE\tOWNER\tRLS ENABLED\tRLS FORCED")
	for _, t := range rep.Tables {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\n", t.Table, t.Owner, t.RLSEnabled, t.RLSForced)
	}
	switch {
	case len(rep.Workers) > 0:
		fmt.Fprintf(tw, "\nCITUS WORKERS COMPARED\t%s (functions, tables, columns, parameters, shards)\n", strings.Join(rep.Workers, ", "))
	case rep.WorkersUnchecked != "":
		fmt.Fprintf(tw, "\nCITUS WORKERS NOT COMPARED\t%s\n", rep.WorkersUnchecked)
	}
	tw.Flush()
	if len(rep.Drift) > 0 {
		fmt.Fprintf(w, "\n%d difference(s) from the policy\n", len(rep.Drift))
	}
}
