package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serverMetrics are the Prometheus metrics of one server. Labels hold
// fixed words only (route templates, methods, statuses, codes, reasons,
// actions): never a subject, key, token, id or path.
type serverMetrics struct {
	registry      *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	tokenRefusals *prometheus.CounterVec
	wrongKeys     prometheus.Counter
	jwksRefreshes *prometheus.CounterVec
	auditAppends  *prometheus.CounterVec
	auditFailures *prometheus.CounterVec
}

func newServerMetrics() *serverMetrics {
	m := &serverMetrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fieldseal_http_requests_total",
			Help: "HTTP requests by route template, method, status and error code.",
		}, []string{"route", "method", "status", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fieldseal_http_request_duration_seconds",
			Help:    "HTTP request latency by route template and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route", "method"}),
		tokenRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fieldseal_token_refusals_total",
			Help: "Bearer tokens refused, by reason (the error_description of the 401).",
		}, []string{"reason"}),
		wrongKeys: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fieldseal_wrong_key_refusals_total",
			Help: "Requests refused with 403 wrong_key.",
		}),
		jwksRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fieldseal_jwks_refreshes_total",
			Help: "JWKS fetches by trigger (background, unknown_kid) and result (ok, error).",
		}, []string{"trigger", "result"}),
		auditAppends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fieldseal_audit_appends_total",
			Help: "Audit entries committed, by action and outcome.",
		}, []string{"action", "outcome"}),
		auditFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fieldseal_audit_append_failures_total",
			Help: "Requests that failed because their audit entry did not commit (its append or the COMMIT failed), by action.",
		}, []string{"action"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.tokenRefusals, m.wrongKeys, m.jwksRefreshes, m.auditAppends, m.auditFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *serverMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// observeRequest is handlers.Options.Observe.
func (m *serverMetrics) observeRequest(route, method string, status int, code string, latency time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status), code).Inc()
	m.latency.WithLabelValues(route, method).Observe(latency.Seconds())
	if code == "wrong_key" {
		m.wrongKeys.Inc()
	}
}

func (m *serverMetrics) observeJWKS(trigger string, ok bool) {
	result := "ok"
	if !ok {
		result = "error"
	}
	m.jwksRefreshes.WithLabelValues(trigger, result).Inc()
}

func (m *serverMetrics) observeAudit(action, outcome string) {
	m.auditAppends.WithLabelValues(action, outcome).Inc()
}

func (m *serverMetrics) observeAuditFailure(action string) {
	m.auditFailures.WithLabelValues(action).Inc()
}

// registerPool exports the connection pool's statistics, read at scrape time.
func (m *serverMetrics) registerPool(stat func() *pgxpool.Stat) {
	gauge := func(name, help string, f func(*pgxpool.Stat) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(stat()) })
	}
	counter := func(name, help string, f func(*pgxpool.Stat) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(stat()) })
	}
	m.registry.MustRegister(
		gauge("fieldseal_db_pool_connections", "Open connections to PostgreSQL.", func(s *pgxpool.Stat) float64 { return float64(s.TotalConns()) }),
		gauge("fieldseal_db_pool_acquired_connections", "Connections in use.", func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) }),
		gauge("fieldseal_db_pool_idle_connections", "Idle connections.", func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) }),
		gauge("fieldseal_db_pool_max_connections", "The pool's size.", func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) }),
		counter("fieldseal_db_pool_acquires_total", "Connections acquired from the pool.", func(s *pgxpool.Stat) float64 { return float64(s.AcquireCount()) }),
		counter("fieldseal_db_pool_empty_acquires_total", "Acquires that had to wait for a connection.", func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) }),
		counter("fieldseal_db_pool_acquire_wait_seconds_total", "Time spent waiting for connections.", func(s *pgxpool.Stat) float64 { return s.AcquireDuration().Seconds() }),
	)
}
