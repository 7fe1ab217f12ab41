/*
 * floor: the /init of the bench's "floor" initramfs, the least any initramfs must do on the
 * bench's kernel and VM to reach the same real init on the same disk. It loads exactly the
 * modules dockerinit's boot loaded (the bench reads them from /proc/modules after a boot of
 * dockerinit's initramfs), with finit_module, each in its own thread once the modules it
 * depends on are in (the schedule dockerinit's loader follows, without its coldplug scan), waits
 * for the root device node, mounts the rw layer the bench made beforehand, moves /dev and mounts
 * /proc for the real init, and switches root. Nothing else: no command line, no config, no
 * probing, no cleanup of the initramfs, no logging but one kernel log line at its start (the
 * bench's start-up figure) and on failure.
 *
 * C on purpose: Go's own start-up is part of what the bench measures of dockerinit, so the
 * floor must not pay it. Built by the bench (bench/cmd/bench/floor.go) with
 * gcc -static -Os -pthread, with plan.h generated for the run (bench/floor.go, FloorHeader):
 *   ROOT_DEV, ROOT_FSTYPE, ROOT_OPTS, REAL_INIT, FS_MODULE (index of the root fs's module, -1: built
 *   in), MAX_DEPS and MODULES, { { "/lib/modules/.../x.ko", { dep, ..., -1 } }, ... }.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "plan.h"

struct module {
	const char *path;
	int deps[MAX_DEPS]; /* indices into mods[] of earlier modules, ended by -1 */
};

static const struct module mods[] = MODULES;

#define NMODS (int)(sizeof(mods) / sizeof(mods[0]))

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int done[NMODS];

static int fail(const char *what, const char *arg)
{
	fprintf(stderr, "floor: %s %s: %s\n", what, arg, strerror(errno));
	return 1; /* PID 1 exiting panics the kernel: the bench sees a failed boot */
}

static void wait_done(int i)
{
	pthread_mutex_lock(&mu);
	while (!done[i])
		pthread_cond_wait(&changed, &mu);
	pthread_mutex_unlock(&mu);
}

static void *load(void *arg)
{
	int i = (int)(long)arg;
	for (int k = 0; mods[i].deps[k] >= 0; k++)
		wait_done(mods[i].deps[k]);
	int fd = open(mods[i].path, O_RDONLY | O_CLOEXEC);
	/* A failed load is not fatal, as in dockerinit: the mount says whether it mattered. */
	if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST))
		fprintf(stderr, "floor: load %s: %s\n", mods[i].path, strerror(errno));
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&mu);
	done[i] = 1;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(void)
{
	pthread_t threads[NMODS];
	/* The kernel mounts no devtmpfs for an initramfs's /init: the root device's node needs it. */
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") != 0)
		return fail("mount", "/dev");
	/* The one thing beyond the least: a kernel log line as early as dockerinit's could be, so the
	 * bench can set dockerinit's start-up (Run /init to its first line) against a C program's. */
	int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (kmsg >= 0) {
		static const char line[] = FLOOR_FIRST_LINE "\n";
		if (write(kmsg, line, sizeof(line) - 1) < 0) {
			/* only a figure is lost */
		}
		close(kmsg);
	}
	for (int i = 0; i < NMODS; i++)
		if (pthread_create(&threads[i], NULL, load, (void *)(long)i) != 0)
			return fail("thread for", mods[i].path);

	struct stat st;
	const struct timespec ms = {0, 1000000};
	for (int tries = 0; stat(ROOT_DEV, &st) != 0; tries++) {
		if (tries == 60000)
			return fail("wait for", ROOT_DEV);
		nanosleep(&ms, NULL);
	}
	if (FS_MODULE >= 0)
		wait_done(FS_MODULE);
	if (mount(ROOT_DEV, "/mnt", ROOT_FSTYPE, 0, ROOT_OPTS) != 0)
		return fail("mount", ROOT_DEV);
	if (mount("proc", "/mnt/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "") != 0)
		return fail("mount", "/mnt/proc");
	/* Every load ends before the switch, as in dockerinit: a module's init must not outlive
	 * the initramfs it was read from. */
	for (int i = 0; i < NMODS; i++)
		pthread_join(threads[i], NULL);
	if (mount("/dev", "/mnt/dev", NULL, MS_MOVE, NULL) != 0)
		return fail("move /dev to", "/mnt/dev");
	if (chdir("/mnt") != 0 || mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0 || chdir("/") != 0)
		return fail("switch root to", "/mnt");
	char *argv[] = {REAL_INIT, NULL};
	execv(REAL_INIT, argv);
	return fail("exec", REAL_INIT);
}
