// SPDX-License-Identifier: GPL-2.0

//! Error codes that the 6.12 `kernel::error::code` module does not define.

use kernel::{bindings, error::Error};

/// Builds an [`Error`] from a positive errno constant of the bindings.
fn from_const(errno: u32) -> Error {
    // The constants below are small positive numbers, so the negation is a valid errno.
    Error::from_errno(-(errno as i32))
}

/// Operation not supported (yet).
pub(crate) fn eopnotsupp() -> Error {
    from_const(bindings::EOPNOTSUPP)
}

/// Value too large; kevent uses it for a stale ring commit.
pub(crate) fn eoverflow() -> Error {
    from_const(bindings::EOVERFLOW)
}

/// Not a socket.
pub(crate) fn enotsock() -> Error {
    from_const(bindings::ENOTSOCK)
}

/// Too many levels of nesting: a queue watching queues would form a cycle or a chain longer
/// than `KEVENT_MAX_NESTS`.
pub(crate) fn eloop() -> Error {
    from_const(bindings::ELOOP)
}

/// The socket is not connected.
pub(crate) fn enotconn() -> Error {
    from_const(bindings::ENOTCONN)
}

/// The operation was cancelled.
pub(crate) fn ecanceled() -> Error {
    from_const(bindings::ECANCELED)
}

/// A datagram socket has no destination.
pub(crate) fn edestaddrreq() -> Error {
    from_const(bindings::EDESTADDRREQ)
}
