package kmod

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// NoDriver names the storage devices that neither the sysfs scan nor later uevents found a
// bundled module for, and nothing else.
func TestLoaderNoDriver(t *testing.T) {
	const (
		ahciPCI    = "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"
		xhciPCI    = "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30"
		usbStorage = "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00"
	)
	root := planTree(t, map[string]string{
		"sys/devices/pci0000:00/0000:00:04.0/modalias": virtioPCI + "\n", // virtio_pci drives it
		"sys/devices/pci0000:00/0000:00:1f.2/modalias": ahciPCI + "\n",   // ahci is not bundled
		"sys/devices/pci0000:00/0000:00:1d.0/modalias": xhciPCI + "\n",   // nor xhci_pci
		"sys/devices/platform/serial8250/modalias":     "platform:serial8250\n",
		"sys/devices/system/cpu/modalias":              cpuSSSE3 + "\n",
	})
	l, ev := testLoader(t, root, &fakeLoader{})
	ev.send("add", "/devices/pci0000:00/0000:00:04.0/virtio1", virtioDisk) // virtio_blk drives it
	ev.send("add", "/devices/usb1/1-1/1-1:1.0", usbStorage)
	ev.send("add", "/devices/target0:0:0/0:0:0:0", "scsi:t-0x00")
	ev.send("add", "/devices/target0:0:0/0:0:0:0", "scsi:t-0x00") // seen once
	ev.send("add", "/devices/pci0000:00/0000:00:06.0", "pci:v00008086d00001234sv0sd0bc02sc00i00")
	ctx, cancel := context.WithCancel(t.Context())
	watched := make(chan error, 1)
	go func() { watched <- l.Watch(ctx) }()
	l.Coldplug(filepath.Join(root, "sys/devices"))
	want := []string{
		xhciPCI + " (PCI USB controller)",
		ahciPCI + " (PCI mass-storage controller)",
		"scsi:t-0x00 (SCSI disk)",
		usbStorage + " (USB mass-storage device)",
	}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(l.NoDriver(), want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	l.Wait()
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	if got := l.NoDriver(); !slices.Equal(got, want) {
		t.Errorf("NoDriver =\n %q\nwant\n %q", got, want)
	}
}

func TestStorageKind(t *testing.T) {
	for m, want := range map[string]string{
		"pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02": "PCI mass-storage controller",
		"pci:v00008086d000024CDsv00001AF4sd00001100bc0Csc03i20": "PCI USB controller",
		"pci:v00001217d00008621sv00001028sd000007A0bc08sc05i01": "PCI SD host controller",
		"pci:v00008086d00001234sv0sd0bc02sc00i00":               "",
		"pci:v00008086bc":                                    "",
		"virtio:d00000002v00001AF4":                          "virtio disk",
		"virtio:d00000008v00001AF4":                          "virtio SCSI controller",
		"virtio:d00000001v00001AF4":                          "",
		"usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00":  "USB mass-storage device",
		"usb:v046Dp C52Bd1211dc00dsc00dp00ic03isc01ip01in00": "",
		"scsi:t_0x05":                                        "CD/DVD drive",
		"scsi:t_0x01":                                        "",
		"mmc:block":                                          "SD/MMC card",
		"acpi:PNP0303:":                                      "",
		"":                                                   "",
	} {
		if got := storageKind(m); got != want {
			t.Errorf("storageKind(%q) = %q, want %q", m, got, want)
		}
	}
}

func FuzzStorageKind(f *testing.F) {
	for _, s := range []string{"pci:bc01sc", "pci:v0bc0Csc03i0", "virtio:d00000002v", "usb:ic08", "scsi:t_0x00", "mmc:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, m string) { storageKind(m) })
}
