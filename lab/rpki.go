package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
)

// StayRTR is Debian's RTR cache (RFC 8210), serving the VRPs of a JSON file.
const StayRTR = "/usr/bin/stayrtr"

// VRP is one validated ROA payload: prefix up to MaxLength, origin ASN.
type VRP struct {
	Prefix    netip.Prefix
	MaxLength int
	ASN       uint32
}

// WriteVRPs writes vrps to path in the JSON format of rpki-client and
// stayrtr, atomically (a reader never sees half a file).
func WriteVRPs(path string, vrps []VRP) error {
	type roa struct {
		Prefix    string `json:"prefix"`
		MaxLength int    `json:"maxLength"`
		ASN       string `json:"asn"`
	}
	doc := struct {
		ROAs []roa `json:"roas"`
	}{ROAs: []roa{}}
	for _, v := range vrps {
		doc.ROAs = append(doc.ROAs, roa{Prefix: v.Prefix.String(), MaxLength: v.MaxLength, ASN: fmt.Sprintf("AS%d", v.ASN)})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// StartStayRTR runs stayrtr in role's namespace serving the VRP file
// vrps (see WriteVRPs) on bind (ADDR:PORT), re-reading it every second
// and notifying its clients of changes. Its metrics listen on
// 127.0.0.1:9847 of the namespace.
func (l *Lab) StartStayRTR(role, vrps, bind string) (*Proc, error) {
	if _, err := exec.LookPath(StayRTR); err != nil {
		return nil, errors.New("stayrtr not installed (apt-get install stayrtr, or make deps)")
	}
	return l.Start(role, "stayrtr", StayRTR, "-cache", vrps, "-bind", bind, "-checktime=false",
		"-refresh", "1", "-metrics.addr", "127.0.0.1:9847", "-log.verbose=false")
}
