package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db"
)

// usageCmd is `fieldseal audit usage`: how tokens were used, from the
// audit trail, and what looks wrong; with --revoke, the flagged tokens
// revoked.
func usageCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	f := newFlags("audit usage", "Report how each token used each subject in the last --since, from the audit trail: requests, decrypts, refusals, wrong keys,\ndistinct client addresses, first and last seen; flag a token used from more than --addresses addresses, decrypts above\n--decrypt-factor times the subject's usual (its average over --baseline before the window, at least --decrypt-min),\n--wrong-keys wrong keys or more, and use after a revocation. --revoke revokes every flagged token by its jti, each\nrecorded in the audit chain of the subject it was used for. Exit 0 when nothing is flagged, 1 when something is.", stderr, env)
	adminURL := f.String("admin-database-url", "", "PostgreSQL URL of an admin role (it reads every subject's entries and the revocations)")
	maxLife := f.Duration("token-max-lifetime", 24*time.Hour, "the servers' longest accepted token lifetime: how long a revocation must be kept")
	since := f.fs.Duration("since", 24*time.Hour, "the window: this long before now")
	baseline := f.fs.Duration("baseline", 7*24*time.Hour, "the period before the window that gives each subject's usual decrypts")
	limits := fieldseal.DefaultUsageLimits
	f.fs.Int64Var(&limits.Addresses, "addresses", limits.Addresses, "flag a token used from more distinct client addresses than this")
	f.fs.Float64Var(&limits.DecryptFactor, "decrypt-factor", limits.DecryptFactor, "flag decrypts above this many times the subject's usual")
	f.fs.Int64Var(&limits.DecryptMin, "decrypt-min", limits.DecryptMin, "... and at least this many")
	f.fs.Int64Var(&limits.WrongKeys, "wrong-keys", limits.WrongKeys, "flag a token with this many wrong keys or more")
	asJSON := f.fs.Bool("json", false, "print the report as JSON")
	revoke := f.fs.Bool("revoke", false, "revoke every flagged token (by jti)")
	if err := f.parse(args); err != nil {
		return err
	}
	switch err := limits.Validate(); {
	case err != nil:
		fmt.Fprintf(stderr, "fieldseal audit usage: %v\n", err)
		return errUsage
	case *since <= 0 || *baseline < 0:
		fmt.Fprintln(stderr, "fieldseal audit usage: --since must be positive and --baseline not negative")
		return errUsage
	case *adminURL == "":
		return errors.New("FIELDSEAL_ADMIN_DATABASE_URL is required")
	}
	admin, err := db.OpenAdmin(ctx, *adminURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	until := time.Now()
	rep, err := admin.Usage(ctx, until.Add(-*since), until, *baseline)
	if err != nil {
		return err
	}
	flagged := rep.Judge(limits)
	var revoked []string
	if *revoke {
		expires := time.Now().Add(*maxLife + 5*time.Minute)
		for _, t := range rep.Tokens {
			if len(t.Flags) == 0 || t.TokenID == "" || t.UsedAfterRevocation && len(t.Flags) == 1 {
				continue // nothing to revoke: no jti, or revoked already
			}
			if err := admin.RevokeUsed(ctx, t, expires); err != nil {
				return fmt.Errorf("revoke the token with jti %q: %w", t.TokenID, err)
			}
			revoked = append(revoked, fmt.Sprintf("revoked the token with jti %q (used for subject %q: %s) until %s",
				t.TokenID, t.Subject, strings.Join(t.Flags, ", "), expires.UTC().Format(time.RFC3339)))
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printUsage(stdout, rep, flagged)
	}
	for _, line := range revoked {
		fmt.Fprintln(stderr, line)
	}
	if flagged > 0 {
		return errDrift
	}
	return nil
}

func printUsage(w io.Writer, rep fieldseal.UsageReport, flagged int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "token use from %s to %s\n\n", rep.Since.UTC().Format(time.RFC3339), rep.Until.UTC().Format(time.RFC3339))
	fmt.Fprintln(tw, "SUBJECT\tREQUESTS\tDECRYPTS\tUSUAL\tREFUSALS\tWRONG KEYS\tADDRESSES\tTOKENS\tFLAGS")
	for _, s := range rep.Subjects {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%d\t%d\t%d\t%d\t%s\n", s.Subject, s.Requests, s.Decrypts, s.BaselineDecrypts, s.Refusals, s.WrongKeys, s.Addresses, s.Tokens, strings.Join(s.Flags, ", "))
	}
	fmt.Fprintf(tw, "\n%d of %d tokens flagged\n", flagged, len(rep.Tokens))
	fmt.Fprintln(tw, "SUBJECT\tTOKEN (JTI)\tCLIENT\tREQUESTS\tDECRYPTS\tWRONG KEYS\tADDRESSES\tFIRST SEEN\tLAST SEEN\tFLAGS")
	for _, t := range rep.Tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", t.Subject, t.TokenID, t.ClientID, t.Requests, t.Decrypts, t.WrongKeys, t.Addresses,
			t.FirstSeen.UTC().Format(time.RFC3339), t.LastSeen.UTC().Format(time.RFC3339), strings.Join(t.Flags, ", "))
	}
	tw.Flush()
}
