// Package bench owns the performance comparison that `make bench` runs: the figures one run
// measured (initramfs sizes, build times, boots, top layer copies, snapshots), how they compare
// with the targets, and how they are written out (a Markdown report, an SVG chart, the README's
// Performance section). The measuring itself, which needs root, loop devices and QEMU, lives in
// bench/cmd/bench; everything here is pure so its tests run anywhere.
package bench

import (
	"slices"
	"time"
)

// Results is everything one bench run measured, on one machine, in one go.
type Results struct {
	Date      time.Time  `json:"date"`
	Machine   Machine    `json:"machine"`
	Initrds   []Initrd   `json:"initrds"`
	TopLayer  TopLayer   `json:"toplayer"`
	Snapshots []Snapshot `json:"snapshots"`
	// UKI is the Unified Kernel Image of the image, nil when it was not built.
	UKI *UKI `json:"uki,omitempty"`
	// Load is the load cases, nil when they were not measured.
	Load *Load `json:"load,omitempty"`
	// Notes are what the run itself observed and the reader must know, such as a comparison
	// that could not be made and why.
	Notes []string `json:"notes,omitempty"`
}

// Machine is what the figures were measured on.
type Machine struct {
	CPU         string    `json:"cpu"`
	Cores       int       `json:"cores"`
	MemoryGB    float64   `json:"memory_gb"`
	HostKernel  string    `json:"host_kernel"`
	Image       string    `json:"image"`        // the Docker image every initramfs was built for
	GuestKernel string    `json:"guest_kernel"` // that image's kernel, booted by every initramfs
	QEMU        string    `json:"qemu"`         // the QEMU settings every boot shared
	Versions    []Version `json:"versions"`
}

// Version names one component and its version.
type Version struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Initrd is one initramfs generator's figures.
type Initrd struct {
	Name      string    `json:"name"`  // "dockerinit (generic)", "initramfs-tools", "dracut", "floor"
	Ours      bool      `json:"ours"`  // built by mkbootimg
	Build     string    `json:"build"` // the command that was timed
	SizeBytes int64     `json:"size_bytes"`
	Parts     []Part    `json:"parts,omitempty"` // its content, uncompressed, by kind
	BuildS    []float64 `json:"build_s"`         // one wall-clock build time per run
	Boots     []Boot    `json:"boots,omitempty"` // none when it was not booted
	// Floor marks the bench's own minimal /init (bench/floor): the least any initramfs must do.
	Floor bool `json:"floor,omitempty"`
	// GoFloor marks the floor's work done by a Go program (bench/floor/gofloor): its start-up is
	// Go's own on this kernel and VM.
	GoFloor bool `json:"go_floor,omitempty"`
	// Store names the image store it boots from when that is not the fixture's (Docker's btrfs
	// driver), e.g. "Docker overlay2 on ext4": one of ours booting an overlayfs of the image's
	// layers, compared with ours booting the btrfs snapshot.
	Store string `json:"store,omitempty"`
}

// UKI is the Unified Kernel Image mkbootimg uki builds for the image with the generic
// initramfs's flags (unsigned, built once, not booted), against the kernel and initramfs it
// holds as two files apart: what the EFI stub, the other sections and their alignment add.
type UKI struct {
	Build     string `json:"build"` // the command that built it
	SizeBytes int64  `json:"size_bytes"`
	// KernelBytes and InitrdBytes are its .linux and .initrd sections: the image's kernel and the
	// initramfs mkbootimg uki built (the generic one with efivarfs and the command line sealed).
	KernelBytes int64 `json:"kernel_bytes"`
	InitrdBytes int64 `json:"initrd_bytes"`
	// Ratio is SizeBytes / (KernelBytes + InitrdBytes), the figure the target bounds.
	Ratio float64 `json:"ratio"`
}

