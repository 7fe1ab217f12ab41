package bench

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// oursConsole is a dockerinit boot as the serial console shows it (abridged).
const oursConsole = "[    0.000000] Linux version 6.1.0-50-amd64\r\n" +
	"[    2.758770] Run /init as init process\r\n" +
	"[    2.903250] dockerinit: booting image sample_image from root=LABEL=linux\r\n" +
	"DITEST start uptime=5.23\r\n" +
	"DITEST image sample_image\r\n" +
	"DITEST bootjson {\r\n" +
	"DITEST bootjson   \"image\": \"sample_image\",\r\n" +
	"DITEST bootjson   \"steps\": [\r\n" +
	"DITEST bootjson     {\"name\": \"load modules\", \"ms\": 1730.5},\r\n" +
	"DITEST bootjson     {\"name\": \"make rw layer\", \"ms\": 68.2}\r\n" +
	"DITEST bootjson   ]\r\n" +
	"DITEST bootjson }\r\n" +
	"DITEST finished\r\n" +
	"[    6.544582] reboot: Power down\r\n"

// theirConsole is initramfs-tools booting the same image: no boot.json.
const theirConsole = "[    1.900000] Run /init as init process\n" +
	"Loading, please wait...\n" +
	"[    3.100000] Btrfs loaded\n" +
	"DITEST start uptime=9.87\n" +
	"DITEST bootjson missing\n"

