// Command strata manages a store of container image layers kept on
// overlayfs, in the on-disk format containers/storage uses.
//
// Usage:
//
//	strata [--root DIR] [--runroot DIR] [--als PATH[:ref]]... [--debug] VERB [ARGS...]
//
// Run "strata --help" for the verbs and "strata VERB --help" for one verb.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Exit codes: 1 for an operation that failed, 2 for a command line that
// could not be understood.
const (
	exitFailure = 1
	exitUsage   = 2
)

// verb is one subcommand. setup declares the verb's flags on fs and returns
// the function that runs it with the positional arguments; main parses the
// flags, so --help and usage errors look alike for every verb.
type verb struct {
	name    string
	args    string // synopsis after the verb name, e.g. "[--json] L"
	summary string // one line for the verb list
	example string
	minArgs int // positional arguments wanted
	maxArgs int // -1: no limit
	setup   func(fs *flag.FlagSet) runFunc
}

// runFunc runs a verb once its flags are parsed.
type runFunc func(g *globals, args []string) error

// verbs lists the subcommands in the order "strata --help" shows them.
var verbs = []verb{
	withALSImport(importVerb),
	createVerb,
	layersVerb,
	layerVerb,
	mountVerb,
	unmountVerb,
	rmVerb,
	namesVerb,
	statusVerb,
	alsVerb,
	diffVerb,
	changesVerb,
	importImageVerb,
	checkVerb,
}

// globals holds what the options before the verb decided.
type globals struct {
	root    string
	runRoot string
	als     stringList // --als: additional layer stores, "PATH" or "PATH:ref"
	logger  *slog.Logger
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer

	// maxDiffSize is a verb's --max-size: the cap on the uncompressed
	// bytes of one layer put in the store (0: the store's default).
	maxDiffSize int64
}

// usageError is a command line that could not be understood; main prints
// the message with the relevant usage and exits 2.
type usageError struct {
	verb *verb // nil for the global options
	msg  string
}

func (e *usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one strata command line and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}

	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.root, "root", "/var/lib/strata", "graph root `DIR`: layer contents and metadata")
	fs.StringVar(&g.runRoot, "runroot", "/run/strata", "run root `DIR`: state that ends with a reboot (mount counts)")
	debug := fs.Bool("debug", false, "log debug detail on stderr")
	fs.Var(&g.als, "als", "take layers from additional layer store `PATH[:ref]` (repeatable)")
	fs.Usage = func() {}

	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printToolUsage(stdout, fs)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "strata: %v\n\n", err)
		printToolUsage(stderr, fs)
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(stderr, "strata: no verb given\n\n")
		printToolUsage(stderr, fs)
		return exitUsage
	}

	for _, dir := range []*string{&g.root, &g.runRoot} {
		abs, err := filepath.Abs(*dir)
		if err != nil {
			fmt.Fprintf(stderr, "strata: %v\n", err)
			return exitFailure
		}
		*dir = abs
	}

	level := slog.LevelWarn
	if *debug {
		level = slog.LevelDebug
	}
	g.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	name := fs.Arg(0)
	if name == "help" {
		return helpVerb(g, fs, fs.Args()[1:])
	}
	v := findVerb(name)
	if v == nil {
		fmt.Fprintf(stderr, "strata: unknown verb %q\n\n", name)
		printToolUsage(stderr, fs)
		return exitUsage
	}

	verbFS := newFlags(v.name)
	runVerb := v.setup(verbFS)
	positional, err := parseArgs(verbFS, fs.Args()[1:], v.minArgs, v.maxArgs)
	if err == nil {
		err = rejectEmptyValues(verbFS)
	}
	if err == nil {
		err = runVerb(g, positional)
	}

	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		printVerbUsage(stdout, v)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "strata %s: %s\n\n", v.name, ue.msg)
		printVerbUsage(stderr, v)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return exitFailure
	}
}

// helpVerb answers "strata help [VERB]".
func helpVerb(g *globals, fs *flag.FlagSet, args []string) int {
	if len(args) == 0 {
		printToolUsage(g.stdout, fs)
		return 0
	}
	v := findVerb(args[0])
	if v == nil {
		fmt.Fprintf(g.stderr, "strata: unknown verb %q\n", args[0])
		return exitUsage
	}
	printVerbUsage(g.stdout, v)
	return 0
}

