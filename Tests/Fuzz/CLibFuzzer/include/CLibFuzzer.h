#ifndef DECKHAND_CLIBFUZZER_H
#define DECKHAND_CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, present when linked with -sanitize=fuzzer): parses
/// the libFuzzer flags in argv and calls `callback` with each input.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

/// In a mount namespace of the calling process's own (which goes when the process does),
/// mounts a procfs at `path`. 0, or -1 with errno (the sandbox may not allow it). Call it
/// while the process has one thread: unshare(CLONE_NEWNS) refuses otherwise.
int deckhand_fuzz_mount_proc(const char *path);

#endif
