// Command knaight-bench is make bench: it runs the benchmarks of every
// section of the performance report, each with the flags it needs, in one
// run on this machine, and writes BENCHMARKS.md (the figures, their ratios
// to the alternatives measured in the same run, and the budget each is held
// to) and BENCHMARKS.json (every raw figure). No figure is asserted: the
// report says where one falls short.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"time"

	"golang.org/x/perf/benchfmt"
)

func main() {
	out := flag.String("out", "BENCHMARKS.md", "the report")
	raw := flag.String("json", "BENCHMARKS.json", "the raw figures")
	only := flag.String("sections", "", "comma-separated section ids to run (default all), keeping the other sections' figures from -json: "+sectionIDs())
	quick := flag.Bool("quick", false, "a smoke run: one short pass of each benchmark, figures not worth publishing")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	rep := Report{Machine: describeMachine(), Started: time.Now().UTC(), Quick: *quick}
	var earlier Report
	if *only != "" {
		if js, err := os.ReadFile(*raw); err == nil {
			if err := json.Unmarshal(js, &earlier); err != nil {
				fmt.Fprintf(os.Stderr, "knaight-bench: %s: %v\n", *raw, err)
				os.Exit(1)
			}
		}
	}
	for _, s := range sections {
		if *only != "" && !contains(strings.Split(*only, ","), s.ID) {
			if sr := sectionResult(earlier, s.ID); sr != nil {
				rep.Sections = append(rep.Sections, *sr)
			}
			continue
		}
		sr := SectionResult{ID: s.ID}
		for _, r := range s.Runs {
			if *quick {
				r = r.quick()
			}
			fmt.Fprintf(os.Stderr, "==> %s: %s\n", s.ID, r.command())
			start := time.Now()
			results, err := r.run(ctx)
			rr := RunResult{Command: r.command(), Seconds: time.Since(start).Seconds(), Results: results}
			if err != nil {
				rr.Error = err.Error()
				fmt.Fprintf(os.Stderr, "    failed: %v\n", err)
			}
			sr.Runs = append(sr.Runs, rr)
		}
		rep.Sections = append(rep.Sections, sr)
	}
	rep.Finished = time.Now().UTC()

	js, err := json.MarshalIndent(rep, "", "  ")
	if err == nil {
		err = os.WriteFile(*raw, append(js, '\n'), 0o644)
	}
	if err == nil {
		err = os.WriteFile(*out, []byte(render(rep)), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "knaight-bench:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s in %s\n", *out, *raw, rep.Finished.Sub(rep.Started).Round(time.Second))
	for _, s := range rep.Sections {
		for _, r := range s.Runs {
			if r.Error != "" {
				os.Exit(1)
			}
		}
	}
}

// Run is one go test invocation.
type Run struct {
	// Package is the package pattern, relative to the repository root.
	Package string
	// Bench is the -bench regular expression.
	Bench string
	// Benchtime and Count are go test's flags ("" and 0: its defaults).
	Benchtime string
	Count     int
	// QuickBenchtime replaces Benchtime in a -quick run.
	QuickBenchtime string
}

func (r Run) quick() Run {
	r.Count = 1
	r.Benchtime = r.QuickBenchtime
	if r.Benchtime == "" {
		r.Benchtime = "1x"
	}
	return r
}

func (r Run) args() []string {
	args := []string{"test", "-run", "^$", "-bench", r.Bench, "-benchmem", "-timeout", "90m"}
	if r.Benchtime != "" {
		args = append(args, "-benchtime", r.Benchtime)
	}
	if r.Count > 1 {
		args = append(args, "-count", fmt.Sprint(r.Count))
	}
	return append(args, r.Package)
}

// command is the run as a user types it.
func (r Run) command() string {
	args := r.args()
	for i, a := range args {
		if strings.ContainsAny(a, "^$|*() ") {
			args[i] = "'" + a + "'"
		}
	}
	return "go " + strings.Join(args, " ")
}

// run runs go test and parses what it printed.
func (r Run) run(ctx context.Context) ([]Result, error) {
	cmd := exec.CommandContext(ctx, "go", r.args()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	results, err := parse(stdout.Bytes())
	if runErr != nil {
		return results, fmt.Errorf("%v\n%s", runErr, tail(stdout.String()+stderr.String(), 30))
	}
	if err == nil && len(results) == 0 {
		err = fmt.Errorf("no benchmark matched %q\n%s", r.Bench, tail(stdout.String(), 10))
	}
	return results, err
}

// Result is one benchmark's figures: each unit's median over -count runs.
type Result struct {
	Package string             `json:"package"`
	Name    string             `json:"name"`
	Runs    int                `json:"runs"`
	Iters   []int              `json:"iterations"`
	Metrics map[string]float64 `json:"metrics"`
}

// parse reads go test's benchmark output (the Go benchmark data format) and
// folds repeated runs of one benchmark into medians.
func parse(out []byte) ([]Result, error) {
	r := benchfmt.NewReader(bytes.NewReader(out), "go test")
	var order []string
	byKey := map[string]*Result{}
	values := map[string]map[string][]float64{}
	for r.Scan() {
		rec, ok := r.Result().(*benchfmt.Result)
		if !ok {
			continue // syntax errors are lines of test output, not benchmarks
		}
		pkg := rec.GetConfig("pkg")
		name := trimProcs(string(rec.Name.Full()))
		key := pkg + " " + name
		res := byKey[key]
		if res == nil {
			res = &Result{Package: pkg, Name: name, Metrics: map[string]float64{}}
			byKey[key] = res
			values[key] = map[string][]float64{}
			order = append(order, key)
		}
		res.Runs++
		res.Iters = append(res.Iters, rec.Iters)
		for _, v := range rec.Values {
			values[key][v.Unit] = append(values[key][v.Unit], v.Value)
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	out2 := make([]Result, 0, len(order))
	for _, k := range order {
		res := byKey[k]
		for unit, vs := range values[k] {
			res.Metrics[unit] = median(vs)
		}
		out2 = append(out2, *res)
	}
	return out2, nil
}

// trimProcs removes the -GOMAXPROCS suffix go test adds to names.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return name
		}
	}
	return name[:i]
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func contains(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.TrimSpace(x) == s })
}
