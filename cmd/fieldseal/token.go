package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db"
)

func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	if len(args) == 0 || args[0] != "revoke" {
		fmt.Fprintln(stderr, "Usage: fieldseal token revoke --jti ID | --subject SUB")
		return errUsage
	}
	f := newFlags("token revoke", "Revoke one token by its jti, or every token of a subject issued before now.\nEvery running instance refuses it within moments (LISTEN/NOTIFY), and re-reads the list every 30 s in any case.", stderr, env)
	adminURL := f.String("admin-database-url", "", "PostgreSQL URL of an admin role")
	maxLife := f.Duration("token-max-lifetime", 24*time.Hour, "the servers' longest accepted token lifetime: how long the revocation must be kept")
	jti := f.fs.String("jti", "", "the jti of the token to revoke")
	subject := f.fs.String("subject", "", "revoke every token of this subject issued before now")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	switch {
	case (*jti == "") == (*subject == ""):
		fmt.Fprintln(stderr, "fieldseal token revoke: give exactly one of --jti and --subject")
		return errUsage
	case *adminURL == "":
		return errors.New("FIELDSEAL_ADMIN_DATABASE_URL is required")
	}
	// A token accepted now expires within the longest lifetime plus the
	// clock leeway; the revocation is kept a little longer than that.
	r := fieldseal.Revocation{JTI: *jti, Subject: *subject, ExpiresAt: time.Now().Add(*maxLife + 5*time.Minute)}
	admin, err := db.OpenAdmin(ctx, *adminURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if err := admin.Revoke(ctx, r); err != nil {
		return err
	}
	if *jti != "" {
		fmt.Fprintf(stdout, "revoked the token with jti %q until %s\n", *jti, r.ExpiresAt.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(stdout, "revoked every token of subject %q issued before now\n", *subject)
	}
	return nil
}
