// Command fieldseal is the fieldseal service: the API server, its
// migrations, and a one-command local development setup.
//
// This is the only package that reads the environment and wires the
// implementations (db, auth, handlers) together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `fieldseal keeps sensitive records in PostgreSQL, encrypted under keys only its clients hold.

Usage:
  fieldseal serve                 run the API server
  fieldseal migrate up|down|status  apply, roll back (one step, or --to N) or list migrations
  fieldseal dev                   a working local service in one command
  fieldseal audit verify [--subject S] [--checkpoint F]... [--public-key F]
                                  verify the audit trail's hash chains and each checkpoint against them;
                                  exit 1 naming the first broken entry
  fieldseal audit checkpoint [--out F] [--signing-key F]
                                  every chain head now, as one JSON document, signed with an Ed25519 key
  fieldseal audit grants [--format table|json]
                                  compare every privilege with the least-privilege policy; exit 1 on drift
  fieldseal audit usage [--since 24h] [--json] [--revoke]
                                  how each token used each subject, from the audit trail; flags what looks wrong
                                  (exit 1), and with --revoke revokes the flagged tokens
  fieldseal token revoke --jti ID | --subject SUB
                                  revoke one token, or every token of a subject issued before now
  fieldseal <command> --help      the flags of a command, with their FIELDSEAL_* variables
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCmd(ctx, args[1:], stderr, env)
	case "migrate":
		err = migrateCmd(ctx, args[1:], stdout, stderr, env)
	case "dev":
		err = devCmd(ctx, args[1:], stdout, stderr, env)
	case "token":
		err = tokenCmd(ctx, args[1:], stdout, stderr, env)
	case "audit":
		err = auditCmd(ctx, args[1:], stdout, stderr, env)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "fieldseal: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errDrift):
		return 1
	default:
		fmt.Fprintln(stderr, "fieldseal:", err)
		return 1
	}
}

// errUsage marks an error already explained to the user.
var errUsage = errors.New("usage")
