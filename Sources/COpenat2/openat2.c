#define _GNU_SOURCE
#include "COpenat2.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

const uint64_t deckhand_RESOLVE_IN_ROOT = RESOLVE_IN_ROOT;
const uint64_t deckhand_RESOLVE_NO_MAGICLINKS = RESOLVE_NO_MAGICLINKS;
const unsigned int deckhand_RENAME_NOREPLACE = RENAME_NOREPLACE;
const int deckhand_O_PATH = O_PATH;
const int deckhand_O_TMPFILE = O_TMPFILE;
const int deckhand_AT_EMPTY_PATH = AT_EMPTY_PATH;

int deckhand_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int deckhand_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

int deckhand_start_writeback(int fd, int64_t offset, int64_t count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}