// Part is one kind of content of an initramfs, uncompressed.
type Part struct {
	Name  string `json:"name"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

// Boot is one boot's timeline on the guest clock (seconds since the kernel started).
type Boot struct {
	RunInitS  float64 `json:"run_init_s"`  // the kernel's "Run /init as init process"
	RealInitS float64 `json:"real_init_s"` // the image's init started
	// FirstLineS is the time stamp of dockerinit's first console line ("dockerinit: ..."), or the
	// floor's (FloorFirstLine): from RunInitS to it is the program's start-up (for dockerinit Go's
	// runtime, package init and what PID 1 does before it says anything); 0 for other generators.
	FirstLineS float64 `json:"first_line_s,omitempty"`
	// Steps are dockerinit's own per-step durations from boot.json; other initramfs
	// generators do not report any.
	Steps []Step `json:"steps,omitempty"`
	// RootFoundS is when dockerinit logged that it found the root device, RootWaitS how long
	// it had looked for it by then, and DiskS when the kernel first named that disk ("[vda]");
	// 0 when the console does not say (other initramfs generators).
	RootFoundS float64 `json:"root_found_s,omitempty"`
	RootWaitS  float64 `json:"root_wait_s,omitempty"`
	DiskS      float64 `json:"disk_s,omitempty"`
}

// Step is one boot step as boot.json records it.
type Step struct {
	Name string  `json:"name"`
	MS   float64 `json:"ms"`
}

// InitramfsS is the time the initramfs took: from the kernel running /init to the real init.
func (b Boot) InitramfsS() float64 { return b.RealInitS - b.RunInitS }

// TopLayer is the top layer apply comparison on one generated tree.
type TopLayer struct {
	Files int        `json:"files"`
	Bytes int64      `json:"bytes"`
	Cases []CopyCase `json:"cases"`
}

// CopyCase is toplayer.Apply against `cp -a` for one placement of the source tree.
type CopyCase struct {
	Name   string    `json:"name"`    // e.g. "same btrfs (reflinks)"
	SameFS bool      `json:"same_fs"` // the source is on the destination's btrfs
	ApplyS []float64 `json:"apply_s"`
	CpS    []float64 `json:"cp_s"`
}

// Snapshot is the cost of making the rw layer of an image of a given size: a btrfs snapshot of
// it, and an overlayfs mounted over it (and unmounted), as the boot does on an overlay store.
type Snapshot struct {
	Name  string    `json:"name"` // e.g. "0.5 GB image"
	Files int       `json:"files"`
	Bytes int64     `json:"bytes"`
	MS    []float64 `json:"ms"` // btrfs.Snapshot
	// OverlayMountMS and OverlayUmountMS time mounting an overlayfs with the image as its lower
	// folder and fresh upper and work folders (volatile), and unmounting it; none when not measured.
	OverlayMountMS  []float64 `json:"overlay_mount_ms,omitempty"`
	OverlayUmountMS []float64 `json:"overlay_umount_ms,omitempty"`
}

// Median is the middle of xs (the mean of the two middle values for an even count), 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MedianBoot is the boot whose initramfs time is the median one (the lower middle for an even
// count), so that its steps can be shown as a real timeline; false when there were no boots.
func MedianBoot(boots []Boot) (Boot, bool) {
	if len(boots) == 0 {
		return Boot{}, false
	}
	s := slices.Clone(boots)
	slices.SortStableFunc(s, func(a, b Boot) int {
		switch {
		case a.InitramfsS() < b.InitramfsS():
			return -1
		case a.InitramfsS() > b.InitramfsS():
			return 1
		}
		return 0
	})
	return s[(len(s)-1)/2], true
}

// StartupS is the time from the kernel running /init to dockerinit's first console line; 0 when
// the console had no such line.
func (b Boot) StartupS() float64 {
	if b.FirstLineS == 0 {
		return 0
	}
	return b.FirstLineS - b.RunInitS
}

// bootMedians returns the medians of the initramfs time and of the kernel start to real init.
func bootMedians(boots []Boot) (initramfs, total float64) {
	var a, b []float64
	for _, x := range boots {
		a = append(a, x.InitramfsS())
		b = append(b, x.RealInitS)
	}
	return Median(a), Median(b)
}
