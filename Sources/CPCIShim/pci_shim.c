#include "CPCIShim.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One guarded call per thread at a time: the jump target and message buffer of
 * the call in progress on this thread. */
static _Thread_local jmp_buf *guard_jump;
static _Thread_local char *guard_message;
static _Thread_local int guard_message_size;

static PCI_NONRET void deckhand_pci_error(char *format, ...) {
    if (guard_message && guard_message_size > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(guard_message, (size_t)guard_message_size, format, args);
        va_end(args);
    }
    if (guard_jump) {
        longjmp(*guard_jump, 1);
    }
    /* An error outside a guarded call cannot be turned into a return code;
     * libpci's own contract is that this callback does not return. */
    abort();
}

/* Warnings (an unreadable attribute, a missing pci.ids) are not failures of the
 * inventory; the agent must not write them to its own stderr. */
static void deckhand_pci_warning(char *format, ...) { (void)format; }

/* pci_init installs a default debug callback, but the name-database handle is
 * never initialised, and lookups call it ("Using cache ..."). */
static void deckhand_pci_debug(char *format, ...) { (void)format; }

struct pci_access *deckhand_pci_new(const char *sysfs_path, const char *ids_path) {
    struct pci_access *access = pci_alloc();
    if (!access) {
        return NULL;
    }
    access->error = deckhand_pci_error;
    access->warning = deckhand_pci_warning;
    access->debug = deckhand_pci_debug;
    access->method = PCI_ACCESS_SYS_BUS_PCI;
    if (sysfs_path) {
        pci_set_param(access, "sysfs.path", (char *)sysfs_path);
    }
    if (ids_path) {
        pci_set_name_list_path(access, strdup(ids_path), 1);
    }
    return access;
}

int deckhand_pci_scan(struct pci_access *access, unsigned int fill_flags,
                      char *message, int message_size) {
    jmp_buf jump;
    guard_jump = &jump;
    guard_message = message;
    guard_message_size = message_size;
    if (setjmp(jump)) {
        guard_jump = NULL;
        return -1;
    }
    pci_init(access);
    pci_scan_bus(access);
    for (struct pci_dev *device = access->devices; device; device = device->next) {
        pci_fill_info(device, (int)fill_flags);
    }
    guard_jump = NULL;
    return 0;
}

int deckhand_pci_load_names(struct pci_access *access, char *message, int message_size) {
    jmp_buf jump;
    guard_jump = &jump;
    guard_message = message;
    guard_message_size = message_size;
    if (setjmp(jump)) {
        guard_jump = NULL;
        return -1;
    }
    int loaded = pci_load_name_list(access);
    guard_jump = NULL;
    return loaded ? 1 : 0;
}

char *deckhand_pci_lookup_name(struct pci_access *access, char *buffer, int size,
                               int flags, int id1, int id2, int id3, int id4) {
    return pci_lookup_name(access, buffer, size, flags, id1, id2, id3, id4);
}
