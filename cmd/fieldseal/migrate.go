package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fieldseal/fieldseal/migrations"
)

func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	f := newFlags("migrate", "Apply (up), roll back (down: the newest migration, or down to --to) or list (status) the migrations embedded in this binary, over an admin connection.\nTwo runs against one database never overlap: they wait on a PostgreSQL advisory lock.", stderr, env)
	adminURL := f.String("admin-database-url", "", "PostgreSQL URL of a role that may create roles, schemas and extensions")
	to := f.fs.Int64("to", -1, "with down: roll back every migration newer than this version (0: all)")
	// The action may come before or after the flags.
	var action string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	if err := f.parse(args); err != nil {
		return err
	}
	if action == "" && len(f.Args()) == 1 {
		action = f.Args()[0]
	} else if action == "" || len(f.Args()) != 0 {
		fmt.Fprintln(stderr, "Usage: fieldseal migrate up|down|status [--to N]")
		return errUsage
	}
	if *adminURL == "" {
		return errors.New("FIELDSEAL_ADMIN_DATABASE_URL is required: a role that may create roles, schemas and extensions")
	}
	m, err := migrations.Open(ctx, *adminURL)
	if err != nil {
		return err
	}
	defer m.Close()
	switch action {
	case "up":
		res, err := m.Up(ctx)
		for _, r := range res {
			fmt.Fprintf(stdout, "applied %s (%s)\n", r.Source.Path, r.Duration.Round(1e6))
		}
		if err == nil && len(res) == 0 {
			fmt.Fprintln(stdout, "already at the newest version", migrations.Head())
		}
		return err
	case "down":
		if *to >= 0 {
			res, err := m.DownTo(ctx, *to)
			for _, r := range res {
				fmt.Fprintf(stdout, "rolled back %s\n", r.Source.Path)
			}
			return err
		}
		r, err := m.Down(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rolled back %s\n", r.Source.Path)
		return nil
	case "status":
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range st {
			when := "pending"
			if s.State == "applied" {
				when = "applied " + s.AppliedAt.Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(stdout, "%-24s %s\n", s.Source.Path, when)
		}
		return nil
	default:
		fmt.Fprintf(stderr, "fieldseal migrate: unknown action %q (up, down or status)\n", action)
		return errUsage
	}
}
