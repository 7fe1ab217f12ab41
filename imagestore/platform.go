package imagestore

// Platforms: what an image runs on, and how a multi-platform image (an index, a manifest list)
// is followed to the image for this machine, the same way in the containerd and containers-storage
// stores.

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
)

// platform is an OCI platform: what an index entry runs on.
type platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// hostPlatform is the platform this program runs on. 32-bit arm is taken to be armv7, which
// every arm board that boots a distribution kernel with overlayfs is.
func hostPlatform() platform {
	p := platform{OS: "linux", Architecture: runtime.GOARCH}
	return p.normalize()
}

func (p platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// normalize spells a platform as containerd compares it: Go's architecture names, arm64's
// variant v8 implied, 32-bit arm's v7.
func (p platform) normalize() platform {
	p.OS = strings.ToLower(p.OS)
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "i386":
		p.Architecture = "386"
	case "aarch64":
		p.Architecture = "arm64"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	}
	if len(p.Variant) == 1 && p.Variant[0] >= '5' && p.Variant[0] <= '8' {
		p.Variant = "v" + p.Variant
	}
	switch {
	case p.Architecture == "arm64" && p.Variant == "":
		p.Variant = "v8"
	case p.Architecture == "arm" && p.Variant == "":
		p.Variant = "v7"
	case p.Architecture == "amd64" && p.Variant == "v1":
		p.Variant = ""
	}
	return p
}

// rank says how well an image for have runs on want (both normalized): 0 not at all, 10
// exactly, less for an older 32-bit arm variant (v5 to v7), which newer arm CPUs run.
func (want platform) rank(have platform) int {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return 0
	}
	if have.Variant == want.Variant {
		return 10
	}
	if want.Architecture == "arm" && armVersion(have.Variant) > 0 && armVersion(have.Variant) < armVersion(want.Variant) {
		return 10 - armVersion(want.Variant) + armVersion(have.Variant)
	}
	return 0
}

// armVersion is 5 to 8 for arm variants v5 to v8, 0 for anything else.
func armVersion(variant string) int {
	if len(variant) == 2 && variant[0] == 'v' && variant[1] >= '5' && variant[1] <= '8' {
		return int(variant[1] - '0')
	}
	return 0
}

// pick chooses the index's entry for the platform want: the best match, the first of equals.
// Unlike containerd, it does not try the next best when the best one's blob is missing: that
// image was pulled for other platforms only, which the error then says.
func (m manifest) pick(want platform) (descriptor, error) {
	best, bestRank := -1, 0
	var have []string
	for i, d := range m.Manifests {
		switch d.MediaType {
		case mediaOCIIndex, mediaDockerList, mediaOCIManifest, mediaDockerV2:
		default:
			continue
		}
		r := 1 // an entry without a platform runs anywhere, as containerd takes it, but last
		if d.Platform != nil {
			p := d.Platform.normalize()
			if p.OS != "unknown" { // buildx's attestations are unknown/unknown
				have = append(have, p.String())
			}
			r = want.rank(p)
		}
		if r > bestRank {
			best, bestRank = i, r
		}
	}
	if best < 0 {
		if len(have) == 0 {
			return descriptor{}, &PlatformError{fmt.Sprintf("its index lists no image manifest, so none for %s", want)}
		}
		return descriptor{}, &PlatformError{fmt.Sprintf("it has no manifest for %s, only for %s: build or pull the image for %s", want, strings.Join(slices.Compact(have), ", "), want)}
	}
	return m.Manifests[best], nil
}
