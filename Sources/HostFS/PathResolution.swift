/// How a `ConfinedRoot` resolves paths beneath its root descriptor.
public enum PathResolution: Sendable, Hashable {
    /// The kernel's `openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, and the
    /// component walk only when openat2 answers ENOSYS (kernel older than 5.6) or EPERM
    /// (a seccomp profile that predates it).
    case automatic
    /// Always the component walk: one `O_NOFOLLOW` step at a time, links resolved by the
    /// agent inside the root. For tests, and for sandboxes known to lack `openat2`.
    case componentWalk
}