func findVerb(name string) *verb {
	for i := range verbs {
		if verbs[i].name == name {
			return &verbs[i]
		}
	}
	return nil
}

func printToolUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: strata [--root DIR] [--runroot DIR] [--als PATH[:ref]]... [--debug] VERB [ARGS...]\n\n")
	fmt.Fprintf(w, "Stores container image layers on overlayfs.\n\nOptions:\n")
	printDefaults(w, fs)
	fmt.Fprintf(w, "\nVerbs:\n")
	width := 0
	for _, v := range verbs {
		width = max(width, len(v.name))
	}
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, v.name, v.summary)
	}
	fmt.Fprintf(w, "\nL names a layer by id, name or unique id prefix.\n")
	fmt.Fprintf(w, "Run \"strata VERB --help\" for the options of one verb.\n")
}

// printVerbUsage writes a verb's synopsis, flags and example.
func printVerbUsage(w io.Writer, v *verb) {
	fmt.Fprintf(w, "Usage: strata %s %s\n\n%s.\n", v.name, v.args, v.summary)
	fs := newFlags(v.name)
	v.setup(fs)
	if len(flagNames(fs)) > 0 {
		fmt.Fprintf(w, "\nOptions:\n")
		printDefaults(w, fs)
	}
	fmt.Fprintf(w, "\nExample:\n  %s\n", v.example)
}

// printDefaults lists flags with a double dash, the form the docs use
// (one dash for one-letter flags such as -o).
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		arg := "--" + f.Name
		if len(f.Name) == 1 {
			arg = "-" + f.Name
		}
		if name != "" {
			arg += " " + name
		}
		line := fmt.Sprintf("  %-22s %s", arg, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintln(w, line)
	})
}

// newFlags returns an empty flag set for verb name; its errors come back
// from parseArgs rather than being printed.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("strata "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses args with fs, allowing flags after positional
// arguments ("strata layer L --json"), and checks the number of positional
// arguments is between min and max (max < 0: no limit).
func parseArgs(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}

	switch {
	case len(positional) < min:
		return nil, &usageError{msg: fmt.Sprintf("expected %s", argsWanted(min, max))}
	case max >= 0 && len(positional) > max:
		return nil, &usageError{msg: fmt.Sprintf("expected %s, got %q", argsWanted(min, max),
			strings.Join(positional, " "))}
	}
	return positional, nil
}

func argsWanted(min, max int) string {
	switch {
	case min == max && min == 1:
		return "one argument"
	case min == max:
		return fmt.Sprintf("%d arguments", min)
	case max < 0:
		return fmt.Sprintf("at least %d argument(s)", min)
	default:
		return fmt.Sprintf("%d to %d arguments", min, max)
	}
}

// emptyValueErrors names the flags whose value, when given, must not be
// empty, and what the value is: an empty one (an unset shell variable, say)
// would otherwise quietly mean "no parent" or "no name".
var emptyValueErrors = map[string]string{
	"parent": "--parent: empty layer reference",
	"name":   "--name: empty name",
}

// rejectEmptyValues returns a usage error when a flag of emptyValueErrors
// was given an empty value.
func rejectEmptyValues(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		msg, ok := emptyValueErrors[f.Name]
		if !ok || err != nil {
			return
		}
		empty := f.Value.String() == ""
		if l, isList := f.Value.(*stringList); isList {
			empty = slices.Contains(*l, "")
		}
		if empty {
			err = &usageError{msg: msg}
		}
	})
	return err
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// newLayerFlags defines --parent and --name, the flags of the verbs that
// make a layer; usagePrefix goes before their usage text.
func newLayerFlags(fs *flag.FlagSet, usagePrefix string) (parent *string, names *stringList) {
	parent = fs.String("parent", "", usagePrefix+"put the new layer on layer `L`")
	names = new(stringList)
	fs.Var(names, "name", usagePrefix+"give the new layer name `N` (repeatable)")
	return parent, names
}

// flagNames lists the names of the flags defined on fs.
func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}
