package main

import (
	"context"
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

	"github.com/fieldseal/fieldseal"

	"github.com/fieldseal/fieldseal/db"
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
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "Usage: fieldseal audit verify [--subject S] [--checkpoint F]... [--public-key F] | fieldseal audit checkpoint [--out F] [--signing-key F] | fieldseal audit grants [--format table|json]")
		return errUsage
	}
	f := newFlags("audit verify", "Recompute the audit trail's hash chains (each subject's lanes) and name the first broken entry of each,\nand check that every entry each checkpoint names is still in its chain.\nExit 0 when every chain is intact, 1 when one is broken.", stderr, env)
	adminURL := f.String("admin-database-url", "", "PostgreSQL URL of an admin role (or a member of fieldseal_auditor)")
	subject := f.fs.String("subject", "", "verify only this subject's chain")
	var checkpoints fileList
	f.fs.Var(&checkpoints, "checkpoint", "a file written by `fieldseal audit checkpoint` (repeatable)")
	publicKey := f.fs.String("public-key", "", "PEM Ed25519 public key: every checkpoint must be signed by it")
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
	rep, err := db.VerifyAuditTrail(ctx, *adminURL, *subject, func(n int64) {
		fmt.Fprintf(stderr, "verified %d entries…\n", n)
	})
	if err != nil {
		return err
	}
	broken := len(rep.Breaks) > 0
	for _, b := range rep.Breaks {
		fmt.Fprintf(stdout, "BROKEN subject %q lane %d at entry %d: %s\n", b.Subject, b.Lane, b.Seq, b.Problem)
	}
	for _, file := range checkpoints {
		breaks, err := verifyCheckpoint(ctx, *adminURL, file, want)
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
	if !broken {
		fmt.Fprintf(stdout, "audit trail intact: %d entries, %d subjects\n", rep.Entries, rep.Subjects)
		return nil
	}
	fmt.Fprintf(stdout, "audit trail broken (%d entries read, %d subjects)\n", rep.Entries, rep.Subjects)
	return errDrift
}

// verifyCheckpoint reads a checkpoint file, checks its signature (by want
// if given, else by the key it names, if it is signed), and returns the
// entries it names that are no longer in their chains.
func verifyCheckpoint(ctx context.Context, adminURL, file string, want ed25519.PublicKey) ([]fieldseal.AuditBreak, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var cp fieldseal.Checkpoint
	if err := json.Unmarshal(raw, &cp); err != nil || cp.Version != 1 {
		return nil, errors.New("not a checkpoint written by fieldseal audit checkpoint")
	}
	if want != nil || cp.Signature != nil {
		if err := cp.VerifySignature(want); err != nil {
			return nil, err
		}
	}
	return db.CheckCheckpoint(ctx, adminURL, cp)
}

// checkpointCmd writes every chain head now, signed when a key is given.
func checkpointCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	f := newFlags("audit checkpoint", "Write every audit chain head (each subject's lanes) as one JSON document, signed with Ed25519 when a key is given.\nKeep it outside the database: `fieldseal audit verify --checkpoint` proves against it later.", stderr, env)
	adminURL := f.String("admin-database-url", "", "PostgreSQL URL of an admin role (or a member of fieldseal_auditor)")
	out := f.fs.String("out", "", "write to this file instead of stdout")
	signingKey := f.fs.String("signing-key", "", "PEM (PKCS #8) Ed25519 private key to sign the checkpoint with")
	if err := f.parse(args); err != nil {
		return err
	}
	if *adminURL == "" {
		return errors.New("FIELDSEAL_ADMIN_DATABASE_URL is required")
	}
	var key ed25519.PrivateKey
	if *signingKey != "" {
		var err error
		if key, err = readPrivateKey(*signingKey); err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
	}
	cp, err := db.AuditCheckpoint(ctx, *adminURL)
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
	rep, err := db.GrantsReport(ctx, *adminURL)
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
	tw.Flush()
	if len(rep.Drift) > 0 {
		fmt.Fprintf(w, "\n%d difference(s) from the policy\n", len(rep.Drift))
	}
}
