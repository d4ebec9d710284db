package lab

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
)

// BIRDSocket is the control socket of a BIRD started with dir (by StartBIRD
// or StartBIRDConf).
func BIRDSocket(dir string) string { return filepath.Join(dir, "bird.ctl") }

// StartBIRDConf runs BIRD 2 with the configuration text conf (written to
// dir/bird.conf) in role's namespace, in the foreground (the lab stops it
// by PID). For configs StartBIRD does not generate: per-route attributes,
// protocols toggled at run time, BIRD as the router.
func (l *Lab) StartBIRDConf(role, dir, conf string) (*Proc, error) {
	path := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return l.StartBIRDFile(role, dir, path)
}

// StartBIRDFile is StartBIRDConf with the configuration already in file
// path (large generated configs are written straight to disk).
func (l *Lab) StartBIRDFile(role, dir, path string) (*Proc, error) {
	if _, err := exec.LookPath("bird"); err != nil {
		return nil, errors.New("bird not installed (apt-get install bird2, or make deps)")
	}
	return l.Start(role, "bird", "bird", "-f", "-c", path, "-s", BIRDSocket(dir), "-P", filepath.Join(dir, "bird.pid"))
}
