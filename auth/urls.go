package auth

import (
	"fmt"
	"net"
	"net/url"
)

// CheckRemoteURL accepts https URLs, and http URLs only on loopback hosts
// (a provider on the same machine), so that keys are never fetched over a
// network in the clear.
func CheckRemoteURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if LoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q must use https (plain http is allowed only on loopback hosts)", raw)
	default:
		return fmt.Errorf("%q must be an https URL", raw)
	}
}

// LoopbackHost reports whether host (a name or an address, no port) is
// this machine: localhost or a loopback address.
func LoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
