package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "Usage: fieldseal audit verify [--subject S] | fieldseal audit grants [--format table|json]")
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
		fmt.Fprintf(stdout, "BROKEN subject %q lane %d at entry %d: %s\n", b.Subject, b.Lane, b.Seq, b.Problem)
	}
	fmt.Fprintf(stdout, "audit trail broken in %d of %d subjects (%d entries read)\n", len(rep.Breaks), rep.Subjects, rep.Entries)
	return errDrift
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
