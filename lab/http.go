package lab

import (
	"context"
	"net"
	"net/http"
	"time"
)

// HTTPClient returns an HTTP client whose connections are made inside
// role's namespace (127.0.0.1 is that namespace's loopback). Connections
// are kept alive and reused, so a test can make many requests (lookups,
// profiles) cheaply; CloseIdleConnections (or the namespace's removal)
// ends them.
func (l *Lab) HTTPClient(role string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		// The transport dials on a goroutine of its own: the socket must be
		// created on a thread inside the namespace, and stays there.
		err := l.Do(role, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4, DisableCompression: true},
	}
}
