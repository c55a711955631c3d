package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// certReloader serves the certificate from certFile/keyFile and reads them
// again on demand (SIGHUP), so a renewed certificate takes effect for new
// handshakes without dropping a connection. A reload that fails keeps the
// certificate in use.
type certReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("FIELDSEAL_TLS_CERT/FIELDSEAL_TLS_KEY: %w", err)
	}
	r.cert.Store(&c)
	return nil
}

// reloadLogged is reload for the SIGHUP handler.
func (r *certReloader) reloadLogged(log *slog.Logger) {
	if err := r.reload(); err != nil {
		log.Error("certificate reload failed; keeping the current one", "error", err.Error())
		return
	}
	log.Info("certificate reloaded", "file", r.certFile)
}

// config is the server's TLS configuration: TLS 1.2 at least.
func (r *certReloader) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cert.Load(), nil
		},
	}
}
