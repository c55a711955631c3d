package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serverMetrics are the Prometheus metrics of one server. Labels hold
// fixed words only: never a subject, key or token.
type serverMetrics struct {
	registry      *prometheus.Registry
	tokenRefusals *prometheus.CounterVec
}

func newServerMetrics() *serverMetrics {
	m := &serverMetrics{
		registry: prometheus.NewRegistry(),
		tokenRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fieldseal_token_refusals_total",
			Help: "Bearer tokens refused, by reason (the error_description of the 401).",
		}, []string{"reason"}),
	}
	m.registry.MustRegister(m.tokenRefusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *serverMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
