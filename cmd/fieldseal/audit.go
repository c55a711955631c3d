package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/fieldseal/fieldseal/db"
)

// errDrift marks a finding the command reported itself: exit 1, no more text.
var errDrift = errors.New("reported")

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "Usage: fieldseal audit verify [--subject S]")
		return errUsage
	}
	f := newFlags("audit verify", "Recompute the audit trail's hash chains (one per subject) and name the first broken entry of each.\nExit 0 when every chain is intact, 1 when one is broken.", stderr, env)
	adminURL := f.String("admin-database-url", "", "PostgreSQL URL of an admin role (or a member of fieldseal_auditor)")
	subject := f.fs.String("subject", "", "verify only this subject's chain")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	if *adminURL == "" {
		return errors.New("FIELDSEAL_ADMIN_DATABASE_URL is required")
	}
	rep, err := db.VerifyAuditTrail(ctx, *adminURL, *subject, func(n int64) {
		fmt.Fprintf(stderr, "verified %d entries…\n", n)
	})
	if err != nil {
		return err
	}
	if len(rep.Breaks) == 0 {
		fmt.Fprintf(stdout, "audit trail intact: %d entries, %d subjects\n", rep.Entries, rep.Subjects)
		return nil
	}
	for _, b := range rep.Breaks {
		fmt.Fprintf(stdout, "BROKEN subject %q at entry %d: %s\n", b.Subject, b.Seq, b.Problem)
	}
	fmt.Fprintf(stdout, "audit trail broken in %d of %d subjects (%d entries read)\n", len(rep.Breaks), rep.Subjects, rep.Entries)
	return errDrift
}
