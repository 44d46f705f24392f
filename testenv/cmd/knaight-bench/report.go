package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is everything one make bench run measured; BENCHMARKS.json is it.
type Report struct {
	Machine  Machine         `json:"machine"`
	Started  time.Time       `json:"started"`
	Finished time.Time       `json:"finished"`
	Quick    bool            `json:"quick"`
	Sections []SectionResult `json:"sections"`
}

// Machine describes where the figures come from.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryGB int    `json:"memoryGB"`
	OS       string `json:"os"`
	Go       string `json:"go"`
}

// SectionResult is one section's runs.
type SectionResult struct {
	ID   string      `json:"id"`
	Runs []RunResult `json:"runs"`
}

// RunResult is one go test invocation's figures, or why there are none.
type RunResult struct {
	Command string   `json:"command"`
	Seconds float64  `json:"seconds"`
	Error   string   `json:"error,omitempty"`
	Results []Result `json:"results"`
}

// find returns the result named name (without the Benchmark prefix).
func (s *SectionResult) find(name string) (Result, bool) {
	for _, r := range s.Runs {
		for _, res := range r.Results {
			if res.Name == name {
				return res, true
			}
		}
	}
	return Result{}, false
}

// nanos returns a time figure of the result named name in nanoseconds:
// what is "op" for the time per operation, or a percentile's prefix
// ("p50", "p99", "max") reported in ns or ms.
func (s *SectionResult) nanos(name, what string) (float64, bool) {
	r, ok := s.find(name)
	if !ok {
		return 0, false
	}
	return r.nanos(what)
}

func (r Result) nanos(what string) (float64, bool) {
	if what == "op" {
		v, ok := r.Metrics["sec/op"]
		return v * 1e9, ok
	}
	// The parser turns ns units into seconds (x/perf/benchunit.Tidy).
	if v, ok := r.Metrics[what+"-sec"]; ok {
		return v * 1e9, true
	}
	v, ok := r.Metrics[what+"-ms"]
	return v * 1e6, ok
}

func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	m.CPU = procField("/proc/cpuinfo", "model name")
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int
		fmt.Sscanf(kb, "%d", &n)
		m.MemoryGB = int(math.Round(float64(n) / (1 << 20)))
	}
	return m
}

// procField is the value of the first "key: value" line with that key.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// render writes the report as Markdown.
func render(rep Report) string {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	var took float64
	for _, s := range rep.Sections {
		for _, r := range s.Runs {
			took += r.Seconds
		}
	}
	fmt.Fprintf(&b, "Written by `make bench` (`testenv/cmd/knaight-bench`) on %s; the benchmarks took %s. The raw figures are in\n",
		rep.Started.Format("2006-01-02"), (time.Duration(took) * time.Second).Round(time.Second))
	fmt.Fprintf(&b, "`BENCHMARKS.json`. Each section's figures, and every comparison in it, come from one run on this machine:\n\n")
	fmt.Fprintf(&b, "- CPU: %s, %d cores\n- memory: %d GB\n- %s, %s\n\n", orUnknown(m.CPU), m.Cores, m.MemoryGB, m.OS, m.Go)
	if rep.Quick {
		b.WriteString("> **A -quick run**: one short pass of each benchmark, to check the report works. These figures are not worth publishing.\n\n")
	}
	b.WriteString("Figures are medians over the runs of a benchmark. No test asserts any of them; where one misses its budget, the section says so.\n")
	for _, s := range sections {
		sr := sectionResult(rep, s.ID)
		if sr == nil {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", s.Title, strings.TrimSpace(s.Intro))
		for _, r := range sr.Runs {
			if r.Error != "" {
				fmt.Fprintf(&b, "\n**Failed:** `%s`\n\n```\n%s\n```\n", r.Command, r.Error)
			}
		}
		if lines := s.Verdicts(sr); len(lines) > 0 {
			b.WriteString("\n")
			for _, l := range lines {
				fmt.Fprintf(&b, "- %s\n", l)
			}
		}
		b.WriteString("\n")
		b.WriteString(table(sr))
		b.WriteString("\nTo reproduce by hand, from the repository root:\n\n```sh\n")
		for _, r := range sr.Runs {
			fmt.Fprintf(&b, "%s\n", r.Command)
		}
		b.WriteString("```\n")
		if s.Notes != "" {
			fmt.Fprintf(&b, "\n%s\n", strings.TrimSpace(s.Notes))
		}
	}
	return b.String()
}

func sectionResult(rep Report, id string) *SectionResult {
	for i := range rep.Sections {
		if rep.Sections[i].ID == id {
			return &rep.Sections[i]
		}
	}
	return nil
}

// table lists every result of a section with every unit it reported,
// times in readable units.
func table(sr *SectionResult) string {
	var units []string
	var rows []Result
	for _, r := range sr.Runs {
		for _, res := range r.Results {
			rows = append(rows, res)
			for u := range res.Metrics {
				if !slices.Contains(units, u) && u != "MB/s" {
					units = append(units, u)
				}
			}
		}
	}
	if len(rows) == 0 {
		return "No figures.\n"
	}
	slices.SortFunc(units, func(a, b string) int { return unitRank(a) - unitRank(b) })
	var b strings.Builder
	b.WriteString("| benchmark |")
	for _, u := range units {
		fmt.Fprintf(&b, " %s |", unitHeader(u))
	}
	b.WriteString("\n| --- |")
	for range units {
		b.WriteString(" ---: |")
	}
	b.WriteString("\n")
	for _, res := range rows {
		fmt.Fprintf(&b, "| `%s` |", res.Name)
		for _, u := range units {
			v, ok := res.Metrics[u]
			if !ok {
				b.WriteString(" |")
				continue
			}
			fmt.Fprintf(&b, " %s |", formatUnit(v, u))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// unitRank orders columns: time per operation first, then percentiles,
// rates, memory, and the rest.
func unitRank(u string) int {
	switch {
	case u == "sec/op":
		return 0
	case strings.HasPrefix(u, "p50"):
		return 1
	case strings.HasPrefix(u, "p99"):
		return 2
	case strings.HasPrefix(u, "max"):
		return 3
	case strings.HasSuffix(u, "/s"):
		return 4
	case u == "B/op":
		return 6
	case u == "allocs/op":
		return 7
	}
	return 5
}

func unitHeader(u string) string {
	switch u {
	case "sec/op", "ns/op":
		return "time/op"
	}
	if p, ok := strings.CutSuffix(u, "-sec"); ok {
		return p
	}
	if p, ok := strings.CutSuffix(u, "-ms"); ok {
		return p
	}
	return u
}

// formatUnit prints a figure in its unit; times become readable durations.
func formatUnit(v float64, u string) string {
	switch {
	case u == "sec/op" || strings.HasSuffix(u, "-sec"):
		return duration(v * 1e9)
	case strings.HasSuffix(u, "-ms"):
		return duration(v * 1e6)
	case u == "B/op" || u == "payload-bytes":
		return bytesSize(v)
	}
	return number(v)
}

// duration prints nanoseconds with three significant digits.
func duration(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.3g s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.3g ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.3g µs", ns/1e3)
	}
	return fmt.Sprintf("%.3g ns", ns)
}

func bytesSize(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.3g GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.3g MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.3g KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// number prints a count or rate: whole numbers with thousands separators,
// small fractions with three significant digits.
func number(v float64) string {
	if math.Abs(v) < 100 && v != math.Trunc(v) {
		return fmt.Sprintf("%.3g", v)
	}
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func sectionIDs() string {
	var ids []string
	for _, s := range sections {
		ids = append(ids, s.ID)
	}
	return strings.Join(ids, ",")
}
