#ifndef DECKHAND_CPCISHIM_H
#define DECKHAND_CPCISHIM_H

#include <pci/pci.h>

/* The few calls Swift cannot make on libpci directly:
 * - pci_lookup_name is variadic;
 * - libpci reports failures through an `error` callback that must not return
 *   (its default calls exit()), so init, scan, fill and the name list load
 *   run under setjmp and a failure comes back as a return code and message. */

/* Allocates an access handle for the sysfs method, with quiet warnings and a
 * non-exiting error handler. `sysfs_path` is the `.../bus/pci` directory and
 * `ids_path` the pci.ids file; either may be NULL for libpci's default. */
struct pci_access *deckhand_pci_new(const char *sysfs_path, const char *ids_path);

/* pci_init + pci_scan_bus + pci_fill_info(fill_flags) on every device.
 * Returns 0, or -1 with libpci's message in `message`. */
int deckhand_pci_scan(struct pci_access *access, unsigned int fill_flags,
                      char *message, int message_size);

/* Loads the name database now so that later lookups cannot fail.
 * Returns 1 when loaded, 0 when the file is missing (lookups then print
 * numbers, as lspci does), -1 with a message on a parse error. */
int deckhand_pci_load_names(struct pci_access *access, char *message, int message_size);

/* pci_lookup_name with up to four numeric arguments; libpci reads only as many
 * as `flags` asks for. Call after deckhand_pci_load_names. */
char *deckhand_pci_lookup_name(struct pci_access *access, char *buffer, int size,
                               int flags, int id1, int id2, int id3, int id4);

#endif