func TestParseBoot(t *testing.T) {
	for _, tc := range []struct {
		name    string
		console string
		want    Boot
		wantErr error  // errors.Is
		errText string // else a part of the error
	}{
		{name: "dockerinit with boot.json", console: oursConsole,
			want: Boot{RunInitS: 2.75877, RealInitS: 5.23, FirstLineS: 2.90325, Steps: []Step{{"load modules", 1730.5}, {"make rw layer", 68.2}}}},
		{name: "first dockerinit line is the first after Run /init", console: "[ 0.5] dockerinit: an earlier boot's echo\n" +
			"[ 1.0] Run /init as init process\n[ 1.1] virtio_blk virtio0: [vda]\n[ 1.2] dockerinit: booting image x\n" +
			"[ 1.3] dockerinit: root device /dev/vda (LABEL=linux) found after 50ms\nDITEST start uptime=3\n",
			want: Boot{RunInitS: 1.0, RealInitS: 3, FirstLineS: 1.2, RootFoundS: 1.3, RootWaitS: 0.05, DiskS: 1.1}},
		{name: "marker cut by a kernel line", console: "[ 1.0] Run /init as init process\r\n" +
			"DITEST start upt[    4.196831] cdrom: Uniform CD-ROM driver Revision: 3.20\r\nime=4.16\r\nDITEST image x [vda]\r\n",
			want: Boot{RunInitS: 1.0, RealInitS: 4.16}},
		{name: "the floor's first line", console: "[ 1.0] Run /init as init process\n[ 1.05] floor: /init started\nDITEST start uptime=3\n",
			want: Boot{RunInitS: 1.0, RealInitS: 3, FirstLineS: 1.05}},
		{name: "the first line is the root device line", console: "[ 1.0] Run /init as init process\n" +
			"[ 1.3] dockerinit: root device /dev/vda (LABEL=linux) found after 50ms\nDITEST start uptime=3\n",
			want: Boot{RunInitS: 1.0, RealInitS: 3, FirstLineS: 1.3, RootFoundS: 1.3, RootWaitS: 0.05}},
		{name: "initramfs-tools without boot.json", console: theirConsole, want: Boot{RunInitS: 1.9, RealInitS: 9.87}},
		{name: "marker after kernel noise on one line", console: "[ 1.5] Run /init as init process\n[ 2.0] random: crng initDITEST start uptime=4.5\n",
			want: Boot{RunInitS: 1.5, RealInitS: 4.5}},
		{name: "no initramfs", console: "[ 1.0] Run /sbin/init as init process\nDITEST start uptime=3\n", wantErr: ErrNoBoot},
		{name: "init never started", console: "[ 1.0] Run /init as init process\n(initramfs) ", wantErr: ErrNoBoot},
		{name: "no printk time", console: "Run /init as init process\nDITEST start uptime=3\n", errText: "printk.time=1"},
		{name: "garbled uptime", console: "[ 1.0] Run /init as init process\nDITEST start uptime=abc\n", errText: "as /proc/uptime prints it"},
		{name: "empty uptime", console: "[ 1.0] Run /init as init process\nDITEST start uptime=\n", errText: "as /proc/uptime prints it"},
		{name: "two boots mixed", console: "[ 9.0] Run /init as init process\nDITEST start uptime=3.0\n", errText: "mixes two boots"},
		{name: "cut boot.json", console: "[ 1.0] Run /init as init process\nDITEST start uptime=3\nDITEST bootjson {\n", errText: "not the JSON dockerinit writes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBoot([]byte(tc.console))
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseBoot error = %v, want %v", err, tc.wantErr)
				}
			case tc.errText != "":
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("ParseBoot error = %v, want one saying %q", err, tc.errText)
				}
			case err != nil:
				t.Fatalf("ParseBoot: %v", err)
			case !reflect.DeepEqual(got, tc.want):
				t.Errorf("ParseBoot = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseBoot(f *testing.F) {
	f.Add([]byte(oursConsole))
	f.Add([]byte(theirConsole))
	f.Add([]byte("[ 1] Run /init as init process\nDITEST start uptime=1e9\n"))
	f.Fuzz(func(t *testing.T, console []byte) {
		b, err := ParseBoot(console)
		if err != nil {
			return
		}
		if b.RunInitS < 0 || b.RealInitS < b.RunInitS || b.RealInitS > 1e6 {
			t.Errorf("ParseBoot accepted an impossible timeline %+v", b)
		}
	})
}

func TestParseBootRootFound(t *testing.T) {
	late := "[    2.500000] Run /init as init process\n" +
		"[    2.600000] dockerinit: booting image sample_image from root=LABEL=linux subvol=load_rw_late docker_path=docker\n" +
		"[   19.250000] pcieport 0000:00:02.0: pciehp: Slot(1): Card present\n" +
		"[   19.400000] virtio_blk virtio1: [vda] 8388608 512-byte logical blocks (4.29 GB/4.00 GiB)\n" +
		"[   19.700000] dockerinit: root device /dev/vda (LABEL=linux) found after 17.05s\n" +
		"DITEST start uptime=21.30\n"
	for _, tc := range []struct {
		name                string
		console             string
		found, wait, diskAt float64
	}{
		{"late disk", late, 19.7, 17.05, 19.4},
		{"milliseconds, disk seen before /init", "[ 1.2] virtio_blk virtio0: [vda] 8388608 512-byte logical blocks\n" +
			"[ 2.0] Run /init as init process\n[ 2.3] dockerinit: root device /dev/vda (LABEL=linux) found after 319ms\nDITEST start uptime=4\n", 2.3, 0.319, 1.2},
		{"no kernel line for the disk", "[ 2.0] Run /init as init process\n[ 2.3] dockerinit: root device /dev/sdb (LABEL=linux) found after 1ms\nDITEST start uptime=4\n", 2.3, 0.001, 0},
		{"garbled duration", "[ 2.0] Run /init as init process\n[ 2.3] dockerinit: root device /dev/vda (LABEL=linux) found after soon\nDITEST start uptime=4\n", 0, 0, 0},
		{"not a device", "[ 2.0] Run /init as init process\n[ 2.3] dockerinit: root device vda (LABEL=linux) found after 1ms\nDITEST start uptime=4\n", 0, 0, 0},
		{"other generator", theirConsole, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBoot([]byte(tc.console))
			if err != nil {
				t.Fatalf("ParseBoot: %v", err)
			}
			if b.RootFoundS != tc.found || b.RootWaitS != tc.wait || b.DiskS != tc.diskAt {
				t.Errorf("found at %v after %v, disk at %v; want %v after %v, disk at %v",
					b.RootFoundS, b.RootWaitS, b.DiskS, tc.found, tc.wait, tc.diskAt)
			}
		})
	}
}
