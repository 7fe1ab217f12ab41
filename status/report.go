package status

import (
	"fmt"
	"time"
)

// BootJSON is where the init leaves its Report for the booted system.
const BootJSON = "/run/dockerinit/boot.json"

// StepTime is one step's name and duration, as boot.json records it.
type StepTime struct {
	Name string  `json:"name"`
	MS   float64 `json:"ms"`
}

// Report is what booted, written to /run/dockerinit/boot.json for `dockerinit status`.
type Report struct {
	Image       string     `json:"image"`
	Images      []string   `json:"images,omitempty"`      // the list the boot entry named, when more than one or counted
	Tries       int        `json:"tries,omitempty"`       // dockerinit.tries
	Why         string     `json:"why,omitempty"`         // why this image of the list: "try 1 of 3", "marked good", ...
	PassedOver  []string   `json:"passed_over,omitempty"` // the images before it, each with its reason
	CountFile   string     `json:"count_file,omitempty"`  // the boot-counting record, as the booted system sees it
	ImageID     string     `json:"image_id"`
	ImageNames  []string   `json:"image_names,omitempty"`
	Created     time.Time  `json:"image_created"`
	ChainID     string     `json:"chain_id"`
	Layer       string     `json:"layer"`
	RWLayer     string     `json:"rw_layer"`
	DockerPath  string     `json:"docker_path"`
	Store       string     `json:"store,omitempty"`     // the store's kind, e.g. "Docker's overlay2 storage driver"
	RootKind    string     `json:"root_kind,omitempty"` // how the root was made: "btrfs snapshot" or "overlayfs"
	Layers      int        `json:"layers,omitempty"`    // the image's layers under the overlay; 1 for a snapshot
	RootDevice  string     `json:"root_device"`
	RootSpec    string     `json:"root_spec"`
	TopLayer    string     `json:"toplayer,omitempty"`
	TopFiles    int        `json:"toplayer_entries"`
	Init        string     `json:"init"`
	Kernel      string     `json:"kernel"`
	StartedS    float64    `json:"started_s"` // seconds since the kernel started, when /init began
	Steps       []StepTime `json:"steps"`
	TotalMS     float64    `json:"total_ms"`
	ModulesLoad int        `json:"modules_loaded"`
	// SecureBoot is the firmware's SecureBoot variable as the boot read it: "on", "off", or
	// empty when it could not be read (no UEFI, no efivarfs).
	SecureBoot string `json:"secure_boot,omitempty"`
	// CmdlineSealed: the boot took its parameters from the command line signed into the UKI
	// (boot.sealed_cmdline); Ignored are the words the boot loader passed besides, left unused.
	CmdlineSealed bool     `json:"cmdline_sealed,omitempty"`
	Ignored       []string `json:"ignored_params,omitempty"`
}

// SecureBootVar is the efivarfs file of the firmware's SecureBoot variable (EFI global GUID).
const SecureBootVar = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// ParseSecureBoot reads the contents of an efivarfs file of SecureBoot: four bytes of
// attributes, then one byte, 1 when Secure Boot is enforcing.
func ParseSecureBoot(data []byte) (string, error) {
	if len(data) != 5 {
		return "", fmt.Errorf("%s holds %d bytes: want 4 of attributes and 1 of value", SecureBootVar, len(data))
	}
	switch data[4] {
	case 0:
		return "off", nil
	case 1:
		return "on", nil
	}
	return "", fmt.Errorf("%s is %d: want 0 or 1", SecureBootVar, data[4])
}
