#pragma once

// Thin wrappers over Linux syscalls that Swift cannot reach: glibc has no openat2()
// wrapper and syscall() is variadic. Each returns what libc would: -1 with errno set.

#include <stdint.h>
#include <linux/openat2.h>

/// Resolve `path` beneath `dirfd` under the RESOLVE_* rules in `resolve`, opening it with
/// `flags` and `mode` (see openat2(2)). Returns a descriptor, or -1 with errno.
int deckhand_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/// renameat2(2) with `flags` (RENAME_NOREPLACE, ...), so that "do not replace" is decided
/// by the kernel atomically rather than by a racy existence check. -1 with errno on failure.
int deckhand_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

// Flag values Swift's Glibc module does not show (they need _GNU_SOURCE or are
// composite macros); defined in openat2.c, where _GNU_SOURCE is set, so they are the
// values of the architecture being built.
extern const uint64_t deckhand_RESOLVE_IN_ROOT;
extern const uint64_t deckhand_RESOLVE_NO_MAGICLINKS;
extern const unsigned int deckhand_RENAME_NOREPLACE;
extern const int deckhand_O_PATH;
extern const int deckhand_O_TMPFILE;
extern const int deckhand_AT_EMPTY_PATH;

/// Starts asynchronous write-back of [offset, offset+count) of `fd`
/// (sync_file_range with SYNC_FILE_RANGE_WRITE), which Swift's Glibc module hides
/// behind _GNU_SOURCE. 0, or -1 with errno.
int deckhand_start_writeback(int fd, int64_t offset, int64_t count);
