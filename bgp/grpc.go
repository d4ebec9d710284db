package bgp

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/xdprouter/xdprouter/config"
)

// GoBGP's gRPC API has no authentication: whoever can connect can add
// paths, neighbors and policies. On a Unix socket (the default), access is
// decided by the socket's directory: created with mode 0700, and refused
// if it exists owned by another user or open to others. GoBGP opens the
// listener itself, in a goroutine, so the directory is what guards the
// socket from the first moment (whatever mode the socket file gets).

// prepareGRPC checks that GoBGP can listen on api.grpc-listen: a busy TCP
// port, or an unsafe socket directory, is an error here rather than a log
// line from GoBGP's goroutine.
func prepareGRPC(listen string) error {
	path, ok := config.API{GRPCListen: listen}.GRPCSocket()
	if !ok {
		return probeListen("tcp", listen)
	}
	if err := secureSocketDir(filepath.Dir(path)); err != nil {
		return err
	}
	// A socket left by a previous instance that did not stop cleanly;
	// anything else at the path is not ours to remove.
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("%s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return err
		}
	}
	return probeListen("unix", path)
}

// secureSocketDir creates dir (mode 0700) if needed and checks that it is
// a directory owned by this process's user that grants others nothing.
func secureSocketDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return fmt.Errorf("socket directory %s is not a directory", dir)
	case !ok || int(sys.Uid) != os.Geteuid():
		return fmt.Errorf("socket directory %s is not owned by uid %d (this process): others could reach the unauthenticated gRPC API", dir, os.Geteuid())
	case st.Mode().Perm()&0o007 != 0:
		return fmt.Errorf("socket directory %s has mode %04o: others could reach the unauthenticated gRPC API (chmod o-rwx %s)", dir, st.Mode().Perm(), dir)
	}
	return nil
}

func probeListen(network, addr string) error {
	l, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true) // GoBGP creates the socket again
	}
	return l.Close()
}
