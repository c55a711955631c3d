package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// flags is a flag set whose every flag also reads a FIELDSEAL_* variable:
// the command line wins, then the environment, then the default.
type flags struct {
	fs   *flag.FlagSet
	env  func(string) (string, bool)
	vars map[string]string // flag name -> variable
}

func newFlags(name, summary string, stderr io.Writer, env func(string) (string, bool)) *flags {
	f := &flags{fs: flag.NewFlagSet(name, flag.ContinueOnError), env: env, vars: map[string]string{}}
	f.fs.SetOutput(stderr)
	f.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fieldseal %s [flags]\n\n%s\n\nFlags (each also read from its environment variable):\n", name, summary)
		f.fs.PrintDefaults()
	}
	return f
}

func (f *flags) variable(name string) string {
	v := "FIELDSEAL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	f.vars[name] = v
	return v
}

func (f *flags) String(name, def, help string) *string {
	return f.fs.String(name, def, help+" ($"+f.variable(name)+")")
}

func (f *flags) Bool(name string, def bool, help string) *bool {
	return f.fs.Bool(name, def, help+" ($"+f.variable(name)+")")
}

func (f *flags) Duration(name string, def time.Duration, help string) *time.Duration {
	return f.fs.Duration(name, def, help+" ($"+f.variable(name)+")")
}

// parse reads the command line, then fills every flag not given there from
// its variable. A bad value names the variable and what is wrong.
func (f *flags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for name, variable := range f.vars {
		if set[name] {
			continue
		}
		if v, ok := f.env(variable); ok && v != "" {
			if err := f.fs.Set(name, v); err != nil {
				return fmt.Errorf("%s: %v", variable, err)
			}
		}
	}
	return nil
}

// Args returns the arguments after the flags.
func (f *flags) Args() []string { return f.fs.Args() }
