// unshare() and CLONE_NEWNS need _GNU_SOURCE, which Swift's Glibc module does not set.
#define _GNU_SOURCE
#include <sched.h>
#include <sys/mount.h>
#include "CLibFuzzer.h"

int deckhand_fuzz_mount_proc(const char *path) {
    if (unshare(CLONE_NEWNS) != 0) return -1;
    // Private first, so the procfs mounted next is not propagated to the host's namespace.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return -1;
    return mount("proc", path, "proc", 0, NULL);
}
