package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The alert rules fire on the series they watch and stay quiet on
// ordinary ones (promtool's unit tests, deploy/prometheus/alerts_test.yml).
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: the alert rules are checked with it (apt-get install prometheus)")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../deploy/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Every metric the alert rules and the Grafana dashboard read is one
// fieldseal serve exports (or Prometheus's own up), and the dashboard is
// a dashboard: JSON, a panel a query.
func TestOperatorsFilesReadMetricsThatExist(t *testing.T) {
	t.Parallel()
	m := newServerMetrics()
	m.observeRequest("/v1/records", "GET", 200, "", time.Millisecond)
	m.observeJWKS("background", true)
	m.observeAudit("record.read", "ok")
	m.observeAuditFailure("record.create")
	m.tokenRefusals.WithLabelValues("bad signature").Inc()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none") // never connects
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m.registerPool(pool.Stat)
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{"up": true}
	for _, f := range families {
		exported[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exported[f.GetName()+s] = true
			}
		}
	}
	names := regexp.MustCompile(`\b(?:fieldseal|process|go)_[a-z_]+\b|\bup\b`)
	for _, file := range []string{"../../deploy/prometheus/alerts.yml", "../../deploy/grafana/fieldseal.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.HasSuffix(file, ".json") {
			var d struct {
				Panels []struct {
					Title   string
					Targets []struct{ Expr string }
				}
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			text = ""
			for _, p := range d.Panels {
				if len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", file, p.Title)
				}
				for _, q := range p.Targets {
					text += q.Expr + "\n"
				}
			}
		} else {
			text = exprLines(text)
		}
		used := names.FindAllString(text, -1)
		if len(used) == 0 {
			t.Fatalf("%s reads no metric: the check would prove nothing", file)
		}
		for _, name := range used {
			if !exported[name] {
				t.Errorf("%s reads %s, which fieldseal serve does not export", file, name)
			}
		}
	}
}

// exprLines is the expressions of a rules file: its lines after expr:,
// comments dropped.
func exprLines(rules string) string {
	var out []string
	in := false
	for _, line := range strings.Split(rules, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "expr:"):
			in = true
			out = append(out, strings.TrimPrefix(trimmed, "expr:"))
		case in && (strings.HasPrefix(trimmed, "for:") || strings.HasPrefix(trimmed, "labels:") || strings.HasPrefix(trimmed, "annotations:") || strings.HasPrefix(trimmed, "- alert:")):
			in = false
		case in && !strings.HasPrefix(trimmed, "#"):
			out = append(out, trimmed)
		}
	}
	return strings.Join(out, "\n")
}
